"""Step 2: a header -> per-frame placement records.

Single-frame files give one :class:`Frame`; multi-frame files one per frame,
from the per-frame (then shared) functional groups in enhanced files, or from
FrameTimeVector / FrameTime in legacy multi-frame files.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from deepoxymap.io.dicom.header import DicomHeader
from deepoxymap.io.dicom.values import (
    dt_time,
    finite_float,
    first_value,
    float_vec,
    parse_tm,
    tag_number,
    tag_numbers,
    tag_text,
)

__all__ = ["Frame", "frames_of", "functional_group"]


@dataclass
class Frame:
    """One 2D image of a file, with the attributes that place it.

    Attributes:
        file: index of the :class:`DicomHeader`.
        frame: frame index inside the file.
        series_uid: SeriesInstanceUID.
        ipp: ImagePositionPatient (3 floats) mm or ``None``.
        iop: ImageOrientationPatient (6 floats) or ``None``.
        spacing: PixelSpacing ``(row, col)`` mm or ``None``.
        thickness: SliceThickness mm or ``None``.
        rows, cols: image size.
        trigger: TriggerTime ms (NaN if absent).
        acq_time: AcquisitionTime, seconds after midnight, or ``None``.
        instance: InstanceNumber (tie-breaker only).
        slice_location: SliceLocation mm or ``None``.
        rescale: per-frame ``(slope, intercept)`` from functional groups, or ``None``.
        window: ``(centre, width)`` or ``None``.
        acq_number: AcquisitionNumber or 0.
        cardiac_images: CardiacNumberOfImages or 0.
        note: why a present placement attribute was not used (e.g. a PixelSpacing
            that is not positive), for the no-geometry warning; else ``""``.
    """

    file: int
    frame: int
    series_uid: str
    ipp: tuple[float, ...] | None
    iop: tuple[float, ...] | None
    spacing: tuple[float, float] | None
    thickness: float | None
    rows: int
    cols: int
    trigger: float
    acq_time: float | None
    instance: int
    slice_location: float | None
    rescale: tuple[float, float] | None = None
    window: tuple[float, float] | None = None
    acq_number: int = 0
    cardiac_images: int = 0
    note: str = ""


def functional_group(ds: Dataset, index: int, seq: str) -> Dataset | None:
    """Functional-group macro ``seq`` for frame ``index`` (per-frame first, then shared)."""
    for groups, idx in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        g = ds.get(groups)
        if g is not None and len(g) > idx:
            item = g[idx].get(seq)
            if item is not None and len(item):
                return item[0]
    return None


class _Groups:
    """The functional groups of one enhanced file, looked up once (:func:`functional_group` for every frame).

    The two sequences are fetched once per file and the shared macros once per
    macro, so a file of N frames costs N item lookups per macro, not 2 N
    data-set lookups.
    """

    def __init__(self, ds: Dataset) -> None:
        self.per = ds.get("PerFrameFunctionalGroupsSequence")
        shared = ds.get("SharedFunctionalGroupsSequence")
        self.shared = shared[0] if shared is not None and len(shared) else None
        self._shared_macros: dict[str, Dataset | None] = {}

    def item(self, index: int) -> Dataset | None:
        """The per-frame functional groups item of frame ``index``, or ``None``."""
        return self.per[index] if self.per is not None and len(self.per) > index else None

    def macro(self, item: Dataset | None, seq: str) -> Dataset | None:
        """Macro ``seq`` of a per-frame ``item`` (see :meth:`item`), else of the shared groups."""
        tag = _macro_tag(seq)
        if item is not None and tag in item:  # a dict lookup: absent macros cost no keyword search
            got = item[tag].value
            if got is not None and len(got):
                return got[0]
        if seq not in self._shared_macros:
            got = self.shared[tag].value if self.shared is not None and tag in self.shared else None
            self._shared_macros[seq] = got[0] if got is not None and len(got) else None
        return self._shared_macros[seq]


@functools.lru_cache(maxsize=32)
def _macro_tag(keyword: str) -> int:
    """The tag of a functional-group macro keyword."""
    tag = tag_for_keyword(keyword)
    if tag is None:  # pragma: no cover - programming error
        raise KeyError(keyword)
    return int(tag)


def _spacing(sp: tuple[float, ...] | None) -> tuple[float, float] | None:
    """``(row, col)`` mm when both are positive (finite already), else ``None``."""
    if sp is None or min(sp) <= 0:
        return None
    return (float(sp[0]), float(sp[1]))


def _spacing_note(sp: tuple[float, ...] | None) -> str:
    """Why a present PixelSpacing is not used, or ``""``."""
    if sp is not None and min(sp) <= 0:
        return f"PixelSpacing (0028,0030) = {list(sp)} mm is not positive"
    return ""


def _file_frame(ds: Dataset, file_index: int) -> Frame:
    """The record of frame 0 from the file-level attributes (what a single-frame file gives)."""
    uid = tag_text(ds, "SeriesInstanceUID") or ""
    if not uid:
        uid = f"no-series-uid:{tag_text(ds, 'SeriesNumber') or ''}:{tag_text(ds, 'SeriesDescription') or ''}"
    rows, cols = int(ds.Rows), int(ds.Columns)
    ipp = float_vec(tag_numbers(ds, "ImagePositionPatient"), 3)
    iop = float_vec(tag_numbers(ds, "ImageOrientationPatient"), 6)
    sp = float_vec(tag_numbers(ds, "PixelSpacing") or tag_numbers(ds, "ImagerPixelSpacing"), 2)
    thick = tag_number(ds, "SliceThickness")
    if thick is not None and thick <= 0:
        thick = None
    trig = tag_number(ds, "TriggerTime")
    if trig is None:
        trig = finite_float(ds.get("NominalCardiacTriggerDelayTime"))
    acq = (
        parse_tm(tag_text(ds, "AcquisitionTime"))
        or dt_time(tag_text(ds, "AcquisitionDateTime"))
        or parse_tm(tag_text(ds, "ContentTime"))
    )
    inst = int(tag_number(ds, "InstanceNumber") or 0)
    sloc = tag_number(ds, "SliceLocation")
    win = None
    wc, ww = tag_number(ds, "WindowCenter"), tag_number(ds, "WindowWidth")
    if wc is not None and ww is not None and ww > 0:
        win = (wc, ww)
    acq_no = int(tag_number(ds, "AcquisitionNumber") or 0)
    n_card = int(tag_number(ds, "CardiacNumberOfImages") or 0)
    return Frame(
        file_index,
        0,
        uid,
        ipp,
        iop,
        _spacing(sp),
        thick,
        rows,
        cols,
        math.nan if trig is None else trig,
        acq,
        inst,
        sloc,
        None,
        win,
        acq_no,
        n_card,
        _spacing_note(sp),
    )


def _legacy_frame_times(ds: Dataset, n_frames: int) -> list[float] | None:
    """Trigger times (ms) of a legacy multi-frame file from FrameTimeVector or FrameTime, or ``None``."""
    ftv = ds.get("FrameTimeVector")
    ft = finite_float(ds.get("FrameTime"))
    if ftv is not None and len(ftv) == n_frames:
        return list(np.cumsum([float(x) for x in ftv]))
    if ft is not None:
        return [i * ft for i in range(n_frames)]
    return None


def _enhanced_frame(groups: _Groups, i: int, base: Frame) -> Frame:
    """Frame ``i`` of an enhanced file: ``base`` (the file-level record) overridden by its functional groups."""
    ipp, iop, sp, thick, note = base.ipp, base.iop, base.spacing, base.thickness, base.note
    trig, acq, resc, win = base.trigger, base.acq_time, None, base.window
    item = groups.item(i)
    pos = groups.macro(item, "PlanePositionSequence")
    if pos is not None:
        ipp = float_vec(tag_numbers(pos, "ImagePositionPatient"), 3)
    ori = groups.macro(item, "PlaneOrientationSequence")
    if ori is not None:
        iop = float_vec(tag_numbers(ori, "ImageOrientationPatient"), 6)
    meas = groups.macro(item, "PixelMeasuresSequence")
    if meas is not None:
        raw_sp = float_vec(tag_numbers(meas, "PixelSpacing"), 2)
        sp, note = _spacing(raw_sp), _spacing_note(raw_sp)
        thick = tag_number(meas, "SliceThickness") or base.thickness
    card = groups.macro(item, "CardiacSynchronizationSequence")
    if card is not None:
        delay = finite_float(card.get("NominalCardiacTriggerDelayTime"))  # FD: binary, not text
        trig = math.nan if delay is None else delay
    content = groups.macro(item, "FrameContentSequence")
    if content is not None:
        acq = dt_time(tag_text(content, "FrameAcquisitionDateTime")) or base.acq_time
    pvt = groups.macro(item, "PixelValueTransformationSequence")
    if pvt is not None and "RescaleSlope" in pvt:
        resc = (float(pvt.RescaleSlope), float(pvt.get("RescaleIntercept", 0.0)))
    voi = groups.macro(item, "FrameVOILUTSequence")
    if voi is not None:
        c, w = finite_float(first_value(voi.get("WindowCenter"))), finite_float(first_value(voi.get("WindowWidth")))
        win = (c, w) if c is not None and w is not None and w > 0 else base.window
    return dataclasses.replace(
        base,
        frame=i,
        ipp=ipp,
        iop=iop,
        spacing=sp,
        thickness=thick,
        trigger=trig,
        acq_time=acq,
        instance=base.instance * 100000 + i,
        rescale=resc,
        window=win,
        note=note,
    )


def frames_of(header: DicomHeader, file_index: int) -> list[Frame]:
    """Per-frame placement records of one file (see :class:`Frame`).

    Multi-frame files number their frames ``InstanceNumber * 100000 + frame``
    (tie-breaker only).
    """
    ds = header.ds
    base = _file_frame(ds, file_index)
    if header.n_frames == 1:
        return [base]
    if header.enhanced:
        groups = _Groups(ds)
        return [_enhanced_frame(groups, i, base) for i in range(header.n_frames)]
    frame_times = _legacy_frame_times(ds, header.n_frames)
    return [
        dataclasses.replace(
            base,
            frame=i,
            trigger=base.trigger if frame_times is None else frame_times[i],
            instance=base.instance * 100000 + i,
        )
        for i in range(header.n_frames)
    ]
