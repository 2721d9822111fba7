"""Load case: upload DICOM/NIfTI files or a zip (filled in by the io work)."""

from __future__ import annotations

import streamlit as st

st.title("Load case")
st.info("Upload support is being built.")
