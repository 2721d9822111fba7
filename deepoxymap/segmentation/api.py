"""Public entry points: segment one image, or every (chosen) frame of a stack.

Label values (the PHANTOM scheme of ``docs/CONTRACTS.md`` restricted to the
structures found here): 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV
blood pool. Insertion points follow from such a label map with
:func:`deepoxymap.cardiac.segments.find_insertion_points`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.localize import find_lv, find_lv_centers
from deepoxymap.case import Role, Stack
from deepoxymap.segmentation.locate import choose_lv, consistent_centres, rank_lv
from deepoxymap.segmentation.polar import KINDS, segment_polar

__all__ = [
    "BACKGROUND",
    "DEFAULT_METHOD",
    "KIND_OF_ROLE",
    "LV_BLOOD",
    "METHODS",
    "MYOCARDIUM",
    "RV_BLOOD",
    "segment_image",
    "segment_stack",
]

METHODS = ("polar", "unet")
"""``polar``: the classical polar dynamic programme (:mod:`.polar`); ``unet``: the U-Net
trained on random-appearance phantom images (:mod:`.learned`). Both start from the same
LV localisation."""
DEFAULT_METHOD = "unet"
"""The method used when none is named."""

BACKGROUND, LV_BLOOD, MYOCARDIUM, RV_BLOOD = 0, 1, 2, 3
"""Output label values (phantom scheme)."""

KIND_OF_ROLE: dict[Role, str] = {
    Role.CINE: "cine",
    Role.OS_CMR: "os-cmr",
    Role.LGE: "lge",
    Role.T1_MAP: "t1-map",
    Role.T2_MAP: "t2-map",
}
"""The ``kind`` to pass for a series of each image role."""


def segment_image(
    image: NDArray[Any],
    pixel_spacing_mm: tuple[float, float],
    *,
    kind: str = "cine",
    center_rc: tuple[float, float] | None = None,
    method: str = DEFAULT_METHOD,
) -> NDArray[np.uint8]:
    """LV blood pool, LV myocardium and RV of one short-axis image.

    Args:
        image: ``[rows, cols]`` intensities in any units (bright blood: bSSFP
            cine / OS-CMR, LGE, native T1 or T2 map).
        pixel_spacing_mm: ``(row_spacing, col_spacing)`` in mm (DICOM order).
        kind: one of ``"cine"``, ``"os-cmr"``, ``"lge"``, ``"t1-map"``, ``"t2-map"``.
        center_rc: LV centre ``(row, col)`` in pixels, used as given; when ``None``,
            :func:`deepoxymap.cardiac.localize.find_lv`'s centre is checked against
            ring-filter candidates (:func:`deepoxymap.segmentation.locate.choose_lv`).
        method: one of :data:`METHODS`.

    Returns:
        uint8 ``[rows, cols]`` on the image's own grid: 0 background, 1 LV blood
        pool, 2 LV myocardium, 3 RV blood pool.

    Raises:
        ValueError: not a 2D image, bad spacing, unknown ``kind`` or ``method``.
    """
    _check_method(method)
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"segment_image expects a 2D image, got shape {img.shape}")
    if kind not in KINDS:
        raise ValueError(f"unknown image kind {kind!r} (expected one of {KINDS})")
    if center_rc is None:
        loc = find_lv(np.nan_to_num(img.astype(np.float64)), pixel_spacing_mm)
        center_rc = choose_lv(img, pixel_spacing_mm, (loc.row, loc.col), kind=kind).center_rc
    if method == "unet":
        from deepoxymap.segmentation.learned import segment_unet

        return segment_unet(img[None], pixel_spacing_mm, [center_rc], kind=kind)[0]
    return segment_polar(img, pixel_spacing_mm, center_rc, kind=kind).labels


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown segmentation method {method!r} (expected one of {METHODS})")


def segment_stack(
    stack: Stack,
    *,
    kind: str = "cine",
    frames: Sequence[int] | None = None,
    centers: Sequence[tuple[float, float]] | None = None,
    method: str = DEFAULT_METHOD,
) -> NDArray[np.uint8]:
    """Label maps of every slice and (chosen) frame of a stack.

    The LV is localised once per slice (:func:`deepoxymap.cardiac.localize.find_lv_centers`,
    the median over frames, checked against other candidates on the slice's first
    segmented frame by :func:`deepoxymap.segmentation.locate.rank_lv`, and kept
    consistent through the slices by :func:`~deepoxymap.segmentation.locate.consistent_centres`),
    and every frame of that slice is segmented around that one centre, so the LV
    found is the same structure in all frames.

    Args:
        stack: ``Stack.data`` float32 ``[slice, frame, row, col]``.
        kind: see :func:`segment_image` (``KIND_OF_ROLE[stack.role]`` for a series' own kind).
        frames: frame indices to segment (default: all); other frames stay 0.
        centers: the stack's ``find_lv_centers`` (``(row, col)`` px per slice) when the caller
            already has them; computed here otherwise.
        method: one of :data:`METHODS`.

    Returns:
        uint8 ``[slice, frame, row, col]``, the shape of ``stack.data``, values 0/1/2/3
        (the phantom label scheme, as ``Case.masks`` stacks hold).

    Raises:
        ValueError: a frame index outside the stack, an unknown ``kind`` or ``method``.
    """
    _check_method(method)
    if kind not in KINDS:
        raise ValueError(f"unknown image kind {kind!r} (expected one of {KINDS})")
    data = np.asarray(stack.data)
    n_s, n_f = data.shape[0], data.shape[1]
    chosen = list(range(n_f)) if frames is None else [int(f) for f in frames]
    bad = [f for f in chosen if not 0 <= f < n_f]
    if bad:
        raise ValueError(f"frames {bad} outside the stack's {n_f} frames")
    ps = stack.geometry.pixel_spacing
    centres = list(find_lv_centers(stack) if centers is None else centers)
    if len(centres) != n_s:
        raise ValueError(f"{len(centres)} LV centres for {n_s} slices")
    out = np.zeros(data.shape, dtype=np.uint8)
    if not chosen:
        return out
    ranked = [rank_lv(data[k, chosen[0]], ps, centres[k], kind=kind) for k in range(n_s)]
    final = consistent_centres(ranked, stack.geometry)
    if method == "unet":
        from deepoxymap.segmentation.learned import segment_unet

        for k in range(n_s):
            out[k, chosen] = segment_unet(data[k, chosen], ps, [final[k]] * len(chosen), kind=kind)
        return out
    for k in range(n_s):
        for j in chosen:
            out[k, j] = segment_polar(data[k, j], ps, final[k], kind=kind).labels
    return out
