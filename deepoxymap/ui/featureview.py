"""The Feature-maps view: panel figures for one OS-CMR slice, and what goes into the export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray

from deepoxymap.case import Role, Stack
from deepoxymap.compare import Panel
from deepoxymap.display import MAP_COLORMAPS, MAP_WINDOWS, DisplayWindow, display_window, field_class, series_field_t
from deepoxymap.ui import figures
from deepoxymap.ui.export import ViewPanel


@dataclass(frozen=True)
class Look:
    """Display settings shared by all panels.

    Attributes:
        map_windows: ``((role value, lo, hi), ...)``: the user's T1/T2 windows in ms
            (default: :func:`deepoxymap.display.display_window` at the case's field strength).
    """

    opacity: float
    colormap: str
    threshold: float
    contour_on_others: bool
    show_reference: bool
    height: int = 360
    box: tuple[float, float, float, float] | None = None
    map_windows: tuple[tuple[str, float, float], ...] = ()


def panel_window(stack: Stack, look: Look) -> DisplayWindow:
    """The window and colour map of a panel: the user's T1/T2 window where set, else the stack's default."""
    win = display_window(stack)
    for role, lo, hi in look.map_windows:
        if role == stack.role.value and win.units == "ms":
            return DisplayWindow(lo, hi, win.colormap, "ms", "your window", win.field_t, win.assumed_field)
    return win


def _add_reference(fig: Any, reference: Any, geometry: Any, look: Any, crop: Any) -> None:
    """Draw the reference-lesion outline (dashed) when the user asked for it and one exists."""
    if look.show_reference and reference is not None:
        figures.add_contour(
            fig,
            reference,
            geometry,
            level=0.5,
            color=figures.LESION_COLOR,
            name="reference lesion",
            width=1.5,
            dash="dash",
            crop=crop,
        )


def _aspect(stack: Stack) -> float:
    return stack.geometry.pixel_spacing[0] / stack.geometry.pixel_spacing[1]


def oscmr_view(
    stack: Stack,
    k: int,
    frame: int,
    cam: NDArray[Any] | None,
    look: Look,
    *,
    title: str,
    reference: NDArray[Any] | None = None,
) -> ViewPanel:
    """OS-CMR slice with the CAM overlay and its threshold contour, as drawn (screen image and export)."""
    img = stack.image(k, frame)
    grey = display_window(stack)  # robust greyscale window of the whole stack
    return ViewPanel(
        title,
        img,
        (grey.lo, grey.hi),
        _aspect(stack),
        cam,
        look.colormap,
        look.opacity,
        cam,
        look.threshold,
        reference if look.show_reference else None,
        crop=figures.crop_of(stack.geometry, look.box),
    )


def oscmr_figure(
    stack: Stack,
    k: int,
    frame: int,
    cam: NDArray[Any] | None,
    look: Look,
    *,
    title: str,
    reference: NDArray[Any] | None = None,
) -> tuple[go.Figure, ViewPanel]:
    """:func:`oscmr_view` as an interactive plotly figure (hover values; the Teaching page)."""
    vp = oscmr_view(stack, k, frame, cam, look, title=title, reference=reference)
    assert vp.image is not None
    grey = display_window(stack)
    crop = vp.crop
    fig = figures.image_figure(
        vp.image, stack.geometry, window=grey.centre_width, title=title, height=look.height, crop=crop
    )
    if cam is not None:
        figures.add_overlay(
            fig,
            cam,
            stack.geometry,
            opacity=look.opacity,
            colorscale=look.colormap,
            base=vp.image,
            name="CAM",
            colorbar=False,
            fade=True,
            crop=crop,
        )
        figures.add_contour(fig, cam, stack.geometry, level=look.threshold, crop=crop)
    _add_reference(fig, reference, stack.geometry, look, crop)
    figures.zoom(fig, look.box)
    return fig, vp


def panel_title(p: Panel) -> str:
    """Title with the matched slice and the distance between planes."""
    if p.image is None or p.other_index is None or p.distance_mm is None:
        return p.role.label
    return f"{p.role.label} · slice {p.other_index + 1} · Δ {p.distance_mm:.1f} mm"


def other_view(
    p: Panel, ref: Stack, cam: NDArray[Any] | None, look: Look, reference: NDArray[Any] | None = None
) -> ViewPanel:
    """LGE / T1 / T2 resampled onto the OS-CMR grid, with the CAM threshold contour, as drawn."""
    title = panel_title(p)
    if p.image is None or p.stack is None:
        return ViewPanel(title, None, (0, 1), note=p.message or "")
    name = {Role.T1_MAP: "T1", Role.T2_MAP: "T2"}.get(p.role, "SI")
    win = panel_window(p.stack, look)
    contour = cam if (look.contour_on_others and cam is not None) else None
    return ViewPanel(
        title,
        p.image,
        (win.lo, win.hi),
        _aspect(ref),
        None,
        look.colormap,
        0.0,
        contour,
        look.threshold,
        reference if look.show_reference else None,
        crop=figures.crop_of(ref.geometry, look.box),
        image_cmap=win.colormap,
        units=f"{name} (ms)" if win.units == "ms" else "",
    )


def other_figure(
    p: Panel, ref: Stack, cam: NDArray[Any] | None, look: Look, reference: NDArray[Any] | None = None
) -> tuple[go.Figure | None, ViewPanel]:
    """:func:`other_view` as an interactive plotly figure (hover values in ms; the Teaching page)."""
    vp = other_view(p, ref, cam, look, reference)
    if vp.image is None or p.stack is None:
        return None, vp
    name = {Role.T1_MAP: "T1", Role.T2_MAP: "T2"}.get(p.role, "SI")
    win = panel_window(p.stack, look)
    fig = figures.image_figure(
        vp.image,
        ref.geometry,
        window=win.centre_width,
        title=vp.title,
        units=p.stack.units,
        value_name=name,
        height=look.height,
        crop=vp.crop,
        colorscale=figures.colorscale(win.colormap),
        colorbar=vp.units or None,
    )
    if vp.contour is not None:
        figures.add_contour(fig, vp.contour, ref.geometry, level=look.threshold, crop=vp.crop)
    _add_reference(fig, reference, ref.geometry, look, vp.crop)
    figures.zoom(fig, look.box)
    return fig, vp


@dataclass(frozen=True)
class PanelView:
    """One panel of the slice view: what is drawn (also the export's panel), or why nothing is.

    Attributes:
        key: Streamlit key of the panel's container (CSS class ``st-key-<key>``).
        role: the panel's series role (``None``: the OS-CMR panel).
        export: the panel as drawn (:func:`deepoxymap.ui.panels.compose` draws it on screen,
            :func:`deepoxymap.ui.export.view_png` in the PNG export).
        message: why a panel has no image.
        distance_mm: distance between the OS-CMR plane and the matched slice.
    """

    key: str
    role: Role | None
    export: ViewPanel
    message: str | None = None
    distance_mm: float | None = None

    @property
    def title(self) -> str:
        """The panel title (matched slice and plane distance on LGE/T1/T2)."""
        return self.export.title


def build_view(
    lc: Any, ref: Stack, k: int, frame: int, cam: NDArray[Any] | None, look: Look, cam_key: Any
) -> list[PanelView]:
    """The four panels of slice ``k``, built once per (slice, look, CAM) and cached."""
    from deepoxymap.ui import analysis, state

    def run() -> list[PanelView]:
        out: list[PanelView] = []
        ref_mask = analysis.reference_lesion(lc.case, ref.series_uid, k, frame) if look.show_reference else None
        vp = oscmr_view(ref, k, frame, cam, look, title=f"OS-CMR + CAM · slice {k + 1}", reference=ref_mask)
        out.append(PanelView("fm_panel_os", None, vp))
        for role in analysis.PANEL_ROLES:
            p = analysis.panel(lc, ref, k, role)
            ref_other = p.labels if (look.show_reference and p.labels is not None and p.labels.max() > 0.5) else None
            out.append(
                PanelView(
                    f"fm_panel_{role.value}", role, other_view(p, ref, cam, look, ref_other), p.message, p.distance_mm
                )
            )
        return out

    return state.cached(lc.token, ("view", ref.series_uid, k, frame, look, cam_key), run, limit=64)


def panel_image(lc: Any, view_key: Any, pv: PanelView, height: int) -> str:
    """One panel at ``height`` px as a ``data:image/png;base64`` URI (cached per view and height).

    A data URI travels inside the page's own message: no second request for the image, and
    nothing left in Streamlit's media store (:func:`deepoxymap.ui.panels.panel_png` draws it).
    """
    import base64

    from deepoxymap.ui import panels, state

    def run() -> str:
        return "data:image/png;base64," + base64.b64encode(panels.panel_png(pv.export, height)).decode("ascii")

    return state.cached(lc.token, ("png", view_key, pv.key, int(height)), run)


def draw_panel(lc: Any, view_key: Any, pv: PanelView, height: int) -> None:
    """One panel in a container keyed ``pv.key``: its title, then its composed image (or why there is none)."""
    import streamlit as st

    with st.container(key=pv.key):
        if pv.export.image is None:
            st.markdown(f"**{pv.role.label if pv.role else 'OS-CMR'}**")
            st.info(pv.message or pv.export.note or "Not available.")
            return
        st.markdown(f"**{pv.title}**")
        st.image(panel_image(lc, view_key, pv, height), width="content")


# ---------------------------------------------------------------------------
# page sections
# ---------------------------------------------------------------------------


METHOD_KEY, LAYER_KEY, TARGET_KEY = "dox_fm_method", "dox_fm_layer", "dox_fm_target"
"""Sticky session keys of the method, layer and target class (read by :func:`deepoxymap.ui.analysis.prefetch`)."""
CONTRAST_KEY = "dox_fm_contrast"
"""Sticky session key of the "against healthy" toggle (contrastive maps; read by the prefetch too)."""
CONTRAST_CLASS = "healthy"
"""The class a contrastive map is explained against."""


def contrast_index(against: bool, method: str | None, classes: Sequence[str]) -> int | None:
    """The class index the maps subtract: :data:`CONTRAST_CLASS` where the toggle is on and the method takes it."""
    from deepoxymap.explain.methods import supports_contrast

    usable = method is not None and supports_contrast(method) and CONTRAST_CLASS in classes
    return list(classes).index(CONTRAST_CLASS) if against and usable else None


DEFAULT_METHOD = "gradcam"


@dataclass(frozen=True)
class Controls:
    """The Feature-maps settings chosen by the user (everything but the slice)."""

    method: str | None
    layer: str | None
    target: int | None
    colormap: str
    opacity: float
    threshold: float
    contour_on_others: bool
    show_reference: bool
    zoomed: bool
    contrast: int | None = None
    """Index of the class whose logit is subtracted (:data:`CONTRAST_CLASS`), or ``None``."""

    @property
    def cam_key(self) -> tuple[Any, ...]:
        """Cache key of the maps these settings produce."""
        return (self.method, self.layer, self.target, self.contrast)


def controls_ui(lc: Any, model: Any) -> Controls:
    """Method, layer, target class, colour map, opacity, threshold and display toggles (sticky across pages)."""
    import streamlit as st

    from deepoxymap.ui import analysis, widgets

    method = layer = None
    target = contrast = None
    c = st.columns([1.2, 1.2, 1.2, 1, 1, 1])
    if model is not None:
        with widgets.guard("list the feature-map methods"):
            meths = analysis.methods()
            with c[0]:
                method = widgets.sticky_select("Method", METHOD_KEY, list(meths), DEFAULT_METHOD, format_func=meths.get)
            names, default_layer = analysis.layers(model)
            with c[1]:
                layer = widgets.sticky_select(
                    "Layer",
                    LAYER_KEY,
                    names[::-1],
                    default_layer,
                    disabled=not analysis.method_uses_layer(method),
                    help="Convolutional layer whose activations are used (last = most semantic).",
                )
            classes = analysis.class_names(model)
            with c[2]:
                choice = widgets.sticky_select(
                    "Target class",
                    TARGET_KEY,
                    ["predicted", *classes],
                    "predicted",
                    help="Which class the map explains.",
                )
            target = None if choice == "predicted" else classes.index(choice)
            if CONTRAST_CLASS in classes:
                with c[2]:
                    against = widgets.sticky_toggle(
                        f"Against {CONTRAST_CLASS}",
                        CONTRAST_KEY,
                        False,
                        disabled=contrast_index(True, method, classes) is None,
                        help=f"Explain the class minus {CONTRAST_CLASS} (contrastive map: why this class rather than "
                        f"{CONTRAST_CLASS}). Evidence both share, such as the LV's shape, cancels. A "
                        f"{CONTRAST_CLASS} map stays plain. Gradient CAMs only.",
                    )
                contrast = contrast_index(against, method, classes)
    else:
        c[0].caption("Method, layer and class need the classifier.")
    with c[3]:
        cmap = widgets.sticky_select(
            "Colour map",
            "dox_fm_cmap",
            list(figures.COLORMAPS),
            figures.DEFAULT_CAM_COLORMAP,
            help="CAM overlay. Inferno, Magma, Viridis and Cividis are perceptually uniform; Turbo, Jet and Hot "
            "are not (their bright bands look like edges that are not in the map).",
        )
    with c[4]:
        opacity = widgets.sticky_float("Overlay opacity", "dox_fm_opacity", 0.0, 1.0, 0.45, step=0.05)
    with c[5]:
        thr = widgets.sticky_float(
            "CAM threshold",
            "dox_fm_thr",
            0.05,
            0.95,
            0.5,
            step=0.05,
            help="Iso-line of the CAM drawn on every panel; also the threshold of Dice/IoU below.",
        )
    t1, t2, t3 = st.columns(3)
    with t1:
        contour_on = widgets.sticky_toggle("CAM contour on LGE/T1/T2", "dox_fm_contour", True)
    with t2:
        show_ref = widgets.sticky_toggle(
            "Reference lesion outline",
            "dox_fm_ref",
            True,
            disabled=not analysis.case_has_lesion_masks(lc.case),
            help="Dashed yellow: the ground-truth lesion (synthetic cases and drawn masks).",
        )
    with t3:
        zoomed = widgets.sticky_toggle(
            "Zoom to the heart", "dox_fm_zoom", True, help="Show the region the model sees (its LV-centred crop)."
        )
    return Controls(method, layer, target, cmap, opacity, thr, contour_on, show_ref, zoomed, contrast)


LAYOUTS = ("2 × 2", "1 × 4")
"""Panel layouts: two rows of two, or one row of four."""
NO_ENLARGE = "none"
PANEL_NAMES = ("OS-CMR + CAM", "LGE", "T1 map", "T2 map")
"""The four panels in drawing order (:func:`build_view`)."""
HEIGHTS = {"2 × 2": 560, "1 × 4": 360, "large": 720, "small": 240}
"""Panel image heights in px; the width follows the image's aspect (narrower columns shrink it to fit)."""

_MAP_RANGES = {"T1": (0.0, 3000.0, 10.0), "T2": (0.0, 300.0, 1.0)}


@dataclass(frozen=True)
class Arrangement:
    """How the four panels are laid out, and the T1/T2 windows the user chose."""

    layout: str
    enlarged: str
    map_windows: tuple[tuple[str, float, float], ...] = ()
    captions: tuple[str, ...] = ()


def arrangement_ui(lc: Any) -> Arrangement:
    """Layout (2 x 2 or 1 x 4), one panel enlarged, and the T1/T2 windows in ms (sticky across pages).

    The T1/T2 defaults come from the field strength of each map's series
    (:data:`deepoxymap.display.MAP_WINDOWS`); each field has its own remembered window.
    """
    import streamlit as st

    from deepoxymap.ui import widgets

    c = st.columns([1, 1.2, 1.6, 1.6])
    with c[0]:
        layout = widgets.sticky_radio("Layout", "dox_fm_layout", list(LAYOUTS), LAYOUTS[0], horizontal=True)
    with c[1]:
        enlarged = widgets.sticky_select(
            "Enlarge", "dox_fm_enlarge", [NO_ENLARGE, *PANEL_NAMES], NO_ENLARGE, help="Show one panel large."
        )
    windows: list[tuple[str, float, float]] = []
    captions: list[str] = []
    for col, role, kind in ((c[2], Role.T1_MAP, "T1"), (c[3], Role.T2_MAP, "T2")):
        series = lc.case.first(role)
        if series is None or series.stack.units != "ms":
            continue
        field = series_field_t(lc.case, series.uid)
        fc = field_class(field)
        use = fc if fc is not None else 3.0
        lo, hi = MAP_WINDOWS[(kind, use)]
        rmin, rmax, step = _MAP_RANGES[kind]
        with col:
            got = widgets.sticky_range(
                f"{kind} window (ms)",
                f"dox_fm_win_{kind.lower()}_{use:g}",
                rmin,
                rmax,
                (lo, hi),
                step=step,
                format="%.0f",
                help=f"Default for {use:g} T: normal myocardium in the lower middle, lesions brighter, blood saturated.",
            )
        windows.append((role.value, float(got[0]), float(got[1])))
        where = f"{use:g} T" if fc is not None else "field strength unknown: 3 T window"
        captions.append(f"{kind}: {MAP_COLORMAPS[kind]}, {got[0]:.0f}-{got[1]:.0f} ms ({where})")
    return Arrangement(layout, enlarged, tuple(windows), tuple(captions))


def panel_slots(arr: Arrangement) -> list[tuple[Any, int]]:
    """One ``(container, height)`` per panel, in :data:`PANEL_NAMES` order, for the chosen arrangement."""
    import streamlit as st

    if arr.enlarged in PANEL_NAMES:
        big, side = st.columns([3, 1])
        slots: list[tuple[Any, int]] = []
        for name in PANEL_NAMES:
            slots.append((big, HEIGHTS["large"]) if name == arr.enlarged else (side, HEIGHTS["small"]))
        return slots
    if arr.layout == "1 × 4":
        return [(col, HEIGHTS["1 × 4"]) for col in st.columns(4)]
    top, bottom = st.columns(2), st.columns(2)
    return [(col, HEIGHTS["2 × 2"]) for col in (*top, *bottom)]


def slice_view_ui(
    lc: Any, model: Any, ref: Stack, rows: list[int], frames: list[int], ctl: Controls, tables: dict[str, Any]
) -> None:
    """The slice control and everything that depends on the slice: the four panels, raw channels, export.

    Runs as a Streamlit fragment: moving the slice re-runs only this part of the page.
    """
    import streamlit as st

    from deepoxymap.ui import analysis, export, modelinfo, widgets

    k = widgets.sticky_slider(
        "Slice (base → apex) — drives every panel",
        "dox_fm_slice",
        0,
        ref.n_slices - 1,
        ref.n_slices // 2,
        one_based=True,
    )
    arr = arrangement_ui(lc)
    box = None
    if ctl.zoomed:
        with widgets.guard("find the heart region"):
            box = analysis.view_box(lc, ref, k)
    look = Look(
        ctl.opacity,
        ctl.colormap,
        ctl.threshold,
        ctl.contour_on_others,
        ctl.show_reference,
        box=box,
        map_windows=arr.map_windows,
    )
    row = rows.index(k) if k in rows else k
    frame = frames[row] if row < len(frames) else 0
    cam = None
    if model is not None and ctl.method is not None:
        with widgets.guard("compute the feature map"):
            res = analysis.cam(lc, row, ctl.method, ctl.layer, ctl.target, ctl.contrast)
            cam = res.source
            if not float(np.nanmax(cam)) > 1e-6:
                st.warning(
                    f"The {ctl.method} map of this slice is empty: no positive evidence for **{res.target_class}** "
                    "in this layer (all gradients were negative). Try another method (Grad-CAM++, Layer-CAM), "
                    "another layer or another target class.",
                    icon=":material/visibility_off:",
                )
            layer_txt = ctl.layer if analysis.method_uses_layer(ctl.method) else "-"
            vs = f" against {CONTRAST_CLASS}" if ctl.contrast is not None and res.target_class != CONTRAST_CLASS else ""
            st.caption(
                f"{ctl.method} of **{res.target_class}**{vs} · layer `{layer_txt}` · OS-CMR frame {frame} (the frame the "
                f"model saw) · slice position {ref.geometry.slice_positions[k]:.1f} mm"
            )
    view_panels: list[ViewPanel] = []
    distances: dict[str, Any] = {}
    slots = panel_slots(arr)
    with widgets.guard("draw the panels"):
        cam_key = (modelinfo.model_key(), *ctl.cam_key) if cam is not None else None
        view_key = ("view", ref.series_uid, k, frame, look, cam_key)
        for (col, height), pv in zip(slots, build_view(lc, ref, k, frame, cam, look, cam_key), strict=True):
            with col:
                draw_panel(lc, view_key, pv, height)
            if pv.role is not None:
                distances[pv.role.label] = (
                    round(pv.distance_mm, 2) if pv.distance_mm is not None else (pv.message or "")
                )
            view_panels.append(pv.export)
    st.caption(
        "Each panel is the nearest slice of that series by patient position, resampled onto the OS-CMR pixel grid; "
        "Δ is the distance between the two planes. Cyan: CAM threshold contour. Dashed yellow: reference lesion. "
        "OS-CMR and LGE: greyscale, robust window (1st-99th percentile)."
        + (" Maps (Fuderer et al. 2024): " + "; ".join(arr.captions) + "." if arr.captions else "")
    )
    e0, e1, e2 = st.columns([2, 1, 1])
    if model is not None:
        with e0:
            show_raw = widgets.sticky_toggle("Show raw feature-map channels", "dox_fm_raw", False)
    else:
        show_raw = False
    case_id = lc.case.case_id
    suptitle = f"DeepOxyMap · case {case_id} · OS-CMR slice {k + 1} · {ctl.method or 'no CAM'} · research use only"
    e1.download_button(
        "This view (PNG)",
        data=lambda: export.view_png(view_panels, suptitle=suptitle, ncols=2 if arr.layout == "2 × 2" else 4),
        file_name=f"deepoxymap_{case_id}_slice{k + 1}.png",
        mime="image/png",
        key="fm_png",
        on_click="ignore",
        icon=":material/image:",
    )
    numbers = {"matching distance (mm)": distances, **tables}
    e2.download_button(
        "Numbers (CSV)",
        data=lambda: export.numbers_csv(numbers),
        file_name=f"deepoxymap_{case_id}_slice{k + 1}.csv",
        mime="text/csv",
        key="fm_csv",
        on_click="ignore",
        icon=":material/table:",
    )
    if show_raw:
        with widgets.guard("compute the raw feature maps"):
            names, default_layer = analysis.layers(model)
            fl = st.selectbox(
                "Layer", names[::-1], index=names[::-1].index(ctl.layer or default_layer), key="fm_raw_layer"
            )
            top_k = st.slider("Channels (most active first)", 4, 16, 8, step=4, key="fm_raw_k")
            fmaps = analysis.raw_feature_maps(lc, row, fl, top_k)
            st.caption(
                f"Layer `{fmaps.layer}`: the {len(fmaps.channels)} most active of {fmaps.n_channels} channels for this "
                "slice, on the layer's own grid (each scaled to its own range). These are the raw activations, not a CAM."
            )
            with st.container(key="fm_raw_grid"):
                st.image(channel_grid_image(fmaps), width="content")


def bullseye_image(lc: Any, spec: Any) -> str:
    """The bullseye of a :class:`~deepoxymap.ui.segment_view.BullseyeSpec` as a PNG data URI
    (:func:`deepoxymap.ui.charts.bullseye_rgb`), drawn once per case and values (shared, read-only)."""
    from deepoxymap.ui import charts, state

    values = tuple(sorted((int(k), float(v)) for k, v in spec.values.items()))
    scale = spec.colorscale if isinstance(spec.colorscale, str) else tuple(map(tuple, spec.colorscale))
    key = ("bullseye_png", values, scale, spec.zmin, spec.zmax, spec.units)
    return state.cached(
        lc.token,
        key,
        lambda: charts.png_uri(
            charts.bullseye_rgb(
                dict(values), colorscale=spec.colorscale, zmin=spec.zmin, zmax=spec.zmax, units=spec.units
            )
        ),
    )


def draw_bullseye(lc: Any, i: int, title: str, spec: Any) -> None:
    """Bullseye ``i`` in a container keyed ``fm_bull_<i>``: its title (text), then its picture."""
    import streamlit as st

    with st.container(key=f"fm_bull_{i}"):
        st.markdown(f"**{title}**")
        st.image(bullseye_image(lc, spec), width="content")


def agreement_image(lc: Any, headline: dict[str, float]) -> str:
    """The agreement bars (:func:`deepoxymap.ui.charts.bars_rgb`) as a PNG data URI, once per case and values."""
    from deepoxymap.ui import charts, state

    values = tuple((str(k), float(v)) for k, v in headline.items())
    return state.cached(lc.token, ("agree_png", values), lambda: charts.png_uri(charts.bars_rgb(dict(values))))


def draw_agreement_bars(lc: Any, title: str, headline: dict[str, float]) -> None:
    """The agreement bars in a container keyed ``fm_agree_bars``: the title (text), then the picture."""
    import streamlit as st

    with st.container(key="fm_agree_bars"):
        st.markdown(f"**{title}**")
        st.image(agreement_image(lc, headline), width="content")


def channel_grid_image(fmaps: Any) -> str:
    """Raw feature-map channels (:func:`deepoxymap.ui.charts.channel_grid_rgb`) as a PNG data URI."""
    from deepoxymap.ui import charts

    titles = [f"ch {int(c)} · mean {float(m):.2f}" for c, m in zip(fmaps.channels, fmaps.mean_activation, strict=True)]
    return charts.png_uri(charts.channel_grid_rgb(np.asarray(fmaps.normalized()), titles))
