"""Cardiac phase: the end-systolic frame of a cine stack.

The rule the classifier's preprocessing uses, and every other part that needs
"the frame the model saw" (the OS response, the audit), so there is one rule.

``"min-cavity"`` (default): every slice's LV blood-pool area curve
(:func:`~deepoxymap.cardiac.localize.lv_cavity_area_mm2`; frames whose area
exceeds 1.6 x the slice's median are dropped: the threshold leaked out of the
LV) is divided by its own maximum and the curves are averaged over slices; the
frame of the smallest mean is end-systole for all slices (one heart, one
cardiac cycle: a consensus is far more robust than each small apical cavity
alone). ``"trigger-fraction"``: per slice, the frame whose TriggerTime is nearest
``es_fraction`` x RR (RR estimated as the last trigger time plus one frame step).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.localize import find_lv_centers, lv_cavity_area_mm2
from deepoxymap.case import Stack

__all__ = ["FRAME_RULES", "cavity_curve", "end_systolic_frame", "end_systolic_frames", "slice_end_systolic_frame"]

FRAME_RULES = ("min-cavity", "trigger-fraction")


def cavity_curve(stack: Stack, slice_index: int, center: tuple[float, float]) -> NDArray[np.float64]:
    """LV blood-pool area (mm^2) of every frame of one slice, float64 ``[n_frames]`` (NaN where not found)."""
    ps = stack.geometry.pixel_spacing
    a = np.array([lv_cavity_area_mm2(stack.data[slice_index, f], ps, center) for f in range(stack.n_frames)])
    a[a <= 0] = np.nan
    return a


def _drop_leaks(curve: NDArray[np.float64], factor: float = 1.6) -> NDArray[np.float64]:
    """NaN where a frame's area exceeds ``factor`` x the slice's median (the threshold leaked out of the LV)."""
    c = np.array(curve, dtype=np.float64)
    if np.any(np.isfinite(c)):
        med = float(np.nanmedian(c))
        c[c > factor * med] = np.nan
    return c


def slice_end_systolic_frame(stack: Stack, slice_index: int, center: tuple[float, float]) -> int:
    """The end-systolic frame of ONE slice alone (its smallest cavity)."""
    if stack.n_frames == 1:
        return 0
    a = cavity_curve(stack, slice_index, center)
    return int(np.nanargmin(a)) if np.any(np.isfinite(a)) else 0


def end_systolic_frames(
    stack: Stack,
    centers: Sequence[tuple[float, float]],
    *,
    rule: str = "min-cavity",
    es_fraction: float = 0.35,
) -> list[int]:
    """The end-systolic frame of every slice of ``stack``.

    Args:
        stack: a cine stack ``[slice, frame, row, col]``.
        centers: LV centre ``(row, col)`` in pixels per slice
            (:func:`~deepoxymap.cardiac.localize.find_lv_centers`).
        rule: ``"min-cavity"`` or ``"trigger-fraction"`` (module doc).
        es_fraction: end-systole as a fraction of RR for ``"trigger-fraction"``.

    Returns:
        One frame index per slice.
    """
    n = stack.n_frames
    if n == 1:
        return [0] * stack.n_slices
    if rule == "trigger-fraction":
        out: list[int] = []
        for k in range(stack.n_slices):
            tt = stack.trigger_times[k]
            step = float(np.median(np.diff(tt))) if np.all(np.isfinite(tt)) else float("nan")
            if np.isfinite(step) and step > 0:
                out.append(int(np.argmin(np.abs(tt - es_fraction * (float(tt.max()) + step)))))
            else:
                out.append(slice_end_systolic_frame(stack, k, centers[k]))
        return out
    curves = [_drop_leaks(cavity_curve(stack, k, centers[k])) for k in range(stack.n_slices)]
    norm = [c / np.nanmax(c) for c in curves if np.any(np.isfinite(c))]
    if not norm:
        return [0] * stack.n_slices
    with np.errstate(all="ignore"):
        mean = np.nanmean(np.stack(norm), axis=0)
    if not np.any(np.isfinite(mean)):
        return [0] * stack.n_slices
    return [int(np.nanargmin(mean))] * stack.n_slices


def end_systolic_frame(stack: Stack) -> int:
    """The consensus end-systolic frame of a stack by the default rule (LV localised here)."""
    return int(end_systolic_frames(stack, find_lv_centers(stack))[0])
