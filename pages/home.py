"""Home: what DeepOxyMap is."""

from __future__ import annotations

import streamlit as st

st.title("DeepOxyMap")
st.markdown(
    "See what a deep network sees in a contrast-free **oxygenation-sensitive CMR** (OS-CMR) heart scan: "
    "load a short-axis stack, classify it (healthy, ischemic scar, non-ischemic scar, edema) and compare "
    "the network's feature maps with LGE, T1 and T2."
)
st.warning("Research use only. DeepOxyMap is not a medical device and must not be used for diagnosis.")
