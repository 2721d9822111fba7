"""Side by side: LGE, T1 and T2 slices matched to an OS-CMR slice, in patient millimetres.

Pure functions the Feature-maps view is built from: the nearest slice of
another series within a distance limit, resampled onto the OS-CMR grid
(:func:`match_panel`); THE reference lesion of a slice
(:func:`reference_lesion`, the same definition the audit scores); the region
the model sees on a slice in mm (:func:`crop_extent_mm`); and per-segment means
of a slice-matched map (:func:`segment_means`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.masks import lesion_kind, lesion_mask, masks_from_labels
from deepoxymap.cardiac.segments import segment_mean
from deepoxymap.case import Case, Role, Stack, nearest_slice, resample_slice
from deepoxymap.errors import GeometryError

if TYPE_CHECKING:
    from deepoxymap.model.preprocess import CropTransform

__all__ = ["PANEL_ROLES", "Panel", "crop_box_px", "crop_extent_mm", "match_panel", "reference_lesion", "segment_means"]

PANEL_ROLES = (Role.LGE, Role.T1_MAP, Role.T2_MAP)
"""The series shown beside the OS-CMR slice."""


@dataclass(frozen=True)
class Panel:
    """One series resampled onto an OS-CMR slice.

    Attributes:
        role: LGE, T1 map or T2 map.
        image: float32 ``[R, C]`` on the OS-CMR grid (the series' units), or ``None`` when not matched.
        other_index: matched slice of that series.
        distance_mm: distance between the planes, mm.
        message: why there is no image (``None`` when there is).
        stack: the series' stack (window, units).
        labels: its reference lesion resampled (nearest) onto the OS-CMR grid,
            float32 0/1 ``[R, C]``, or ``None``.
    """

    role: Role
    image: NDArray[np.float32] | None
    other_index: int | None
    distance_mm: float | None
    message: str | None
    stack: Stack | None
    labels: NDArray[np.float32] | None = None


def reference_lesion(case: Case, series_uid: str, k: int, frame: int = 0) -> NDArray[np.float32] | None:
    """THE reference lesion of slice ``k`` of a series: float32 0/1 ``[rows, cols]`` on its grid, or ``None``.

    From the case's label map on that series (phantom label scheme) and the
    case's class (:func:`deepoxymap.cardiac.masks.lesion_kind`): scar for scar
    classes, the oedematous zone for edema, scar or edema for a case of unknown
    class; the audit's :func:`~deepoxymap.audit.reference.prepare_reference` uses the same rule.
    ``None`` when there is no label map or the slice holds no lesion.
    """
    mask = case.mask_for(series_uid)
    if mask is None or k >= mask.n_slices:
        return None
    labels = mask.image(k, min(frame, mask.n_frames - 1))
    lesion = lesion_mask(masks_from_labels(labels), lesion_kind(case.label))
    return lesion.astype(np.float32) if lesion.any() else None


def match_panel(case: Case, ref: Stack, k: int, role: Role, *, tol_deg: float, max_mm: float) -> Panel:
    """The ``role`` series' slice nearest to slice ``k`` of ``ref``, resampled onto its grid.

    Args:
        case: the case holding both series.
        ref: the OS-CMR stack.
        k: slice index in ``ref``.
        role: which series to match (first series of that role).
        tol_deg: planes whose normals differ by more than this are not parallel.
        max_mm: no match when the nearest plane is farther than this, mm.
    """
    series = case.first(role)
    if series is None:
        return Panel(role, None, None, None, f"No {role.label} series in this case.", None)
    other = series.stack
    try:
        m = nearest_slice(ref.geometry, k, other.geometry, tol_deg=tol_deg)
    except GeometryError as exc:
        return Panel(role, None, None, None, f"Cannot match slices: {exc.message}.", other)
    if m.distance_mm > max_mm:
        return Panel(
            role,
            None,
            m.other_index,
            m.distance_mm,
            f"No {role.label} slice within {max_mm:.0f} mm (nearest is {m.distance_mm:.1f} mm away).",
            other,
        )
    img = resample_slice(other.image(m.other_index, 0), other.geometry, m.other_index, ref.geometry, k, order=1)
    labels = None
    lesion = reference_lesion(case, series.uid, m.other_index, 0)
    if lesion is not None:
        labels = resample_slice(lesion, other.geometry, m.other_index, ref.geometry, k, order=0)
    return Panel(role, img, m.other_index, m.distance_mm, None, other, labels)


def _crop_half_px(transform: CropTransform, margin: float) -> tuple[float, float]:
    """Half side ``(rows, cols)`` in source pixels of a crop's region, enlarged by ``margin``."""
    return (
        transform.model_shape[0] * transform.scale[0] / 2 * margin,
        transform.model_shape[1] * transform.scale[1] / 2 * margin,
    )


def crop_extent_mm(
    transform: CropTransform, pixel_spacing: tuple[float, float], margin: float = 1.15
) -> tuple[float, float, float, float]:
    """The region the model sees on a slice (its LV-centred crop), as mm axes ``(x0, x1, y0, y1)``.

    Args:
        transform: the slice's ``CropTransform`` (model grid <-> source grid).
        pixel_spacing: ``(row, col)`` mm of the source grid.
        margin: the box is enlarged by this factor about its centre.
    """
    rs, cs = pixel_spacing
    hr, hc = _crop_half_px(transform, margin)
    yc, xc = transform.center[0] * rs, transform.center[1] * cs
    return (xc - hc * cs, xc + hc * cs, yc - hr * rs, yc + hr * rs)


def crop_box_px(transform: CropTransform, shape: tuple[int, int], margin: float = 1.15) -> tuple[int, int, int, int]:
    """The same region as :func:`crop_extent_mm` as a pixel box ``(r0, r1, c0, c1)`` (end exclusive), clipped to ``shape``."""
    hr, hc = _crop_half_px(transform, margin)
    r0, r1 = max(0, int(np.floor(transform.center[0] - hr))), min(shape[0], int(np.ceil(transform.center[0] + hr)) + 1)
    c0, c1 = max(0, int(np.floor(transform.center[1] - hc))), min(shape[1], int(np.ceil(transform.center[1] + hc)) + 1)
    return (r0, max(r1, r0 + 1), c0, max(c1, c0 + 1))


def segment_means(images: Sequence[NDArray[np.floating]], seg_maps: Sequence[NDArray[np.integer]]) -> dict[int, float]:
    """Mean of slice-matched maps (T1, T2 in ms) per AHA segment: ``{segment 1-17: mean}``.

    Args:
        images: float ``[R, C]`` per slice, on the grid of ``seg_maps``.
        seg_maps: int ``[R, C]`` AHA segment ids (0 outside the myocardium).

    Slices whose segment map is empty are skipped; segments with no finite value are left out.
    """
    pairs = [(np.asarray(im), np.asarray(sm)) for im, sm in zip(images, seg_maps, strict=True) if np.any(sm)]
    if not pairs:
        return {}
    means = segment_mean(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    return {i + 1: float(v) for i, v in enumerate(means) if v is not None and np.isfinite(float(v))}
