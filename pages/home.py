"""Home: what DeepOxyMap is, the research-use notice, the model in brief, demo cases."""

from __future__ import annotations

import streamlit as st

from deepoxymap.ui import modelinfo, navigation, widgets

navigation.ensure_app()
widgets.show_flash()
st.title("DeepOxyMap")
st.markdown(
    "See what a deep network sees in a contrast-free **oxygenation-sensitive CMR** (OS-CMR) heart scan. "
    "Load a short-axis study, let the classifier call it **healthy, ischemic scar, non-ischemic scar or edema**, "
    "and compare the network's feature maps (class activation maps) with **LGE, T1 and T2** of the same "
    "patient position, slice by slice and per AHA segment."
)
widgets.research_notice()

left, right = st.columns([3, 2])
with left:
    st.subheader("Open a demo case")
    st.caption("Synthetic cases, one per class, with known lesion positions.")
    widgets.demo_buttons_ui("home_demo", then=widgets.PAGE_VIEWER)
    st.subheader("Or load your own")
    st.page_link(widgets.PAGE_LOAD, label="Upload DICOM / NIfTI files or a zip", icon=":material/upload_file:")
    st.markdown(
        "**Workflow:** Load case → Viewer (OS-CMR, LGE, T1, T2; OS response) → Classify → "
        "Feature maps (CAM beside LGE/T1/T2, bullseyes, agreement) · Cohort audit · Teaching quiz"
    )
with right:
    st.subheader("The model in brief")
    with widgets.guard("read the model card"):
        modelinfo.card_brief_ui()
