"""Choose the LV centre among several candidates by how LV-like their segmentation is.

:func:`deepoxymap.cardiac.localize.find_lv` picks the brightest round,
ringed component, which is right on most cine images; on LGE (and on some
cine slices) bright fat or another bright structure can outscore the LV
(the EMIDEC sample loses its LV to epicardial fat). Here it is one candidate
among others:

* **candidates**: ``find_lv``'s centre (or the caller's), plus the strongest
  local maxima of a *ring filter*: the mean of a disc of radius ``R`` minus the
  mean of the annulus ``R .. R + RING_FILTER_MM`` around it, for ``R`` in
  :data:`RING_RADII_MM` (a bright disc inside a dark ring, the blood pool in its
  myocardium, answers most);
  myocardium, answers most), plus the image centre (scan planning puts the
  heart near the isocentre, and cropped data sets centre it);
* **verification**: each candidate is segmented
  (:func:`~deepoxymap.segmentation.polar.segment_polar`) and scored by the
  blood-myocardium contrast times the roundness of its endocardium
  (``exp(-0.5 (cv / ROUND_CV)^2)``, ``cv`` the coefficient of variation of the
  endocardial radius: an LV cavity is round, a fat pad or a vessel bundle is not)
  times the size prior of :func:`deepoxymap.cardiac.localize.find_lv` (log-normal
  around a cavity of ``EXPECTED_AREA_MM2``: the descending aorta is round and
  bright too, but a fraction of that size) times a broad centrality prior (a Gaussian of the distance from the image
  centre with sd ``CENTRAL_SD`` x the half-diagonal of the field of view, so a
  structure at the edge of the image must be much more LV-like to win).

The constants are shapes and sizes in millimetres (LV cavity radius 8-30 mm,
a myocardial ring ~8 mm) chosen on generated phantoms and synthetic images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy.signal import fftconvolve

from deepoxymap.segmentation.polar import PolarResult, segment_polar

__all__ = ["Candidate", "choose_lv", "consistent_centres", "lv_score", "rank_lv", "ring_candidates"]

RING_RADII_MM = (8.0, 13.0, 18.0, 24.0)
"""Disc radii of the ring filter, mm."""
RING_FILTER_MM = 8.0
"""Width of the annulus of the ring filter, mm."""
PEAK_SEPARATION_MM = 20.0
"""Ring-filter maxima closer than this to a stronger one are dropped, mm."""
N_RING_CANDIDATES = 4
"""Ring-filter maxima tried besides the localiser's centre."""
ROUND_CV = 0.12
"""Endocardial-radius coefficient of variation at which the roundness factor is exp(-0.5)."""
EXPECTED_AREA_MM2, AREA_LOG_SD = 1500.0, 1.1
"""Cavity-size prior (the same as :func:`deepoxymap.cardiac.localize.find_lv`'s), mm^2 and natural-log sd."""
CENTRAL_SD = 0.3
"""Sd of the centrality prior, as a fraction of the half-diagonal of the image (mm)."""
EDGE_MARGIN_MM = 15.0
"""Candidates closer than this to the image border are not tried, mm."""
CONSISTENT_MM = 20.0
"""A slice's LV centre lies within this in-plane distance of the stack's reference, mm."""


@dataclass(frozen=True)
class Candidate:
    """One candidate LV centre and its verification.

    Attributes:
        center_rc: ``(row, col)`` pixels.
        source: ``"localizer"`` or ``"ring filter"``.
        score: :func:`lv_score` of its segmentation (0 = not LV-like).
        result: the segmentation around it.
    """

    center_rc: tuple[float, float]
    source: str
    score: float
    result: PolarResult


def _disc_kernel(radius_mm: float, ps: tuple[float, float]) -> NDArray[np.float64]:
    rr = max(int(np.ceil(radius_mm / ps[0])), 1)
    rc = max(int(np.ceil(radius_mm / ps[1])), 1)
    y, x = np.mgrid[-rr : rr + 1, -rc : rc + 1]
    k = ((y * ps[0]) ** 2 + (x * ps[1]) ** 2 <= radius_mm**2).astype(np.float64)
    return k / k.sum()


def ring_candidates(
    image: NDArray[Any], pixel_spacing_mm: tuple[float, float], n: int = N_RING_CANDIDATES
) -> list[tuple[float, float]]:
    """Centres ``(row, col)`` of the ``n`` strongest bright-disc-in-dark-ring responses.

    Args:
        image: ``[rows, cols]`` intensities.
        pixel_spacing_mm: ``(row, col)`` spacing, mm.
        n: most candidates returned.

    Returns:
        up to ``n`` centres, strongest first (those within ``EDGE_MARGIN_MM`` of the border dropped).
    """
    ps = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    raw = np.asarray(image, dtype=np.float64)
    # exact zeros are padding or a field-of-view mask (no tissue is exactly 0 in a magnitude image)
    valid = np.isfinite(raw) & (raw != 0.0)
    if valid.sum() < 16:
        return []
    img = np.where(valid, raw, 0.0)
    lo, hi = np.percentile(img[valid], [1.0, 99.5])
    norm = np.where(valid, np.clip((img - lo) / max(hi - lo, 1e-9), 0.0, 1.0), 0.0)
    w = valid.astype(np.float64)
    best = np.full(norm.shape, -np.inf)
    for r in RING_RADII_MM:
        k_in = _disc_kernel(r, ps) > 0
        k_out = _disc_kernel(r + RING_FILTER_MM, ps) > 0
        pad = ((k_out.shape[0] - k_in.shape[0]) // 2, (k_out.shape[1] - k_in.shape[1]) // 2)
        k_ann = k_out.copy()
        k_ann[pad[0] : pad[0] + k_in.shape[0], pad[1] : pad[1] + k_in.shape[1]] &= ~k_in
        # normalised convolution: means over the valid pixels only
        s_in = fftconvolve(norm, k_in.astype(np.float64), mode="same")
        n_in = fftconvolve(w, k_in.astype(np.float64), mode="same")
        s_an = fftconvolve(norm, k_ann.astype(np.float64), mode="same")
        n_an = fftconvolve(w, k_ann.astype(np.float64), mode="same")
        ok = (n_in > 0.9 * k_in.sum()) & (n_an > 0.6 * k_ann.sum())
        resp = np.where(ok, s_in / np.maximum(n_in, 1e-9) - s_an / np.maximum(n_an, 1e-9), -np.inf)
        best = np.maximum(best, resp)
    size = (max(int(PEAK_SEPARATION_MM / ps[0]), 1), max(int(PEAK_SEPARATION_MM / ps[1]), 1))
    finite_best = np.where(np.isfinite(best), best, -1.0)
    peaks = (finite_best == ndi.maximum_filter(finite_best, size=size)) & (finite_best > 0) & valid
    mr, mc = int(EDGE_MARGIN_MM / ps[0]), int(EDGE_MARGIN_MM / ps[1])
    peaks[:mr] = peaks[-mr or None :] = False
    peaks[:, :mc] = peaks[:, -mc or None :] = False
    rr, cc = np.nonzero(peaks)
    order = np.argsort(-finite_best[rr, cc])[:n]
    return [(float(rr[i]), float(cc[i])) for i in order]


def lv_score(result: PolarResult) -> float:
    """How LV-like a segmentation is: blood-myocardium contrast x roundness x cavity-size prior (0 = not at all)."""
    r = np.asarray(result.r_endo_mm, dtype=np.float64)
    if r.size == 0 or float(r.mean()) <= 0:
        return 0.0
    cv = float(r.std() / r.mean())
    contrast = max(result.blood_level - result.myo_level, 0.0)
    area = float(np.mean(np.pi * r**2))
    size = float(np.exp(-0.5 * (np.log(max(area, 1e-6) / EXPECTED_AREA_MM2) / AREA_LOG_SD) ** 2))
    return float(contrast * np.exp(-0.5 * (cv / ROUND_CV) ** 2) * size)


def choose_lv(
    image: NDArray[Any],
    pixel_spacing_mm: tuple[float, float],
    first: tuple[float, float],
    *,
    kind: str = "cine",
) -> Candidate:
    """The most LV-like of ``first`` (the localiser's centre), the image centre and the ring-filter candidates.

    Args:
        image: ``[rows, cols]`` one image (a representative frame of a slice).
        pixel_spacing_mm: ``(row, col)`` spacing, mm.
        first: the localiser's centre ``(row, col)``; it wins ties.
        kind: image kind (see :data:`~deepoxymap.segmentation.polar.KINDS`).

    Returns:
        the chosen :class:`Candidate` (the first of :func:`rank_lv`).
    """
    return rank_lv(image, pixel_spacing_mm, first, kind=kind)[0]


def rank_lv(
    image: NDArray[Any],
    pixel_spacing_mm: tuple[float, float],
    first: tuple[float, float],
    *,
    kind: str = "cine",
) -> list[Candidate]:
    """Every candidate of :func:`choose_lv`, verified, best first (the localiser's first among equals)."""
    ps = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    shape = np.asarray(image).shape
    mid = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    sd_mm = CENTRAL_SD * 0.5 * float(np.hypot(shape[0] * ps[0], shape[1] * ps[1]))

    def central(c: tuple[float, float]) -> float:
        d = float(np.hypot((c[0] - mid[0]) * ps[0], (c[1] - mid[1]) * ps[1]))
        return float(np.exp(-0.5 * (d / max(sd_mm, 1e-6)) ** 2))

    def verify(c: tuple[float, float], source: str) -> Candidate:
        res = segment_polar(image, ps, c, kind=kind, with_rv=False)
        return Candidate((float(c[0]), float(c[1])), source, lv_score(res) * central(res.center_rc), res)

    out = [verify(first, "localizer")]
    tried = [out[0].center_rc]
    for c, source in [(mid, "image centre"), *((c, "ring filter") for c in ring_candidates(image, ps))]:
        if any(np.hypot((c[0] - t[0]) * ps[0], (c[1] - t[1]) * ps[1]) < PEAK_SEPARATION_MM / 2 for t in tried):
            continue
        tried.append(c)
        out.append(verify(c, source))
    return sorted(out, key=lambda c: -c.score)  # stable: the localiser stays first among equals


def consistent_centres(
    ranked: list[list[Candidate]],
    geometry: Any,
) -> list[tuple[float, float]]:
    """One LV centre per slice of a stack, consistent through the slices.

    The LV runs through every short-axis slice at nearly the same place, while
    a fat pad or vessel that outscores it on one slice sits elsewhere. The
    reference is the score-weighted median (in patient millimetres) of each
    slice's best candidate; a slice whose best lies more than
    ``CONSISTENT_MM`` from it (in plane) takes its best candidate within that
    distance, or the reference point itself when it has none.

    Args:
        ranked: per slice, the candidates of :func:`rank_lv` (best first, non-empty).
        geometry: the stack's :class:`~deepoxymap.case.Geometry` (pixel <-> patient mm;
            without geometry the slices' pixel grids are taken as aligned).

    Returns:
        ``(row, col)`` per slice, pixels.
    """
    n = len(ranked)
    ps = tuple(float(v) for v in geometry.pixel_spacing)
    best = [r[0] for r in ranked]
    if n < 3:
        return [b.center_rc for b in best]
    use_geom = bool(getattr(geometry, "has_geometry", False))

    def to_mm(k: int, c: tuple[float, float]) -> NDArray[np.float64]:
        if use_geom:
            return np.asarray(geometry.pixel_to_patient(k, c[0], c[1]), dtype=np.float64).reshape(3)
        return np.array([c[0] * ps[0], c[1] * ps[1], 0.0])

    def to_px(k: int, p: NDArray[np.float64]) -> tuple[float, float]:
        if use_geom:
            q = geometry.patient_to_pixel(k, p)
            return (float(q[0]), float(q[1]))
        return (float(p[0] / ps[0]), float(p[1] / ps[1]))

    pts = np.array([to_mm(k, b.center_rc) for k, b in enumerate(best)])
    w = np.array([max(b.score, 1e-6) for b in best])
    ref = np.array([_weighted_median(pts[:, i], w) for i in range(3)])
    out: list[tuple[float, float]] = []
    for k, cands in enumerate(ranked):
        ref_px = to_px(k, ref)

        def dist(c: Candidate, ref_px: tuple[float, float] = ref_px) -> float:
            return float(np.hypot((c.center_rc[0] - ref_px[0]) * ps[0], (c.center_rc[1] - ref_px[1]) * ps[1]))

        near = [c for c in cands if dist(c) <= CONSISTENT_MM]
        out.append(near[0].center_rc if near else ref_px)
    return out


def _weighted_median(values: NDArray[np.float64], weights: NDArray[np.float64]) -> float:
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    return float(values[order][int(np.searchsorted(cw, 0.5 * cw[-1]))])
