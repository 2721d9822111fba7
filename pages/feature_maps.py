"""Feature maps: OS-CMR + CAM | LGE | T1 | T2, slice-matched by patient position; bullseyes; agreement; export."""

from __future__ import annotations

import streamlit as st

from deepoxymap.ui import analysis, export, featureview, figures, modelinfo, segments, widgets
from deepoxymap.ui.core import Missing

widgets.show_flash()
st.title("Feature maps")
lc = widgets.require_case()
widgets.case_caption(lc)

# --- the model (optional: without it the slice-matched panels still show) ---
model = None
model_msg = None
try:
    model = modelinfo.loaded_model()
except Missing as exc:
    model_msg = str(exc)
except Exception as exc:  # noqa: BLE001 - a bad model must not break the panels
    model_msg = f"The classifier could not be loaded: {exc}"
if model_msg:
    st.info(model_msg + " The LGE/T1/T2 panels below work without it.", icon=":material/extension:")

ref_stack = None
with widgets.guard("prepare the OS-CMR input"):
    ref_stack, rows, frames = analysis.reference_stack(lc)
if ref_stack is None:
    st.stop()

# --- controls ---
method = layer = None
target = None
with st.container(border=True):
    c = st.columns([1.2, 1.2, 1.2, 1, 1, 1])
    if model is not None:
        with widgets.guard("list the feature-map methods"):
            meths = analysis.methods()
            with c[0]:
                method = widgets.sticky_select("Method", "dox_fm_method", list(meths), "gradcam", format_func=meths.get)
            names, default_layer = analysis.layers(model)
            with c[1]:
                layer = widgets.sticky_select("Layer", "dox_fm_layer", names[::-1], default_layer,
                                              disabled=not analysis.method_uses_layer(method),
                                              help="Convolutional layer whose activations are used (last = most semantic).")
            classes = analysis.class_names(model)
            with c[2]:
                choice = widgets.sticky_select("Target class", "dox_fm_target", ["predicted"] + classes, "predicted",
                                               help="Which class the map explains.")
            target = None if choice == "predicted" else classes.index(choice)
    else:
        c[0].caption("Method, layer and class need the classifier.")
    with c[3]:
        cmap = widgets.sticky_select("Colour map", "dox_fm_cmap", list(figures.COLORMAPS), "Jet")
    with c[4]:
        opacity = widgets.sticky_float("Overlay opacity", "dox_fm_opacity", 0.0, 1.0, 0.45, step=0.05)
    with c[5]:
        thr = widgets.sticky_float("CAM threshold", "dox_fm_thr", 0.05, 0.95, 0.5, step=0.05,
                                   help="Iso-line of the CAM drawn on every panel.")
    t1, t2, t3 = st.columns([2, 1, 1])
    with t1:
        k = widgets.sticky_slider("Slice (base → apex) — drives every panel", "dox_fm_slice", 0, ref_stack.n_slices - 1,
                                  ref_stack.n_slices // 2, one_based=True)
    with t2:
        contour_on = widgets.sticky_toggle("CAM contour on LGE/T1/T2", "dox_fm_contour", True)
    with t3:
        show_ref = widgets.sticky_toggle("Reference lesion outline", "dox_fm_ref", True,
                                         disabled=not analysis.case_has_lesion_masks(lc.case),
                                         help="Dashed yellow: the ground-truth lesion (synthetic cases and drawn masks).")
        zoomed = widgets.sticky_toggle("Zoom to the heart", "dox_fm_zoom", True,
                                       help="Show the region the model sees (its LV-centred crop).")
box = None
if zoomed:
    with widgets.guard("find the heart region"):
        box = analysis.view_box(lc, ref_stack, k)
look = featureview.Look(opacity, cmap, thr, contour_on, show_ref, box=box)

row = rows.index(k) if k in rows else k
frame = frames[row] if row < len(frames) else 0
cam = None
if model is not None and method is not None:
    with widgets.guard("compute the feature map"):
        cam_result = analysis.cam(lc, row, method, layer, target)
        cam = cam_result.source
        st.caption(
            f"{method} of **{cam_result.target_class}** · layer `{layer if analysis.method_uses_layer(method) else '-'}` · "
            f"OS-CMR frame {frame} (the frame the model saw) · slice position "
            f"{ref_stack.geometry.slice_positions[k]:.1f} mm"
        )

# --- panels ---
view_panels: list[export.ViewPanel] = []
distances: dict[str, float | str] = {}
cols = st.columns(4)
with widgets.guard("draw the panels"):
    cam_key = (modelinfo.model_key(), method, layer, target) if cam is not None else None
    for col, pv in zip(cols, featureview.build_view(lc, ref_stack, k, frame, cam, look, cam_key), strict=True):
        with col:
            if pv.figure is None:
                st.markdown(f"**{pv.role.label if pv.role else 'OS-CMR'}**")
                st.info(pv.message or "Not available.")
            else:
                st.plotly_chart(pv.figure, key=pv.key, config={"displaylogo": False})
        if pv.role is not None:
            distances[pv.role.label] = round(pv.distance_mm, 2) if pv.distance_mm is not None else (pv.message or "")
        view_panels.append(pv.export)
st.caption(
    "Each panel is the nearest slice of that series by patient position, resampled onto the OS-CMR pixel grid; "
    "Δ is the distance between the two planes. Cyan: CAM threshold contour. Dashed yellow: reference lesion."
)

# --- raw feature-map channels ---
if model is not None:
    show_raw = widgets.sticky_toggle("Show raw feature-map channels", "dox_fm_raw", False)
    if show_raw:
        with widgets.guard("compute the raw feature maps"):
            names, default_layer = analysis.layers(model)
            fl = st.selectbox("Layer", names[::-1], index=names[::-1].index(layer or default_layer), key="fm_raw_layer")
            top_k = st.slider("Channels (most active first)", 4, 16, 8, step=4, key="fm_raw_k")
            fmaps = analysis.raw_feature_maps(lc, row, fl, top_k)
            st.plotly_chart(figures.channel_grid(fmaps), key="fm_raw_grid", config={"displaylogo": False})

# --- bullseyes and agreement ---
st.subheader("Per AHA segment")
tables: dict = {"matching distance (mm)": distances}
cams = None
cam_key = (method, layer, target)
with widgets.guard("compute the per-segment values"):
    cams = analysis.all_cams(lc, method, layer, target) if (model is not None and method is not None) else None
    seg = segments.segment_values(lc, ref_stack, cams, key=cam_key, tau=thr)
    bcols = st.columns(max(1, len(seg.maps)))
    for i, (bc, (name, spec)) in enumerate(zip(bcols, seg.maps.items(), strict=False)):
        with bc:
            st.plotly_chart(figures.bullseye(spec.values, title=name, colorscale=spec.colorscale, zmin=spec.zmin,
                                             zmax=spec.zmax, units=spec.units, fmt=spec.fmt),
                            key=f"fm_bull_{i}", config={"displaylogo": False})
    if seg.note:
        st.caption(seg.note)
    tables["per segment"] = seg.table

st.subheader("Agreement with the reference lesion")
with widgets.guard("compute the agreement"):
    if not analysis.case_has_lesion_masks(lc.case):
        st.info(segments.NEEDS_MASK)
    elif cams is None:
        st.info("Agreement needs the classifier's feature maps (see above).")
    else:
        agr = segments.agreement(lc, cams, key=cam_key, tau=thr, method=method or "")
        a1, a2 = st.columns([2, 3])
        a1.dataframe(agr.table, hide_index=True, key="fm_agree_table")
        a2.plotly_chart(figures.metric_bars(agr.headline, title=f"{method} vs {agr.reference_name}"),
                        key="fm_agree_bars", config={"displaylogo": False})
        st.caption(
            f"All slices of the case; threshold = your CAM threshold ({thr:.2f} of the maximum). The cohort audit "
            "chooses it on validation cases instead. Healthy cases have no lesion: the spread of the map is shown."
        )
        tables["agreement"] = agr.table

# --- export ---
st.subheader("Export")
e1, e2 = st.columns(2)
suptitle = f"DeepOxyMap · case {lc.case.case_id} · OS-CMR slice {k + 1} · {method or 'no CAM'} · research use only"
e1.download_button("Current view (PNG)", data=lambda: export.view_png(view_panels, suptitle=suptitle),
                   file_name=f"deepoxymap_{lc.case.case_id}_slice{k + 1}.png", mime="image/png", key="fm_png",
                   on_click="ignore", icon=":material/image:")
e2.download_button("Numbers (CSV)", data=lambda: export.numbers_csv(tables),
                   file_name=f"deepoxymap_{lc.case.case_id}_slice{k + 1}.csv", mime="text/csv", key="fm_csv",
                   on_click="ignore", icon=":material/table:")
