"""Server-drawn charts of the Feature-maps page: AHA bullseyes and agreement bars as PNG pictures (PIL).

The Feature-maps page draws no plotly chart, so the browser never loads plotly.js
there (issue 15, "the app under load": six sessions on two cores each spent seconds
loading it for a few bullseyes and bars). Each chart is one small RGB picture sent
inside the page's message as a data URI (:func:`png_uri`); its title is page text
beside it and its numbers are in the table under it (there is no hover).

* :func:`bullseye_rgb`: the AHA 17-segment bullseye of
  :func:`deepoxymap.cardiac.bullseye.segment_geometry` (segment 1 at 12 o'clock,
  septum on the left, counter-clockwise), each segment filled with its value's
  colour, segments without a value grey, segment numbers in white, a colour bar
  with the range's ends and units.
* :func:`bars_rgb`: vertical bars of metrics in [0, 1] with their values written above.

Only presentation lives here: no value is computed that the caller did not pass in.
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.bullseye import segment_geometry
from deepoxymap.ui import panels

__all__ = [
    "BACKGROUND",
    "BAR_RGB",
    "BULLSEYE_SIZE",
    "CHART_URI_PREFIX",
    "NAN_RGB",
    "bar_boxes",
    "bars_rgb",
    "bullseye_rgb",
    "channel_grid_rgb",
    "colour_table",
    "png_uri",
    "segment_pixel",
    "value_range",
]

BULLSEYE_SIZE = 260
"""Diameter box of the bullseye disc in px (the colour bar adds :data:`deepoxymap.ui.panels.BAR_WIDTH`)."""
BACKGROUND = (0, 0, 0)
NAN_RGB = (68, 68, 68)  # "#444444": a segment without a value (as the plotly bullseye drew it)
BAR_RGB = (99, 110, 250)  # plotly's first default colour, as the plotly bars were
TEXT_RGB = (235, 235, 235)
CHART_URI_PREFIX = "data:image/png;chart=1;base64,"
"""Data-URI prefix of a chart picture. The ``chart`` parameter (RFC 2397) tells charts from the
panels' ``data:image/png;base64,`` pictures in page-level readers (tests, checks)."""

_SS = 2  # supersampling: drawn at twice the size, box-reduced (segment interiors keep their exact colour)
_PAD = 6  # px around the disc


def colour_table(scale: str | Sequence[Sequence[Any]]) -> NDArray[np.uint8]:
    """uint8 ``[256, 3]`` RGB table of a colour scale: a name (:func:`deepoxymap.ui.panels.lut`) or plotly stops."""
    if isinstance(scale, str):
        return panels.lut(scale)
    return _stops_table(tuple((float(p), str(c)) for p, c in scale))


@functools.lru_cache(maxsize=32)
def _stops_table(stops: tuple[tuple[float, str], ...]) -> NDArray[np.uint8]:
    from plotly.colors import sample_colorscale, unlabel_rgb

    cols = sample_colorscale([list(s) for s in stops], [i / 255 for i in range(256)], colortype="rgb")
    return np.asarray([[round(float(v)) for v in unlabel_rgb(c)] for c in cols], dtype=np.uint8)


def value_range(values: Mapping[int, float], zmin: float | None, zmax: float | None) -> tuple[float, float]:
    """The colour range: ``zmin``/``zmax`` where given, else the finite values' min/max (``hi > lo``)."""
    finite = [float(v) for v in values.values() if v is not None and math.isfinite(float(v))]
    lo = float(zmin) if zmin is not None else (min(finite) if finite else 0.0)
    hi = float(zmax) if zmax is not None else (max(finite) if finite else 1.0)
    return lo, (hi if hi > lo else lo + 1e-6)


def _centre_radius(size: int) -> tuple[float, float]:
    return size / 2.0, size / 2.0 - _PAD


def segment_pixel(segment: int, size: int = BULLSEYE_SIZE) -> tuple[int, int]:
    """``(row, col)`` of a pixel well inside ``segment`` (clear of its number and borders) on a bullseye of ``size``."""
    g = segment_geometry()[int(segment) - 1]
    c, radius = _centre_radius(size)
    if int(segment) == 17:
        r, t = 0.6 * g["r_outer"], math.radians(90.0)  # above the centred number
    else:
        r = g["r_inner"] + 0.78 * (g["r_outer"] - g["r_inner"])
        t = math.radians(g["theta_deg"] + 0.25 * g["width_deg"])
    return round(c - radius * r * math.sin(t)), round(c + radius * r * math.cos(t))


def _sector(
    cx: float, cy: float, radius: float, r0: float, r1: float, t0: float, t1: float
) -> list[tuple[float, float]]:
    """Polygon of an annular sector (angles in degrees, counter-clockwise from 3 o'clock, screen y down)."""
    n = max(8, int(abs(t1 - t0) / 2))
    ts = np.radians(np.linspace(t0, t1, n))
    outer = [(cx + radius * r1 * math.cos(t), cy - radius * r1 * math.sin(t)) for t in ts]
    inner = [(cx + radius * r0 * math.cos(t), cy - radius * r0 * math.sin(t)) for t in ts[::-1]] if r0 > 0 else []
    return outer + (inner or [(cx, cy)])


def bullseye_rgb(
    values: Mapping[int, float],
    *,
    colorscale: str | Sequence[Sequence[Any]] = "Inferno",
    zmin: float | None = None,
    zmax: float | None = None,
    units: str = "",
    size: int = BULLSEYE_SIZE,
) -> NDArray[np.uint8]:
    """The AHA 17-segment bullseye of ``values`` as an RGB picture.

    Args:
        values: segment number (1-17) -> value; missing or non-finite segments are grey (:data:`NAN_RGB`).
        colorscale: colour scale name or plotly stops; ``zmin``/``zmax`` its range (default: the values').
        units: written above the colour bar.
        size: the disc's box in px.

    Returns:
        uint8 ``[size, size + BAR_WIDTH, 3]``: the disc, then the colour bar.
    """
    from PIL import Image, ImageDraw

    table = colour_table(colorscale)
    lo, hi = value_range(values, zmin, zmax)
    big = size * _SS
    pic = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(pic)
    c, radius = _centre_radius(size)
    c, radius = c * _SS, radius * _SS
    font = panels.font(10 * _SS)
    for g in segment_geometry():
        seg = int(g["segment"])
        v = values.get(seg)
        if v is None or not math.isfinite(float(v)):
            fill: tuple[int, ...] = NAN_RGB
        else:
            idx = int(np.clip((float(v) - lo) / (hi - lo) * 255.0, 0, 255))
            fill = tuple(int(x) for x in table[idx])
        t0, t1 = g["theta_deg"] - g["width_deg"] / 2, g["theta_deg"] + g["width_deg"] / 2
        draw.polygon(_sector(c, c, radius, g["r_inner"], g["r_outer"], t0, t1), fill=fill, outline=(255, 255, 255))
    for g in segment_geometry():
        seg = int(g["segment"])
        r = 0.0 if seg == 17 else (g["r_inner"] + g["r_outer"]) / 2
        t = math.radians(g["theta_deg"])
        draw.text(
            (c + radius * r * math.cos(t), c - radius * r * math.sin(t)),
            str(seg),
            fill=(255, 255, 255),
            font=font,
            anchor="mm",
        )
    disc = np.asarray(pic.reduce(_SS), dtype=np.uint8)
    bar = panels.colour_bar((lo, hi), units, size, table)
    return np.ascontiguousarray(np.concatenate([disc, bar], axis=1))


_BAR_TOP, _BAR_BOTTOM, _BAR_LEFT = 22, 40, 34  # px: room for value labels, names, y ticks


def bar_boxes(n: int, values: Sequence[float], *, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Pixel boxes ``(x0, y0, x1, y1)`` of ``n`` bars of ``values`` in [0, 1] (y axis 0 .. 1.05)."""
    plot_w = width - _BAR_LEFT - 6
    plot_h = height - _BAR_TOP - _BAR_BOTTOM
    slot = plot_w / max(1, n)
    y0 = height - _BAR_BOTTOM
    out = []
    for i, v in enumerate(values):
        x0 = _BAR_LEFT + i * slot + 0.15 * slot
        x1 = _BAR_LEFT + (i + 1) * slot - 0.15 * slot
        top = y0 - float(np.clip(v, 0.0, 1.05)) / 1.05 * plot_h
        out.append((round(x0), round(top), round(x1), y0))
    return out


def bars_rgb(values: Mapping[str, float], *, width: int = 560, height: int = 260) -> NDArray[np.uint8]:
    """Vertical bars of metrics in [0, 1] (names below, values above, y ticks 0 / 0.5 / 1) as an RGB picture.

    Returns:
        uint8 ``[height, width, 3]``.
    """
    from PIL import Image, ImageDraw

    names = list(values)
    vals = [float(values[n]) for n in names]
    pic = Image.new("RGB", (int(width), int(height)), BACKGROUND)
    draw = ImageDraw.Draw(pic)
    font, small = panels.font(12), panels.font(11)
    plot_h = height - _BAR_TOP - _BAR_BOTTOM
    base = height - _BAR_BOTTOM
    for tick in (0.0, 0.5, 1.0):
        y = round(base - tick / 1.05 * plot_h)
        draw.line([(_BAR_LEFT, y), (width - 6, y)], fill=(60, 60, 60))
        draw.text((_BAR_LEFT - 4, y), f"{tick:g}", fill=TEXT_RGB, font=small, anchor="rm")
    boxes = bar_boxes(len(vals), vals, width=width, height=height)
    for (x0, y0, x1, y1), name, v in zip(boxes, names, vals, strict=True):
        if y1 - y0 >= 1:
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=BAR_RGB)
        mid = (x0 + x1) / 2
        draw.text((mid, y0 - 3), f"{v:.2f}", fill=TEXT_RGB, font=font, anchor="md")
        lines = _wrap(_drawable(name), max(4, int((x1 - x0) / 6.5) + 4))
        for j, line in enumerate(lines[:2]):
            draw.text((mid, base + 4 + 14 * j), line, fill=TEXT_RGB, font=small, anchor="ma")
    return np.asarray(pic, dtype=np.uint8)


_SPELLED = {"κ": "kappa", "Δ": "delta "}  # PIL's default font has no Greek letters


def _drawable(text: str) -> str:
    for ch, word in _SPELLED.items():
        text = text.replace(ch, word)
    return text


def _wrap(text: str, limit: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= limit:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def channel_grid_rgb(maps: NDArray[Any], titles: Sequence[str], *, cols: int = 4, tile: int = 150) -> NDArray[np.uint8]:
    """Small multiples of feature-map channels (each already scaled to [0, 1]) in Viridis, titled.

    Args:
        maps: float ``[n, h, w]`` in [0, 1] (non-finite drawn as 0).
        titles: one per channel, written above its tile.
        cols: tiles per row; ``tile``: tile height in px (width follows ``w / h``).

    Returns:
        uint8 ``[rows * (tile + 16), cols * (tile_w + 4), 3]``.
    """
    from PIL import Image, ImageDraw

    a = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    n, h, w = a.shape
    tile_w = max(8, round(tile * w / max(1, h)))
    head, gap = 16, 4
    rows = max(1, -(-n // cols))
    table = colour_table("Viridis")
    out = np.zeros((rows * (tile + head), cols * (tile_w + gap), 3), np.uint8)
    rr = np.clip(((np.arange(tile) + 0.5) * h / tile).astype(np.intp), 0, h - 1)
    cc = np.clip(((np.arange(tile_w) + 0.5) * w / tile_w).astype(np.intp), 0, w - 1)
    for i in range(n):
        y, x = (i // cols) * (tile + head) + head, (i % cols) * (tile_w + gap)
        idx = np.round(np.clip(a[i], 0.0, 1.0) * 255).astype(np.uint8)
        out[y : y + tile, x : x + tile_w] = table[idx][rr][:, cc]
    pic = Image.fromarray(out)
    draw = ImageDraw.Draw(pic)
    for i, t in enumerate(titles[:n]):
        draw.text(
            ((i % cols) * (tile_w + gap) + 2, (i // cols) * (tile + head) + 2), t, fill=TEXT_RGB, font=panels.font(10)
        )
    return np.asarray(pic, dtype=np.uint8)


def png_uri(rgb: NDArray[np.uint8]) -> str:
    """A chart picture as a ``data:image/png`` URI (:data:`CHART_URI_PREFIX`)."""
    return CHART_URI_PREFIX + base64.b64encode(panels.to_png(rgb)).decode("ascii")
