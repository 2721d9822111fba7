"""Viewer: OS-CMR (slice, cine frame, manoeuvre time point), LGE, T1/T2 maps; window/level; OS response."""

from __future__ import annotations

import streamlit as st

from deepoxymap.case import Role
from deepoxymap.ui import figures, mask_view, navigation, scar_view, views, widgets

navigation.ensure_app()
widgets.show_flash()
st.title("Viewer")
loaded = widgets.require_case()
widgets.case_caption(loaded)
case = loaded.case

choices = views.viewable_series(case)
if not choices:
    st.warning("This case has no image series to show.")
    st.stop()

controls, image_col = st.columns([1, 3])
with controls:
    kind = widgets.sticky_radio("Series", "dox_view_kind", list(choices), horizontal=False)
    stacks = choices[kind]
    if len(stacks) > 1:
        names = list(stacks)
        tp = widgets.sticky_select("Manoeuvre time point", "dox_view_tp", names, help=views.TIMEPOINT_HELP)
    else:
        tp = next(iter(stacks))
    stack = stacks[tp]
    k = widgets.sticky_slider(
        "Slice (base → apex)", "dox_view_slice", 0, stack.n_slices - 1, stack.n_slices // 2, one_based=True
    )
    f = widgets.sticky_slider("Cine frame", "dox_view_frame", 0, stack.n_frames - 1, 0) if stack.n_frames > 1 else 0
    c, w = views.window_ui(case, stack)
    is_map = views.map_kind(stack) is not None
    grey = is_map and widgets.sticky_toggle("Greyscale", "dox_view_grey", False, help="Show the map in grey.")
    cmap = "gray" if grey or not is_map else views.display_window(stack).colormap
    cine = stack.n_frames > 1 and st.toggle(
        "Cine playback", key="view_cine", help="Plays the cine of this slice in the browser at the series' timing."
    )
    speed = views.SPEEDS[widgets.sticky_select("Playback speed", "dox_view_speed", list(views.SPEEDS))] if cine else 1.0
    st.caption(views.slice_caption(stack, k, f))
    if cine:
        st.caption(views.cine_caption(stack, k, speed))
    if is_map:
        st.caption(views.field_caption(case, stack))
    has_mask = case.mask_for(stack.series_uid) is not None
    outlines = has_mask and widgets.sticky_toggle(
        "Segmentation outlines", "dox_view_outlines", True, help="LV blood pool, epicardium and RV from the label map."
    )
    if has_mask:
        st.caption(mask_view.mask_caption(case, stack, k, f))

with image_col, widgets.guard("draw the image"):
    if cine:
        fig = figures.cine_figure(
            stack.data[k],
            stack.geometry,
            window=(c, w),
            trigger_times=stack.trigger_times[k],
            height=520,
            title=f"{kind} · {tp} · slice {k + 1}/{stack.n_slices}",
            speed=speed,
            colorscale=figures.colorscale(cmap),
        )
    else:
        fig = figures.image_figure(
            stack.image(k, f),
            stack.geometry,
            window=(c, w),
            units=stack.units,
            value_name=views.value_name(stack),
            height=560,
            title=f"{kind}{'' if tp == kind else ' · ' + tp} · slice {k + 1}/{stack.n_slices}",
            colorscale=figures.colorscale(cmap),
            colorbar=f"{views.value_name(stack)} (ms)" if is_map else None,
        )
        if outlines:
            mask_view.add_outlines(fig, case, stack, k, f)
    st.plotly_chart(fig, key="view_image", config={"displaylogo": False})
    if stack.role == Role.LGE:
        with st.expander("Scar by method (LGE)", expanded=False):
            st.caption(
                "What each LGE threshold method finds in the myocardium of the label map (automatic or yours), "
                "with the remote myocardium each one uses; Dice only where the label map marks a scar."
            )
            scar_view.render_scar_methods(case, key="view_scar_methods")

st.divider()
st.subheader("OS response (percent signal change in the myocardium)")
st.caption(
    "ΔSI% = 100 × (SI at a later time point − SI at the reference) / SI at the reference, inside the myocardium; "
    "blue = signal fell (deoxygenation), red = signal rose. Healthy myocardium rises by about +8 to +15 % at the "
    "end of a breath-hold after hyperventilation; the effect is small and overlaps between groups."
)
timepoints = views.os_timepoints(case)
if len(timepoints) < 2:
    st.info("The OS response needs an OS-CMR series at two or more manoeuvre time points.")
else:
    a, b, c_ = st.columns(3)
    ref = a.selectbox("Reference", timepoints, index=views.default_ref(timepoints), key="view_os_ref")
    tgt_opts = [t for t in timepoints if t != ref]
    tgt = b.selectbox("Compared with", tgt_opts, index=views.default_target(tgt_opts), key="view_os_tgt")
    os_slice = min(k, case.os_timepoints()[ref].n_slices - 1)
    c_.caption(f"Slice {os_slice + 1} (the slice chosen above).")
    with widgets.guard("compute the OS response"):
        views.os_response_ui(loaded, ref, tgt, os_slice)
