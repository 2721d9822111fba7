"""Feature maps: OS-CMR + CAM | LGE | T1 | T2, slice-matched by patient position; bullseyes; agreement; export."""

from __future__ import annotations

import streamlit as st

from deepoxymap.errors import Unavailable
from deepoxymap.ui import analysis, dicom_export, featureview, modelinfo, navigation, segment_view, widgets

navigation.ensure_app()
widgets.show_flash()
st.title("Feature maps")
lc = widgets.require_case()
widgets.case_caption(lc)

# The classifier is optional here: without it the slice-matched LGE/T1/T2 panels still show.
model = None
try:
    model = modelinfo.loaded_model()
except Unavailable as exc:
    st.info(f"{exc} The LGE/T1/T2 panels below work without it.", icon=":material/extension:")
except Exception as exc:  # noqa: BLE001 - a bad model must not break the panels
    st.error(f"The classifier could not be loaded ({exc}); the LGE/T1/T2 panels below work without it.")

if model is not None and (note := (model.card.get("training") or {}).get("note")):
    # The model card's own caveat (e.g. an untrained convolutional base): maps read with it in mind.
    st.warning(f"About this model: {note}", icon=":material/info:")

ref_stack = None
with widgets.guard("prepare the OS-CMR input"):
    ref_stack, rows, frames = analysis.reference_stack(lc)
if ref_stack is None:
    st.stop()

with st.container(border=True):
    ctl = featureview.controls_ui(lc, model)

# Numbers over all slices (cached per case and settings); drawn below the slice view.
cams = seg = agr = None
seg_err = agr_msg = None
if model is not None and ctl.method is not None:
    with (
        widgets.guard("compute the feature maps of every slice"),
        st.spinner("Computing the feature maps…", show_time=True),
    ):
        cams = analysis.all_cams(lc, ctl.method, ctl.layer, ctl.target, ctl.contrast)
try:
    seg = segment_view.segment_values(lc, ref_stack, cams, key=ctl.cam_key, tau=ctl.threshold)
    if cams is not None:
        agr = segment_view.agreement(lc, cams, key=ctl.cam_key, tau=ctl.threshold, method=ctl.method or "")
except Exception as exc:  # noqa: BLE001 - shown in its section below
    seg_err = exc
tables = {"per segment": seg.table if seg else None, "agreement": agr.table if agr else None}

st.fragment(featureview.slice_view_ui)(
    lc, model, ref_stack, rows, frames, ctl, {k: v for k, v in tables.items() if v is not None}
)

st.subheader("Per AHA segment")
with widgets.guard("compute the per-segment values"):
    if seg_err is not None:
        raise seg_err
    bcols = st.columns(max(1, len(seg.maps)))
    for i, (bc, (name, spec)) in enumerate(zip(bcols, seg.maps.items(), strict=False)):
        with bc:
            featureview.draw_bullseye(lc, i, name, spec)
    if not seg.table.empty:  # the bullseyes' numbers (the pictures have no hover)
        st.dataframe(seg.arrow, hide_index=True, key="fm_seg_table")
    st.caption(seg.note)

st.subheader("Agreement with the reference lesion")
with widgets.guard("compute the agreement"):
    if isinstance(seg_err, Unavailable):
        st.caption("Needs the same label map (see above).")
    elif seg_err is not None:
        raise seg_err
    elif agr is None:
        st.info("Agreement needs the classifier's feature maps (see above).")
    else:
        a1, a2 = st.columns([2, 3])
        a1.dataframe(agr.arrow, hide_index=True, key="fm_agree_table")
        with a2:
            featureview.draw_agreement_bars(lc, f"{ctl.method} vs {agr.reference_name}", agr.headline)
        st.caption(
            f"All slices of the case; threshold = your CAM threshold ({ctl.threshold:.2f} of the maximum). The cohort "
            "audit chooses it on validation cases instead. Healthy cases have no lesion: the spread of the map is shown."
        )

st.subheader("Report and DICOM exports")
with widgets.guard("prepare the report and the DICOM exports"):
    dicom_export.exports_ui(lc, model, ctl, cams)
