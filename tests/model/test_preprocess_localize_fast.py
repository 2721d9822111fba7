"""The LV search's shortcuts give the very same result as the direct computation.

:func:`deepoxymap.cardiac.localize.find_lv` opens ``smooth > t`` once per threshold; it now
thresholds one grey opening instead (a flat disc commutes with thresholding), and stops
scoring a component whose score cannot beat the best so far. Both are exact: checked here
against the direct computation on generated images, anisotropic pixels and image borders.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from deepoxymap.cardiac import localize


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.4, 1.4), (0.9, 1.6), (2.2, 1.1)])
def test_grey_opening_thresholds_like_binary_opening(spacing: tuple[float, float]) -> None:
    rng = np.random.default_rng(int(spacing[0] * 10 + spacing[1]))
    disc = localize._disc((2.0 / spacing[0], 2.0 / spacing[1]))
    for _ in range(5):
        smooth = ndi.gaussian_filter(rng.random((70, 90)), 1.5)
        smooth[:, :3] = smooth.max()  # bright on the border: the edge handling matters
        opened = ndi.grey_dilation(
            ndi.grey_erosion(smooth, footprint=disc, mode="constant", cval=-np.inf),
            footprint=disc,
            mode="constant",
            cval=-np.inf,
        )
        for t in np.quantile(smooth, [0.1, 0.3, 0.5, 0.7, 0.9]):
            direct = ndi.binary_opening(smooth > t, structure=disc)
            assert np.array_equal(direct, opened > t)


def _ring_image(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    r = np.hypot(yy - centre[0], xx - centre[1])
    img = 80 + 300 * (r < 12) + 120 * ((r >= 12) & (r < 18))
    img += 250 * (np.hypot(yy - centre[0] + 5, xx - centre[1] + 25) < 9)  # an RV-like bright blob
    return (img + rng.normal(0, 20, shape)).astype(np.float32)


def test_find_lv_unchanged_by_its_shortcuts() -> None:
    """find_lv equals the direct computation (a binary opening per threshold, every component scored)."""
    rng = np.random.default_rng(7)
    spacings = [(1.4, 1.4), (1.0, 1.3), (1.8, 1.2)] * 3
    images = [(_ring_image(rng, (110, 128), (45 + 4 * i, 66 - 3 * i)), sp) for i, sp in enumerate(spacings)]
    images.append((rng.normal(100, 30, (64, 64)).astype(np.float32), (1.5, 1.5)))  # noise: many small components
    fast = [localize.find_lv(img, sp) for img, sp in images]
    slow = [_find_lv_direct(img, sp) for img, sp in images]
    assert sum(loc.found for loc in fast) >= len(spacings)
    assert [(a.row, a.col, a.area_mm2, a.score) for a in fast] == [(b.row, b.col, b.area_mm2, b.score) for b in slow]


def _find_lv_direct(image: np.ndarray, spacing: tuple[float, float]) -> localize.LVLocation:
    """find_lv's scoring written out without the shortcuts (the version before them)."""
    img = np.asarray(image, dtype=np.float64)
    rs, cs = spacing
    px_area = rs * cs
    n_rows, n_cols = img.shape
    centre = ((n_rows - 1) / 2.0, (n_cols - 1) / 2.0)
    half_diag_mm = 0.5 * float(np.hypot(n_rows * rs, n_cols * cs))
    smooth = ndi.gaussian_filter(localize._robust01(img), sigma=(1.0 / rs, 1.0 / cs))
    r0, r1 = int(n_rows * 0.2), int(np.ceil(n_rows * 0.8))
    c0, c1 = int(n_cols * 0.2), int(np.ceil(n_cols * 0.8))
    central_vals = smooth[r0:r1, c0:c1].ravel()
    t_otsu = localize._otsu(central_vals)
    upper = central_vals[central_vals > t_otsu]
    t_high = localize._otsu(upper) if upper.size > 16 else t_otsu
    levels = (t_otsu, 0.85 * t_otsu, 1.15 * t_otsu, 1.3 * t_otsu, 0.5 * (t_otsu + t_high), t_high, 1.1 * t_high)
    thresholds = sorted({round(float(t), 3) for t in levels})
    open_struct = localize._disc((2.0 / rs, 2.0 / cs))
    best = localize.LVLocation(centre[0], centre[1], 0.0, 0.0)
    for t in thresholds:
        if not 0.0 < t < 1.0:
            continue
        labels, n = ndi.label(ndi.binary_opening(smooth > t, structure=open_struct))
        counts = np.bincount(labels.ravel())
        boxes = ndi.find_objects(labels)
        for lab in range(1, n + 1):
            area_mm2 = counts[lab] * px_area
            if not 80.0 <= area_mm2 <= 6000.0:
                continue
            sl = boxes[lab - 1]
            pad_r, pad_c = int(np.ceil(9.0 / rs)), int(np.ceil(9.0 / cs))
            br = slice(max(sl[0].start - pad_r, 0), min(sl[0].stop + pad_r, n_rows))
            bc = slice(max(sl[1].start - pad_c, 0), min(sl[1].stop + pad_c, n_cols))
            comp = labels[br, bc] == lab
            rr, cc = np.nonzero(comp)
            ym, xm = rr.mean(), cc.mean()
            dy, dx = (rr - ym) * rs, (cc - xm) * cs
            cov = np.cov(np.vstack([dy, dx])) if rr.size > 2 else np.eye(2)
            ev = np.clip(np.linalg.eigvalsh(cov), 1e-9, None)
            roundness = float(np.sqrt(ev[0] / ev[1]))
            r_max = float(np.sqrt((dy**2 + dx**2).max())) + 0.5 * max(rs, cs)
            compact = float(min(area_mm2 / (np.pi * r_max**2), 1.0))
            size = float(np.exp(-0.5 * (np.log(area_mm2 / 1500.0) / 1.1) ** 2))
            dist = ndi.distance_transform_edt(~comp, sampling=(rs, cs))
            annulus = (dist > 3.0) & (dist <= 8.0)
            local = smooth[br, bc]
            inside_mean = float(local[comp].mean())
            ring_mean = float(local[annulus].mean()) if annulus.any() else inside_mean
            ring = float(np.clip((inside_mean - ring_mean) / max(inside_mean, 1e-6), 0.0, 1.0))
            ar, ac = np.nonzero(annulus)
            if ar.size:
                sector = (np.floor((np.arctan2((ar - ym) * rs, (ac - xm) * cs) + np.pi) / (np.pi / 4)).astype(int)) % 8
                vals = local[ar, ac]
                dark = [float(vals[sector == k].mean()) < 0.8 * inside_mean for k in range(8) if np.any(sector == k)]
                encircled = float(np.mean(dark)) if dark else 0.0
            else:
                encircled = 0.0
            row_c, col_c = ym + br.start, xm + bc.start
            d_mm = float(np.hypot((row_c - centre[0]) * rs, (col_c - centre[1]) * cs))
            central = float(np.exp(-0.5 * (d_mm / (0.45 * half_diag_mm)) ** 2))
            bright = float(np.clip(inside_mean, 0.0, 1.0)) ** 2
            score = roundness * compact * size * (0.1 + ring) * (0.1 + encircled) * central * bright
            if score > best.score:
                best = localize.LVLocation(float(row_c), float(col_c), float(area_mm2), float(score))
    return best
