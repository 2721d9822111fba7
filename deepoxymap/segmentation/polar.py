"""Classical LV / RV segmentation of one short-axis image, seeded by the LV centre.

Method (no training, CPU, ~tens of ms per image)
------------------------------------------------
1. **Polar unwrap** around the LV centre: ``N_THETA`` rays, radii ``0 .. R_MAX_MM``
   in ``DR_MM`` steps, sampled (bilinear) from the image smoothed by a
   ``SMOOTH_MM`` Gaussian and robustly scaled to [0, 1] within ``R_MAX_MM``.
2. **Blood / myocardium levels:** the blood level is a high percentile of the
   central ``CORE_MM`` disc; the first blood/myocardium threshold is the upper
   level of a three-class Otsu split (dark lung, grey tissue, bright blood) of
   the disc of radius ``OTSU_MM``; both are then re-measured from the borders found.
3. **Endocardium** by dynamic programming over the rays (circular, with a
   bounded radius change between neighbouring rays and a quadratic penalty on
   it): the border of each ray minimises "dark pixels inside" plus "bright
   pixels in a ``WALL_MM`` window just outside" minus an edge (bright-to-dark)
   term. Dark papillary muscles inside a bright ring therefore stay in the
   blood pool (the usual convention of manual contours), while RV blood beyond
   the wall does not count.
4. **Epicardium** by a second dynamic programme on the radius beyond the
   endocardium: the wall should look like myocardium (intensity near the
   myocardial level measured just outside the endocardium), the
   ``OUT_MM`` beyond it should not, plus an edge term of either sign (fat and
   blood are brighter, lung is darker), a weak prior on the wall thickness and
   hard limits ``THICK_MIN_MM .. THICK_MAX_MM``.
5. **Re-centre** once on the blood-pool centroid and repeat 1-4 (a centre
   found on a papillary muscle or near the wall would bias the polar grid).
6. **RV**: the bright (blood-like) connected region outside the LV that has
   the longest contact with the epicardium, within ``RV_MAX_MM`` of the LV centre.

Constants
---------
All sizes are millimetres, so the same numbers serve 1 mm and 1.5 mm pixels.
They are physiological ranges (LV wall 6-12 mm at end-diastole in adults,
thicker in hypertrophy; cavity radius up to ~35 mm in dilated hearts) and
were chosen on generated phantoms (``deepoxymap.phantom``) and then left
alone; the real labelled cases are validation only (``tools/segment_check.py``).

Works on bright-blood images: bSSFP cine / OS-CMR, LGE (blood bright, normal
myocardium nulled) and native T1 / T2 maps (blood longer than myocardium).
Known limit: bright subendocardial scar on LGE looks like blood to step 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = ["KINDS", "PolarResult", "segment_polar"]

KINDS = ("cine", "os-cmr", "lge", "t1-map", "t2-map")
"""Image kinds :func:`segment_polar` accepts (all bright-blood contrasts)."""

N_THETA = 120
"""Rays (3 degrees apart)."""
DR_MM = 0.5
"""Radial sampling step, mm."""
R_MAX_MM = 60.0
"""Longest ray, mm (beyond the epicardium of a dilated LV)."""
SMOOTH_MM = 0.7
"""Gaussian sigma of the smoothing before unwrapping, mm (noise only; keeps the edges)."""
CORE_MM = 6.0
"""Radius of the central disc whose bright pixels give the blood level, mm."""
OTSU_MM = 45.0
"""Radius of the disc whose Otsu level separates blood from darker tissue, mm."""
ENDO_MIN_MM, ENDO_MAX_MM = 3.0, 40.0
"""Endocardial radius limits, mm."""
ENDO_ITERATIONS = 3
"""Rounds of (endocardium, then blood and myocardial levels from it)."""
ENDO_FRACTION: dict[str, float] = {"cine": 0.25, "os-cmr": 0.25, "lge": 0.5, "t1-map": 0.5, "t2-map": 0.5}
"""Where the endocardium sits between the myocardial (0) and blood (1) intensity levels, per kind.
On bSSFP cine the trabeculated zone is resolved as a grey ramp and the convention (SCMR post-processing
guidance) counts trabeculae and papillary muscles as blood pool: the border is near the foot of the ramp.
On LGE and maps (coarser, noisier) the border is the half-way point of the transition."""
LIKE_WIDTH = 1.0
"""Intensities this fraction of the blood-myocardium contrast away from the myocardial level are not myocardium."""
LIKE_BELOW = 1.0
"""Intensities below the myocardial level by this fraction of it are not myocardium (lung, air)."""
LOCAL_MYO_DEG = 30.0
"""Angular window of the median filter that steadies the per-ray myocardial level, degrees."""
BRIGHT_WIDTH = 0.25
"""Width of the soft blood/not-blood transition, as a fraction of the blood-myocardium contrast."""
RING_MM = (1.5, 5.0)
"""Ring outside the endocardium whose median gives the myocardial level, mm."""
WALL_MM = 6.0
"""Window beyond the endocardium in which bright pixels count against the border, mm."""
THICK_MIN_MM, THICK_MAX_MM = 3.0, 22.0
"""Wall thickness limits, mm."""
THICK_PRIOR_MM, THICK_SD_MM = 9.0, 4.0
"""Weak Gaussian prior on the wall thickness (mean, sd), mm."""
OUT_MM = 3.0
"""Window beyond the epicardium that should not look like myocardium, mm."""
STEP_MM = 1.0
"""Largest change of a border radius between neighbouring rays, mm."""
SMOOTH_W = 0.5
"""Quadratic penalty per (radial step)^2 between neighbouring rays (units of one pixel's cost)."""
EDGE_W = 3.0
"""Weight of the edge term (normalised gradient) against the region terms."""
MIN_CONTRAST = 0.05
"""Below this blood-myocardium contrast (on the [0, 1] robust scale) no LV is labelled (blank or flat images)."""
RV_MAX_MM = 70.0
"""The RV is kept within this distance of the LV centre, mm."""
RV_FRACTION = 0.5
"""RV blood is brighter than the myocardial level by this fraction of the LV blood-myocardium contrast
(below 1: surface-coil shading can leave the RV darker than the LV)."""
RV_MIN_AREA_MM2 = 100.0
"""Smallest RV region, mm^2."""
RV_CONTACT_MM = 6.0
"""RV pixels within this distance of the epicardium are "in contact", mm."""


@dataclass(frozen=True)
class PolarResult:
    """One image's segmentation and the quantities it was built from.

    Attributes:
        labels: ``[rows, cols]`` uint8: 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool.
        center_rc: the (re-centred) LV centre ``(row, col)`` in pixels used for the final pass.
        theta_deg: ``(N_THETA,)`` screen angles of the rays, degrees counter-clockwise from +col.
        r_endo_mm: ``(N_THETA,)`` endocardial radius per ray, mm.
        r_epi_mm: ``(N_THETA,)`` epicardial radius per ray, mm.
        blood_level: blood intensity on the [0, 1] robust scale.
        myo_level: myocardial intensity on that scale.
    """

    labels: NDArray[np.uint8]
    center_rc: tuple[float, float]
    theta_deg: NDArray[np.float64]
    r_endo_mm: NDArray[np.float64]
    r_epi_mm: NDArray[np.float64]
    blood_level: float
    myo_level: float


def _otsu(values: NDArray[np.float64], bins: int = 128) -> float:
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(int(hist.sum()), 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(p)
    m = np.cumsum(p * centres)
    denom = w0 * (1.0 - w0)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.where(denom > 0, (m[-1] * w0 - m) ** 2 / denom, 0.0)
    return float(centres[int(np.argmax(between))])


def _otsu3_upper(values: NDArray[np.float64], bins: int = 64) -> float:
    """Upper threshold of a three-class Otsu split of values in [0, 1] (dark / grey tissue / bright blood)."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(int(hist.sum()), 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w = np.concatenate([[0.0], np.cumsum(p)])
    m = np.concatenate([[0.0], np.cumsum(p * centres)])
    # classes [0, i), [i, j), [j, bins): between-class variance sum_k w_k mu_k^2 (the total mean is fixed)
    i, j = np.meshgrid(np.arange(1, bins), np.arange(1, bins), indexing="ij")
    valid = j > i
    w0, w1, w2 = w[i], w[j] - w[i], 1.0 - w[j]
    m0, m1, m2 = m[i], m[j] - m[i], m[-1] - m[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = (
            np.where(w0 > 0, m0**2 / w0, 0.0) + np.where(w1 > 0, m1**2 / w1, 0.0) + np.where(w2 > 0, m2**2 / w2, 0.0)
        )
    score = np.where(valid, score, -np.inf)
    _, jj = np.unravel_index(int(np.argmax(score)), score.shape)
    return float(edges[int(j[0, jj])])


def _dp_circular(cost: NDArray[np.float64], max_step: int, smooth_w: float) -> NDArray[np.int64]:
    """Minimum-cost closed path through ``cost[theta, r]``: one radius index per ray.

    Neighbouring rays differ by at most ``max_step`` indices, each step ``d``
    costing ``smooth_w * d**2``. Closure: the cost is tiled three times around
    the circle and the middle copy of the optimal open path is returned.
    """
    n_t, n_r = cost.shape
    tiled = np.concatenate([cost, cost, cost], axis=0)
    d = np.arange(-max_step, max_step + 1)
    penalty = smooth_w * d.astype(np.float64) ** 2
    acc = tiled[0].copy()
    back = np.zeros((3 * n_t, n_r), dtype=np.int64)
    idx = np.arange(n_r)
    padded = np.full(n_r + 2 * max_step, np.inf)
    for t in range(1, 3 * n_t):
        padded[max_step : max_step + n_r] = acc
        # windows[i, m] = acc[i + m - max_step], i.e. the predecessor at radius index i - d[::-1][m]
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * max_step + 1) + penalty[::-1]
        m = np.argmin(windows, axis=1)
        acc = windows[idx, m] + tiled[t]
        back[t] = idx + m - max_step
    path = np.zeros(3 * n_t, dtype=np.int64)
    path[-1] = int(np.argmin(acc))
    for t in range(3 * n_t - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path[n_t : 2 * n_t]


def _robust_range(img: NDArray[np.float64], region: NDArray[np.bool_]) -> tuple[float, float]:
    """The 1st and 99.5th percentiles of ``img`` within ``region`` (``hi > lo`` always)."""
    vals = img[region] if region.any() else img.ravel()
    lo, hi = (float(v) for v in np.percentile(vals, [1.0, 99.5]))
    return lo, (hi if hi > lo else lo + 1.0)


def _radius_map(
    shape: tuple[int, int], center: tuple[float, float], ps: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    dy = -(rr - center[0]) * ps[0]
    dx = (cc - center[1]) * ps[1]
    return np.hypot(dy, dx), np.degrees(np.arctan2(dy, dx)) % 360.0


def _interp_periodic(theta_deg: NDArray[np.float64], ray_theta: NDArray[np.float64], values: NDArray[Any]) -> Any:
    t = np.concatenate([ray_theta - 360.0, ray_theta, ray_theta + 360.0])
    v = np.concatenate([values, values, values])
    return np.interp(theta_deg, t, v)


def _endocardium(
    polar: NDArray[np.float64],
    radii: NDArray[np.float64],
    grad: NDArray[np.float64],
    blood: float,
    thr: float,
    endo_fraction: float,
    step: int,
) -> tuple[NDArray[np.int64], float, float]:
    """Endocardial radius index per ray, and the blood and myocardial levels measured from it.

    Starts from the threshold ``thr`` and alternates ``ENDO_ITERATIONS`` times between the
    border (dynamic programming) and the levels (median inside; median of a ring outside).
    """
    n_r = radii.size
    if thr >= blood:  # the centre is not brighter than its surroundings: fall back to a fixed split
        thr = 0.5 * blood
    myo = max(2.0 * thr - blood, 0.0)
    wall_n = max(round(WALL_MM / DR_MM), 1)
    i = np.arange(n_r)
    hi_idx = np.minimum(i + wall_n, n_r)
    i_endo = np.full(polar.shape[0], int(np.searchsorted(radii, ENDO_MIN_MM)))
    for _ in range(ENDO_ITERATIONS):
        # the border sits where the intensity has fallen from blood towards the myocardial level
        contrast = max(blood - myo, 0.05)
        bright = np.clip((polar - thr) / (BRIGHT_WIDTH * contrast) + 0.5, 0.0, 1.0)
        dark = 1.0 - bright
        # border index i means samples [0, i) of the ray are blood
        cum_dark = np.concatenate([np.zeros((polar.shape[0], 1)), np.cumsum(dark, axis=1)], axis=1)
        cum_bright = np.concatenate([np.zeros((polar.shape[0], 1)), np.cumsum(bright, axis=1)], axis=1)
        inside = cum_dark[:, i]
        outside = cum_bright[:, hi_idx] - cum_bright[:, i]
        edge_down = np.clip(grad / contrast, 0.0, 1.0)
        cost_endo = inside + outside - EDGE_W * edge_down
        cost_endo[:, radii < ENDO_MIN_MM] = np.inf
        cost_endo[:, radii > ENDO_MAX_MM] = np.inf
        i_endo = _dp_circular(cost_endo, step, SMOOTH_W)
        r_endo = radii[i_endo]
        # levels: blood inside the border, myocardium in a ring just outside it
        ring = (radii[None, :] >= r_endo[:, None] + RING_MM[0]) & (radii[None, :] <= r_endo[:, None] + RING_MM[1])
        inside_blood = radii[None, :] < r_endo[:, None] - 1.0
        if not ring.any() or inside_blood.sum() < 10:
            break
        blood = float(np.median(polar[inside_blood]))
        myo = float(np.median(polar[ring]))
        thr = myo + endo_fraction * (blood - myo)
    return i_endo, blood, myo


def _one_pass(
    norm: NDArray[np.float64], ps: tuple[float, float], center: tuple[float, float], endo_fraction: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], float, float, NDArray[np.float64]]:
    """Endo and epi radii (mm) per ray, blood and myocardial levels, ray angles (deg)."""
    theta = np.arange(N_THETA, dtype=np.float64) * (360.0 / N_THETA)
    radii = np.arange(0.0, R_MAX_MM + 1e-9, DR_MM)
    th = np.radians(theta)[:, None]
    rows = center[0] - radii[None, :] * np.sin(th) / ps[0]
    cols = center[1] + radii[None, :] * np.cos(th) / ps[1]
    polar = ndi.map_coordinates(norm, [rows, cols], order=1, mode="nearest")
    n_r = radii.size

    core = polar[:, radii <= CORE_MM]
    blood0 = float(np.percentile(core, 75))
    disc = polar[:, radii <= OTSU_MM].ravel()
    step = max(round(STEP_MM / DR_MM), 1)
    grad = np.zeros_like(polar)
    grad[:, 1:-1] = polar[:, :-2] - polar[:, 2:]  # > 0 where bright turns dark going outward
    # two starting thresholds: two-class Otsu (blood vs the rest) and the upper level of a
    # three-class split (dark, grey tissue, blood); the endocardium that looks more like an
    # LV (contrast x roundness) wins
    best: tuple[float, NDArray[np.int64], float, float] | None = None
    for thr0 in (_otsu(disc), _otsu3_upper(disc)):
        i_endo, blood, myo = _endocardium(polar, radii, grad, blood0, thr0, endo_fraction, step)
        r = radii[i_endo]
        cv = float(r.std() / max(float(r.mean()), 1e-6))
        score = max(blood - myo, 0.0) * float(np.exp(-0.5 * (cv / 0.12) ** 2))
        if best is None or score > best[0]:
            best = (score, i_endo, blood, myo)
    assert best is not None
    _, i_endo, blood, myo = best
    r_endo = radii[i_endo]
    contrast = max(blood - myo, 0.05)

    # the myocardial level of each ray (coil shading varies around the heart), steadied over neighbours
    wall_ring = (radii[None, :] >= r_endo[:, None] + RING_MM[0]) & (
        radii[None, :] <= r_endo[:, None] + RING_MM[0] + THICK_MIN_MM
    )
    per_ray = np.array([np.median(p[w]) if w.any() else myo for p, w in zip(polar, wall_ring, strict=True)])
    half = max(round(LOCAL_MYO_DEG / (360.0 / N_THETA) / 2), 1)
    m_ray = ndi.median_filter(per_ray, size=2 * half + 1, mode="wrap")[:, None]
    # myocardium-likeness: 1 at the ray's myocardial level; 0 at LIKE_WIDTH of the blood contrast above it
    # (fat, blood) or at LIKE_BELOW of the level below it (lung, air: the only darker things)
    above = (polar - m_ray) / (LIKE_WIDTH * contrast)
    below = (m_ray - polar) / np.maximum(LIKE_BELOW * m_ray, 0.02)
    like = np.clip(1.0 - np.maximum(above, below), 0.0, 1.0)
    unlike = 1.0 - like

    # --- epicardium: border index k (k > i_endo) means [i_endo, k) is wall
    out_n = max(round(OUT_MM / DR_MM), 1)
    cum_unlike = np.concatenate([np.zeros((N_THETA, 1)), np.cumsum(unlike, axis=1)], axis=1)
    cum_like = np.concatenate([np.zeros((N_THETA, 1)), np.cumsum(like, axis=1)], axis=1)
    k = np.arange(n_r)
    in_wall = cum_unlike[:, k] - cum_unlike[np.arange(N_THETA), i_endo][:, None]
    beyond = cum_like[:, np.minimum(k + out_n, n_r)] - cum_like[:, k]
    edge_any = np.clip(np.abs(grad) / contrast, 0.0, 1.0)
    thick = radii[None, :] - r_endo[:, None]
    prior = 0.5 * ((thick - THICK_PRIOR_MM) / THICK_SD_MM) ** 2
    cost_epi = in_wall + beyond - EDGE_W * edge_any + prior
    cost_epi[(thick < THICK_MIN_MM) | (thick > THICK_MAX_MM)] = np.inf
    i_epi = _dp_circular(cost_epi, step, SMOOTH_W)
    r_epi = radii[i_epi]
    return r_endo, r_epi, blood, myo, theta


def _rv_mask(
    norm: NDArray[np.float64],
    ps: tuple[float, float],
    radius: NDArray[np.float64],
    theta_px: NDArray[np.float64],
    theta: NDArray[np.float64],
    r_epi: NDArray[np.float64],
    lv: NDArray[np.bool_],
    blood: float,
    myo: float,
) -> NDArray[np.bool_]:
    """The RV blood pool: the bright region outside the LV with the longest epicardial contact."""
    thr = myo + RV_FRACTION * (blood - myo)
    cand = (norm > thr) & ~lv & (radius <= RV_MAX_MM)
    cand = ndi.binary_opening(cand, structure=np.ones((3, 3), dtype=bool))
    labels, n = ndi.label(cand)
    if n == 0:
        return np.zeros(norm.shape, dtype=bool)
    epi_at = _interp_periodic(theta_px, theta, r_epi)
    near = (radius > epi_at) & (radius <= epi_at + RV_CONTACT_MM)
    px_area = ps[0] * ps[1]
    areas = np.bincount(labels.ravel(), minlength=n + 1) * px_area
    best, best_arc = 0, 0.0
    for lab in range(1, n + 1):
        if areas[lab] < RV_MIN_AREA_MM2:
            continue
        contact = (labels == lab) & near
        if not contact.any():
            continue
        # angular extent of the contact, in rays touched
        bins = np.unique((theta_px[contact] // (360.0 / N_THETA)).astype(np.int64))
        arc = bins.size * (360.0 / N_THETA)
        if arc > best_arc:
            best, best_arc = lab, arc
    if best == 0:
        return np.zeros(norm.shape, dtype=bool)
    rv: NDArray[np.bool_] = ndi.binary_fill_holes(labels == best)
    return rv & ~lv


def segment_polar(
    image: NDArray[Any],
    pixel_spacing_mm: tuple[float, float],
    center_rc: tuple[float, float],
    *,
    kind: str = "cine",
    with_rv: bool = True,
) -> PolarResult:
    """Segment one bright-blood short-axis image around a given LV centre (see the module doc).

    Args:
        image: ``[rows, cols]`` intensities, any units (NaN/inf are treated as the minimum).
        pixel_spacing_mm: ``(row_spacing, col_spacing)`` in mm (DICOM order).
        center_rc: LV centre ``(row, col)`` in pixels (e.g. from
            :func:`deepoxymap.cardiac.localize.find_lv`).
        kind: one of :data:`KINDS`.
        with_rv: also find the RV blood pool (label 3).

    Returns:
        :class:`PolarResult`; ``labels`` is uint8 on the image's own grid.

    Raises:
        ValueError: not a 2D image, a non-positive spacing or an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown image kind {kind!r} (expected one of {KINDS})")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 8:
        raise ValueError(f"expected a 2D image of at least 8 x 8 pixels, got shape {img.shape}")
    ps = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    if not (np.isfinite(ps).all() and min(ps) > 0):
        raise ValueError(f"pixel spacing {ps} must be positive")
    finite = np.isfinite(img)
    if not finite.any():
        return PolarResult(np.zeros(img.shape, np.uint8), tuple(center_rc), *_empty_rays(), 0.0, 0.0)  # type: ignore[arg-type]
    img = np.where(finite, img, float(img[finite].min()))
    smooth = ndi.gaussian_filter(img, sigma=(SMOOTH_MM / ps[0], SMOOTH_MM / ps[1]))

    center = (float(center_rc[0]), float(center_rc[1]))
    for attempt in range(2):
        radius, theta_px = _radius_map(img.shape, center, ps)
        lo, hi = _robust_range(smooth, radius <= R_MAX_MM)
        norm = np.clip((smooth - lo) / (hi - lo), 0.0, 1.0)
        r_endo, r_epi, blood, myo, theta = _one_pass(norm, ps, center, ENDO_FRACTION[kind])
        endo_at = _interp_periodic(theta_px, theta, r_endo)
        pool = radius <= endo_at
        if attempt == 0 and pool.any():
            rr, cc = np.nonzero(pool)
            new = (float(rr.mean()), float(cc.mean()))
            shift = np.hypot((new[0] - center[0]) * ps[0], (new[1] - center[1]) * ps[1])
            if shift < 1.0 or shift > 15.0:
                break
            center = new
    epi_at = _interp_periodic(theta_px, theta, r_epi)
    labels = np.zeros(img.shape, dtype=np.uint8)
    if blood - myo < MIN_CONTRAST:  # no bright pool in a darker ring here: nothing to label
        return PolarResult(labels, center, theta, r_endo, r_epi, blood, myo)
    labels[radius <= epi_at] = 2
    labels[radius <= endo_at] = 1
    if with_rv:
        rv = _rv_mask(norm, ps, radius, theta_px, theta, r_epi, labels > 0, blood, myo)
        labels[rv] = 3
    return PolarResult(labels, center, theta, r_endo, r_epi, blood, myo)


def _empty_rays() -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    theta = np.arange(N_THETA, dtype=np.float64) * (360.0 / N_THETA)
    return theta, np.zeros(N_THETA), np.zeros(N_THETA)
