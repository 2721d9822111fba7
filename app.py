"""DeepOxyMap Streamlit entry point: page config, research-use banner, navigation."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="DeepOxyMap", page_icon=":anatomical_heart:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/load_case.py", title="Load case", icon=":material/upload_file:"),
]

nav = st.navigation(PAGES)
st.sidebar.caption("Research use only. Not a medical device; not for diagnosis.")
nav.run()
