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


def _aspect(stack: Stack) -> float:
    return stack.geometry.pixel_spacing[0] / stack.geometry.pixel_spacing[1]


def oscmr_figure(stack: Stack, k: int, frame: int, cam: NDArray[Any] | None, look: Look, *, title: str,
                 reference: NDArray[Any] | None = None) -> tuple[go.Figure, ViewPanel]:
    """OS-CMR slice with the CAM overlay and its threshold contour."""
    img = stack.image(k, frame)
    win = figures.window_range(default_window(stack), (0, 1))
    fig = figures.image_figure(img, stack.geometry, window=default_window(stack), title=title, height=look.height)
    if cam is not None:
        figures.add_overlay(fig, cam, stack.geometry, opacity=look.opacity, colorscale=look.colormap, base=img,
                            name="CAM", colorbar=False)
        figures.add_contour(fig, cam, stack.geometry, level=look.threshold)
    if look.show_reference and reference is not None:
        figures.add_contour(fig, reference, stack.geometry, level=0.5, color=figures.LESION_COLOR, name="reference lesion", width=1.5, dash="dash")
    vp = ViewPanel(title, img, win, _aspect(stack), cam, look.colormap, look.opacity, cam, look.threshold,
                   reference if look.show_reference else None)
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
    fig = figures.image_figure(p.image, ref.geometry, window=win, title=title, units=units, value_name=name, height=look.height)
    contour = cam if (look.contour_on_others and cam is not None) else None
    if contour is not None:
        figures.add_contour(fig, contour, ref.geometry, level=look.threshold)
    if look.show_reference and reference is not None:
        figures.add_contour(fig, reference, ref.geometry, level=0.5, color=figures.LESION_COLOR, name="reference lesion", width=1.5, dash="dash")
    vp = ViewPanel(title, p.image, figures.window_range(win, (0, 1)), _aspect(ref), None, look.colormap, 0.0,
                   contour, look.threshold, reference if look.show_reference else None)
    return fig, vp
