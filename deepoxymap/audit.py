"""Agreement between feature maps and reference lesion masks, in patient millimetres.

Metrics (DOMAIN.md section 8; every one also computed inside the myocardium only)
--------------------------------------------------------------------------------
* **Pointing game**: hit if the heatmap's maximum lies within ``tolerance_mm``
  of the lesion (Euclidean distance in mm on the image grid, from the pixel
  spacing). Myocardium-only: the maximum is searched inside the myocardium.
* **Energy-based pointing game** (EBPG, Score-CAM paper): share of heatmap
  energy inside the lesion, ``sum(A M) / sum(A)``; myocardium-only:
  ``sum(A M myo) / sum(A myo)``.
* **Dice / IoU** of the heatmap thresholded at ``tau`` (heatmaps are min-max
  normalised, so ``tau`` is relative to the maximum). ``tau`` is chosen on
  *validation* subjects (maximal mean Dice over a grid) and then frozen for
  the test subjects (Choe et al., arXiv 2001.07437: choosing it on test
  inflates localisation scores).
* **Segment-level Cohen's kappa**: AHA segments are heatmap-positive when the
  mean heatmap over the segment's myocardium reaches ``tau_segment`` (also
  chosen on validation) and lesion-positive when the lesion covers at least
  ``lesion_extent_min`` of the segment.
* **Healthy cases** have no lesion: their heatmap **energy spread** is
  reported separately (share of energy in the myocardium, the smallest area
  holding half the energy in mm^2, normalised entropy of the per-segment
  energy).

Sanity checks (:mod:`deepoxymap.explain.sanity`): model-parameter
randomisation (Spearman rho; a method with mean rho >= 0.5 is flagged) and the
deletion curve AUC (vs a random deletion order).

The audit over a manifest (:func:`run_audit`) writes ``per_case.csv``,
``summary.csv``, ``summary_subtype.csv``, ``summary.md``, ``sanity.csv``, ``thresholds.json``,
``bullseye/*.png`` (CAM energy per segment beside LGE transmurality or edema
extent) and ``bullseye_data.json`` (plotly ``Barpolar`` data per case).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap import CLASSES
from deepoxymap.errors import CaseError, DeepOxyMapError

__all__ = [
    "LESION_OF_CLASS",
    "AuditConfig",
    "AuditResult",
    "CaseMaps",
    "SliceData",
    "case_metrics",
    "choose_segment_threshold",
    "choose_threshold",
    "cohen_kappa",
    "dice_iou",
    "energy_pointing_game",
    "energy_spread",
    "pointing_game",
    "prepare_case",
    "read_manifest",
    "run_audit",
    "segment_calls",
]

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, message)``: called after each step of :func:`run_audit`."""

LESION_OF_CLASS: dict[str, str] = {"ischemic": "scar", "non-ischemic": "scar", "edema": "edema", "healthy": "none"}
"""Reference mask per class: LGE scar (labels 4, 6) or T2 edema (labels 4-6, the whole oedematous zone)."""

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
    from scipy import ndimage as ndi

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


# ---------------------------------------------------------------------------
# one case
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SliceData:
    """Reference data of one OS-CMR slice, on the OS-CMR image grid.

    Attributes:
        slice_index: index in the OS-CMR stack.
        frame: the cine frame the model saw.
        labels: int ``[rows, cols]`` label map of that frame (phantom scheme).
        myocardium: bool ``[rows, cols]``.
        lesion: bool ``[rows, cols]`` reference lesion (scar or edema by class; empty for healthy).
        seg_map: int ``[rows, cols]`` AHA segments in the myocardium (zeros if unavailable).
        transmurality_map: float ``[rows, cols]`` chord transmural extent of the lesion (0-1).
        level: AHA level.
    """

    slice_index: int
    frame: int
    labels: NDArray[np.int64]
    myocardium: NDArray[np.bool_]
    lesion: NDArray[np.bool_]
    seg_map: NDArray[np.int64]
    transmurality_map: NDArray[np.float64]
    level: str


@dataclass(frozen=True, eq=False)
class CaseMaps:
    """What the audit needs for one case.

    Attributes:
        subject: case id.
        label: true class.
        subtype: sub-type (from the manifest).
        x: float32 ``[n, H, W, 3]`` model input.
        transforms: ``CropTransform`` per row of ``x``.
        slices: :class:`SliceData` per row of ``x``.
        pixel_spacing: OS-CMR ``(row, col)`` mm.
        lesion_kind: ``"scar"``, ``"edema"`` or ``"none"``.
    """

    subject: str
    label: str
    subtype: str
    x: NDArray[np.float32]
    transforms: list[Any]
    slices: list[SliceData]
    pixel_spacing: tuple[float, float]
    lesion_kind: str


def prepare_case(case: Any, spec: Any, *, subtype: str = "") -> CaseMaps:
    """Preprocess a phantom case and gather its reference masks on the OS-CMR grid.

    Args:
        case: a :class:`~deepoxymap.case.Case` with ``masks`` on the OS-CMR
            series (``deepoxymap.phantom.load_subject``, or any case whose
            masks follow the phantom label scheme).
        spec: the model's ``PreprocessSpec``.
        subtype: free text for the tables.

    Raises:
        CaseError: no label map on the OS-CMR series the model reads.
    """
    from deepoxymap.cardiac.masks import labels_from_stack, masks_from_labels
    from deepoxymap.cardiac.scar import transmurality_map
    from deepoxymap.cardiac.segments import has_full_ring, segment_map, slice_levels
    from deepoxymap.model.preprocess import preprocess_case

    pre = preprocess_case(case, spec)
    mask_stack = case.mask_for(pre.stack.series_uid)
    if mask_stack is None:
        raise CaseError("no reference label map on the OS-CMR series the model reads", source=case.case_id)
    label = str(case.label or "")
    kind = LESION_OF_CLASS.get(label, "none")
    geom = pre.stack.geometry
    ps = geom.pixel_spacing
    lab_frames = [labels_from_stack(mask_stack, frame=f) for f in pre.frames]
    labs = [lab_frames[i][k] for i, k in enumerate(pre.slice_indices)]
    levels_truth = list(case.truth.get("levels", [])) if isinstance(case.truth, Mapping) else []
    if len(levels_truth) != pre.stack.n_slices:
        valid = [has_full_ring(lb) for lb in labs]
        levels_truth = slice_levels(len(labs), valid)
    slices = []
    for i, k in enumerate(pre.slice_indices):
        lb = labs[i]
        m = masks_from_labels(lb)
        if kind == "scar":
            lesion = m.scar
        elif kind == "edema":
            lesion = m.edema | m.scar  # the whole oedematous zone on T2
        else:
            lesion = np.zeros(lb.shape, dtype=bool)
        level = levels_truth[k]
        try:
            seg = (
                segment_map(lb, level, pixel_spacing=ps, geometry=geom)
                if level in ("basal", "mid", "apical", "apex")
                else np.zeros(lb.shape, np.int64)
            )
        except CaseError:
            seg = np.zeros(lb.shape, np.int64)
        if m.myocardium.any():
            rr, cc = np.nonzero(m.myocardium | m.lv_blood)
            tm = transmurality_map(lesion, m.myocardium, (float(rr.mean()), float(cc.mean())), ps)
        else:
            tm = np.zeros(lb.shape)
        slices.append(SliceData(k, pre.frames[i], lb, m.myocardium, lesion, seg, tm, level))
    return CaseMaps(
        case.case_id, label, subtype, pre.x, list(pre.transforms), slices, (float(ps[0]), float(ps[1])), kind
    )


def case_metrics(
    cm: CaseMaps,
    heatmaps: Sequence[NDArray[Any]],
    *,
    tau: float,
    tau_myo: float,
    tau_segment: float,
    tolerance_mm: float = 5.0,
    lesion_extent_min: float = 0.05,
) -> dict[str, Any]:
    """All agreement figures of one case for one method/layer.

    Args:
        cm: from :func:`prepare_case`.
        heatmaps: ``[rows, cols]`` per slice on the OS-CMR grid (``Heatmap.to_source``).
        tau / tau_myo / tau_segment: frozen thresholds (whole image, myocardium, segment).
        tolerance_mm: pointing-game tolerance.
        lesion_extent_min: lesion area fraction that makes a segment lesion-positive.

    Returns:
        dict of figures (NaN where undefined) plus ``seg_cam_energy`` / ``seg_lesion``
        (17-lists) for the bullseyes and ``seg_cam_pos`` / ``seg_lesion_pos`` for pooled kappa.
    """
    from deepoxymap.cardiac.segments import segment_sums

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
        from scipy import ndimage as ndi

        near = [ndi.distance_transform_edt(~L[i], sampling=ps) <= tolerance_mm for i in with_lesion]
        out["pointing_myo_chance"] = float(
            np.mean([(nr & M[i]).sum() / max(int(M[i].sum()), 1) for nr, i in zip(near, with_lesion, strict=True)])
        )
        out["dice_myo_all"] = dice_iou(M.astype(float), L, 0.5, roi=M)[0]
    else:
        out["pointing_myo_chance"] = out["dice_myo_all"] = float("nan")
    if L.any():
        out["dice"], out["iou"] = dice_iou(H, L, tau)
        out["dice_myo"], out["iou_myo"] = dice_iou(np.where(M, H, -1.0), L, tau_myo, roi=M)
    else:
        out["dice"] = out["iou"] = out["dice_myo"] = out["iou_myo"] = float("nan")
    mh, le, present = segment_calls(list(H), list(S), list(L))
    cam_pos = np.where(present, mh >= tau_segment, False)
    les_pos = np.where(present, le >= lesion_extent_min, False)
    out["kappa"] = cohen_kappa(cam_pos[present], les_pos[present]) if L.any() else float("nan")
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


# ---------------------------------------------------------------------------
# the audit over a manifest
# ---------------------------------------------------------------------------


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a cohort manifest (``subject,class,subtype,site,field_strength,path``), ``path`` made absolute."""
    p = Path(path)
    if not p.is_file():
        raise DeepOxyMapError("manifest not found", source=str(p), hint="generate a cohort with `deepoxymap generate`")
    with p.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["path"] = str((p.parent / r.get("path", r.get("subject", ""))).resolve())
    return rows


@dataclass(frozen=True)
class AuditConfig:
    """Settings of :func:`run_audit`.

    Attributes:
        methods: registry names of ``deepoxymap.explain``.
        layers: layer names (``None`` entries mean the model's default last conv).
        target: ``"label"`` (explain the true class: localisation of its evidence)
            or ``"predicted"``.
        tolerance_mm: pointing-game tolerance, mm.
        lesion_extent_min: lesion area fraction for a lesion-positive segment.
        sanity_cases: cases (first per class, round robin) used for the
            randomisation and deletion checks (0 = skip).
        randomize_top: weighted layers re-initialised from the top.
        max_n: Score-CAM maps; smooth_samples: SmoothGrad samples.
        bullseyes: write the PNG bullseyes (for the first layer of each method;
            ``bullseye_all_layers`` for every layer). The plotly data covers every layer.
    """

    methods: tuple[str, ...] = ("gradcam", "gradcam++")
    layers: tuple[str | None, ...] = (None,)
    target: str = "label"
    tolerance_mm: float = 5.0
    lesion_extent_min: float = 0.05
    sanity_cases: int = 4
    randomize_top: int = 2
    max_n: int = 16
    smooth_samples: int = 8
    bullseyes: bool = True
    bullseye_all_layers: bool = False


@dataclass
class AuditResult:
    """What :func:`run_audit` computed and wrote.

    Attributes:
        per_case: one dict per (case, method, layer).
        summary: one dict per (class, method, layer).
        sanity: one dict per (method, layer).
        thresholds: ``"method|layer" -> {"tau", "tau_myo", "tau_segment", ...}``.
        files: written paths.
        markdown: the summary table (markdown).
        notes: caveats (e.g. how the validation subjects were chosen).
    """

    per_case: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    sanity: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    markdown: str = ""
    notes: list[str] = field(default_factory=list)


def _split_subjects(card: Mapping[str, Any] | None) -> dict[str, list[str]]:
    split = ((card or {}).get("training") or {}).get("split") or {}
    return {k: list(split.get(k) or []) for k in ("train", "val", "test")}


def _key(method: str, layer: str) -> str:
    return f"{method}|{layer}"


INPUT_LAYER = "input"
"""Layer name recorded for methods that use no layer (SmoothGrad: gradients at the input)."""


def _layers_for(method: str, layers: Sequence[str]) -> list[str]:
    from deepoxymap.explain.methods import METHODS, _check_method

    return list(layers) if METHODS[_check_method(method)].uses_layer else [INPUT_LAYER]


HeatmapSet = tuple[list[NDArray[np.float32]], list[int], NDArray[np.float32]]


def _all_heatmaps(
    model: Any, cm: CaseMaps, methods: Sequence[str], layers: Sequence[str], target: str, cfg: AuditConfig
) -> dict[tuple[str, str], HeatmapSet]:
    """Every (method, layer) heatmap of a case on the OS-CMR grid; one gradient pass per layer."""
    from deepoxymap.explain.methods import _check_method, explain_methods

    tgt: int | None = CLASSES.index(cm.label) if target == "label" and cm.label in CLASSES else None
    out: dict[tuple[str, str], HeatmapSet] = {}
    by_layer: dict[str, list[str]] = {}
    for m in methods:
        for lyr in _layers_for(m, layers):
            by_layer.setdefault(lyr, []).append(m)
    for lyr, ms in by_layer.items():
        res = explain_methods(
            model,
            cm.x,
            ms,
            tgt,
            None if lyr == INPUT_LAYER else lyr,
            max_n=cfg.max_n,
            smooth_samples=cfg.smooth_samples,
        )
        for m in ms:
            hms = res[_check_method(m)]
            src = [h.to_source(t).array for h, t in zip(hms, cm.transforms, strict=True)]
            probs = np.stack([h.probabilities for h in hms if h.probabilities is not None])
            out[(m, lyr)] = (src, [h.target_class for h in hms], probs)
    return out


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _mean_sd(vals: Iterable[float]) -> tuple[float, float, int]:
    a = np.array([v for v in vals if v is not None and np.isfinite(v)], dtype=np.float64)
    if a.size == 0:
        return float("nan"), float("nan"), 0
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size)


def run_audit(
    manifest: Path | None = None,
    out_dir: Path = Path("audit_out"),
    *,
    model_path: Path | None = None,
    loaded: Any = None,
    subjects: Sequence[str] | None = None,
    validation: Sequence[str] | None = None,
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    config: AuditConfig = AuditConfig(),
    progress: ProgressFn | None = None,
) -> AuditResult:
    """Agreement of feature maps with lesion masks over a cohort (the app and ``deepoxymap audit`` call this).

    Args:
        manifest: cohort manifest; default: the manifest recorded in the model
            card (``training.manifest``), else ``settings().cohort_dir / "manifest.csv"``.
        out_dir: where the tables and figures go (created).
        model_path: the ``.keras`` model (default: the shipped model); ignored if ``loaded`` is given.
        loaded: an already loaded ``LoadedModel`` (the app's cached one; never modified).
        subjects: the test subjects (default: the model card's test split if
            present, else every subject of the manifest not used for validation).
        validation: subjects used to choose the thresholds (default: the card's
            validation split; else a class-stratified third of the test subjects,
            which are then excluded from the test figures).
        thresholds: frozen thresholds from an earlier run (``thresholds.json``);
            skips the validation step.
        config: methods, layers, tolerances, sanity options.
        progress: ``progress(done, total, message)`` callback.

    Returns:
        :class:`AuditResult` (also written to ``out_dir``).
    """
    from deepoxymap.config import settings
    from deepoxymap.phantom.load import load_subject

    t0 = time.perf_counter()
    if loaded is None:
        from deepoxymap.model.loading import load_model

        loaded = load_model(model_path)
    model, card = loaded.model, loaded.card
    from deepoxymap.explain.methods import default_layer

    layers = tuple(lyr or default_layer(model) for lyr in config.layers)
    res = AuditResult()
    split = _split_subjects(card)
    if manifest is None:
        m_card = ((card or {}).get("training") or {}).get("manifest")
        manifest = Path(m_card) if m_card and Path(m_card).is_file() else settings().cohort_dir / "manifest.csv"
    rows = {r["subject"]: r for r in read_manifest(Path(manifest))}
    res.notes.append(f"manifest: {manifest}")
    test = [s for s in (subjects or split["test"] or sorted(rows)) if s in rows]
    val = [s for s in (validation if validation is not None else split["val"]) if s in rows and s not in test]
    if not test:
        raise DeepOxyMapError("no test subjects of the model card are in this manifest", source=str(manifest))
    if thresholds is None and not val:
        rng = np.random.default_rng(0)
        take: list[str] = []
        for c in CLASSES:
            members = sorted(s for s in test if rows[s]["class"] == c)
            rng.shuffle(members)
            take += members[: len(members) // 3]
        val = sorted(take)
        test = [s for s in test if s not in val]
        res.notes.append(
            f"no validation split available: {len(val)} test subjects (a stratified third) chose the thresholds and are excluded from the figures"
        )
    else:
        res.notes.append(
            f"thresholds chosen on {len(val)} validation subjects"
            if thresholds is None
            else "thresholds given (frozen)"
        )
    res.notes.append(
        f"{len(test)} test subjects; target class: {config.target}; pointing tolerance {config.tolerance_mm} mm"
    )
    total = (len(val) if thresholds is None else 0) + len(test) + (1 if config.sanity_cases else 0)
    done = 0

    def tick(msg: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, msg)

    def load_cm(s: str) -> CaseMaps:
        case = load_subject(rows[s]["path"])
        return prepare_case(case, loaded.spec, subtype=rows[s].get("subtype", ""))

    # 1. thresholds on validation subjects
    if thresholds is None:
        acc: dict[str, dict[str, list[Any]]] = {}
        for s in val:
            cm = load_cm(s)
            allh = _all_heatmaps(model, cm, config.methods, layers, config.target, config)
            for method in config.methods:
                for layer in _layers_for(method, layers):
                    hm, _, _ = allh[(method, layer)]
                    a = acc.setdefault(_key(method, layer), {"h": [], "l": [], "m": [], "sm": [], "se": []})
                    H = np.stack(hm)
                    L = np.stack([x.lesion for x in cm.slices])
                    M = np.stack([x.myocardium for x in cm.slices])
                    a["h"].append(H)
                    a["l"].append(L)
                    a["m"].append(M)
                    if L.any():
                        mh, le, pr = segment_calls(hm, [x.seg_map for x in cm.slices], list(L))
                        a["sm"].append(mh[pr])
                        a["se"].append(le[pr])
            tick(f"validation {s}")
        thr: dict[str, dict[str, float]] = {}
        for k, a in acc.items():
            tau, d = choose_threshold(a["h"], a["l"])
            tau_m, dm = choose_threshold(a["h"], a["l"], a["m"])
            tau_s, ks = choose_segment_threshold(a["sm"], a["se"], lesion_extent_min=config.lesion_extent_min)
            thr[k] = {
                "tau": tau,
                "val_dice": d,
                "tau_myo": tau_m,
                "val_dice_myo": dm,
                "tau_segment": tau_s,
                "val_kappa": ks,
                "n_val": len(val),
            }
        thresholds = thr
    res.thresholds = {k: dict(v) for k, v in thresholds.items()}

    # 2. test subjects
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bdir = out_dir / "bullseye"
    plotly: dict[str, Any] = {}
    pooled: dict[tuple[str, str, str], tuple[list[bool], list[bool]]] = {}
    sanity_pool: dict[str, list[CaseMaps]] = {c: [] for c in CLASSES}
    for s in test:
        cm = load_cm(s)
        if len(sanity_pool.get(cm.label, [])) < max(1, config.sanity_cases):
            sanity_pool.setdefault(cm.label, []).append(cm)
        allh = _all_heatmaps(model, cm, config.methods, layers, config.target, config)
        for method in config.methods:
            for layer in _layers_for(method, layers):
                th = thresholds.get(_key(method, layer), {"tau": 0.5, "tau_myo": 0.5, "tau_segment": 0.5})
                hm, targets, probs = allh[(method, layer)]
                met = case_metrics(cm, hm, tau=th["tau"], tau_myo=th["tau_myo"], tau_segment=th["tau_segment"],
                                   tolerance_mm=config.tolerance_mm, lesion_extent_min=config.lesion_extent_min)  # fmt: skip
                case_probs = probs.mean(axis=0)
                row = {
                    "subject": s, "class": cm.label, "subtype": cm.subtype, "method": method, "layer": layer,
                    "target": CLASSES[targets[0]] if targets else "", "predicted": CLASSES[int(np.argmax(case_probs))],
                    "p_true": float(case_probs[CLASSES.index(cm.label)]) if cm.label in CLASSES else float("nan"),
                }  # fmt: skip
                row.update({k: v for k, v in met.items() if not k.startswith("seg_")})
                res.per_case.append(row)
                pk = pooled.setdefault((cm.label, method, layer), ([], []))
                pk[0].extend(met["seg_cam_pos"])
                pk[1].extend(met["seg_lesion_pos"])
                plotly[f"{s}|{method}|{layer}"] = {
                    "cam_energy": met["seg_cam_energy"], "lesion": met["seg_lesion"], "lesion_kind": cm.lesion_kind,
                }  # fmt: skip
                if config.bullseyes and (config.bullseye_all_layers or layer == _layers_for(method, layers)[0]):
                    _write_bullseye(bdir, s, cm, method, layer, met, res)
        tick(f"test {s}")

    # 3. sanity checks
    if config.sanity_cases:
        pools = [sanity_pool.get(c, []) for c in CLASSES]
        xs = [p[i] for i in range(max((len(p) for p in pools), default=0)) for p in pools if i < len(p)]
        xs = xs[: max(1, config.sanity_cases)]  # round robin over the classes
        res.sanity = _sanity(model, xs, config, layers)
        tick("sanity checks")

    # 4. summary tables
    res.summary = _summarise(res.per_case, pooled, res.thresholds, config, layers)
    res.markdown = _markdown(res, config, time.perf_counter() - t0)
    _write_tables(out_dir, res, plotly)
    return res


def _write_bullseye(
    bdir: Path, s: str, cm: CaseMaps, method: str, layer: str, met: Mapping[str, Any], res: AuditResult
) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from deepoxymap.cardiac.bullseye import bullseye_pair

    bdir.mkdir(parents=True, exist_ok=True)
    right = (
        "LGE transmurality per segment"
        if cm.lesion_kind == "scar"
        else ("T2 edema transmurality per segment" if cm.lesion_kind == "edema" else "no lesion (healthy)")
    )
    fig = bullseye_pair(
        [np.nan if v is None else v for v in met["seg_cam_energy"]],
        [np.nan if v is None else v for v in met["seg_lesion"]],
        left_title=f"{method} energy per segment", right_title=right,
        suptitle=f"{s} ({cm.label}{', ' + cm.subtype if cm.subtype else ''}), layer {layer}",
    )  # fmt: skip
    p = bdir / f"{s}_{method.replace('+', 'p')}_{layer}.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    res.files.append(p)


def _sanity(model: Any, cms: Sequence[CaseMaps], cfg: AuditConfig, layers: Sequence[str]) -> list[dict[str, Any]]:
    from deepoxymap.explain.methods import explain_batch
    from deepoxymap.explain.sanity import deletion_curve, randomization_check

    if not cms:
        return []
    x = np.concatenate([cm.x for cm in cms])
    tg = [CLASSES.index(cm.label) for cm in cms for _ in range(cm.x.shape[0])] if cfg.target == "label" else None
    out = []
    random_auc: list[float] | None = None
    for method in cfg.methods:
        for layer in _layers_for(method, layers):
            lyr = None if layer == INPUT_LAYER else layer
            rnd = randomization_check(model, x, method, layer=lyr, target_class=tg, n_top=cfg.randomize_top,
                                      max_n=cfg.max_n, smooth_samples=cfg.smooth_samples)  # fmt: skip
            hms = explain_batch(model, x, method, tg, lyr, max_n=cfg.max_n, smooth_samples=cfg.smooth_samples)
            dels = [deletion_curve(model, x[i], hms[i], steps=10, with_random=False) for i in range(x.shape[0])]
            if random_auc is None:  # method-independent: computed once per image
                random_auc = [deletion_curve(model, x[i], hms[i], steps=10).random_auc for i in range(x.shape[0])]
            out.append({
                "method": method, "layer": layer, "n_images": int(x.shape[0]), "randomize_top": cfg.randomize_top,
                "spearman_mean": rnd.mean_spearman, "randomization_passed": rnd.passed,
                "deletion_auc": float(np.mean([d.auc for d in dels])),
                "deletion_auc_random": float(np.mean(random_auc)),
            })  # fmt: skip
    return out


_METRICS = ("pointing", "pointing_myo", "ebpg", "ebpg_myo", "dice", "dice_myo", "iou", "iou_myo", "kappa",
            "pointing_myo_chance", "dice_myo_all")  # fmt: skip
_SPREAD = ("energy_in_myocardium", "area50_mm2", "segment_entropy", "peak_in_myocardium")


def _summarise(
    per_case: list[dict[str, Any]],
    pooled: Mapping[tuple[str, str, str], tuple[list[bool], list[bool]]],
    thresholds: Mapping[str, Mapping[str, float]],
    cfg: AuditConfig,
    layers: Sequence[str],
) -> list[dict[str, Any]]:
    out = []
    for c in CLASSES:
        for method in cfg.methods:
            for layer in _layers_for(method, layers):
                rows = [r for r in per_case if r["class"] == c and r["method"] == method and r["layer"] == layer]
                if not rows:
                    continue
                d: dict[str, Any] = {"class": c, "method": method, "layer": layer, "n": len(rows),
                                     "accuracy": float(np.mean([r["predicted"] == c for r in rows]))}  # fmt: skip
                for k in (*_METRICS, *_SPREAD, "lesion_area_fraction_myo"):
                    m, sd, _n = _mean_sd(r.get(k, float("nan")) for r in rows)
                    d[k], d[k + "_sd"] = m, sd
                a, b = pooled.get((c, method, layer), ([], []))
                d["kappa_pooled"] = cohen_kappa(a, b) if a and any(b) else float("nan")
                th = thresholds.get(_key(method, layer), {})
                d["tau"], d["tau_myo"], d["tau_segment"] = th.get("tau"), th.get("tau_myo"), th.get("tau_segment")
                out.append(d)
    return out


def _by_subtype(per_case: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean figures per (class, sub-type, method, layer) for the lesion classes."""
    keys = sorted({(r["class"], r.get("subtype", ""), r["method"], r["layer"]) for r in per_case if r["class"] != "healthy"},
                  key=lambda k: (CLASSES.index(k[0]) if k[0] in CLASSES else 9, k[1], k[2], k[3]))  # fmt: skip
    out = []
    for c, st, m, lyr in keys:
        rows = [r for r in per_case if (r["class"], r.get("subtype", ""), r["method"], r["layer"]) == (c, st, m, lyr)]
        d: dict[str, Any] = {"class": c, "subtype": st, "method": m, "layer": lyr, "n": len(rows)}
        for k in ("dice", "dice_myo", "dice_myo_all", "ebpg_myo", "lesion_area_fraction_myo", "pointing_myo"):
            d[k] = _mean_sd(r.get(k, float("nan")) for r in rows)[0]
        out.append(d)
    return out


def _markdown(res: AuditResult, cfg: AuditConfig, seconds: float) -> str:
    lines = ["# Feature-map agreement audit", ""]
    lines += [f"- {n}" for n in res.notes]
    lines.append(f"- wall time {seconds:.0f} s")
    lines += ["", "## Lesion classes (mean over cases; Dice/IoU at the frozen threshold)", ""]
    lines.append(
        "| class | method | layer | n | acc | pointing | pointing (myo) [chance] | EBPG | EBPG (myo) [chance] | Dice | Dice (myo) [all-myo] | IoU | IoU (myo) | kappa (pooled) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for d in res.summary:
        if d["class"] == "healthy":
            continue
        lines.append(
            f"| {d['class']} | {d['method']} | {d['layer']} | {d['n']} | {_fmt(d['accuracy'])} | {_fmt(d['pointing'])} | "
            f"{_fmt(d['pointing_myo'])} [{_fmt(d['pointing_myo_chance'])}] | {_fmt(d['ebpg'])} | {_fmt(d['ebpg_myo'])} [{_fmt(d['lesion_area_fraction_myo'])}] | "
            f"{_fmt(d['dice'])} +- {_fmt(d['dice_sd'])} | {_fmt(d['dice_myo'])} +- {_fmt(d['dice_myo_sd'])} [{_fmt(d['dice_myo_all'])}] | "
            f"{_fmt(d['iou'])} | {_fmt(d['iou_myo'])} | {_fmt(d['kappa_pooled'])} |"
        )
    lines += [
        "",
        (
            "Bracketed: chance levels of the myocardium-only figures (a random myocardial peak; a uniform map; "
            "calling the whole myocardium lesion). acc: case-level accuracy of the model on these cases."
        ),
        "",
    ]
    sub_rows = _by_subtype(res.per_case)
    if sub_rows:
        lines += [
            "",
            "## Lesion sub-types (the study's Dice rows: transmural 0.85, subendocardial 0.90, HCM 0.83, DCM 0.93, global edema 0.93)",
            "",
        ]
        lines.append(
            "| class | sub-type | method | layer | n | Dice | Dice (myo) [all-myo] | EBPG (myo) [chance] | pointing (myo) |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for d in sub_rows:
            lines.append(
                f"| {d['class']} | {d['subtype']} | {d['method']} | {d['layer']} | {d['n']} | {_fmt(d['dice'])} | "
                f"{_fmt(d['dice_myo'])} [{_fmt(d['dice_myo_all'])}] | {_fmt(d['ebpg_myo'])} [{_fmt(d['lesion_area_fraction_myo'])}] | {_fmt(d['pointing_myo'])} |"
            )
    lines += ["", "## Healthy cases: heatmap energy spread (no lesion)", ""]
    lines.append(
        "| method | layer | n | acc | energy in myocardium | area holding 50 % energy (mm^2) | segment entropy (0-1) | peak in myocardium |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for d in res.summary:
        if d["class"] != "healthy":
            continue
        lines.append(
            f"| {d['method']} | {d['layer']} | {d['n']} | {_fmt(d['accuracy'])} | {_fmt(d['energy_in_myocardium'])} | {_fmt(d['area50_mm2'], 0)} | "
            f"{_fmt(d['segment_entropy'])} | {_fmt(d['peak_in_myocardium'])} |"
        )
    lines += [
        "",
        "## Frozen thresholds (chosen on validation subjects)",
        "",
        "| method | layer | tau | val Dice | tau (myo) | val Dice (myo) | tau segment | val kappa |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, t in res.thresholds.items():
        m, lyr = k.split("|", 1)
        lines.append(
            f"| {m} | {lyr} | {_fmt(t.get('tau'))} | {_fmt(t.get('val_dice'))} | {_fmt(t.get('tau_myo'))} | {_fmt(t.get('val_dice_myo'))} | {_fmt(t.get('tau_segment'))} | {_fmt(t.get('val_kappa'))} |"
        )
    if res.sanity:
        lines += [
            "",
            "## Sanity checks",
            "",
            "| method | layer | images | randomisation: mean Spearman rho (top layers re-initialised) | passed | deletion AUC | random-order AUC |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in res.sanity:
            flag = "yes" if s["randomization_passed"] else "**NO (flagged: map barely depends on the model)**"
            lines.append(
                f"| {s['method']} | {s['layer']} | {s['n_images']} | {_fmt(s['spearman_mean'])} ({s['randomize_top']}) | {flag} | {_fmt(s['deletion_auc'], 3)} | {_fmt(s['deletion_auc_random'], 3)} |"
            )
    lines += [
        "",
        f"Pointing tolerance {cfg.tolerance_mm} mm; a segment is lesion-positive at >= {100 * cfg.lesion_extent_min:.0f} % lesion area; target class = {cfg.target}.",
        "",
    ]
    return "\n".join(lines)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    return v


def _write_tables(out_dir: Path, res: AuditResult, plotly: Mapping[str, Any]) -> None:
    def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        keys = list(rows[0])
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if _clean(r.get(k)) is None else _clean(r.get(k))) for k in keys})
        res.files.append(path)

    write_csv(out_dir / "per_case.csv", res.per_case)
    write_csv(out_dir / "summary.csv", res.summary)
    write_csv(out_dir / "summary_subtype.csv", _by_subtype(res.per_case))
    write_csv(out_dir / "sanity.csv", res.sanity)
    (out_dir / "summary.md").write_text(res.markdown)
    (out_dir / "thresholds.json").write_text(
        json.dumps({k: {kk: _clean(vv) for kk, vv in v.items()} for k, v in res.thresholds.items()}, indent=1)
    )
    from deepoxymap.cardiac.bullseye import plotly_bullseye_data

    data = {k: {"cam_energy": plotly_bullseye_data(v["cam_energy"]), "lesion": plotly_bullseye_data(v["lesion"]), "lesion_kind": v["lesion_kind"]}
            for k, v in plotly.items()}  # fmt: skip
    (out_dir / "bullseye_data.json").write_text(json.dumps(data))
    res.files += [out_dir / "summary.md", out_dir / "thresholds.json", out_dir / "bullseye_data.json"]
