"""DeepOxyMap Streamlit entry point: page config, the app's own navigation, research-use sidebar.

The sidebar links are the app's (``deepoxymap.ui.navigation``); Streamlit's ``pages/``
listing is switched off in ``.streamlit/config.toml`` (``client.showSidebarNavigation``).
"""

from __future__ import annotations

from deepoxymap.ui import warmup

# Load and trace the shipped model in the background, once per server process. Under
# `make run` (deepoxymap.ui.serve) that started with the server and this is a no-op; under a
# plain `streamlit run app.py` it starts here, before the app's own imports and pages run.
warmup.start()

import streamlit as st

from deepoxymap.ui import navigation, sidebar

st.set_page_config(page_title="DeepOxyMap", page_icon=":anatomical_heart:", layout="wide")

nav = st.navigation(navigation.pages(), position="hidden")
with navigation.app_run():
    sidebar.render()
    nav.run()
