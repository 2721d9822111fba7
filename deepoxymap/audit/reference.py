"""The reference a feature map is scored against, on the OS-CMR grid the model reads.

:func:`prepare_reference` takes the case and the model's *already computed*
preprocessed input (so LV localisation and cropping run once per view) and
gathers, for every slice the model sees, the label map of the frame it saw,
the myocardium, THE reference lesion (:func:`deepoxymap.cardiac.masks.lesion_mask`,
chosen by the case's class), the AHA segment map and the lesion's transmurality.

:func:`ideal_heatmaps` is the ideal-map ceiling of a readout: the reference
lesion as the best map a layer of a given stride could show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.masks import labels_from_stack, lesion_kind, lesion_mask, masks_from_labels
from deepoxymap.cardiac.scar import transmurality_map
from deepoxymap.cardiac.segments import has_full_ring, segment_map, slice_levels
from deepoxymap.case import Case
from deepoxymap.errors import CaseError

if TYPE_CHECKING:
    from deepoxymap.model.preprocess import CropTransform, Preprocessed, PreprocessSpec

__all__ = [
    "CaseReference",
    "SliceReference",
    "ideal_heatmaps",
    "lesion_on_model_grid",
    "mask_on_model_grid",
    "prepare_case",
    "prepare_reference",
]

AHA_LEVELS = ("basal", "mid", "apical", "apex")


@dataclass(frozen=True, eq=False)
class SliceReference:
    """Reference data of one OS-CMR slice, on the OS-CMR image grid.

    Attributes:
        slice_index: index in the OS-CMR stack.
        frame: the cine frame the model saw.
        labels: int64 ``[rows, cols]`` label map of that frame (phantom scheme).
        myocardium: bool ``[rows, cols]``.
        lesion: bool ``[rows, cols]`` reference lesion (scar or edema by class; empty for healthy).
        seg_map: int64 ``[rows, cols]`` AHA segments 1-17 in the myocardium (zeros if unavailable).
        transmurality_map: float64 ``[rows, cols]`` chord transmural extent of the lesion (0-1).
        level: AHA level (``basal``, ``mid``, ``apical``, ``apex`` or another tag).
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
class CaseReference:
    """What the audit needs for one case.

    Attributes:
        subject: case id.
        label: true class (``""`` if unknown).
        subtype: sub-type (from the manifest or the phantom's truth).
        x: float32 ``[n, H, W, 3]`` model input.
        transforms: ``CropTransform`` per row of ``x``.
        slices: :class:`SliceReference` per row of ``x``.
        pixel_spacing: OS-CMR ``(row, col)`` mm.
        lesion_kind: ``"scar"``, ``"edema"``, ``"none"`` or ``"any"``.
    """

    subject: str
    label: str
    subtype: str
    x: NDArray[np.float32]
    transforms: list[CropTransform]
    slices: list[SliceReference]
    pixel_spacing: tuple[float, float]
    lesion_kind: str


def prepare_reference(case: Case, pre: Preprocessed, *, subtype: str = "") -> CaseReference:
    """Reference masks of a case on the OS-CMR grid of ``pre``.

    Args:
        case: a :class:`~deepoxymap.case.Case` with ``masks`` on the OS-CMR
            series the model reads (phantom label scheme).
        pre: ``preprocess_case(case, spec)`` of the model that is explained.
        subtype: free text for the tables (default: the case's truth).

    Raises:
        CaseError: no label map on the OS-CMR series the model reads.
    """
    mask_stack = case.mask_for(pre.stack.series_uid)
    if mask_stack is None:
        raise CaseError("no reference label map on the OS-CMR series the model reads", source=case.case_id)
    label = str(case.label or "")
    kind = lesion_kind(label)
    geom = pre.stack.geometry
    ps = geom.pixel_spacing
    lab_frames = {f: labels_from_stack(mask_stack, frame=f) for f in sorted(set(pre.frames))}
    labs = [lab_frames[pre.frames[i]][k] for i, k in enumerate(pre.slice_indices)]
    levels = list(case.truth.levels)
    if len(levels) != pre.stack.n_slices:
        levels = slice_levels(len(labs), [has_full_ring(lb) for lb in labs])
    slices = []
    for i, k in enumerate(pre.slice_indices):
        lb = labs[i]
        m = masks_from_labels(lb)
        lesion = lesion_mask(m, kind)
        level = levels[k]
        try:
            seg = (
                segment_map(lb, level, pixel_spacing=ps, geometry=geom)
                if level in AHA_LEVELS
                else np.zeros(lb.shape, np.int64)
            )
        except CaseError:
            seg = np.zeros(lb.shape, np.int64)
        if m.myocardium.any():
            rr, cc = np.nonzero(m.myocardium | m.lv_blood)
            tm = transmurality_map(lesion, m.myocardium, (float(rr.mean()), float(cc.mean())), ps)
        else:
            tm = np.zeros(lb.shape)
        slices.append(SliceReference(k, pre.frames[i], lb, m.myocardium, lesion, seg, tm, level))
    return CaseReference(
        case.case_id,
        label,
        subtype or case.truth.subtype,
        pre.x,
        list(pre.transforms),
        slices,
        (float(ps[0]), float(ps[1])),
        kind,
    )


def prepare_case(case: Case, spec: PreprocessSpec, *, subtype: str = "") -> CaseReference:
    """:func:`prepare_reference` after ``preprocess_case(case, spec)`` (for callers holding only the case)."""
    from deepoxymap.model.preprocess import preprocess_case

    return prepare_reference(case, preprocess_case(case, spec), subtype=subtype)


def mask_on_model_grid(cm: CaseReference, name: str) -> list[NDArray[np.float32]]:
    """A reference mask of every slice (``"lesion"`` or ``"myocardium"``) resampled onto the model grid.

    Each model pixel takes the bilinear interpolation of the bool source mask at
    its source position (``CropTransform.source_grid``): float32 ``[H, W]`` in
    ``[0, 1]``, the mask's fraction around that pixel; 0 outside the image.
    """
    from scipy import ndimage as ndi

    if name not in ("lesion", "myocardium"):
        raise ValueError(f"unknown reference mask {name!r}")
    out = []
    for sl, t in zip(cm.slices, cm.transforms, strict=True):
        g = t.source_grid()
        src = getattr(sl, name).astype(np.float32)
        m = ndi.map_coordinates(src, [g[0], g[1]], order=1, mode="constant", cval=0.0)
        out.append(np.clip(m, 0.0, 1.0).astype(np.float32))
    return out


def lesion_on_model_grid(cm: CaseReference) -> list[NDArray[np.float32]]:
    """The reference lesion of every slice resampled onto the model grid (:func:`mask_on_model_grid`)."""
    return mask_on_model_grid(cm, "lesion")


def ideal_heatmaps(cm: CaseReference, grid: tuple[int, int]) -> list[NDArray[np.float32]]:
    """The ideal map of a readout with feature grid ``grid``, per slice on the OS-CMR grid.

    The reference lesion on the model grid (:func:`lesion_on_model_grid`) is
    average-pooled onto the layer's ``grid = (h, w)`` (each cell: the input
    pixels a stride-``H / h`` feature map cell covers,
    :func:`~deepoxymap.explain.heatmap.pool_to_grid`), upsampled back to the
    model grid as a CAM is (bilinear, pixel centres aligned), normalised per case
    (one minimum and maximum over all slices, like the audited CAMs) and mapped onto
    the OS-CMR grid with each slice's ``CropTransform``. Thresholded as the CAM is,
    its Dice is the ceiling that layer can reach: ``grid = (H, W)`` (stride 1) gives
    the lesion itself.

    Args:
        cm: the case (``x`` float32 ``[n, H, W, 3]``, transforms, slices).
        grid: ``(h, w)`` of the layer's feature map (``explain.methods.layer_grid``).

    Returns:
        float32 ``[rows, cols]`` per slice in ``[0, 1]`` (zeros for a case without lesion).
    """
    from deepoxymap.explain.heatmap import normalize_map, pool_to_grid, upsample_map

    lesions = lesion_on_model_grid(cm)
    if not lesions:
        return []
    size = (int(lesions[0].shape[0]), int(lesions[0].shape[1]))
    up = np.stack([upsample_map(pool_to_grid(m, grid), size) for m in lesions])
    scaled = normalize_map(np.clip(up, 0.0, None))
    return [np.clip(t.to_source(a), 0.0, 1.0).astype(np.float32) for a, t in zip(scaled, cm.transforms, strict=True)]
