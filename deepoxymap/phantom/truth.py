"""Ground truth of one subject: ``truth/labels.npz`` and ``truth/truth.json`` (CONTRACTS.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.phantom.anatomy import LEVELS, N_THETA, THETA, Subject, aha_segment
from deepoxymap.phantom.exam import Exam, SeriesResult

__all__ = ["GENERATOR", "LABEL_VALUES", "jsonable", "segment_truth", "subject_truth", "write_truth"]

GENERATOR = "deepoxymap.phantom 0.3"
LABEL_VALUES = {
    "0": "background",
    "1": "LV blood",
    "2": "LV myocardium",
    "3": "RV blood",
    "4": "scar",
    "5": "edema (no scar)",
    "6": "MVO",
}
"""``labels.npz`` label value -> meaning."""


def segment_truth(subj: Subject) -> dict[str, Any]:
    """AHA segment transmurality of scar and edema per slice level, from the ED bands."""
    out: dict[str, Any] = {"scar": {}, "edema": {}, "mvo": {}}
    for sh in subj.slices:
        seg = aha_segment(THETA, sh.level)
        for name, bands in (("scar", sh.scar), ("edema", sh.edema), ("mvo", sh.mvo)):
            if not bands:
                continue
            cov = np.zeros(N_THETA)
            for b in bands:
                cov = np.maximum(cov, b.coverage())
            for s in np.unique(seg):
                m = seg == s
                c = cov[m]
                extent = float(np.mean(c > 0.02))
                if extent <= 0:
                    continue
                out[name][str(int(s))] = {
                    "extent": round(extent, 3),
                    "transmurality": round(float(np.mean(c[c > 0.02])), 3),
                    "max_transmurality": round(float(c.max()), 3),
                }
    out["scar_segments"] = sorted(int(s) for s, v in out["scar"].items() if v["extent"] >= 0.1)
    out["edema_segments"] = sorted(int(s) for s, v in out["edema"].items() if v["extent"] >= 0.1)
    return out


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON types: numpy -> Python, floats rounded to 5 places, ``_private`` keys dropped."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, float):
        return round(x, 5)
    return x


def subject_truth(
    exam: Exam, os_response: dict[str, Any], es_frame: int, series: Sequence[SeriesResult]
) -> dict[str, Any]:
    """The ``truth.json`` content of a subject (before :func:`jsonable`)."""
    subj, sp = exam.subj, exam.site
    return {
        "subject": subj.subject_id,
        "class": subj.cls,
        "subtype": subj.subtype,
        "site": subj.site,
        "field_strength": sp.field_t,
        "seed": int(exam.seed),
        "index": int(exam.index),
        "generator": GENERATOR,
        "levels": list(LEVELS),
        "slice_order": "base->apex (labels.npz slices and DICOM IM_<slice> numbering)",
        "label_values": dict(LABEL_VALUES),
        "aha_convention": "septal-midpoint anchored (RV centre = septal mid-point); insertion points ~ +-60 deg",
        "anatomy": subj.params,
        "body": subj.body,
        "scanner": exam.scan,
        "orientation": exam.orientation,
        "os_response": {k: v for k, v in os_response.items() if not k.startswith("_")},
        "es_frame": es_frame,
        "segments": segment_truth(subj),
        "series": {s.key: s.truth for s in series},
    }


def write_truth(truth_dir: Path, series: Sequence[SeriesResult], truth: dict[str, Any]) -> None:
    """Write ``labels.npz`` (every series' members, in series order) and ``truth.json``."""
    labels: dict[str, NDArray[Any]] = {}
    for s in series:
        labels.update(s.labels)
    np.savez_compressed(truth_dir / "labels.npz", allow_pickle=False, **labels)
    (truth_dir / "truth.json").write_text(json.dumps(jsonable(truth), indent=1))
