"""The composed Feature-maps panel images: window, colour maps, overlay, contours, colour bar, size."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepoxymap.ui import panels
from deepoxymap.ui.export import ViewPanel


def _idx(v: float, lo: float, hi: float) -> int:
    return int(np.clip((v - lo) / (hi - lo) * 255.0, 0, 255))


def _disc(n: int = 40, r: float = 8.0) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    return (np.hypot(yy - n / 2, xx - n / 2) < r).astype(np.float32)


def test_map_is_drawn_in_its_colour_map_at_its_window_with_a_bar() -> None:
    """A T1 map of two values: each pixel is the lipari colour of its value in the window; a bar in ms beside it."""
    img = np.full((40, 40), 1000.0, np.float32)
    img[:, 20:] = 1400.0
    vp = ViewPanel("T1", img, (800.0, 1800.0), image_cmap="lipari", units="T1 (ms)")
    rgb = panels.compose(vp, 200)
    assert rgb.shape == (200, 200 + panels.BAR_WIDTH, 3) and rgb.dtype == np.uint8
    table = panels.lut("lipari")
    assert (rgb[100, 50] == table[_idx(1000, 800, 1800)]).all()
    assert (rgb[100, 150] == table[_idx(1400, 800, 1800)]).all()
    assert panels.colour_fractions(rgb, colormap="lipari", image_width=200)["colormap"] == 1.0
    narrow = panels.compose(ViewPanel("T1", img, (900.0, 1500.0), image_cmap="lipari", units="T1 (ms)"), 200)
    assert (narrow[100, 150] == table[_idx(1400, 900, 1500)]).all()  # the user's window moves the colours
    bar = rgb[:, 200:]
    assert bar.any() and not (bar == rgb[:, :1].mean()).all()
    # the vendored table's ends (Fuderer et al. 2024 lipari) are the LUT's ends
    from deepoxymap.display import colormap_table

    raw = colormap_table("lipari")
    assert (table[0] == np.round(raw[0] * 255)).all() and (table[-1] == np.round(raw[-1] * 255)).all()


def test_signal_image_is_grey_and_without_a_bar() -> None:
    """LGE / OS-CMR: greyscale, robust window, no colour bar; NaN (no coverage) is black."""
    img = np.linspace(0, 500, 32 * 32, dtype=np.float32).reshape(32, 32)
    img[0, 0] = np.nan
    rgb = panels.compose(ViewPanel("LGE", img, (100.0, 400.0)), 128)
    assert rgb.shape == (128, 128, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert (rgb[0, 0] == 0).all() and (rgb[-1, -1] == 255).all()


def test_overlay_blends_at_the_opacity_and_fades_in() -> None:
    """CAM 1 -> the map's top colour at the opacity over the image; CAM 0 -> the image untouched."""
    img = np.full((20, 20), 50.0, np.float32)
    cam = np.zeros((20, 20), np.float32)
    cam[:, 10:] = 1.0
    rgb = panels.compose(ViewPanel("OS", img, (0.0, 100.0), 1.0, cam, "Inferno", 0.5), 100)
    grey = panels.lut("gray")[_idx(50, 0, 100)].astype(float)
    top = panels.lut("Inferno")[255].astype(float)
    assert (rgb[50, 20] == grey).all()
    assert np.abs(rgb[50, 80].astype(float) - (0.5 * grey + 0.5 * top)).max() <= 1
    assert tuple(panels.lut("Inferno")[255]) == (252, 255, 164)  # plotly's Inferno, as the plotly panels drew


def test_contour_and_dashed_reference_outline() -> None:
    """The CAM iso-line is a cyan ring at the disc's edge; the reference outline is dashed yellow."""
    disc = _disc()
    img = np.full(disc.shape, 50.0, np.float32)
    vp = ViewPanel("OS", img, (0.0, 100.0), 1.0, None, "Inferno", 0.0, disc, 0.5, None)
    rgb = panels.compose(vp, 400)  # 10 px per source pixel
    cyan = np.all(rgb == panels.CONTOUR_RGB, axis=-1)
    yy, xx = np.nonzero(cyan)
    radius = np.hypot(yy - 200, xx - 200) / 10.0
    assert cyan.any() and abs(float(np.median(radius)) - 8.0) < 0.7
    ref = ViewPanel("OS", img, (0.0, 100.0), 1.0, None, "Inferno", 0.0, None, 0.5, disc)
    yellow = np.all(panels.compose(ref, 400) == panels.LESION_RGB, axis=-1)
    ring = panels._edge(
        panels._bilinear(disc, np.arange(400) / 10 + 0.05 - 0.5, np.arange(400) / 10 + 0.05 - 0.5) >= 0.5, 2
    )
    assert yellow.any() and 0.3 < yellow.sum() / ring.sum() < 0.7, "outline not dashed"
    flat = ViewPanel("OS", img, (0.0, 100.0), 1.0, None, "Inferno", 0.0, np.zeros_like(disc), 0.5, None)
    assert not np.all(panels.compose(flat, 100) == panels.CONTOUR_RGB, axis=-1).any()  # no line below the level


def test_crop_and_pixel_aspect_set_the_size() -> None:
    """The crop is what is shown; the width follows the mm extent (row spacing / column spacing)."""
    img = np.zeros((60, 80), np.float32)
    img[10:20, 30:50] = 100.0
    rgb = panels.compose(ViewPanel("c", img, (0.0, 100.0), crop=(10, 20, 30, 50)), 100)
    assert rgb.shape == (100, 200, 3) and (rgb == 255).all()
    wide = panels.compose(ViewPanel("a", np.zeros((10, 10), np.float32), (0.0, 1.0), aspect=2.0), 100)
    assert wide.shape == (100, 200, 3)


def test_png_round_trip_and_no_image() -> None:
    vp = ViewPanel("T2", np.full((16, 16), 50.0, np.float32), (25.0, 85.0), image_cmap="navia", units="T2 (ms)")
    png = panels.panel_png(vp, 64)
    back = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (back == panels.compose(vp, 64)).all()
    with pytest.raises(ValueError, match="has no image"):
        panels.compose(ViewPanel("none", None, (0, 1)), 64)
