"""Automatic label maps for a user's own study: every image series without a mask gets one.

A study uploaded without label maps has no myocardium, so per-segment values,
the OS response per segment and the map/myocardium agreement cannot be
computed. :func:`with_automatic_masks` runs the automatic segmentation
(:mod:`deepoxymap.segmentation`) on each OS-CMR, cine, LGE and T1/T2 series that
has no label map yet and attaches the result to ``Case.masks`` under that
series' uid (cine and OS-CMR at end-diastole and end-systole, the frames the
classifier and the OS response read: :func:`frames_in_use`), in the phantom label scheme (0 background, 1 LV blood pool,
2 LV myocardium, 3 RV blood pool), so every downstream part reads it like a
reference map. A label map the user supplied always wins: it is never replaced.

Automatic maps are marked in their stack's ``description`` (:func:`is_automatic`),
so the pages can say where a myocardium came from. They carry no lesion labels:
the lesion reference of a real study still has to come from its LGE or the user.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping

import numpy as np

from deepoxymap.case import Case, Role, Series, Stack
from deepoxymap.errors import DeepOxyMapError

__all__ = ["AUTOMATIC", "SEGMENTABLE", "automatic_mask", "frames_in_use", "is_automatic", "with_automatic_masks"]

log = logging.getLogger(__name__)

AUTOMATIC = "automatic segmentation"
"""Prefix of the ``description`` of every mask stack made here."""

SEGMENTABLE: Mapping[Role, str] = {
    Role.OS_CMR: "cine",
    Role.CINE: "cine",
    Role.LGE: "lge",
    Role.T1_MAP: "map",
    Role.T2_MAP: "map",
}
"""Series roles that get an automatic label map, with the segmentation ``kind`` used for each."""


def is_automatic(mask: Stack | None) -> bool:
    """Whether a mask stack was made by :func:`automatic_mask` (not supplied by the user or the phantom)."""
    return mask is not None and mask.description.startswith(AUTOMATIC)


CINE_ROLES = (Role.OS_CMR, Role.CINE)


def _lv_centres(stack: Stack, known: dict[int, list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """``find_lv_centers(stack)``, kept in ``known`` (keyed by the stack object's id, for one call's lifetime)
    so each stack is localised once."""
    from deepoxymap.cardiac.localize import find_lv_centers

    if id(stack) not in known:
        known[id(stack)] = list(find_lv_centers(stack))
    return known[id(stack)]


def frames_in_use(
    case: Case, series: Series, known: dict[int, list[tuple[float, float]]] | None = None
) -> list[int] | None:
    """The cine frames that downstream parts read: end-diastole (frame 0) and end-systole.

    End-systole is the consensus frame of :func:`deepoxymap.cardiac.phase.end_systolic_frames`
    of every cine/OS-CMR stack with the same frame count (the OS response reads the reference
    stack's end-systolic frame in the target stack too; the classifier reads each stack's own).
    ``None`` (every frame) for stacks of three frames or fewer and for LGE and maps.
    """
    from deepoxymap.cardiac.phase import end_systolic_frames

    known = {} if known is None else known

    n = series.stack.n_frames
    if series.role not in CINE_ROLES or n <= 3:
        return None
    es = {
        int(end_systolic_frames(s.stack, _lv_centres(s.stack, known))[0])
        for s in case.series
        if s.role in CINE_ROLES and s.stack.n_frames == n
    }
    return sorted({0, *es})


def automatic_mask(
    series: Series, frames: list[int] | None = None, known: dict[int, list[tuple[float, float]]] | None = None
) -> Stack:
    """The automatic label-map stack of one image series.

    Args:
        series: an image series of a role in :data:`SEGMENTABLE`.
        frames: the frames to segment (default every frame); the others hold 0.
        known: LV centres already found, by stack (filled in here).

    Returns:
        a :class:`~deepoxymap.case.Stack` on the series' own grid (same geometry
        and trigger times): ``data`` float32 ``[slice, frame, row, col]`` holding
        the labels 0-3, ``role`` MASK, ``units`` ``"label"``, ``description``
        starting with :data:`AUTOMATIC`.

    Raises:
        KeyError: the series' role is not in :data:`SEGMENTABLE`.
        DeepOxyMapError: the segmentation found no LV on any slice.
    """
    from deepoxymap.segmentation import DEFAULT_METHOD, segment_stack
    from deepoxymap.segmentation.learned import SegmenterUnavailable

    kind = SEGMENTABLE[series.role]
    centres = _lv_centres(series.stack, {} if known is None else known)
    method = DEFAULT_METHOD
    try:
        labels = np.asarray(segment_stack(series.stack, kind=kind, frames=frames, centers=centres, method=method))
    except SegmenterUnavailable as exc:  # no usable segmenter model: the classical method needs none
        log.warning("%s; using the classical segmentation", exc)
        method = "polar"
        labels = np.asarray(segment_stack(series.stack, kind=kind, frames=frames, centers=centres, method=method))
    data = labels.reshape(series.stack.data.shape).astype(np.float32)
    which = "" if frames is None else f", frames {', '.join(str(f + 1) for f in frames)}"
    return dataclasses.replace(
        series.stack,
        data=data,
        role=Role.MASK,
        units="label",
        description=f"{AUTOMATIC} ({method}, {kind}{which}) of {series.stack.description or series.role.label}",
        window=(1.5, 3.0),
    )


def with_automatic_masks(case: Case, roles: Iterable[Role] | None = None) -> tuple[Case, list[str]]:
    """``case`` with an automatic label map on every segmentable series that has none.

    Args:
        case: any case; its existing masks are kept as they are.
        roles: the roles to segment (default: every role in :data:`SEGMENTABLE`).

    Returns:
        ``(case, notes)``: the case with the added masks (the same object when
        nothing was added) and one plain-text note per series that could not be
        segmented (the others are still segmented).
    """
    wanted = set(SEGMENTABLE if roles is None else roles) & set(SEGMENTABLE)
    masks = dict(case.masks)
    notes: list[str] = []
    known: dict[int, list[tuple[float, float]]] = {}  # LV centres by stack: one localisation per stack
    in_use: dict[int, list[int] | None] = {}  # by frame count: one end-systole search per cine shape
    for s in case.series:
        if s.role not in wanted or s.uid in masks:
            continue
        try:
            n = s.stack.n_frames if s.role in CINE_ROLES else -1
            if n not in in_use:
                in_use[n] = frames_in_use(case, s, known)
            masks[s.uid] = automatic_mask(s, in_use[n], known)
        except (DeepOxyMapError, ValueError, IndexError) as exc:  # one series failing must not lose the others
            name = s.stack.description or s.role.label
            notes.append(f"{name}: no automatic segmentation ({exc})")
            log.warning("automatic segmentation of %s failed: %s", name, exc)
    if len(masks) == len(case.masks):
        return case, notes
    return dataclasses.replace(case, masks=masks), notes
