"""Reading a generated subject back: DICOM through :mod:`deepoxymap.io`, plus ground truth."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Case, Role, Stack, Truth
from deepoxymap.errors import PhantomError


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
    case = build_case(res.series, truth["subject"])
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
