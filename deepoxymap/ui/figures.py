"""Plotly figure builders (presentation only: no image maths beyond axes and colours).

Images are drawn as ``go.Heatmap`` on millimetre axes so that hovering shows
the in-plane position (mm from the first pixel), the intensity, and ``ms`` on
T1/T2 maps. Rows run down the screen (radiological display as stored).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray

from deepoxymap.cardiac.bullseye import segment_geometry
from deepoxymap.case import Geometry

COLORMAPS = ("Inferno", "Magma", "Viridis", "Cividis", "Turbo", "Jet", "Hot")
"""CAM colour maps offered in the UI (plotly names; matplotlib uses the lower-case names)."""

PERCEPTUAL = ("Inferno", "Magma", "Viridis", "Cividis")
"""Perceptually uniform maps among :data:`COLORMAPS`; Turbo, Jet and Hot are kept for comparison only."""

DEFAULT_CAM_COLORMAP = "Inferno"
"""The CAM overlay's default: perceptually uniform (Jet's bright bands invent edges that are not in the map)."""

DIVERGING = "RdBu_r"
"""Diverging scale for percent signal change (blue = decrease, red = increase, white = 0)."""

CONTOUR_COLOR = "#00e5ff"
LESION_COLOR = "#ffd400"

_AXIS = {"showgrid": False, "zeroline": False, "ticks": "", "showticklabels": False, "title": None}


Crop = tuple[int, int, int, int]
"""``(row0, row1, col0, col1)``: the part of an image sent to the browser (hover mm stay those of the full image)."""


def axes_mm(geometry: Geometry, crop: Crop | None = None) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Column and row pixel-centre coordinates in mm from the first pixel (for hover and aspect)."""
    rows, cols = geometry.shape
    r0, r1, c0, c1 = crop if crop is not None else (0, rows, 0, cols)
    return (
        (np.arange(c0, c1, dtype=np.float32) * geometry.pixel_spacing[1]),
        (np.arange(r0, r1, dtype=np.float32) * geometry.pixel_spacing[0]),
    )


def crop_of(geometry: Geometry, box: tuple[float, float, float, float] | None) -> Crop | None:
    """Pixel bounds of a mm box ``(x0, x1, y0, y1)`` on ``geometry``'s grid (clipped), or ``None``."""
    if box is None:
        return None
    rows, cols = geometry.shape
    rs, cs = geometry.pixel_spacing
    x0, x1, y0, y1 = box
    r0, r1 = max(0, int(np.floor(y0 / rs))), min(rows, int(np.ceil(y1 / rs)) + 1)
    c0, c1 = max(0, int(np.floor(x0 / cs))), min(cols, int(np.ceil(x1 / cs)) + 1)
    if r1 - r0 < 4 or c1 - c0 < 4:
        return None
    return (r0, r1, c0, c1)


def _cut(a: NDArray[Any], crop: Crop | None, dtype: Any = np.float32) -> NDArray[Any]:
    arr = np.asarray(a)
    if crop is not None:
        arr = arr[crop[0] : crop[1], crop[2] : crop[3]]
    return np.ascontiguousarray(arr, dtype=dtype)


def _finish(fig: go.Figure, title: str | None, height: int, *, legend: bool = False) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 14}} if title else None,
        height=height,
        margin={"l": 4, "r": 4, "t": 34 if title else 4, "b": 4},
        xaxis=dict(**_AXIS, constrain="domain"),
        yaxis=dict(**_AXIS, autorange="reversed", scaleanchor="x", scaleratio=1, constrain="domain"),
        showlegend=legend,
        uirevision="keep",
        plot_bgcolor="black",
    )
    return fig


def faded(colorscale: str, ramp: float = 0.3, n: int = 21) -> list[list[Any]]:
    """A plotly colour scale whose low end fades to transparent (alpha 0 at 0, 1 from ``ramp`` up).

    Used for CAM overlays so that a near-zero map leaves the image visible.
    """
    from plotly.colors import sample_colorscale, unlabel_rgb

    pos = [i / (n - 1) for i in range(n)]
    cols = sample_colorscale(colorscale, pos, colortype="rgb")
    out = []
    for p, c in zip(pos, cols, strict=True):
        r, g, b = (round(float(v)) for v in unlabel_rgb(c))
        out.append([p, f"rgba({r},{g},{b},{min(1.0, p / ramp):.3f})"])
    return out


def box_around(
    valid: NDArray[Any], geometry: Geometry, margin_mm: float = 25.0
) -> tuple[float, float, float, float] | None:
    """A square mm box ``(x0, x1, y0, y1)`` around the ``True``/finite pixels of ``valid`` (for :func:`zoom`)."""
    v = np.asarray(valid)
    v = np.isfinite(v) if v.dtype.kind == "f" else v.astype(bool)
    if not v.any():
        return None
    rr, cc = np.nonzero(v)
    rs, cs = geometry.pixel_spacing
    yc, xc = (rr.min() + rr.max()) / 2 * rs, (cc.min() + cc.max()) / 2 * cs
    half = max((rr.max() - rr.min()) * rs, (cc.max() - cc.min()) * cs) / 2 + margin_mm
    return (xc - half, xc + half, yc - half, yc + half)


def zoom(fig: go.Figure, box: tuple[float, float, float, float] | None) -> go.Figure:
    """Show only ``box = (x0, x1, y0, y1)`` in mm (e.g. the region the model sees)."""
    if box is not None:
        x0, x1, y0, y1 = box
        fig.update_xaxes(range=[x0, x1], autorange=False)
        fig.update_yaxes(range=[y1, y0], autorange=False)
    return fig


def window_range(window: tuple[float, float] | None, fallback: tuple[float, float]) -> tuple[float, float]:
    """``(zmin, zmax)`` of a display window ``(centre, width)``."""
    c, w = window if window else fallback
    w = max(float(w), 1e-6)
    return float(c) - w / 2, float(c) + w / 2


@functools.cache
def _vendored_scale(name: str, stops: int) -> tuple[tuple[float, str], ...]:
    from deepoxymap.display import colormap_table

    table = colormap_table(name)
    idx = np.linspace(0, len(table) - 1, stops).round().astype(int)
    return tuple(
        (i / (stops - 1), "rgb({},{},{})".format(*(round(float(v) * 255) for v in table[j]))) for i, j in enumerate(idx)
    )


def colorscale(name: str, stops: int = 64) -> str | list[list[Any]]:
    """A plotly colour scale for ``name``: ``"gray"`` -> ``"Gray"``, a vendored map (``lipari``,
    ``navia``: :func:`deepoxymap.display.colormap_table`) -> ``stops`` samples of its table, else ``name``."""
    if name.lower() in ("gray", "grey"):
        return "Gray"
    from deepoxymap.display import COLORMAP_DIR

    if name.isidentifier() and (COLORMAP_DIR / f"{name}.txt").is_file():
        return [list(stop) for stop in _vendored_scale(name, stops)]
    return name


def image_figure(
    image: NDArray[Any],
    geometry: Geometry,
    *,
    window: tuple[float, float] | None = None,
    title: str | None = None,
    units: str = "",
    value_name: str = "SI",
    height: int = 380,
    colorscale: str | list[list[Any]] = "Gray",
    crop: Crop | None = None,
    colorbar: str | None = None,
) -> go.Figure:
    """An image on mm axes with hover: position (mm), value (and ``ms`` on maps).

    ``colorscale`` is a plotly scale (see :func:`colorscale` for the relaxation maps); with
    ``colorbar`` (its title, e.g. ``"T1 (ms)"``) a colour bar shows the window.
    """
    x, y = axes_mm(geometry, crop)
    lo, hi = window_range(window, (float(np.nanmedian(image)), float(np.nanmax(image) - np.nanmin(image)) or 1.0))
    unit = f" {units}" if units and units not in ("label",) else ""
    bar = {"thickness": 10, "len": 0.85, "title": {"text": colorbar, "side": "right"}} if colorbar else None
    fig = go.Figure(
        go.Heatmap(
            z=_cut(image, crop),
            x0=float(x[0]),
            dx=geometry.pixel_spacing[1],
            y0=float(y[0]),
            dy=geometry.pixel_spacing[0],
            colorscale=colorscale,
            zmin=lo,
            zmax=hi,
            showscale=bar is not None,
            colorbar=bar,
            hovertemplate=f"x %{{x:.1f}} mm<br>y %{{y:.1f}} mm<br>{value_name} %{{z:.0f}}{unit}<extra></extra>",
        )
    )
    return _finish(fig, title, height)


def add_overlay(
    fig: go.Figure,
    heat: NDArray[Any],
    geometry: Geometry,
    *,
    opacity: float,
    colorscale: str,
    name: str = "CAM",
    zmin: float = 0.0,
    zmax: float = 1.0,
    base: NDArray[Any] | None = None,
    base_name: str = "SI",
    units: str = "",
    colorbar: bool = True,
    fade: bool = False,
    crop: Crop | None = None,
) -> go.Figure:
    """Lay a heatmap (CAM, percent change...) over an image; hover shows both values.

    With ``fade`` the colour scale's low end is transparent (CAMs).
    """
    x, y = axes_mm(geometry, crop)
    kw: dict[str, Any] = {}
    hover = f"x %{{x:.1f}} mm<br>y %{{y:.1f}} mm<br>{name} %{{z:.2f}}{units}"
    if base is not None:
        kw["customdata"] = _cut(base, crop)
        hover += f"<br>{base_name} %{{customdata:.0f}}"
    fig.add_trace(
        go.Heatmap(
            z=_cut(heat, crop),
            x0=float(x[0]),
            dx=geometry.pixel_spacing[1],
            y0=float(y[0]),
            dy=geometry.pixel_spacing[0],
            colorscale=faded(colorscale) if fade else colorscale,
            zmin=zmin,
            zmax=zmax,
            opacity=float(opacity),
            showscale=colorbar,
            colorbar={"thickness": 10, "len": 0.8, "title": {"text": name, "side": "right"}},
            hovertemplate=hover + "<extra></extra>",
            hoverongaps=False,
            **kw,
        )
    )
    return fig


def add_contour(
    fig: go.Figure,
    field: NDArray[Any],
    geometry: Geometry,
    *,
    level: float,
    color: str = CONTOUR_COLOR,
    name: str = "CAM contour",
    width: float = 2.0,
    dash: str = "solid",
    crop: Crop | None = None,
) -> go.Figure:
    """Draw the ``level`` iso-line of ``field`` (e.g. the CAM threshold, or a 0.5 mask edge).

    The line is traced on the server (``contourpy``, matplotlib's contour engine) and sent as one
    ``Scatter`` polyline: much cheaper for the browser than a plotly ``Contour`` trace.
    """
    import contourpy

    x, y = axes_mm(geometry, crop)
    f = _cut(field, crop).astype(np.float64)
    if f.size == 0 or not np.isfinite(f).any() or float(np.nanmax(f)) < level or float(np.nanmin(f)) > level:
        return fig
    lines = contourpy.contour_generator(z=np.nan_to_num(f, nan=float(np.nanmin(f)))).lines(level)
    xs: list[float | None] = []
    ys: list[float | None] = []
    x0, y0 = float(x[0]), float(y[0])
    dx, dy = geometry.pixel_spacing[1], geometry.pixel_spacing[0]
    for line in lines:
        seg = np.asarray(line)
        if seg.ndim != 2 or seg.shape[0] < 2:
            continue
        xs.extend((x0 + seg[:, 0] * dx).round(2).tolist())
        ys.extend((y0 + seg[:, 1] * dy).round(2).tolist())
        xs.append(None)
        ys.append(None)
    if not xs:
        return fig
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": color, "width": width, "dash": dash},
            hoverinfo="skip",
            name=name,
            showlegend=False,
            connectgaps=False,
        )
    )
    return fig


def cine_figure(
    frames: NDArray[Any],
    geometry: Geometry,
    *,
    window: tuple[float, float] | None,
    trigger_times: Sequence[float] | None = None,
    title: str | None = None,
    height: int = 420,
    speed: float = 1.0,
    loop_s: float = 60.0,
    colorscale: str | list[list[Any]] = "Gray",
) -> go.Figure:
    """A client-side cine loop (plotly animation with play/pause and a frame slider) at the series' own timing.

    Frame ``i`` stays on screen for its trigger-time step (:func:`deepoxymap.display.frame_durations_ms`),
    divided by ``speed``. "Play" queues the frames for about ``loop_s`` seconds of loops, each with its
    own duration (plotly.js takes one ``frame`` option per queued frame).
    """
    from deepoxymap.display import frame_durations_ms

    frames = np.asarray(frames, dtype=np.float32)
    n = len(frames)
    fig = image_figure(frames[0], geometry, window=window, title=title, height=height, colorscale=colorscale)
    times = np.asarray(trigger_times, dtype=np.float64) if trigger_times is not None else np.full(n, np.nan)
    labels = [f"{t:.0f} ms" if np.isfinite(t) else f"frame {i}" for i, t in enumerate(times)]
    durations = frame_durations_ms(times, n) / max(float(speed), 1e-3)
    fig.frames = [go.Frame(data=[go.Heatmap(z=f)], name=str(i)) for i, f in enumerate(frames)]
    cycle_ms = float(durations.sum())
    loops = int(min(100, max(1, math.ceil(loop_s * 1000.0 / max(cycle_ms, 1.0)))))
    names = [str(i) for i in range(n)] * loops
    per_frame = [{"duration": round(float(d), 1), "redraw": True} for d in durations] * loops
    play = {"frame": per_frame, "transition": {"duration": 0}, "mode": "immediate"}
    fig.update_layout(
        meta={"frame_ms": [round(float(d), 1) for d in durations]},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": -0.02,
                "xanchor": "left",
                "yanchor": "top",
                "showactive": False,
                "buttons": [
                    {"label": "▶ Play", "method": "animate", "args": [names, play]},
                    {
                        "label": "❚❚ Pause",
                        "method": "animate",
                        "args": [
                            [None],
                            {"mode": "immediate", "frame": {"duration": 0}, "transition": {"duration": 0}},
                        ],
                    },
                ],
            }
        ],
        sliders=[
            {
                "active": 0,
                "y": -0.02,
                "x": 0.25,
                "len": 0.75,
                "pad": {"t": 0},
                "currentvalue": {"prefix": "", "font": {"size": 11}},
                "steps": [
                    {
                        "method": "animate",
                        "label": labels[i],
                        "args": [[str(i)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
                    }
                    for i in range(n)
                ],
            }
        ],
        margin={"l": 4, "r": 4, "t": 34 if title else 4, "b": 60},
        height=height + 60,
    )
    return fig


# ---------------------------------------------------------------------------
# bullseye (AHA 17 segments; DOMAIN.md 5.4)
# ---------------------------------------------------------------------------


def bullseye(
    values: Mapping[int, float],
    *,
    title: str,
    colorscale: str | list[list[Any]] = "Inferno",
    zmin: float | None = None,
    zmax: float | None = None,
    units: str = "",
    fmt: str = ".2f",
    height: int = 300,
) -> go.Figure:
    """AHA 17-segment bullseye: segment 1/7/13 at 12 o'clock, septum on the left, counter-clockwise.

    ``values`` maps segment number (1-17) to a value; missing or NaN segments are grey.
    """
    vals = {int(k): float(v) for k, v in values.items() if v is not None}
    finite = [v for v in vals.values() if np.isfinite(v)]
    lo = zmin if zmin is not None else (min(finite) if finite else 0.0)
    hi = zmax if zmax is not None else (max(finite) if finite else 1.0)
    if hi <= lo:
        hi = lo + 1e-6
    geo = segment_geometry()  # the one AHA layout (also drawn by the audit's matplotlib bullseyes)
    seg = [int(g["segment"]) for g in geo]
    base = [g["r_inner"] for g in geo]
    r = [g["r_outer"] - g["r_inner"] for g in geo]
    theta = [g["theta_deg"] for g in geo]
    width = [g["width_deg"] for g in geo]
    color = [vals.get(sg, np.nan) for sg in seg]
    text = ["n/a" if not np.isfinite(v) else format(v, fmt) for v in color]
    finite_mask = [np.isfinite(c) for c in color]
    unit = f" {units}" if units else ""
    fig = go.Figure()
    # grey for segments without a value
    nan_idx = [i for i, ok in enumerate(finite_mask) if not ok]
    if nan_idx:
        fig.add_trace(
            go.Barpolar(
                r=[r[i] for i in nan_idx],
                base=[base[i] for i in nan_idx],
                theta=[theta[i] for i in nan_idx],
                width=[width[i] for i in nan_idx],
                marker={"color": "#444444", "line": {"color": "white", "width": 1}},
                customdata=[[seg[i], text[i]] for i in nan_idx],
                hovertemplate="segment %{customdata[0]}: no value<extra></extra>",
            )
        )
    ok_idx = [i for i, ok in enumerate(finite_mask) if ok]
    if ok_idx:
        fig.add_trace(
            go.Barpolar(
                r=[r[i] for i in ok_idx],
                base=[base[i] for i in ok_idx],
                theta=[theta[i] for i in ok_idx],
                width=[width[i] for i in ok_idx],
                marker={
                    "color": [color[i] for i in ok_idx],
                    "colorscale": colorscale,
                    "cmin": lo,
                    "cmax": hi,
                    "line": {"color": "white", "width": 1},
                    "showscale": True,
                    "colorbar": {"thickness": 10, "len": 0.8},
                },
                customdata=[[seg[i], text[i]] for i in ok_idx],
                hovertemplate=f"segment %{{customdata[0]}}: %{{customdata[1]}}{unit}<extra></extra>",
            )
        )
    # segment numbers
    lab_r = [b + rr / 2 if s != 17 else 0.0 for s, b, rr in zip(seg, base, r, strict=True)]
    fig.add_trace(
        go.Scatterpolar(
            r=lab_r,
            theta=theta,
            mode="text",
            text=[str(s) for s in seg],
            textfont={"size": 10, "color": "white"},
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 13}},
        height=height,
        margin={"l": 10, "r": 10, "t": 36, "b": 10},
        showlegend=False,
        polar={
            "bgcolor": "rgba(0,0,0,0)",
            "radialaxis": {"visible": False, "range": [0, 1]},
            "angularaxis": {"visible": False, "rotation": 0, "direction": "counterclockwise"},
            "hole": 0.0,
        },
    )
    return fig


# ---------------------------------------------------------------------------
# charts
# ---------------------------------------------------------------------------


def probability_bars(
    classes: Sequence[str], probs: Sequence[float], err: Sequence[float] | None = None, *, height: int = 260
) -> go.Figure:
    """Horizontal bars of class probabilities (with +/- 1 SD where MC-dropout ran)."""
    fig = go.Figure(
        go.Bar(
            x=list(probs),
            y=list(classes),
            orientation="h",
            error_x={"type": "data", "array": list(err), "visible": True} if err is not None else None,
            text=[f"{p:.0%}" for p in probs],
            textposition="auto",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin={"l": 4, "r": 4, "t": 8, "b": 4},
        xaxis={"range": [0, 1], "title": "probability"},
        yaxis={"autorange": "reversed"},
    )
    return fig


def slice_probability_figure(table: Any, classes: Sequence[str], *, height: int = 300) -> go.Figure:
    """Grouped bars: one group per slice, one bar per class."""
    fig = go.Figure()
    for c in classes:
        fig.add_trace(
            go.Bar(name=c, x=table["slice"].astype(str), y=table[c], hovertemplate=f"{c}: %{{y:.3f}}<extra></extra>")
        )
    fig.update_layout(
        barmode="group",
        height=height,
        margin={"l": 4, "r": 4, "t": 8, "b": 4},
        yaxis={"range": [0, 1], "title": "probability"},
        xaxis={"title": "slice (base → apex)"},
        legend={"orientation": "h", "y": 1.1},
    )
    return fig


def confusion_figure(matrix: NDArray[Any], classes: Sequence[str], *, height: int = 360) -> go.Figure:
    """Confusion matrix with counts (rows: reference, columns: model)."""
    m = np.asarray(matrix)
    fig = go.Figure(
        go.Heatmap(
            z=m,
            x=list(classes),
            y=list(classes),
            colorscale="Blues",
            text=m.astype(int).astype(str) if np.issubdtype(m.dtype, np.number) else m,
            texttemplate="%{text}",
            showscale=False,
            hovertemplate="reference %{y}<br>model %{x}<br>%{z}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin={"l": 4, "r": 4, "t": 8, "b": 4},
        xaxis={"title": "model call", "side": "bottom"},
        yaxis={"title": "reference", "autorange": "reversed"},
    )
    return fig


def roc_figure(curves: Mapping[str, tuple[Sequence[float], Sequence[float], float]], *, height: int = 360) -> go.Figure:
    """Per-class ROC curves ``{class: (fpr, tpr, auc)}`` (one-vs-rest)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "gray"}, showlegend=False, hoverinfo="skip"
        )
    )
    for c, (fpr, tpr, auc) in curves.items():
        fig.add_trace(go.Scatter(x=list(fpr), y=list(tpr), mode="lines", name=f"{c} (AUC {auc:.2f})"))
    fig.update_layout(
        height=height,
        margin={"l": 4, "r": 4, "t": 8, "b": 4},
        xaxis={"title": "1 - specificity", "range": [0, 1]},
        yaxis={"title": "sensitivity", "range": [0, 1.02]},
        legend={"x": 0.45, "y": 0.05},
    )
    return fig
