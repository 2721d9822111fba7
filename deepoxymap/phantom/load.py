"""Reading a generated subject back: DICOM through :mod:`deepoxymap.io`, plus ground truth; or straight from memory.

:func:`load_subject` reads a written subject folder with the app's reader.
:func:`case_of` builds the same :class:`~deepoxymap.case.Case` from a
:func:`~deepoxymap.phantom.generate.simulate_subject` result without writing or
reading a file (training renders its subjects this way): every number the reader
would parse from a DICOM text attribute is parsed from the very strings the writer
writes (:func:`deepoxymap.phantom.dicom.stored_text`), pixels are the stored uint16
values through the modality LUT the reader applies (RescaleSlope/Intercept, float32),
slices go base to apex and frames by trigger time as the reader orders them, roles
and time points come from the reader's own rules (:func:`deepoxymap.io.infer_role`,
:func:`deepoxymap.io.parse_timepoint`), and masks and truth are attached by the code
:func:`load_subject` uses. What differs: ``Series.files`` is empty and ``Series.meta``
holds a few attributes only (no file layout).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Case, Geometry, Role, Series, Stack, Truth, robust_window, sort_base_to_apex
from deepoxymap.errors import PhantomError
from deepoxymap.phantom.dicom import stored_text

if TYPE_CHECKING:
    from deepoxymap.phantom.exam import SeriesResult
    from deepoxymap.phantom.generate import SimulatedSubject


def read_truth(subject_dir: Path | str) -> dict[str, Any]:
    """``truth/truth.json`` of a subject folder."""
    p = Path(subject_dir) / "truth" / "truth.json"
    if not p.is_file():
        raise PhantomError("no truth/truth.json: not a generated subject folder", source=str(subject_dir))
    return dict(json.loads(p.read_text()))


def read_labels(subject_dir: Path | str) -> dict[str, NDArray[Any]]:
    """All arrays of ``truth/labels.npz`` (keys: series uid, ``<uid>__edema``, ``<uid>__cine``)."""
    p = Path(subject_dir) / "truth" / "labels.npz"
    if not p.is_file():
        raise PhantomError("no truth/labels.npz", source=str(subject_dir))
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def load_subject(subject_dir: Path | str) -> Case:
    """Load a generated subject as a :class:`~deepoxymap.case.Case` with its ground truth.

    DICOM is read with :func:`deepoxymap.io.load` (the app's reader), so roles,
    time points and base->apex order are the reader's. Masks are
    ``Stack(role=MASK, units="label")`` on each series' grid keyed by series uid:
    for OS-CMR series every cine frame has its label map (``[slice, frame, row, col]``),
    for LGE/T1/T2 one frame. ``Case.truth`` is a :class:`~deepoxymap.case.Truth`:
    ``record`` is ``truth.json``, ``edema_masks`` uid -> bool ``[slice, row, col]``
    (full edema extent).

    Raises:
        PhantomError: the folder is not a generated subject or the reader
            returned errors for its files.
    """
    from deepoxymap.io import build_case, load

    d = Path(subject_dir)
    truth = read_truth(d)
    labels = read_labels(d)
    res = load([d / "dicom"])
    errs = [i for i in res.issues if getattr(i, "severity", "error") == "error"]
    if errs or not res.series:
        raise PhantomError(
            f"reader could not load the subject's DICOM ({len(errs)} issue(s): {errs[0].message if errs else 'no series'})",
            source=str(d),
        )
    return _with_truth(build_case(res.series, truth["subject"]), truth, labels)


def _with_truth(case: Case, truth: Mapping[str, Any], labels: Mapping[str, NDArray[Any]]) -> Case:
    """``case`` labelled with its class, ground-truth label maps on each series' grid and :class:`Truth`."""
    masks: dict[str, Stack] = {}
    edema: dict[str, NDArray[np.bool_]] = {}
    for s in case.series:
        if s.uid not in labels:
            continue
        lab = labels.get(s.uid + "__cine")
        if lab is None:
            lab = labels[s.uid][:, None]
        masks[s.uid] = Stack(
            data=lab.astype(np.float32),
            geometry=s.stack.geometry,
            trigger_times=s.stack.trigger_times[:, : lab.shape[1]],
            role=Role.MASK,
            units="label",
            series_uid=s.uid,
            description=f"ground truth labels of {s.stack.description}",
        )
        edema[s.uid] = labels[s.uid + "__edema"].astype(bool)
    return dataclasses.replace(case, label=truth["class"], truth=truth_of(truth, edema), masks=masks)


def truth_of(record: Mapping[str, Any], edema_masks: Mapping[str, NDArray[np.bool_]] | None = None) -> Truth:
    """The typed :class:`~deepoxymap.case.Truth` of a generated subject's ``truth.json`` record."""
    es = record.get("es_frame")
    return Truth(
        subtype=str(record.get("subtype") or ""),
        levels=tuple(str(v) for v in record.get("levels", ())),
        es_frame=int(es) if isinstance(es, (int, float)) else None,
        edema_masks=dict(edema_masks or {}),
        record=dict(record),
    )


def read_edema_masks(subject_dir: Path | str) -> dict[str, NDArray[np.bool_]]:
    """Full edema extent per series uid: bool ``[slice, row, col]`` (OS series: end-systolic frame).

    The same arrays as ``load_subject(...).truth.edema_masks``, without reading DICOM.
    """
    labels = read_labels(subject_dir)
    return {k.removesuffix("__edema"): v.astype(bool) for k, v in labels.items() if k.endswith("__edema")}


def series_of(result: SeriesResult) -> Series:
    """One rendered series as the app's reader gets it from the series' DICOM files (module doc).

    Args:
        result: a series of :func:`~deepoxymap.phantom.generate.simulate_subject`, with its
            stored pixels (uint16 ``[slice, frame, row, col]``) and DICOM attributes.

    Returns:
        the :class:`~deepoxymap.case.Series`: float32 ``[slice, frame, row, col]`` values after
        the modality LUT, slices base to apex, frames by trigger time (ms), geometry in mm.

    Raises:
        PhantomError: the result carries no pixels or no DICOM attributes.
    """
    from deepoxymap.io import RoleEvidence, infer_role, parse_timepoint
    from deepoxymap.io.dicom.values import parse_tm

    meta, px = result.meta, result.pixels
    if meta is None or px is None:
        raise PhantomError(f"series {result.key} carries no stored pixels or DICOM attributes")
    txt = stored_text(meta)
    iop = [float(v) for v in txt.iop]
    thickness = float(txt.slice_thickness)
    geom = Geometry(
        np.array([[float(v) for v in ipp] for ipp in txt.ipps], dtype=np.float64),
        np.asarray(iop[:3], dtype=np.float64),
        np.asarray(iop[3:], dtype=np.float64),
        (float(txt.pixel_spacing[0]), float(txt.pixel_spacing[1])),
        (int(px.shape[2]), int(px.shape[3])),
        thickness if thickness > 0 else None,
        meta.for_uid,
    )
    order = sort_base_to_apex(geom)
    trigger = np.array([float(t) for t in txt.trigger], dtype=np.float64)
    frames = np.argsort(trigger, kind="stable")
    stored = px[np.ix_(np.asarray(order, dtype=np.intp), frames)]
    if txt.rescale is None:  # the reader's identity LUT: stored values straight into float32
        data = stored.astype(np.float32)
    else:  # the reader's linear LUT: float64 stored x slope + intercept, then float32
        data = (stored.astype(np.float64) * float(txt.rescale[0]) + float(txt.rescale[1])).astype(np.float32)
    units = "ms" if txt.rescale is not None else ""  # the writer's Real World Value Mapping says ms
    role, reason = infer_role(
        RoleEvidence(
            description=meta.description,
            image_type=tuple(v.upper() for v in meta.image_type),
            inversion_time_ms=None if txt.inversion_time is None else float(txt.inversion_time),
            cardiac_number_of_images=int(txt.cardiac_images) or None,
            n_slices=int(data.shape[0]),
            n_frames=int(data.shape[1]),
            units=units,
        )
    )
    window = (float(txt.window[0]), float(txt.window[1]))
    stack = Stack(
        data=data,
        geometry=geom.subset(order),
        trigger_times=np.broadcast_to(trigger[frames], data.shape[:2]),
        role=role,
        units="ms" if role in (Role.T1_MAP, Role.T2_MAP) else "",
        timepoint=parse_timepoint(meta.description),
        acquisition_time_s=parse_tm(txt.acq_time),
        series_uid=meta.series_uid,
        description=meta.description,
        window=window if window[1] > 0 else robust_window(data),
    )
    info = {
        "Modality": "MR",
        "Manufacturer": meta.extra["manufacturer"],
        "ManufacturerModelName": meta.extra["model"],
        "MagneticFieldStrength": float(meta.extra["field_t"]),
        "SeriesNumber": int(meta.series_number),
        "SeriesDescription": meta.description,
        "source": "deepoxymap.phantom in memory (no DICOM written)",
    }
    return Series(meta.series_uid, stack, role, reason, (), info)


def case_of(sim: SimulatedSubject) -> Case:
    """The :class:`~deepoxymap.case.Case` of a subject rendered in memory, as :func:`load_subject` reads it once written.

    Only the series ``sim`` holds (``simulate_subject(series=...)``); masks on their grids
    (OS-CMR: every cine frame) and :class:`~deepoxymap.case.Truth` (``record`` is the
    ``truth.json`` content) as :func:`load_subject` attaches them. No file is written or read.

    Raises:
        PhantomError: a series carries no pixels or DICOM attributes.
    """
    from deepoxymap.io import build_case
    from deepoxymap.phantom.truth import jsonable

    truth = jsonable(sim.truth)
    labels: dict[str, NDArray[Any]] = {}
    for r in sim.series:
        labels.update(r.labels)
    return _with_truth(build_case([series_of(r) for r in sim.series], truth["subject"]), truth, labels)
