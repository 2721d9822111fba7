"""LGE scar quantification inside a myocardium mask: n-SD and FWHM, with transmurality.

DOMAIN.md 3.1: scar = SI > mean(remote) + n SD (n = 2-6; 5 is common;
Mikami JCMR 2016) or SI >= 50 % of the maximal scar SI (full width at half
maximum, FWHM; Shin KJR 2020).

Classic FWHM assumes nulled myocardium reads ~0. Real magnitude LGE often
carries an offset (the EMIDEC sample: remote myocardium ~2300 of 4095, blood
~2450), where half the peak lies below the whole myocardium. The default
``fwhm_baseline="remote"`` therefore takes half-way between the remote mean
and the peak; ``"zero"`` is the textbook rule. The peak is a high percentile
(``peak_percentile``, default 99.5) of myocardial SI, not the single
brightest (noise or partial-volume) pixel.

Remote myocardium
-----------------
n-SD needs "remote" (normal) myocardium. Choices (``remote=``):

* ``"myocardium"`` (default): the whole myocardium. Robust and well defined
  on a case without scar (where no remote region can be told apart), but
  scar inflates the mean and SD, so large scars are under-segmented.
* ``"darkest-segment"``: the AHA segment (needs ``seg_map``) with the lowest
  mean SI, pooled over slices; the usual manual choice, automated.
* a boolean mask: a user-drawn remote ROI.

On a scar-free case n-SD is ill-posed: every threshold above noise still
catches the brightest tail of the myocardium (Rician noise, partial volume
with the bright blood pool at the endocardial border). FWHM is ill-posed
there too (half the maximum of noise); ``fwhm_min_sd`` guards it: no scar is
reported unless the peak exceeds ``remote mean + fwhm_min_sd x SD`` (default 5,
the common n-SD level: FWHM then only delineates an enhancement that n-SD
would also call scar).

Transmurality
-------------
Per slice, the myocardium is cut into ``angle_step_deg`` chords around the
LV centre; a chord's transmural extent is its scar pixels over its
myocardium pixels. A segment's transmurality is the pixel-weighted mean
extent of the chords through it (0-1); its *extent* is the scar area
fraction of the segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.segments import screen_angle, segment_sums

__all__ = ["RemoteStats", "ScarResult", "quantify_scar", "remote_stats", "segment_transmurality", "transmurality_map"]


@dataclass(frozen=True)
class RemoteStats:
    """Signal statistics of the remote myocardium.

    Attributes:
        mean: mean SI.
        sd: standard deviation of SI.
        n_pixels: pixels used.
        how: how the remote region was chosen.
    """

    mean: float
    sd: float
    n_pixels: int
    how: str


@dataclass(frozen=True, eq=False)
class ScarResult:
    """LGE scar quantification.

    Attributes:
        mask: bool, the shape of the image: scar pixels (inside the myocardium).
        method: ``"nsd"`` or ``"fwhm"``.
        threshold: SI threshold applied.
        remote: remote statistics used (also for the FWHM guard).
        peak: maximal myocardial SI (FWHM), else NaN.
        myocardium_px / scar_px: pixel counts.
        percent_of_myocardium: 100 x scar / myocardium (area, or volume for a stack).
        scar_mm2: scar area in mm^2 (summed over slices).
        transmurality: float64 ``[17]`` mean transmural extent per AHA segment
            (0-1; NaN where the segment is absent or no ``seg_map`` was given).
        extent: float64 ``[17]`` scar area fraction per segment (NaN where absent).
        n_sd: the n used (n-SD), else NaN.
    """

    mask: NDArray[np.bool_]
    method: str
    threshold: float
    remote: RemoteStats
    peak: float
    myocardium_px: int
    scar_px: int
    percent_of_myocardium: float
    scar_mm2: float
    transmurality: NDArray[np.float64]
    extent: NDArray[np.float64]
    n_sd: float


def remote_stats(
    image: NDArray[Any],
    myocardium: NDArray[Any],
    remote: Literal["myocardium", "darkest-segment"] | NDArray[Any] = "myocardium",
    seg_map: NDArray[Any] | None = None,
) -> RemoteStats:
    """Mean and SD of the remote myocardium (see module doc).

    Args:
        image: SI, ``[rows, cols]`` or ``[slice, rows, cols]``.
        myocardium: bool mask, same shape.
        remote: ``"myocardium"``, ``"darkest-segment"`` or a bool mask.
        seg_map: segment ids, same shape (needed for ``"darkest-segment"``).

    Raises:
        ValueError: empty remote region, or ``"darkest-segment"`` without ``seg_map``.
    """
    img = np.asarray(image, dtype=np.float64)
    myo = np.asarray(myocardium, dtype=bool)
    if isinstance(remote, str):
        if remote == "myocardium":
            sel, how = myo, "whole myocardium"
        elif remote == "darkest-segment":
            if seg_map is None:
                raise ValueError("remote='darkest-segment' needs a segment map")
            seg = np.asarray(seg_map)
            means = {int(s): float(img[(seg == s) & myo].mean()) for s in np.unique(seg[myo]) if s > 0 and ((seg == s) & myo).sum() >= 10}
            if not means:
                raise ValueError("no AHA segment with at least 10 myocardium pixels")
            s_best = min(means, key=means.__getitem__)
            sel, how = (seg == s_best) & myo, f"darkest segment ({s_best})"
        else:
            raise ValueError(f"remote must be 'myocardium', 'darkest-segment' or a mask, got {remote!r}")
    else:
        sel, how = np.asarray(remote, dtype=bool) & myo, "user remote ROI"
    vals = img[sel]
    if vals.size < 2:
        raise ValueError("the remote region has fewer than 2 myocardium pixels")
    return RemoteStats(float(vals.mean()), float(vals.std(ddof=1)), int(vals.size), how)


def transmurality_map(
    scar: NDArray[Any],
    myocardium: NDArray[Any],
    centre: tuple[float, float],
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    angle_step_deg: float = 5.0,
) -> NDArray[np.float64]:
    """Per-pixel transmural extent of the chord through it (one slice).

    Returns:
        float64 ``[rows, cols]``: for myocardium pixels, scar/myocardium pixels of
        their ``angle_step_deg`` chord around ``centre``; 0 elsewhere.
    """
    myo = np.asarray(myocardium, dtype=bool)
    sc = np.asarray(scar, dtype=bool) & myo
    th = screen_angle(myo.shape, centre, pixel_spacing)
    nb = round(360.0 / angle_step_deg)
    b = np.minimum((th / angle_step_deg).astype(np.int64), nb - 1)
    tot = np.bincount(b[myo], minlength=nb)
    hit = np.bincount(b[sc], minlength=nb)
    frac = np.where(tot > 0, hit / np.maximum(tot, 1), 0.0)
    out = np.zeros(myo.shape, dtype=np.float64)
    out[myo] = frac[b[myo]]
    return out


def segment_transmurality(
    scar: NDArray[Any],
    myocardium: NDArray[Any],
    seg_map: NDArray[Any],
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    centre: tuple[float, float] | None = None,
    angle_step_deg: float = 5.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Transmurality sums for one slice (to pool over slices).

    Returns:
        ``(trans_sum [17], scar_px [17], myo_px [17], count [17])``: the sum of
        chord extents over segment pixels, scar pixels, myocardium pixels and
        the segment pixel count.
    """
    myo = np.asarray(myocardium, dtype=bool)
    seg = np.where(myo, np.asarray(seg_map, dtype=np.int64), 0)
    if centre is None:
        rr, cc = np.nonzero(myo)
        centre = (float(rr.mean()), float(cc.mean())) if rr.size else (0.0, 0.0)
    tm = transmurality_map(scar, myo, centre, pixel_spacing, angle_step_deg)
    tsum, cnt = segment_sums(tm, seg)
    ssum, _ = segment_sums(np.asarray(scar, dtype=bool) & myo, seg)
    return tsum, ssum, cnt.astype(np.float64), cnt


def quantify_scar(
    image: NDArray[Any],
    myocardium: NDArray[Any],
    *,
    method: Literal["nsd", "fwhm"] = "nsd",
    n_sd: float = 5.0,
    remote: Literal["myocardium", "darkest-segment"] | NDArray[Any] = "myocardium",
    seg_map: NDArray[Any] | None = None,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    centres: list[tuple[float, float]] | None = None,
    fwhm_min_sd: float | None = 5.0,
    fwhm_baseline: Literal["remote", "zero"] = "remote",
    peak_percentile: float = 99.5,
    min_area_mm2: float = 0.0,
    angle_step_deg: float = 5.0,
) -> ScarResult:
    """Scar inside a myocardium mask by n-SD or FWHM, with transmurality per segment.

    Args:
        image: LGE SI, float ``[rows, cols]`` or ``[slice, rows, cols]``.
        myocardium: bool mask of the LV myocardium, same shape.
        method: ``"nsd"`` (SI > remote mean + ``n_sd`` SD) or ``"fwhm"``
            (SI >= half the myocardial peak).
        n_sd: n for n-SD.
        remote: remote region (module doc).
        seg_map: AHA segment ids, same shape (0 = none); enables per-segment output.
        pixel_spacing: ``(row, col)`` mm.
        centres: LV centre per slice ``(row, col)`` for the transmurality
            chords (default: myocardium centroid).
        fwhm_min_sd: FWHM guard: no scar unless the peak exceeds remote mean +
            this many SD (``None`` disables).
        fwhm_baseline: ``"remote"``: threshold = remote mean + (peak - remote mean) / 2;
            ``"zero"``: threshold = peak / 2 (module doc).
        peak_percentile: FWHM peak as a percentile of myocardial SI (100 = max).
        min_area_mm2: scar components smaller than this (per slice, 8-connected) are dropped.
        angle_step_deg: chord width for transmurality.

    Returns:
        :class:`ScarResult`.
    """
    from scipy import ndimage as ndi

    img = np.asarray(image, dtype=np.float64)
    myo = np.asarray(myocardium, dtype=bool)
    if img.shape != myo.shape:
        raise ValueError(f"image {img.shape} and myocardium mask {myo.shape} differ in shape")
    if myo.sum() < 2:
        raise ValueError("the myocardium mask is empty")
    two_d = img.ndim == 2
    img3, myo3 = (img[None], myo[None]) if two_d else (img, myo)
    seg3 = None if seg_map is None else (np.asarray(seg_map)[None] if two_d else np.asarray(seg_map))
    rs = remote_stats(img3, myo3, remote, seg3)
    peak = float("nan")
    if method == "nsd":
        thr = rs.mean + n_sd * rs.sd
        scar = myo3 & (img3 > thr)
    elif method == "fwhm":
        peak = float(np.percentile(img3[myo3], peak_percentile))
        thr = 0.5 * peak if fwhm_baseline == "zero" else rs.mean + 0.5 * (peak - rs.mean)
        scar = myo3 & (img3 >= thr)
        if fwhm_min_sd is not None and peak <= rs.mean + fwhm_min_sd * rs.sd:
            scar = np.zeros_like(myo3)
    else:
        raise ValueError(f"method must be 'nsd' or 'fwhm', got {method!r}")
    px_mm2 = float(pixel_spacing[0] * pixel_spacing[1])
    if min_area_mm2 > 0 and scar.any():
        for k in range(scar.shape[0]):
            lab, n = ndi.label(scar[k], structure=np.ones((3, 3)))
            if n:
                sizes = np.bincount(lab.ravel())[1:] * px_mm2
                small = np.isin(lab, np.nonzero(sizes < min_area_mm2)[0] + 1)
                scar[k] &= ~small
    trans = np.full(17, np.nan)
    extent = np.full(17, np.nan)
    if seg3 is not None:
        tsum = np.zeros(17)
        ssum = np.zeros(17)
        cnt = np.zeros(17)
        for k in range(scar.shape[0]):
            if not myo3[k].any():
                continue
            c = centres[k] if centres is not None else None
            t, s, m, _ = segment_transmurality(scar[k], myo3[k], seg3[k], pixel_spacing, c, angle_step_deg)
            tsum += t
            ssum += s
            cnt += m
        present = cnt > 0
        trans[present] = tsum[present] / cnt[present]
        extent[present] = ssum[present] / cnt[present]
    n_myo, n_scar = int(myo3.sum()), int(scar.sum())
    return ScarResult(
        mask=scar[0] if two_d else scar,
        method=method,
        threshold=float(thr),
        remote=rs,
        peak=peak,
        myocardium_px=n_myo,
        scar_px=n_scar,
        percent_of_myocardium=100.0 * n_scar / n_myo,
        scar_mm2=n_scar * px_mm2,
        transmurality=trans,
        extent=extent,
        n_sd=float(n_sd) if method == "nsd" else float("nan"),
    )
