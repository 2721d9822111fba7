"""The OS response: myocardial percent signal change between manoeuvre time points.

DOMAIN.md section 2.4: for each OS-CMR series of the manoeuvre take one
cardiac phase (end-systole, chosen by the very rule the classifier uses), then

    dSI% = 100 * (SI_target - SI_reference) / SI_reference

inside the myocardium, globally, per AHA segment and per pixel. The reference
time point is always stored with the result: papers use different references
(baseline for the hyperventilation response, breath-hold start for B-MORE).

The per-pixel map divides the two images pixel by pixel on the reference grid,
so residual breathing shifts between time points (mm) show up as rims at the
wall's edges; the global and per-segment values are means over each time
point's own myocardium mask and do not suffer from that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.masks import PHANTOM, masks_from_labels
from deepoxymap.cardiac.phase import end_systolic_frame
from deepoxymap.cardiac.segments import segment_map, segment_mean, slice_levels
from deepoxymap.case import Case, Stack
from deepoxymap.errors import CaseError

__all__ = ["OSResponse", "os_response"]


@dataclass(frozen=True)
class OSResponse:
    """Percent signal change of one slice between two manoeuvre time points.

    Attributes:
        percent: float32 ``[rows, cols]`` dSI% on the reference stack's grid;
            NaN outside the myocardium (or outside the signal mask when no
            label map exists).
        reference: time point of SI_ref (e.g. ``"baseline"``).
        target: time point of SI_t (e.g. ``"bh-end"``).
        slice_index: slice of the reference stack (base -> apex).
        frame: cine frame used in both stacks (end-systole).
        global_percent: dSI% of the mean myocardial signal of the slice (NaN without a mask).
        per_segment: AHA segment id -> dSI% of the segment's mean signal.
        mask_source: ``"label map"`` or ``"none"`` (then ``percent`` covers every
            pixel with signal and ``per_segment`` is empty).
        display_limit: symmetric colour-scale limit (%) suggested for the map.
    """

    percent: NDArray[np.float32]
    reference: str
    target: str
    slice_index: int
    frame: int
    global_percent: float
    per_segment: dict[int, float] = field(default_factory=dict)
    mask_source: str = "label map"
    display_limit: float = 20.0


def _labels(case: Case, stack: Stack, slice_index: int, frame: int) -> NDArray[np.int64] | None:
    mask = case.mask_for(stack.series_uid)
    if mask is None:
        return None
    f = min(frame, mask.n_frames - 1)
    return np.rint(mask.data[slice_index, f]).astype(np.int64)


def os_response(
    case: Case,
    reference: str = "baseline",
    target: str = "bh-end",
    *,
    slice_index: int = 0,
    frame: int | None = None,
) -> OSResponse:
    """dSI% between two manoeuvre time points for one slice.

    Args:
        case: a case with at least two OS-CMR stacks (one per time point) on the
            same slices; label maps in ``case.masks`` (LV myocardium = 2, 4, 5, 6
            as in the phantom) give the myocardium.
        reference: time point of SI_ref (``case.os_timepoints()`` key).
        target: time point of SI_t.
        slice_index: slice (base -> apex) of the reference stack; the target
            stack's slice with the same index is used (same prescription).
        frame: cine frame; default end-systole of the reference stack.

    Returns:
        :class:`OSResponse`.

    Raises:
        CaseError: a time point is missing or the stacks do not share slices/frames.
    """
    tps = case.os_timepoints()
    for tp in (reference, target):
        if tp not in tps:
            raise CaseError(f"no OS-CMR series for time point {tp!r} (have: {', '.join(tps) or 'none'})")
    ref, tgt = tps[reference], tps[target]
    if ref.n_slices != tgt.n_slices or ref.data.shape[2:] != tgt.data.shape[2:]:
        raise CaseError(
            f"OS-CMR time points {reference!r} and {target!r} do not share slices and matrix "
            f"({ref.data.shape} vs {tgt.data.shape})"
        )
    if not 0 <= slice_index < ref.n_slices:
        raise CaseError(f"slice {slice_index} out of range (0..{ref.n_slices - 1})")
    k = slice_index
    f = end_systolic_frame(ref) if frame is None else int(frame)
    f_t = min(f, tgt.n_frames - 1)
    f = min(f, ref.n_frames - 1)
    a = ref.data[k, f].astype(np.float64)
    b = tgt.data[k, f_t].astype(np.float64)

    lab_r = _labels(case, ref, k, f)
    lab_t = _labels(case, tgt, k, f_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        pix = 100.0 * (b - a) / a
    if lab_r is None:
        signal = a > np.percentile(a, 75)
        pct = np.where(signal & np.isfinite(pix), pix, np.nan).astype(np.float32)
        return OSResponse(pct, reference, target, k, f, float("nan"), {}, "none")

    myo_r = masks_from_labels(lab_r, PHANTOM).myocardium
    myo_t = masks_from_labels(lab_t, PHANTOM).myocardium if lab_t is not None else myo_r
    pct = np.where(myo_r & np.isfinite(pix), pix, np.nan).astype(np.float32)
    glob = float("nan")
    if myo_r.any() and myo_t.any():
        glob = 100.0 * (float(b[myo_t].mean()) - float(a[myo_r].mean())) / float(a[myo_r].mean())

    per_segment: dict[int, float] = {}
    level = slice_levels(ref.n_slices)[k]
    ps = ref.geometry.pixel_spacing
    seg_r: NDArray[np.int64] | None
    seg_t: NDArray[np.int64] | None
    try:
        seg_r = segment_map(lab_r, level, pixel_spacing=ps, geometry=ref.geometry)
        seg_t = segment_map(lab_t if lab_t is not None else lab_r, level, pixel_spacing=ps, geometry=tgt.geometry)
    except (CaseError, ValueError):
        seg_r = seg_t = None
    if seg_r is not None and seg_t is not None:
        m_r, m_t = segment_mean(a, seg_r), segment_mean(b, seg_t)
        for i in range(min(len(m_r), len(m_t))):  # index i holds segment i + 1
            if np.isfinite(m_r[i]) and np.isfinite(m_t[i]) and m_r[i] > 0:
                per_segment[i + 1] = float(100.0 * (m_t[i] - m_r[i]) / m_r[i])
    return OSResponse(pct, reference, target, k, f, glob, per_segment, "label map")
