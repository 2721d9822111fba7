"""One composed image per Feature-maps panel: the slice, its CAM overlay, contours and colour bar in one PNG.

The browser then draws one ``<img>`` per panel instead of several plotly traces
(a heatmap, an overlay heatmap and contour polylines): a warm slice change costs
one small PNG per panel, not a plotly re-layout of four charts (issue 15).

The picture is the one the plotly panels drew, from the same
:class:`~deepoxymap.ui.export.ViewPanel` the PNG export uses:

* the image in its window and colour map (greyscale, or ``lipari``/``navia`` for
  T1/T2 maps in ms), one screen pixel per display pixel, nearest neighbour (each
  acquired pixel stays a visible square, as in the plotly heatmap);
* the CAM overlay in its colour map at the user's opacity, fading in from
  transparent at 0 to opaque at 0.3 of the map's range (:func:`deepoxymap.ui.figures.faded`);
* the CAM threshold iso-line (cyan, :data:`~deepoxymap.ui.figures.CONTOUR_COLOR`) and
  the reference-lesion outline (dashed yellow), traced on the bilinear interpolant of
  their fields (the same iso-line contourpy traced on the pixel centres);
* for quantitative maps, a colour bar with its window ends and units.

Only presentation lives here: no value is computed that the panels did not show before.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.ui.export import ViewPanel

__all__ = ["BAR_WIDTH", "colour_bar", "colour_fractions", "compose", "font", "lut", "panel_png", "to_png"]

BAR_WIDTH = 74
"""Width in px of the colour-bar strip beside a quantitative map."""

_FADE_RAMP = 0.3  # CAM alpha ramps 0 -> 1 over [0, 0.3] of the map (as figures.faded)
CONTOUR_RGB = (0, 229, 255)  # figures.CONTOUR_COLOR
LESION_RGB = (255, 212, 0)  # figures.LESION_COLOR


@functools.cache
def lut(name: str) -> NDArray[np.uint8]:
    """uint8 ``[256, 3]`` RGB table of a colour map: ``gray``, a vendored table (``lipari``, ``navia``)
    or a plotly scale name (``Inferno``, ``Jet``, ...)."""
    if name.lower() in ("gray", "grey"):
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp, ramp, ramp], axis=1)
    from deepoxymap.display import COLORMAP_DIR, colormap_table

    if name.isidentifier() and (COLORMAP_DIR / f"{name}.txt").is_file():
        table = colormap_table(name)
        idx = np.linspace(0, len(table) - 1, 256)
        out = np.stack([np.interp(idx, np.arange(len(table)), table[:, j]) for j in range(3)], axis=1)
        return np.asarray(np.clip(np.round(out * 255), 0, 255), dtype=np.uint8)
    from plotly.colors import sample_colorscale, unlabel_rgb

    cols = sample_colorscale(name, [i / 255 for i in range(256)], colortype="rgb")
    return np.asarray([[round(float(v)) for v in unlabel_rgb(c)] for c in cols], dtype=np.uint8)


def _grid(n_px: int, start_px: float, step_px: float) -> NDArray[np.float64]:
    """Source pixel coordinates (pixel centres at integers) of ``n_px`` display pixels."""
    return start_px + (np.arange(n_px, dtype=np.float64) + 0.5) * step_px - 0.5


def _nearest(a: NDArray[Any], rr: NDArray[np.float64], cc: NDArray[np.float64]) -> NDArray[Any]:
    ri = np.clip(np.round(rr).astype(np.intp), 0, a.shape[0] - 1)
    ci = np.clip(np.round(cc).astype(np.intp), 0, a.shape[1] - 1)
    return a[ri][:, ci]


def _bilinear(a: NDArray[Any], rr: NDArray[np.float64], cc: NDArray[np.float64]) -> NDArray[np.float32]:
    """Separable linear interpolation of ``a`` at rows ``rr`` x columns ``cc`` (edges clamped)."""
    f = np.asarray(a, dtype=np.float32)
    r = np.clip(rr, 0, f.shape[0] - 1)
    c = np.clip(cc, 0, f.shape[1] - 1)
    r0 = np.minimum(np.floor(r).astype(np.intp), f.shape[0] - 1)
    c0 = np.minimum(np.floor(c).astype(np.intp), f.shape[1] - 1)
    r1, c1 = np.minimum(r0 + 1, f.shape[0] - 1), np.minimum(c0 + 1, f.shape[1] - 1)
    wr = (r - r0).astype(np.float32)[:, None]
    wc = (c - c0).astype(np.float32)[None, :]
    rows = f[r0] * (1 - wr) + f[r1] * wr
    return np.asarray(rows[:, c0] * (1 - wc) + rows[:, c1] * wc, dtype=np.float32)


def _edge(mask: NDArray[np.bool_], width: int) -> NDArray[np.bool_]:
    """Pixels of ``mask`` on its border (4-neighbour), thickened to ``width`` px."""
    m = np.pad(mask, 1, mode="edge")
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    edge = mask & ~inner
    for _ in range(max(0, width - 1)):
        e = np.pad(edge, 1)
        edge = e[1:-1, 1:-1] | e[:-2, 1:-1] | e[2:, 1:-1] | e[1:-1, :-2] | e[1:-1, 2:]
    return edge


def _iso_line(
    field: NDArray[Any], level: float, rr: NDArray[np.float64], cc: NDArray[np.float64], width: int
) -> NDArray[np.bool_] | None:
    f = np.asarray(field, dtype=np.float32)
    if f.size == 0 or not np.isfinite(f).any():
        return None
    f = np.nan_to_num(f, nan=float(np.nanmin(f)))
    if float(f.max()) < level or float(f.min()) > level:
        return None
    return _edge(_bilinear(f, rr, cc) >= level, width)


def _colour(values: NDArray[Any], lo: float, hi: float, table: NDArray[np.uint8]) -> NDArray[np.uint8]:
    v = np.asarray(values, dtype=np.float32)
    span = max(float(hi) - float(lo), 1e-6)
    idx = np.clip((np.nan_to_num(v, nan=lo) - lo) / span * 255.0, 0, 255).astype(np.uint8)
    rgb = table[idx]
    rgb[~np.isfinite(v)] = 0
    return rgb


def compose(vp: ViewPanel, height: int) -> NDArray[np.uint8]:
    """The RGB picture of one panel, ``height`` px high, its width following the image's mm extent.

    Args:
        vp: the panel as shown (image, window, colour maps, overlay, contour, reference, crop,
            pixel aspect = row spacing / column spacing).
        height: picture height in px (the colour bar adds :data:`BAR_WIDTH` px of width).

    Returns:
        uint8 ``[height, W, 3]``; ``W`` = image width in px (+ the bar for maps with ``units``).

    Raises:
        ValueError: the panel has no image.
    """
    if vp.image is None:
        raise ValueError(f"panel {vp.title!r} has no image")
    img = np.asarray(vp.image)
    r0, r1, c0, c1 = vp.crop if vp.crop is not None else (0, img.shape[0], 0, img.shape[1])
    height = max(16, int(height))
    # one display pixel is `step` source rows high and step * aspect columns wide
    step_r = (r1 - r0) / height
    width = max(16, round((c1 - c0) * float(vp.aspect) / step_r))
    step_c = (c1 - c0) / width
    rr, cc = _grid(height, r0, step_r), _grid(width, c0, step_c)
    # colour and blend on the source grid, then repeat pixels (nearest neighbour: the same picture, less work)
    rgb = _colour(img, vp.window[0], vp.window[1], lut(vp.image_cmap)).astype(np.float32)
    if vp.overlay is not None and vp.opacity > 0:
        heat = np.clip(np.nan_to_num(np.asarray(vp.overlay, np.float32)), 0.0, 1.0)
        alpha = (float(vp.opacity) * np.minimum(1.0, heat / _FADE_RAMP))[..., None]
        cam_rgb = lut(vp.cmap)[np.round(heat * 255).astype(np.uint8)].astype(np.float32)
        rgb = rgb * (1 - alpha) + cam_rgb * alpha
    src = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    out = np.ascontiguousarray(_nearest(src, rr, cc))
    if vp.contour is not None and (line := _iso_line(vp.contour, vp.level, rr, cc, 2)) is not None:
        out[line] = CONTOUR_RGB
    if vp.reference is not None and (ref := _iso_line(vp.reference, 0.5, rr, cc, 2)) is not None:
        yy, xx = np.nonzero(ref)
        dash = (yy // 5 + xx // 5) % 2 == 0  # 5 px cells, alternately drawn: dashes in every direction
        out[yy[dash], xx[dash]] = LESION_RGB
    if vp.units:
        out = np.concatenate([out, _colour_bar(vp, height)], axis=1)
    return out


@functools.cache
def font(size: int) -> Any:
    """PIL's default (scalable) font at ``size`` px."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _colour_bar(vp: ViewPanel, height: int) -> NDArray[np.uint8]:
    """A :data:`BAR_WIDTH` px strip: the window's colour ramp (top = high) with its ends and units."""
    return colour_bar(vp.window, vp.units, height, lut(vp.image_cmap))


def colour_bar(window: tuple[float, float], units: str, height: int, table: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """uint8 ``[height, BAR_WIDTH, 3]``: ``table``'s ramp (top = ``window[1]``), its ends and middle, ``units`` on top."""
    from PIL import Image, ImageDraw

    strip = np.zeros((height, BAR_WIDTH, 3), np.uint8)
    top, bottom = max(22, height // 12), height - max(10, height // 24)
    ramp = table[np.linspace(255, 0, max(1, bottom - top)).round().astype(np.intp)]
    strip[top:bottom, 8:20] = ramp[:, None, :]
    pic = Image.fromarray(strip)
    draw = ImageDraw.Draw(pic)
    fnt = font(12)
    lo, hi = window
    draw.text((4, 4), units, fill=(235, 235, 235), font=fnt)
    for value, y in ((hi, top), ((lo + hi) / 2, (top + bottom) // 2), (lo, bottom - 1)):
        draw.line([(20, y), (24, y)], fill=(235, 235, 235))
        draw.text((27, y - 7), _tick(value, hi - lo), fill=(235, 235, 235), font=fnt)
    return np.asarray(pic, dtype=np.uint8)


def _tick(value: float, span: float) -> str:
    return f"{value:.0f}" if span >= 20 else f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"


def to_png(rgb: NDArray[np.uint8]) -> bytes:
    """PNG bytes of an RGB picture (fast zlib level: these are redrawn, not archived)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def panel_png(vp: ViewPanel, height: int) -> bytes:
    """:func:`compose` then :func:`to_png`."""
    return to_png(compose(vp, height))


def colour_fractions(rgb: NDArray[np.uint8], *, colormap: str, image_width: int | None = None) -> dict[str, float]:
    """What a composed panel shows, by pixel colour (for tests and checks of what reached the screen).

    Args:
        rgb: a picture from :func:`compose` (or decoded from its PNG).
        colormap: the image's colour map (``gray``, ``lipari``, ...).
        image_width: width of the image part (default: all of it; a colour bar lies to its right).

    Returns:
        Fractions of the image part's pixels that are exactly a colour of ``colormap``
        (``"colormap"``), CAM contour cyan (``"contour"``), reference yellow (``"reference"``),
        and neither (``"other"``: e.g. blended with a CAM overlay).
    """
    a = np.asarray(rgb, dtype=np.uint8)[:, : image_width or None].reshape(-1, 3)
    code = (a[:, 0].astype(np.int64) << 16) | (a[:, 1].astype(np.int64) << 8) | a[:, 2]
    table = lut(colormap).astype(np.int64)
    in_map = np.isin(code, (table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2])
    cyan = code == ((CONTOUR_RGB[0] << 16) | (CONTOUR_RGB[1] << 8) | CONTOUR_RGB[2])
    yellow = code == ((LESION_RGB[0] << 16) | (LESION_RGB[1] << 8) | LESION_RGB[2])
    n = max(1, code.size)
    return {
        "colormap": float(in_map.sum()) / n,
        "contour": float(cyan.sum()) / n,
        "reference": float(yellow.sum()) / n,
        "other": float((~(in_map | cyan | yellow)).sum()) / n,
    }
