"""DeepOxyMap Streamlit entry point: page config, the app's own navigation, research-use sidebar.

The sidebar links are the app's (``deepoxymap.ui.navigation``); Streamlit's ``pages/``
listing is switched off in ``.streamlit/config.toml`` (``client.showSidebarNavigation``).
"""

from __future__ import annotations

from deepoxymap.ui import warmup

# First thing of the first script run: load and trace the shipped model in the background
# (once per server process), before the app's own imports and pages run.
warmup.start()

import streamlit as st

from deepoxymap.ui import navigation, sidebar

st.set_page_config(page_title="DeepOxyMap", page_icon=":anatomical_heart:", layout="wide")

nav = st.navigation(navigation.pages(), position="hidden")
with navigation.app_run():
    sidebar.render()
    nav.run()
