"""Agreement metrics between a heatmap and a reference lesion mask (pure numpy; DOMAIN.md section 8).

* **Pointing game**: hit if the heatmap's maximum lies within ``tolerance_mm``
  of the lesion (Euclidean distance in mm on the image grid, from the pixel
  spacing). Myocardium-only: the maximum is searched inside the myocardium.
* **Energy-based pointing game** (EBPG, Score-CAM paper): share of heatmap
  energy inside the lesion, ``sum(A M) / sum(A)``; myocardium-only:
  ``sum(A M myo) / sum(A myo)``.
* **Dice / IoU** of the heatmap thresholded at ``tau`` (relative to the maximum).
  ``tau`` is chosen on *validation* subjects (maximal mean Dice over a grid)
  and then frozen for the test subjects (Choe et al., arXiv 2001.07437:
  choosing it on test inflates localisation scores).
* **Segment-level Cohen's kappa**: AHA segments are heatmap-positive when the
  mean heatmap over the segment's myocardium reaches ``tau_segment`` and
  lesion-positive when the lesion covers at least ``lesion_extent_min`` of it.
* **Segment AUC** (threshold-free): per case, the ROC AUC of the mean heatmap
  per AHA segment against the lesion-positive segments (Mann-Whitney U / (P N),
  ties count one half); undefined (NaN) when every or no segment is positive.
  The audit averages it over cases.
* **Energy in the lesion over the whole case** (myocardium only):
  ``sum(A L M) / sum(A M)`` over all slices of a case normalised per case (lesion-free
  slices included), beside its chance level ``sum(L M) / sum(M)`` (a uniform map).
* **Ideal-map ceiling**: the Dice reached by the ground-truth lesion itself read
  out at the layer's resolution (:func:`deepoxymap.audit.reference.ideal_heatmaps`),
  thresholded like the CAM (its own threshold chosen on validation subjects).
* **Energy spread** (healthy cases, no lesion): share of energy in the
  myocardium, the smallest area holding half the energy in mm^2, normalised
  entropy of the per-segment energy.

Heatmaps are float ``[rows, cols]`` (or stacks ``[slice, rows, cols]``) >= 0;
masks are bool of the same shape; pixel spacing ``(row, col)`` in mm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from deepoxymap.cardiac.segments import segment_sums

if TYPE_CHECKING:
    from deepoxymap.audit.reference import CaseReference

__all__ = [
    "TAU_GRID",
    "case_metrics",
    "choose_segment_threshold",
    "choose_threshold",
    "cohen_kappa",
    "dice_iou",
    "energy_pointing_game",
    "energy_spread",
    "pointing_game",
    "segment_auc",
    "segment_calls",
]

TAU_GRID = tuple(float(t) for t in np.round(np.arange(0.05, 0.96, 0.05), 2))


# ---------------------------------------------------------------------------
# metrics on one heatmap (arrays on the same image grid)
# ---------------------------------------------------------------------------


def _check(heatmap: NDArray[Any], mask: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    a = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float64)), 0.0, None)
    m = np.asarray(mask, dtype=bool)
    if a.shape != m.shape:
        raise ValueError(f"heatmap {a.shape} and mask {m.shape} are not on the same grid")
    return a, m


def pointing_game(
    heatmap: NDArray[Any],
    mask: NDArray[Any],
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    tolerance_mm: float = 5.0,
    roi: NDArray[Any] | None = None,
) -> float:
    """Pointing game on one image.

    Args:
        heatmap: float ``[rows, cols]`` (>= 0).
        mask: bool lesion mask, same grid.
        pixel_spacing: ``(row, col)`` mm.
        tolerance_mm: a maximum within this distance of the lesion is a hit.
        roi: if given (e.g. the myocardium), the maximum is searched inside it only.

    Returns:
        1.0 (hit), 0.0 (miss) or NaN (no lesion, or an empty/energy-free ROI).
    """
    a, m = _check(heatmap, mask)
    if not m.any():
        return float("nan")
    if roi is not None:
        r = np.asarray(roi, dtype=bool)
        if not r.any():
            return float("nan")
        a = np.where(r, a, -1.0)
    if a.max() <= 0:
        return float("nan")
    peak = np.unravel_index(int(np.argmax(a)), a.shape)
    dist = ndi.distance_transform_edt(~m, sampling=pixel_spacing)
    return 1.0 if float(dist[peak]) <= tolerance_mm else 0.0


def energy_pointing_game(heatmap: NDArray[Any], mask: NDArray[Any], roi: NDArray[Any] | None = None) -> float:
    """Share of heatmap energy inside the lesion (``roi`` restricts both sums); NaN without energy."""
    a, m = _check(heatmap, mask)
    if roi is not None:
        a = a * np.asarray(roi, dtype=bool)
    tot = a.sum()
    return float((a * m).sum() / tot) if tot > 0 else float("nan")


def dice_iou(
    heatmap: NDArray[Any], mask: NDArray[Any], threshold: float, roi: NDArray[Any] | None = None
) -> tuple[float, float]:
    """Dice and IoU of ``heatmap >= threshold`` against the mask (both restricted to ``roi`` if given).

    Returns:
        ``(dice, iou)``; NaN where both sets are empty.
    """
    a, m = _check(heatmap, mask)
    b = a >= threshold
    if roi is not None:
        r = np.asarray(roi, dtype=bool)
        b, m = b & r, m & r
    inter, sb, sm = int((b & m).sum()), int(b.sum()), int(m.sum())
    if sb + sm == 0:
        return float("nan"), float("nan")
    return 2.0 * inter / (sb + sm), inter / (sb + sm - inter)


def _counts(
    heatmaps: Sequence[NDArray[Any]],
    masks: Sequence[NDArray[Any]],
    rois: Sequence[NDArray[Any] | None],
    taus: Sequence[float],
) -> NDArray[np.float64]:
    """Dice per (case, tau) with pooling over the slices of a case: ``[n_cases, n_tau]``."""
    out = np.zeros((len(heatmaps), len(taus)))
    for i, (h, m, r) in enumerate(zip(heatmaps, masks, rois, strict=True)):
        a, mm = _check(h, m)
        if r is not None:
            rr = np.asarray(r, dtype=bool)
            a, mm = np.where(rr, a, -1.0), mm & rr
        for j, t in enumerate(taus):
            b = a >= t
            s = int(b.sum()) + int(mm.sum())
            out[i, j] = 2.0 * int((b & mm).sum()) / s if s else np.nan
    return out


def choose_threshold(
    heatmaps: Sequence[NDArray[Any]],
    masks: Sequence[NDArray[Any]],
    rois: Sequence[NDArray[Any] | None] | None = None,
    candidates: Sequence[float] = TAU_GRID,
) -> tuple[float, float]:
    """The heatmap threshold maximising the mean Dice over validation cases.

    Args:
        heatmaps: one array per validation case (e.g. its slices stacked), values in [0, 1].
        masks: the matching lesion masks (cases without lesion are skipped).
        rois: optional ROI per case (the myocardium for the myocardium-only figure).
        candidates: thresholds tried.

    Returns:
        ``(tau, mean_dice_at_tau)``; ``(0.5, NaN)`` if no case has a lesion.
    """
    keep = [i for i, m in enumerate(masks) if np.asarray(m).any()]
    if not keep:
        return 0.5, float("nan")
    r = [None] * len(heatmaps) if rois is None else list(rois)
    d = _counts([heatmaps[i] for i in keep], [masks[i] for i in keep], [r[i] for i in keep], candidates)
    mean = np.nanmean(d, axis=0)
    j = int(np.nanargmax(mean))
    return float(candidates[j]), float(mean[j])


def cohen_kappa(a: Sequence[bool] | NDArray[Any], b: Sequence[bool] | NDArray[Any]) -> float:
    """Cohen's kappa of two binary ratings; NaN when undefined (both raters constant and agreeing)."""
    x = np.asarray(a, dtype=bool).ravel()
    y = np.asarray(b, dtype=bool).ravel()
    if x.size != y.size:
        raise ValueError("ratings differ in length")
    n = x.size
    if n == 0:
        return float("nan")
    po = float(np.mean(x == y))
    px, py = float(x.mean()), float(y.mean())
    pe = px * py + (1 - px) * (1 - py)
    if pe >= 1.0:
        return float("nan")
    return (po - pe) / (1.0 - pe)


def segment_auc(scores: Sequence[float] | NDArray[Any], positive: Sequence[bool] | NDArray[Any]) -> float:
    """ROC AUC of segment scores against lesion-positive segments (one case).

    ``AUC = (sum of the positives' ranks - P (P + 1) / 2) / (P N)`` with mid-ranks for
    ties (the Mann-Whitney statistic), so a tie between a positive and a negative
    counts one half. Non-finite scores (absent segments) are dropped.

    Args:
        scores: float ``[k]`` mean heatmap per segment.
        positive: bool ``[k]`` lesion-positive segments.

    Returns:
        AUC in ``[0, 1]``; NaN without at least one positive and one negative segment.
    """
    from scipy.stats import rankdata

    x = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(positive, dtype=bool).ravel()
    if x.size != y.size:
        raise ValueError("scores and labels differ in length")
    ok = np.isfinite(x)
    x, y = x[ok], y[ok]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(x)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def segment_calls(
    heatmaps: Sequence[NDArray[Any]],
    seg_maps: Sequence[NDArray[Any]],
    lesions: Sequence[NDArray[Any]],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Per-AHA-segment mean heatmap and lesion extent over the slices of one case.

    Args:
        heatmaps: ``[rows, cols]`` per slice (source grid).
        seg_maps: segment ids per slice (0 outside the myocardium).
        lesions: bool lesion mask per slice.

    Returns:
        ``(mean_heatmap [17], lesion_extent [17], present [17])`` (NaN where absent).
    """
    hs, ls, cnt = np.zeros(17), np.zeros(17), np.zeros(17)
    for h, s, l in zip(heatmaps, seg_maps, lesions, strict=True):
        seg = np.asarray(s, dtype=np.int64)
        sel = seg > 0
        idx = seg[sel] - 1
        hs += np.bincount(idx, weights=np.asarray(h, dtype=np.float64)[sel], minlength=17)[:17]
        ls += np.bincount(idx, weights=np.asarray(l, dtype=np.float64)[sel], minlength=17)[:17]
        cnt += np.bincount(idx, minlength=17)[:17]
    present = cnt > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mh = np.where(present, hs / np.maximum(cnt, 1), np.nan)
        le = np.where(present, ls / np.maximum(cnt, 1), np.nan)
    return mh, le, present


def choose_segment_threshold(
    seg_means: Sequence[NDArray[Any]],
    seg_extents: Sequence[NDArray[Any]],
    *,
    lesion_extent_min: float = 0.05,
    candidates: Sequence[float] = TAU_GRID,
) -> tuple[float, float]:
    """The segment heatmap threshold maximising pooled Cohen's kappa on validation cases.

    Returns:
        ``(tau_segment, kappa_at_tau)``; ``(0.5, NaN)`` if undefined.
    """
    m = np.concatenate([np.asarray(x) for x in seg_means]) if seg_means else np.zeros(0)
    e = np.concatenate([np.asarray(x) for x in seg_extents]) if seg_extents else np.zeros(0)
    ok = np.isfinite(m) & np.isfinite(e)
    if not ok.any():
        return 0.5, float("nan")
    best = (0.5, -np.inf)
    for t in candidates:
        k = cohen_kappa(m[ok] >= t, e[ok] >= lesion_extent_min)
        if np.isfinite(k) and k > best[1]:
            best = (float(t), float(k))
    return (best[0], best[1]) if np.isfinite(best[1]) else (0.5, float("nan"))


def energy_spread(
    heatmap: NDArray[Any],
    myocardium: NDArray[Any],
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    seg_map: NDArray[Any] | None = None,
) -> dict[str, float]:
    """How a heatmap spreads (for healthy cases, which have no lesion).

    Args:
        heatmap: ``[rows, cols]`` or a stack ``[slice, rows, cols]`` (>= 0).
        myocardium: bool, same shape.
        pixel_spacing: ``(row, col)`` mm.
        seg_map: AHA ids, same shape (enables the segment entropy).

    Returns:
        ``energy_in_myocardium`` (0-1), ``area50_mm2`` (smallest area holding half
        the energy, mm^2), ``segment_entropy`` (normalised Shannon entropy of the
        per-segment energy shares, 0 = one segment, 1 = uniform; NaN without
        ``seg_map``), ``peak_in_myocardium`` (0/1, per slice mean for stacks).
    """
    a = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float64)), 0.0, None)
    myo = np.asarray(myocardium, dtype=bool)
    tot = a.sum()
    out = {
        "energy_in_myocardium": float("nan"),
        "area50_mm2": float("nan"),
        "segment_entropy": float("nan"),
        "peak_in_myocardium": float("nan"),
    }
    if tot <= 0:
        return out
    out["energy_in_myocardium"] = float((a * myo).sum() / tot)
    v = np.sort(a.ravel())[::-1]
    k = int(np.searchsorted(np.cumsum(v), 0.5 * tot)) + 1
    out["area50_mm2"] = float(k * pixel_spacing[0] * pixel_spacing[1])
    a3, m3 = (a[None], myo[None]) if a.ndim == 2 else (a, myo)
    peaks = [float(m3[i].ravel()[int(np.argmax(a3[i]))]) for i in range(a3.shape[0]) if a3[i].max() > 0]
    out["peak_in_myocardium"] = float(np.mean(peaks)) if peaks else float("nan")
    if seg_map is not None:
        s = np.asarray(seg_map, dtype=np.int64)
        sel = s > 0
        e = np.bincount(s[sel] - 1, weights=a[sel], minlength=17)[:17]
        present = np.bincount(s[sel] - 1, minlength=17)[:17] > 0
        p = e[present] / e[present].sum() if e[present].sum() > 0 else None
        if p is not None and present.sum() > 1:
            nz = p[p > 0]
            out["segment_entropy"] = float(-(nz * np.log(nz)).sum() / math.log(present.sum()))
    return out


def case_metrics(
    cm: CaseReference,
    heatmaps: Sequence[NDArray[Any]],
    *,
    tau: float,
    tau_myo: float,
    tau_segment: float,
    tolerance_mm: float = 5.0,
    lesion_extent_min: float = 0.05,
    ideal: Sequence[NDArray[Any]] | None = None,
    tau_ideal: float | None = None,
    tau_myo_ideal: float | None = None,
) -> dict[str, Any]:
    """All agreement figures of one case for one method/layer.

    Args:
        cm: from :func:`~deepoxymap.audit.reference.prepare_reference`.
        heatmaps: ``[rows, cols]`` per slice on the OS-CMR grid (``Heatmap.to_source``);
            the audit normalises them per case (one maximum over the case's slices).
        tau / tau_myo / tau_segment: frozen thresholds (whole image, myocardium, segment).
        tolerance_mm: pointing-game tolerance.
        lesion_extent_min: lesion area fraction that makes a segment lesion-positive.
        ideal: the ideal map per slice at the readout's resolution
            (:func:`~deepoxymap.audit.reference.ideal_heatmaps`); without it the
            ``*_ideal`` figures are NaN.
        tau_ideal / tau_myo_ideal: the ideal map's frozen thresholds (default: ``tau`` / ``tau_myo``).

    Returns:
        dict of figures (NaN where undefined) plus ``seg_cam_energy`` / ``seg_lesion``
        (17-lists) for the bullseyes and ``seg_cam_pos`` / ``seg_lesion_pos`` for pooled kappa.
        Besides the per-slice figures: ``energy_in_lesion_myo`` / ``energy_chance`` (whole
        case, myocardium), ``segment_auc``, ``dice_ideal`` / ``dice_myo_ideal`` (ceilings).
    """
    ps = cm.pixel_spacing
    H = np.stack([np.asarray(h, dtype=np.float64) for h in heatmaps])
    L = np.stack([s.lesion for s in cm.slices])
    M = np.stack([s.myocardium for s in cm.slices])
    S = np.stack([s.seg_map for s in cm.slices])
    with_lesion = [i for i in range(len(cm.slices)) if L[i].any()]
    out: dict[str, Any] = {"n_slices": len(cm.slices), "n_lesion_slices": len(with_lesion)}
    pg = [pointing_game(H[i], L[i], ps, tolerance_mm) for i in with_lesion]
    pgm = [pointing_game(H[i], L[i], ps, tolerance_mm, roi=M[i]) for i in with_lesion]
    out["pointing"] = float(np.nanmean(pg)) if pg and np.isfinite(pg).any() else float("nan")
    out["pointing_myo"] = float(np.nanmean(pgm)) if pgm and np.isfinite(pgm).any() else float("nan")
    if with_lesion:
        Hl, Ll, Ml = H[with_lesion], L[with_lesion], M[with_lesion]
        out["ebpg"] = energy_pointing_game(Hl, Ll)
        out["ebpg_myo"] = energy_pointing_game(Hl, Ll, roi=Ml)
        out["lesion_area_fraction_myo"] = float(Ll.sum() / max(int(Ml.sum()), 1))
    else:
        out["ebpg"] = out["ebpg_myo"] = out["lesion_area_fraction_myo"] = float("nan")
    # Chance levels: a uniform map over the myocardium has EBPG (myo) = lesion
    # share of the myocardium; calling every myocardial pixel lesion gives
    # dice_myo_all; a random myocardial peak hits with pointing_myo_chance.
    if with_lesion:
        near = [ndi.distance_transform_edt(~L[i], sampling=ps) <= tolerance_mm for i in with_lesion]
        out["pointing_myo_chance"] = float(
            np.mean([(nr & M[i]).sum() / max(int(M[i].sum()), 1) for nr, i in zip(near, with_lesion, strict=True)])
        )
        out["dice_myo_all"] = dice_iou(M.astype(float), L, 0.5, roi=M)[0]
    else:
        out["pointing_myo_chance"] = out["dice_myo_all"] = float("nan")
    nan = float("nan")
    if L.any():
        out["dice"], out["iou"] = dice_iou(H, L, tau)
        out["dice_myo"], out["iou_myo"] = dice_iou(np.where(M, H, -1.0), L, tau_myo, roi=M)
        out["energy_in_lesion_myo"] = energy_pointing_game(H, L, roi=M)
        out["energy_chance"] = float((L & M).sum() / max(int(M.sum()), 1))
    else:
        out["dice"] = out["iou"] = out["dice_myo"] = out["iou_myo"] = nan
        out["energy_in_lesion_myo"] = out["energy_chance"] = nan
    if L.any() and ideal is not None:
        Id = np.stack([np.asarray(h, dtype=np.float64) for h in ideal])
        if Id.shape != H.shape:
            raise ValueError(f"ideal maps {Id.shape} and heatmaps {H.shape} are not on the same grid")
        out["dice_ideal"] = dice_iou(Id, L, tau if tau_ideal is None else tau_ideal)[0]
        t_mi = tau_myo if tau_myo_ideal is None else tau_myo_ideal
        out["dice_myo_ideal"] = dice_iou(np.where(M, Id, -1.0), L, t_mi, roi=M)[0]
    else:
        out["dice_ideal"] = out["dice_myo_ideal"] = nan
    mh, le, present = segment_calls(list(H), list(S), list(L))
    cam_pos = np.where(present, mh >= tau_segment, False)
    les_pos = np.where(present, le >= lesion_extent_min, False)
    out["kappa"] = cohen_kappa(cam_pos[present], les_pos[present]) if L.any() else nan
    out["segment_auc"] = segment_auc(mh[present], les_pos[present]) if L.any() else nan
    spread = energy_spread(H, M, ps, S)
    out.update(spread)
    e_sums, cnt = segment_sums(np.clip(H, 0, None), S)
    tot = e_sums.sum()
    out["seg_cam_energy"] = [
        float(v) if c > 0 else None for v, c in zip(e_sums / tot if tot > 0 else e_sums, cnt, strict=True)
    ]
    T = np.stack([s.transmurality_map for s in cm.slices])
    t_sums, _ = segment_sums(T, S)
    out["seg_lesion"] = [float(v / c) if c > 0 else None for v, c in zip(t_sums, cnt, strict=True)]
    out["seg_lesion_extent"] = [None if not np.isfinite(v) else float(v) for v in le]
    out["seg_cam_pos"] = [bool(v) for v, p in zip(cam_pos, present, strict=True) if p]
    out["seg_lesion_pos"] = [bool(v) for v, p in zip(les_pos, present, strict=True) if p]
    out["seg_mean_heatmap"] = [None if not np.isfinite(v) else float(v) for v in mh]
    return out
