"""The AHA 17-segment bullseye: a matplotlib figure and data for a plotly ``Barpolar``.

Layout (DOMAIN.md 5.4, the matplotlib gallery ``leftventricle_bullseye.py``):
radii ``linspace(0.2, 1, 4)``; outer ring segments 1-6, middle ring 7-12,
inner ring 13-16, centre disc 17. Segment 1 (7, 13) is centred at 12 o'clock
and segments run counter-clockwise: 2 at ~10 o'clock (anteroseptal, viewer's
left), 3 at ~8, 4 at 6, 5 at ~4, 6 at ~2; 14 at 9, 15 at 6, 16 at 3 o'clock.
This is the standard SAX display viewed from the apex, the orientation
:mod:`deepoxymap.cardiac.segments` assigns segments in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.segments import SEGMENT_NAMES

__all__ = ["as_segment_array", "bullseye_figure", "bullseye_pair", "plotly_bullseye_data", "segment_geometry"]

_RADII = np.linspace(0.2, 1.0, 4)


def as_segment_array(values: Mapping[int, float] | Sequence[float] | NDArray[Any]) -> NDArray[np.float64]:
    """Normalise segment values to float64 ``[17]`` (index ``s - 1``; NaN = no data).

    Accepts a mapping ``{segment: value}`` (1-17) or a length-17 sequence.
    """
    if isinstance(values, Mapping):
        out = np.full(17, np.nan)
        for k, v in values.items():
            s = int(k)
            if not 1 <= s <= 17:
                raise ValueError(f"segment ids are 1-17, got {s}")
            out[s - 1] = np.nan if v is None else float(v)
        return out
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size != 17:
        raise ValueError(f"expected 17 segment values, got {a.size}")
    return a


def segment_geometry() -> list[dict[str, float]]:
    """Polar position of each segment on the bullseye.

    Returns:
        17 dicts (segment 1..17) with ``theta_deg`` (centre angle, counter-clockwise
        from 3 o'clock), ``width_deg``, ``r_inner``, ``r_outer`` (unit disc).
    """
    out: list[dict[str, float]] = []
    rings = [(1, 6, _RADII[2], _RADII[3]), (7, 6, _RADII[1], _RADII[2]), (13, 4, _RADII[0], _RADII[1])]
    for first, n, r0, r1 in rings:
        for i in range(n):
            out.append({"segment": first + i, "theta_deg": (90.0 + i * 360.0 / n) % 360.0, "width_deg": 360.0 / n,
                        "r_inner": float(r0), "r_outer": float(r1)})  # fmt: skip
    out.append({"segment": 17, "theta_deg": 0.0, "width_deg": 360.0, "r_inner": 0.0, "r_outer": float(_RADII[0])})
    return out


def bullseye_figure(
    values: Mapping[int, float] | Sequence[float] | NDArray[Any],
    *,
    title: str = "",
    label: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool = True,
    fmt: str = "{:.2f}",
    ax: Any = None,
) -> Any:
    """Draw a 17-segment bullseye.

    Args:
        values: per-segment values (mapping 1-17 or 17-sequence; NaN = grey, no data).
        title: axes title.
        label: colour-bar label (with units).
        cmap: matplotlib colormap name (use a diverging one centred at 0 for signed values).
        vmin / vmax: colour limits (default: finite min / max).
        annotate: write segment numbers and values.
        fmt: value format.
        ax: an existing polar ``Axes`` to draw in (else a new figure is made).

    Returns:
        the matplotlib ``Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    v = as_segment_array(values)
    finite = v[np.isfinite(v)]
    lo = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi <= lo:
        hi = lo + 1.0
    norm = Normalize(lo, hi)
    cm = plt.get_cmap(cmap)
    if ax is None:
        fig = plt.figure(figsize=(4.2, 4.0))
        ax = fig.add_subplot(111, projection="polar")
    else:
        fig = ax.figure
    for g in segment_geometry():
        s = int(g["segment"])
        val = v[s - 1]
        color = cm(norm(val)) if np.isfinite(val) else (0.85, 0.85, 0.85, 1.0)
        ax.bar(np.radians(g["theta_deg"]), g["r_outer"] - g["r_inner"], width=np.radians(g["width_deg"]),
               bottom=g["r_inner"], color=color, edgecolor="white", linewidth=1.2, align="center")  # fmt: skip
        if annotate:
            r = 0.0 if s == 17 else (g["r_inner"] + g["r_outer"]) / 2.0
            txt = f"{s}" if not np.isfinite(val) else f"{s}\n{fmt.format(val)}"
            ax.text(np.radians(g["theta_deg"]), r, txt, ha="center", va="center", fontsize=6.5)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    sm = ScalarMappable(norm=norm, cmap=cm)
    cb = fig.colorbar(sm, ax=ax, orientation="horizontal", fraction=0.05, pad=0.04)
    if label:
        cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return fig


def bullseye_pair(
    left: Mapping[int, float] | Sequence[float] | NDArray[Any],
    right: Mapping[int, float] | Sequence[float] | NDArray[Any],
    *,
    left_title: str = "CAM energy per segment",
    right_title: str = "LGE transmurality per segment",
    left_label: str = "share of CAM energy",
    right_label: str = "transmural extent (0-1)",
    suptitle: str = "",
) -> Any:
    """Two bullseyes side by side (CAM energy beside LGE transmurality); returns the ``Figure``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8.4, 4.4))
    a1 = fig.add_subplot(121, projection="polar")
    a2 = fig.add_subplot(122, projection="polar")
    bullseye_figure(left, title=left_title, label=left_label, cmap="magma", vmin=0.0, ax=a1)
    bullseye_figure(right, title=right_title, label=right_label, cmap="Reds", vmin=0.0, vmax=1.0, ax=a2)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def plotly_bullseye_data(
    values: Mapping[int, float] | Sequence[float] | NDArray[Any], *, name: str = "", fmt: str = "{:.2f}"
) -> dict[str, Any]:
    """Arguments for ``plotly.graph_objects.Barpolar`` plus the layout hints it needs.

    Use as ``go.Figure(go.Barpolar(**d["trace"]), layout=d["layout"])`` with a
    colour scale of your choice (``marker_colorscale``). Angles are degrees
    counter-clockwise from 3 o'clock (``layout.polar.angularaxis``: ``rotation=0``,
    ``direction="counterclockwise"``); NaN segments carry ``None`` values.

    Returns:
        ``{"trace": {...}, "layout": {...}, "segments": [...]}`` (JSON-serialisable).
    """
    v = as_segment_array(values)
    geo = segment_geometry()
    vals = [None if not np.isfinite(v[int(g["segment"]) - 1]) else float(v[int(g["segment"]) - 1]) for g in geo]
    text = [
        f"{int(g['segment'])} {SEGMENT_NAMES[int(g['segment'])]}: " + ("no data" if val is None else fmt.format(val))
        for g, val in zip(geo, vals, strict=True)
    ]
    trace = {
        "r": [g["r_outer"] - g["r_inner"] for g in geo],
        "base": [g["r_inner"] for g in geo],
        "theta": [g["theta_deg"] for g in geo],
        "width": [g["width_deg"] for g in geo],
        "marker": {"color": vals, "line": {"color": "white", "width": 1}},
        "customdata": [int(g["segment"]) for g in geo],
        "text": text,
        "hoverinfo": "text",
        "name": name,
    }
    layout = {
        "polar": {
            "radialaxis": {"visible": False, "range": [0, 1]},
            "angularaxis": {"visible": False, "rotation": 0, "direction": "counterclockwise"},
        },
        "showlegend": False,
    }
    return {"trace": trace, "layout": layout, "segments": [int(g["segment"]) for g in geo], "values": vals}
