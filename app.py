"""DeepOxyMap Streamlit entry point: page config, research-use banner, navigation."""

from __future__ import annotations

import streamlit as st

from deepoxymap.ui import sidebar

st.set_page_config(page_title="DeepOxyMap", page_icon=":anatomical_heart:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/load_case.py", title="Load case", icon=":material/upload_file:"),
    st.Page("pages/viewer.py", title="Viewer", icon=":material/visibility:"),
    st.Page("pages/classify.py", title="Classify", icon=":material/psychology:"),
    st.Page("pages/feature_maps.py", title="Feature maps", icon=":material/layers:"),
    st.Page("pages/cohort_audit.py", title="Cohort audit", icon=":material/fact_check:"),
    st.Page("pages/teaching.py", title="Teaching", icon=":material/school:"),
    st.Page("pages/model_card.py", title="Model", icon=":material/memory:"),
]

nav = st.navigation(PAGES)
sidebar.render()
nav.run()
