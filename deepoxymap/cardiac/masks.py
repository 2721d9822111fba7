"""Structure masks from label maps (phantom truth, user NIfTI/DICOM label maps) or contours.

Different sources number their labels differently; a :class:`LabelScheme`
says which values mean which structure. Presets:

* :data:`PHANTOM` (``docs/CONTRACTS.md``): 0 background, 1 LV blood, 2 LV
  myocardium, 3 RV, 4 scar, 5 edema (no scar), 6 MVO; myocardium = {2, 4, 5, 6},
  scar = {4, 6}; the full edema extent (which may overlap scar) is a separate
  boolean array in ``labels.npz`` (``<uid>__edema``).
* :data:`EMIDEC`: 0 background, 1 LV cavity, 2 normal myocardium, 3 infarct,
  4 no-reflow (MVO); myocardium = {2, 3, 4}, scar = {3, 4}; no RV label.
* :data:`CINEMYOPS` (unconfirmed upstream): 1 myocardium, 2 LV blood, 3 RV,
  4 edema, 5 scar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CINEMYOPS",
    "EMIDEC",
    "LESION_OF_CLASS",
    "PHANTOM",
    "SCHEMES",
    "LabelScheme",
    "Masks",
    "labels_from_stack",
    "lesion_kind",
    "lesion_mask",
    "masks_from_labels",
    "myocardium_from_contours",
    "polygon_mask",
    "read_contour_txt",
    "to_phantom_labels",
]


@dataclass(frozen=True)
class LabelScheme:
    """Which label values make up each structure.

    Attributes:
        name: preset name.
        lv_blood: values of the LV blood pool / cavity.
        myocardium: values of the whole LV myocardium (normal + lesions).
        rv: values of the RV (blood pool); empty if the source has no RV label.
        scar: values of LGE scar (incl. MVO).
        edema: values of edema.
        mvo: values of microvascular obstruction.
    """

    name: str
    lv_blood: tuple[int, ...]
    myocardium: tuple[int, ...]
    rv: tuple[int, ...] = ()
    scar: tuple[int, ...] = ()
    edema: tuple[int, ...] = ()
    mvo: tuple[int, ...] = ()


PHANTOM = LabelScheme("phantom", lv_blood=(1,), myocardium=(2, 4, 5, 6), rv=(3,), scar=(4, 6), edema=(5,), mvo=(6,))
EMIDEC = LabelScheme("emidec", lv_blood=(1,), myocardium=(2, 3, 4), rv=(), scar=(3, 4), edema=(), mvo=(4,))
CINEMYOPS = LabelScheme("cinemyops", lv_blood=(2,), myocardium=(1, 4, 5), rv=(3,), scar=(5,), edema=(4,))
SCHEMES: dict[str, LabelScheme] = {s.name: s for s in (PHANTOM, EMIDEC, CINEMYOPS)}
"""Presets by name."""


@dataclass(frozen=True, eq=False)
class Masks:
    """Boolean structure masks, all the shape of the label map (2D or 3D).

    Attributes:
        myocardium: LV myocardium incl. lesions.
        lv_blood: LV blood pool.
        rv: RV (all False if the scheme has none).
        scar: LGE scar incl. MVO.
        edema: edema (for the phantom: the label-5 pixels, or the full extent if given).
    """

    myocardium: NDArray[np.bool_]
    lv_blood: NDArray[np.bool_]
    rv: NDArray[np.bool_]
    scar: NDArray[np.bool_]
    edema: NDArray[np.bool_]

    @property
    def lesion_free(self) -> NDArray[np.bool_]:
        """Myocardium without scar and edema."""
        return self.myocardium & ~self.scar & ~self.edema


def to_phantom_labels(labels: NDArray[Any], scheme: LabelScheme) -> NDArray[np.int64]:
    """A label map of another scheme recoded to :data:`PHANTOM` (the scheme every downstream part reads).

    Structures map by meaning: LV blood -> 1, normal myocardium -> 2, RV -> 3,
    scar -> 4 (MVO -> 6 where the scheme tells MVO apart), edema without scar -> 5;
    anything else -> 0. A myocardial value that is neither scar nor edema is normal myocardium.

    Args:
        labels: integer (or float, rounded) label map of any shape.
        scheme: the scheme ``labels`` follows (:data:`SCHEMES`).

    Returns:
        int64 array, same shape, phantom values.
    """
    lab = np.rint(np.asarray(labels)).astype(np.int64)
    if scheme is PHANTOM or scheme.name == PHANTOM.name:
        return lab
    out = np.zeros(lab.shape, dtype=np.int64)
    out[_isin(lab, scheme.lv_blood)] = 1
    out[_isin(lab, scheme.myocardium)] = 2
    out[_isin(lab, scheme.rv)] = 3
    out[_isin(lab, scheme.edema)] = 5
    out[_isin(lab, scheme.scar)] = 4
    out[_isin(lab, scheme.mvo)] = 6
    return out


LESION_OF_CLASS: dict[str, str] = {"ischemic": "scar", "non-ischemic": "scar", "edema": "edema", "healthy": "none"}
"""Reference lesion per class: LGE scar, the T2 oedematous zone, or none (healthy)."""


def lesion_kind(label: str | None) -> str:
    """``"scar"``, ``"edema"`` or ``"none"`` for a known class; ``"any"`` (scar or edema) when the class is unknown."""
    return LESION_OF_CLASS.get(str(label or ""), "any")


def lesion_mask(masks: Masks, kind: str) -> NDArray[np.bool_]:
    """THE reference lesion: what the audit scores and the Feature-maps outline draws.

    Args:
        masks: structure masks of one slice (or a stack).
        kind: from :func:`lesion_kind`: ``"scar"`` (LGE scar incl. MVO), ``"edema"``
            (the whole oedematous zone on T2: edema plus scar), ``"none"`` (empty) or
            ``"any"`` (scar or edema, for a case of unknown class).

    Returns:
        bool mask, the shape of ``masks``.
    """
    if kind == "scar":
        return masks.scar.copy()
    if kind in ("edema", "any"):
        return masks.edema | masks.scar
    if kind == "none":
        return np.zeros(masks.myocardium.shape, dtype=bool)
    raise ValueError(f"unknown lesion kind {kind!r}")


def _isin(labels: NDArray[Any], values: Sequence[int]) -> NDArray[np.bool_]:
    return np.isin(labels, np.asarray(values, dtype=np.int64)) if values else np.zeros(labels.shape, dtype=bool)


def masks_from_labels(
    labels: NDArray[Any], scheme: LabelScheme = PHANTOM, *, edema_extent: NDArray[Any] | None = None
) -> Masks:
    """Structure masks of a label map.

    Args:
        labels: integer label map ``[rows, cols]`` or ``[slice, rows, cols]``
            (floats from NIfTI are rounded).
        scheme: how values map to structures.
        edema_extent: optional boolean full edema extent (phantom ``<uid>__edema``);
            replaces the label-derived edema mask.

    Returns:
        :class:`Masks`.
    """
    lab = np.rint(np.asarray(labels)).astype(np.int64)
    edema = _isin(lab, scheme.edema)
    if edema_extent is not None:
        ext = np.asarray(edema_extent, dtype=bool)
        if ext.shape != lab.shape:
            raise ValueError(f"edema extent {ext.shape} does not match labels {lab.shape}")
        edema = ext
    return Masks(
        myocardium=_isin(lab, scheme.myocardium),
        lv_blood=_isin(lab, scheme.lv_blood),
        rv=_isin(lab, scheme.rv),
        scar=_isin(lab, scheme.scar),
        edema=edema,
    )


def polygon_mask(xy: NDArray[Any], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Pixels whose centre lies inside a closed polygon.

    Args:
        xy: ``(n, 2)`` vertices as ``(x, y)`` = ``(col, row)`` pixel coordinates
            (the Sunnybrook contour convention).
        shape: ``(rows, cols)``.

    Returns:
        bool ``[rows, cols]``.
    """
    from matplotlib.path import Path

    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if pts.shape[0] < 3:
        return np.zeros(shape, dtype=bool)
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    inside = Path(pts).contains_points(np.stack([cc.ravel(), rr.ravel()], axis=1))
    return inside.reshape(shape)


def myocardium_from_contours(
    endo_xy: NDArray[Any], epi_xy: NDArray[Any], shape: tuple[int, int]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Myocardium and LV blood masks from endocardial and epicardial contours.

    Args:
        endo_xy: ``(n, 2)`` endocardial contour, ``(x, y)`` pixels.
        epi_xy: ``(m, 2)`` epicardial contour, ``(x, y)`` pixels.
        shape: ``(rows, cols)``.

    Returns:
        ``(myocardium, lv_blood)`` bool ``[rows, cols]``.
    """
    blood = polygon_mask(endo_xy, shape)
    epi = polygon_mask(epi_xy, shape)
    return epi & ~blood, blood


def read_contour_txt(path: Any) -> NDArray[np.float64]:
    """Read a Sunnybrook-style contour file (one ``x y`` pair per line) as ``(n, 2)`` float64."""
    return np.loadtxt(path, dtype=np.float64).reshape(-1, 2)


def labels_from_stack(stack: Any, frame: int = 0) -> NDArray[np.int64]:
    """Integer label volume ``[slice, rows, cols]`` of a mask :class:`~deepoxymap.case.Stack`.

    Works for label maps loaded by ``deepoxymap.io`` from NIfTI or DICOM
    (``Role.MASK``) and for the phantom's truth stacks (``Case.masks``).
    """
    data = np.asarray(stack.data)
    if data.ndim != 4:
        raise ValueError(f"expected stack data [slice, frame, row, col], got {data.shape}")
    return np.rint(data[:, min(frame, data.shape[1] - 1)]).astype(np.int64)
