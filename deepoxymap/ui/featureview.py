"""The Feature-maps view: panel figures for one OS-CMR slice, and what goes into the export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from numpy.typing import NDArray

from deepoxymap.case import Role, Stack
from deepoxymap.ui import figures
from deepoxymap.ui.analysis import Panel
from deepoxymap.ui.export import ViewPanel
from deepoxymap.ui.views import default_window


@dataclass(frozen=True)
class Look:
    """Display settings shared by all panels."""

    opacity: float
    colormap: str
    threshold: float
    contour_on_others: bool
    show_reference: bool
    height: int = 360
    box: tuple[float, float, float, float] | None = None


def _aspect(stack: Stack) -> float:
    return stack.geometry.pixel_spacing[0] / stack.geometry.pixel_spacing[1]


def oscmr_figure(stack: Stack, k: int, frame: int, cam: NDArray[Any] | None, look: Look, *, title: str,
                 reference: NDArray[Any] | None = None) -> tuple[go.Figure, ViewPanel]:
    """OS-CMR slice with the CAM overlay and its threshold contour."""
    img = stack.image(k, frame)
    win = figures.window_range(default_window(stack), (0, 1))
    crop = figures.crop_of(stack.geometry, look.box)
    fig = figures.image_figure(img, stack.geometry, window=default_window(stack), title=title, height=look.height, crop=crop)
    if cam is not None:
        figures.add_overlay(fig, cam, stack.geometry, opacity=look.opacity, colorscale=look.colormap, base=img,
                            name="CAM", colorbar=False, fade=True, crop=crop)
        figures.add_contour(fig, cam, stack.geometry, level=look.threshold, crop=crop)
    if look.show_reference and reference is not None:
        figures.add_contour(fig, reference, stack.geometry, level=0.5, color=figures.LESION_COLOR,
                            name="reference lesion", width=1.5, dash="dash", crop=crop)
    figures.zoom(fig, look.box)
    vp = ViewPanel(title, img, win, _aspect(stack), cam, look.colormap, look.opacity, cam, look.threshold,
                   reference if look.show_reference else None, crop=crop)
    return fig, vp


def panel_title(p: Panel) -> str:
    """Title with the matched slice and the distance between planes."""
    if p.image is None or p.other_index is None or p.distance_mm is None:
        return p.role.label
    return f"{p.role.label} · slice {p.other_index + 1} · Δ {p.distance_mm:.1f} mm"


def other_figure(p: Panel, ref: Stack, cam: NDArray[Any] | None, look: Look,
                 reference: NDArray[Any] | None = None) -> tuple[go.Figure | None, ViewPanel]:
    """LGE / T1 / T2 resampled onto the OS-CMR grid, with the CAM threshold contour."""
    title = panel_title(p)
    if p.image is None or p.stack is None:
        return None, ViewPanel(title, None, (0, 1), note=p.message or "")
    units = p.stack.units
    name = {Role.T1_MAP: "T1", Role.T2_MAP: "T2"}.get(p.role, "SI")
    win = default_window(p.stack)
    crop = figures.crop_of(ref.geometry, look.box)
    fig = figures.image_figure(p.image, ref.geometry, window=win, title=title, units=units, value_name=name,
                               height=look.height, crop=crop)
    contour = cam if (look.contour_on_others and cam is not None) else None
    if contour is not None:
        figures.add_contour(fig, contour, ref.geometry, level=look.threshold, crop=crop)
    if look.show_reference and reference is not None:
        figures.add_contour(fig, reference, ref.geometry, level=0.5, color=figures.LESION_COLOR,
                            name="reference lesion", width=1.5, dash="dash", crop=crop)
    figures.zoom(fig, look.box)
    vp = ViewPanel(title, p.image, figures.window_range(win, (0, 1)), _aspect(ref), None, look.colormap, 0.0,
                   contour, look.threshold, reference if look.show_reference else None, crop=crop)
    return fig, vp


@dataclass(frozen=True)
class PanelView:
    """One rendered panel: a figure (or a message), its export twin, the matching distance."""

    key: str
    role: Role | None
    figure: go.Figure | None
    export: ViewPanel
    message: str | None = None
    distance_mm: float | None = None


def build_view(lc: Any, ref: Stack, k: int, frame: int, cam: NDArray[Any] | None, look: Look, cam_key: Any) -> list[PanelView]:
    """The four panels of slice ``k``, built once per (slice, look, CAM) and cached in the session."""
    from deepoxymap.ui import analysis, state

    def run() -> list[PanelView]:
        out: list[PanelView] = []
        ref_mask = analysis.reference_lesion(lc.case, ref.series_uid, k, frame) if look.show_reference else None
        fig, vp = oscmr_figure(ref, k, frame, cam, look, title=f"OS-CMR + CAM · slice {k + 1}", reference=ref_mask)
        out.append(PanelView("fm_panel_os", None, fig, vp))
        for role in analysis.PANEL_ROLES:
            p = analysis.panel(lc, ref, k, role)
            ref_other = p.labels if (look.show_reference and p.labels is not None and p.labels.max() > 0.5) else None
            fig, vp = other_figure(p, ref, cam, look, reference=ref_other)
            out.append(PanelView(f"fm_panel_{role.value}", role, fig, vp, p.message, p.distance_mm))
        return out

    return state.cached(lc.token, ("view", ref.series_uid, k, frame, look, cam_key), run, limit=64)
