"""The sidebar shown on every page: the app's navigation, the research-use notice and the loaded case."""

from __future__ import annotations

import streamlit as st

from deepoxymap.ui import modelinfo, navigation, state

RESEARCH_LINE = "Research use only. Not a medical device; not for diagnosis."


def render() -> None:
    """Page links, the research-use line, the current case (no identifiers) and a button to close it."""
    with st.sidebar:
        navigation.links_ui()
        st.divider()
        st.caption(RESEARCH_LINE)
        modelinfo.choice_ui()
        loaded = state.current()
        if loaded is None:
            st.caption("No case loaded.")
            return
        c = loaded.case
        st.markdown(f"**Case** `{c.case_id}`")
        st.caption(f"{len(c.series)} series · {loaded.source.split(':')[0]}")
        if st.button("Close case", key="sb_close_case", icon=":material/close:"):
            state.clear_case()
            st.rerun()
