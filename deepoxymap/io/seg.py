"""DICOM Segmentation (SEG) reference masks: read with highdicom, mapped onto the matching series by geometry.

The DICOM reader does not decode a SEG file as an image: :func:`read_header`
hands it over as a :class:`~deepoxymap.errors.SegmentationFile` (the parsed
dataset attached). :func:`load` is :func:`deepoxymap.io.load` plus this step:

1. each SEG is read with ``highdicom.seg.Segmentation`` (:func:`read_segmentation`):
   its segments, and for every frame the segment number, the plane position
   (ImagePositionPatient), orientation and pixel spacing, and the mask
   (BINARY as is; FRACTIONAL and LABELMAP thresholded / split per segment);
2. the segments are mapped onto the project's label scheme
   (:data:`deepoxymap.cardiac.masks.PHANTOM`: 1 LV blood, 2 myocardium, 3 RV,
   4 scar, 5 edema, 6 MVO) by their coded Segmented Property Type or, failing
   that, by words in their label (:func:`label_of`); segments of anything else
   (a feature map, a vessel) are ignored and reported;
3. the matching series is found by geometry (:func:`map_onto`): same Frame of
   Reference, parallel planes (within 1 degree), every SEG plane within half a
   slice spacing of one of its slices; a series named in the SEG's
   ReferencedSeriesSequence is preferred. Each plane is resampled (nearest
   neighbour, through patient millimetres) onto that slice's pixel grid, so a
   SEG on a cropped or differently sampled grid still lands right;
4. the result is a ``Series(role=MASK)`` on the partner's exact grid, so
   :func:`deepoxymap.io.build_case` attaches it to ``Case.masks`` under the
   partner's uid, where the audit and the Feature-maps outline read it.

Overlapping segments are merged by priority: blood and RV first, then
myocardium, edema, scar and MVO (a scar pixel is also myocardium in the
phantom scheme).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from deepoxymap.case import Geometry, Role, Series, Stack, resample_slice
from deepoxymap.config import Settings
from deepoxymap.errors import DicomReadError, SegmentationFile
from deepoxymap.io.loader import LoadIssue, LoadResult
from deepoxymap.io.sources import Source

__all__ = [
    "LABEL_PRIORITY",
    "SegFrame",
    "SegMask",
    "attach_segmentations",
    "label_of",
    "load",
    "map_onto",
    "read_segmentation",
    "segmentation_file",
]

LABEL_PRIORITY = (1, 3, 2, 5, 4, 6)
"""Merge order of overlapping segments (later wins): LV blood, RV, myocardium, edema, scar, MVO."""

_CODES = {
    # SNOMED CT / DICOM codes of the segmented property types -> phantom label value
    "74281007": 2,  # Myocardium
    "49848007": 2,  # Left ventricle myocardium
    "116004006": 2,  # Myocardium of left ventricle (older code)
    "87878005": 1,  # Left ventricle (segmented as the cavity)
    "70238003": 1,  # Left ventricle inflow / cavity
    "53085002": 3,  # Right ventricle
    "12402003": 4,  # Scar
    "22298006": 4,  # Myocardial infarction
    "79654002": 5,  # Edema
    "373945007": 4,  # Myocardial infarct scar (foreign code seen in SEG exports)
}
_WORDS = (
    (6, ("mvo", "no-reflow", "noreflow", "microvascular")),
    (5, ("edema", "oedema", "aar", "area at risk")),
    (4, ("scar", "infarct", "lge", "enhancement", "fibrosis")),
    (3, ("rv", "right ventricle", "right ventricular")),
    (2, ("myo", "myocardium", "lv wall", "wall")),
    (1, ("blood", "cavity", "lv pool", "lv", "left ventricle")),
)
_SEG_TOL_DEG = 1.0


def segmentation_file(ds: Dataset, name: str) -> SegmentationFile:
    """The hand-over error :func:`~deepoxymap.io.dicom.read_header` raises for a SEG file (Pixel Data read now).

    Reading the deferred Pixel Data here keeps the dataset usable after the
    loader has moved on to other files (in-memory uploads, zip members).
    """
    with contextlib.suppress(Exception):  # a broken SEG is reported when it is read
        _ = ds.get("PixelData")
    return SegmentationFile(
        "is a DICOM Segmentation (SEG) object: read as a label map with its series by deepoxymap.io.seg",
        source=name,
        hint="load it together with its image series",
        dataset=ds,
    )


def label_of(label: str, property_type: str = "") -> int | None:
    """Phantom label value of one segment from its property type code value, else its label; ``None``: not cardiac."""
    if property_type in _CODES:
        return _CODES[property_type]
    text = label.lower()
    words = set(re.split(r"[^a-z0-9-]+", text))
    for value, keys in _WORDS:
        for k in keys:
            if (" " in k and k in text) or k in words:
                return value
    return None


@dataclass(frozen=True, eq=False)
class SegFrame:
    """One SEG frame.

    Attributes:
        segment: ReferencedSegmentNumber.
        ipp: float64 ``(3,)`` ImagePositionPatient, mm.
        iop: float64 ``(6,)`` ImageOrientationPatient.
        spacing: ``(row, col)`` PixelSpacing, mm.
        mask: bool ``[rows, cols]``.
    """

    segment: int
    ipp: NDArray[np.float64]
    iop: NDArray[np.float64]
    spacing: tuple[float, float]
    mask: NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class SegMask:
    """A SEG object, read.

    Attributes:
        name: file display name.
        sop_uid / series_uid: its SOPInstanceUID and SeriesInstanceUID.
        description: SeriesDescription (or content label).
        frame_of_reference_uid: FrameOfReferenceUID (``None`` if absent).
        referenced_series: SeriesInstanceUIDs of the images it was derived from.
        segments: segment number -> ``(label, property type code value, phantom label value or None)``.
        frames: every frame, in file order.
    """

    name: str
    sop_uid: str
    series_uid: str
    description: str
    frame_of_reference_uid: str | None
    referenced_series: tuple[str, ...]
    segments: dict[int, tuple[str, str, int | None]]
    frames: tuple[SegFrame, ...]


def _floats(v: Any, n: int) -> NDArray[np.float64] | None:
    try:
        a = np.asarray([float(x) for x in v], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a if a.size == n and np.all(np.isfinite(a)) else None


def _group(ds: Dataset, i: int, seq: str) -> Dataset | None:
    """Functional group ``seq`` of frame ``i``: the per-frame item first, then the shared one."""
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per and i < len(per) and per[i].get(seq):
        return per[i].get(seq)[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get(seq):
        return shared[0].get(seq)[0]
    return None


def read_segmentation(ds: Dataset, name: str = "SEG") -> SegMask:
    """Read a SEG dataset (see the module doc, step 1).

    Raises:
        DicomReadError: not a valid SEG (highdicom refuses it), or frames without plane geometry.
    """
    import highdicom as hd

    from deepoxymap.config import settings as current_settings
    from deepoxymap.io.limits import image_too_large

    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        n_values = n_frames * int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        raise DicomReadError("DICOM SEG has unreadable Rows, Columns or NumberOfFrames", source=name) from None
    too_big = image_too_large(
        n_values,
        1,
        current_settings(),
        name=name,
        what=f"{n_frames} frame(s) of {ds.get('Rows')} x {ds.get('Columns')}",
    )
    if too_big is not None:  # bounded before highdicom unpacks the frames
        raise too_big
    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        pixels = np.asarray(seg.pixel_array)
    except Exception as exc:  # noqa: BLE001 - highdicom and pydicom raise many kinds on bad SEGs
        raise DicomReadError(f"DICOM SEG could not be read ({type(exc).__name__}: {exc})", source=name) from None
    n = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = pixels.reshape(n, int(ds.Rows), int(ds.Columns))
    seg_type = str(ds.get("SegmentationType", "BINARY"))
    segments: dict[int, tuple[str, str, int | None]] = {}
    for item in ds.get("SegmentSequence", []):
        num = int(item.SegmentNumber)
        label = str(item.get("SegmentLabel", "") or "")
        ptype = item.get("SegmentedPropertyTypeCodeSequence")
        code = str(ptype[0].CodeValue) if ptype else ""
        segments[num] = (label, code, label_of(label, code))
    frames = []
    max_frac = float(ds.get("MaximumFractionalValue", 255) or 255)
    for i in range(n):
        pos, ori, meas = (
            _group(ds, i, s) for s in ("PlanePositionSequence", "PlaneOrientationSequence", "PixelMeasuresSequence")
        )
        ipp = _floats(pos.get("ImagePositionPatient"), 3) if pos is not None else None
        iop = _floats(ori.get("ImageOrientationPatient"), 6) if ori is not None else None
        ps = _floats(meas.get("PixelSpacing"), 2) if meas is not None else None
        if ipp is None or iop is None or ps is None:
            raise DicomReadError(f"SEG frame {i + 1} has no plane position, orientation or pixel spacing", source=name)
        if seg_type == "LABELMAP":
            for num in segments:
                frames.append(SegFrame(num, ipp, iop, (float(ps[0]), float(ps[1])), pixels[i] == num))
            continue
        ident = _group(ds, i, "SegmentIdentificationSequence")
        num = int(ident.ReferencedSegmentNumber) if ident is not None else 1
        mask = pixels[i] >= 0.5 * max_frac if seg_type == "FRACTIONAL" else pixels[i] > 0
        frames.append(SegFrame(num, ipp, iop, (float(ps[0]), float(ps[1])), np.asarray(mask, dtype=bool)))
    refs = tuple(str(r.SeriesInstanceUID) for r in ds.get("ReferencedSeriesSequence", []) if "SeriesInstanceUID" in r)
    return SegMask(
        name=name,
        sop_uid=str(ds.get("SOPInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        description=str(ds.get("SeriesDescription", "") or ds.get("ContentLabel", "") or "SEG"),
        frame_of_reference_uid=str(ds.FrameOfReferenceUID) if "FrameOfReferenceUID" in ds else None,
        referenced_series=refs,
        segments=segments,
        frames=tuple(frames),
    )


def _frame_geometry(fr: SegFrame) -> Geometry:
    rows, cols = fr.mask.shape
    return Geometry(fr.ipp[None, :], fr.iop[:3], fr.iop[3:], fr.spacing, (rows, cols))


def _slice_of(geom: Geometry, fr: SegFrame) -> int | None:
    """The slice of ``geom`` the frame's plane lies on, or ``None`` (not parallel, or between slices)."""
    normal = np.cross(fr.iop[:3], fr.iop[3:])
    if float(np.degrees(np.arccos(np.clip(abs(float(normal @ geom.normal)), 0.0, 1.0)))) > _SEG_TOL_DEG:
        return None
    d = np.abs(geom.slice_positions - float(fr.ipp @ geom.normal))
    k = int(np.argmin(d))
    tol = 0.5 * (geom.slice_spacing or geom.slice_thickness or 2.0)
    return k if d[k] <= max(tol, 0.1) else None


def _fits(seg: SegMask, s: Series) -> bool:
    g = s.stack.geometry
    if not g.has_geometry or s.role == Role.MASK:
        return False
    if (
        seg.frame_of_reference_uid
        and g.frame_of_reference_uid
        and seg.frame_of_reference_uid != g.frame_of_reference_uid
    ):
        return False
    return all(_slice_of(g, fr) is not None for fr in seg.frames)


def map_onto(seg: SegMask, series: Sequence[Series]) -> tuple[Series, Series, list[str]]:
    """The SEG as a label-map ``Series(role=MASK)`` on the grid of its matching series (module doc, steps 2-4).

    Returns:
        ``(mask series, partner series, notes)``: notes name the segments that were ignored.

    Raises:
        DicomReadError: no segment is a cardiac structure, or no loaded series matches the SEG's geometry.
    """
    notes = [
        f"segment {n} '{lab or code}' is not a cardiac structure: ignored"
        for n, (lab, code, v) in seg.segments.items()
        if v is None
    ]
    if all(v is None for _, _, v in seg.segments.values()):
        raise DicomReadError(
            "no segment of this SEG is a cardiac structure (myocardium, blood pool, RV, scar, edema)", source=seg.name
        )
    fits = [s for s in series if _fits(seg, s)]
    if not fits:
        raise DicomReadError(
            "no loaded image series matches this SEG's geometry (Frame of Reference, plane orientation and positions)",
            source=seg.name,
            hint="load the SEG together with the image series it was drawn on",
        )
    refs = {r.split("#", 1)[0] for r in seg.referenced_series}
    partner = next((s for s in fits if s.uid.split("#", 1)[0] in refs), fits[0])
    g = partner.stack.geometry
    labels = np.zeros((g.n_slices, 1, *g.shape), dtype=np.float32)
    order = {v: i for i, v in enumerate(LABEL_PRIORITY)}
    ranked = sorted(seg.frames, key=lambda fr: order.get(seg.segments.get(fr.segment, ("", "", None))[2] or 0, -1))
    for fr in ranked:
        value = seg.segments.get(fr.segment, ("", "", None))[2]
        k = _slice_of(g, fr)
        if value is None or k is None or not fr.mask.any():
            continue
        on_grid = resample_slice(fr.mask.astype(np.float32), _frame_geometry(fr), 0, g, k, order=0) > 0.5
        labels[k, 0][on_grid] = float(value)
    stack = Stack(
        data=labels,
        geometry=g,
        trigger_times=np.full((g.n_slices, 1), np.nan),
        role=Role.MASK,
        units="label",
        series_uid=seg.series_uid or seg.sop_uid,
        description=seg.description,
        window=(3.0, 6.0),
    )
    mask = Series(
        seg.series_uid or seg.sop_uid,
        stack,
        Role.MASK,
        "dicom-seg: DICOM Segmentation object",
        (seg.name,),
        {"Modality": "SEG", "mapped_onto": partner.uid},
    )
    return mask, partner, notes


def attach_segmentations(result: LoadResult) -> LoadResult:
    """Turn the SEG files a :class:`~deepoxymap.io.LoadResult` handed over into mask series (in place, returned).

    Each ``SegmentationFile`` issue becomes a ``Series(role=MASK)`` on its
    matching series plus an ``"info"`` issue saying where it went; a SEG that
    cannot be used stays an ``"error"`` issue with the reason.
    """
    kept = []
    for issue in result.issues:
        err = issue.error
        if not isinstance(err, SegmentationFile) or not isinstance(err.dataset, Dataset):
            kept.append(issue)
            continue
        try:
            seg = read_segmentation(err.dataset, issue.file)
            mask, partner, notes = map_onto(seg, result.series)
        except DicomReadError as exc:
            kept.append(LoadIssue(issue.file, str(exc), exc, "error"))
            continue
        result.series.append(mask)
        where = partner.description or partner.uid
        info = DicomReadError(
            f"DICOM SEG read as a label map on series '{where}'" + (f" ({'; '.join(notes)})" if notes else ""),
            source=issue.file,
        )
        kept.append(LoadIssue(issue.file, str(info), info, "info"))
    result.issues[:] = kept
    return result


def load(sources: Source | Sequence[Source], *, settings: Settings | None = None) -> LoadResult:
    """:func:`deepoxymap.io.load` with DICOM SEG files read as label maps on their series (:func:`attach_segmentations`).

    Same arguments and result as :func:`deepoxymap.io.load`.
    """
    from deepoxymap.io.loader import load as load_files

    return attach_segmentations(load_files(sources, settings=settings))
