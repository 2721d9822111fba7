"""Load case: upload files or a zip, or open a demo case; series table, role override, load report."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from deepoxymap import io
from deepoxymap.case import Role
from deepoxymap.ui import dicom_export, loading, navigation, pacs, state, widgets

navigation.ensure_app()
widgets.show_flash()
st.title("Load case")

upload_tab, demo_tab, pacs_tab = st.tabs(["Upload a study", "Demo cases", "From PACS"])
with upload_tab:
    st.caption(
        "DICOM files (any names), a whole exported folder as a **.zip**, or NIfTI (`.nii`, `.nii.gz`). "
        "Bad files are skipped and listed in the load report; everything else still loads."
    )
    files = st.file_uploader(
        "Drop files or a zip here", accept_multiple_files=True, key="load_files", label_visibility="collapsed"
    )
    if files and st.button(f"Load {len(files)} file(s)", type="primary", key="load_go", icon=":material/input:"):
        with widgets.guard("read the uploaded files"), st.status("Reading files…", expanded=False) as status:
            result = loading.load_sources([(f.name, f.getvalue()) for f in files])
            series = list(result.series)
            if not series:
                status.update(label="No usable images found", state="error")
                st.error("None of the uploaded files contained a usable image series. See the load report below.")
                st.session_state[state.LOAD_ISSUES] = list(result.issues)
            else:
                case = io.build_case(series, loading.upload_case_id(series))
                status.update(label="Segmenting the LV (automatic)…")
                case, seg_notes = loading.with_automatic_masks(case)
                for note in seg_notes:
                    st.warning(note)
                state.set_case(case, "upload", series=series, issues=list(result.issues))
                dicom_export.remember_uploads(case.case_id, files)
                status.update(
                    label=f"Loaded {len(series)} series ({len(result.issues)} file(s) skipped)", state="complete"
                )
                state.flash(f"Loaded {len(series)} series; {len(result.issues)} file(s) skipped (see the load report).")
                st.rerun()
with demo_tab:
    st.caption("Synthetic cases with ground truth (one per class). One click loads the whole case.")
    widgets.demo_buttons_ui("load_demo")
with pacs_tab:
    pacs.from_pacs_ui()

loaded = state.current()
issues = st.session_state.get(state.LOAD_ISSUES, [])

if loaded is not None:
    widgets.case_caption(loaded)
    series = st.session_state.get(state.SERIES) or list(loaded.case.series)
    st.subheader("Series found")
    st.caption("Patient identifiers are never shown. Change a role if the automatic rule got it wrong, then apply.")
    table = pd.DataFrame(loading.series_rows(series))
    st.dataframe(table.drop(columns=["uid"]), hide_index=True, width="stretch", key="load_series_table")
    with st.expander("Change a series' role", expanded=False):
        labels = [r.label for r in Role]
        changed = {}
        for i, row in table.iterrows():
            name = f"{i + 1}. {row['description'] or 'series'} · {row['size (rows x cols)']} · {row['slices x frames']}"
            new = st.selectbox(name, labels, index=labels.index(row["role"]), key=f"load_role_{i}")
            if new != row["role"]:
                changed[row["uid"]] = loading.ROLE_BY_LABEL[new]
        if st.button("Apply role changes", key="load_apply_roles", disabled=not changed, icon=":material/check:"):
            with widgets.guard("apply the role changes"):
                case, new_series = loading.with_roles(loaded.case, series, changed)
                case, _ = loading.with_automatic_masks(case)
                state.replace_case(case, new_series)
                for j in range(len(table)):
                    st.session_state.pop(f"load_role_{j}", None)
                state.flash(f"Applied {len(changed)} role change(s).")
                st.rerun()
    with st.expander("Replace the segmentation with your own label map", expanded=False):
        st.caption(
            "Series without a label map are segmented automatically (LV blood pool, myocardium, RV); the outlines "
            "show in the Viewer. Upload a label map (NIfTI or DICOM, on the grid of one of the series above) to "
            "replace the automatic one on that series."
        )
        scheme = st.selectbox(
            "Label values",
            ["phantom", "emidec", "cinemyops"],
            format_func={
                "phantom": "1 LV blood, 2 myocardium, 3 RV, 4 scar, 5 edema, 6 MVO",
                "emidec": "EMIDEC: 1 cavity, 2 myocardium, 3 infarct, 4 MVO",
                "cinemyops": "MyoPS: 1 myocardium, 2 LV blood, 3 RV, 4 edema, 5 scar",
            }.get,
            key="load_mask_scheme",
        )
        mask_files = st.file_uploader("Label map files", accept_multiple_files=True, key="load_mask_files")
        if mask_files and st.button("Use these label maps", key="load_mask_go", icon=":material/draw:"):
            with widgets.guard("read the label maps"):
                case, mask_notes = loading.replace_masks(
                    loaded.case, [(f.name, f.getvalue()) for f in mask_files], scheme
                )
                state.replace_case(case)
                state.flash(
                    "Label maps attached." + (" " + " · ".join(mask_notes) if mask_notes else ""),
                    "warning" if mask_notes else "success",
                )
                st.rerun()
    os_count = len(loaded.case.by_role(Role.OS_CMR))
    if os_count == 0:
        st.warning("No OS-CMR series in this case: classification and feature maps need one (set a role above).")
    else:
        c1, c2, c3 = st.columns(3)
        c1.page_link(widgets.PAGE_VIEWER, label="View images", icon=":material/visibility:")
        c2.page_link(widgets.PAGE_CLASSIFY, label="Classify", icon=":material/psychology:")
        c3.page_link(widgets.PAGE_FEATURES, label="Feature maps", icon=":material/layers:")
else:
    st.info("No case loaded yet: upload a study or open a demo case.")

st.subheader("Load report")
if not issues:
    st.caption("No files were skipped." if loaded is not None else "Nothing loaded yet.")
else:
    st.caption(f"{len(issues)} file(s) skipped; the other files loaded normally.")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "file": str(getattr(i, "file", "")).replace("\\", "/").rsplit("/", 1)[-1],
                    "why it was skipped": getattr(i, "message", str(i)),
                }
                for i in issues
            ]
        ),
        hide_index=True,
        width="stretch",
        key="load_report_table",
    )
