"""Loading for the pages: uploads and paths into a case, role overrides, the series table, the demo cohort.

Thin calls into :mod:`deepoxymap.io` and :mod:`deepoxymap.cohort` plus the
presentation of their results; no science lives here.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from deepoxymap import automasks, cohort, io
from deepoxymap.case import Case, Role, Series
from deepoxymap.cohort import SubjectRecord
from deepoxymap.config import settings
from deepoxymap.io import LoadResult
from deepoxymap.ui import inference

__all__ = [
    "ROLE_BY_LABEL",
    "demo_cases",
    "demo_manifest",
    "load_record",
    "load_sources",
    "replace_masks",
    "series_rows",
    "upload_case_id",
    "with_automatic_masks",
    "with_roles",
]


def load_sources(sources: Sequence[Any]) -> LoadResult:
    """:func:`deepoxymap.io.load` on paths or ``(name, bytes)`` pairs, DICOM SEG files read as label maps."""
    from deepoxymap.io import seg

    return seg.load(list(sources))


def upload_case_id(series: Iterable[Series]) -> str:
    """A non-identifying case id for an upload: a short hash of its series UIDs."""
    h = hashlib.sha256("|".join(sorted(s.uid for s in series)).encode()).hexdigest()[:10]
    return f"upload-{h}"


def with_roles(case: Case, series: Sequence[Series], roles: dict[str, Role]) -> tuple[Case, list[Series]]:
    """Rebuild ``case`` after the user changed roles (``roles`` by series uid).

    A case that came with ground truth (demo/cohort) keeps its label, truth and masks.

    Returns:
        ``(case, series)``: the rebuilt case and the full series list with the new roles.
    """
    changed = list(series)
    for uid, role in roles.items():
        changed = io.override_role(changed, uid, role)
    rebuilt = io.build_case(changed, case.case_id)
    if case.masks or case.truth or case.label:
        masks = {**dict(rebuilt.masks), **dict(case.masks)}
        rebuilt = dataclasses.replace(rebuilt, label=case.label, truth=case.truth, masks=masks)
    return rebuilt, changed


_COLUMNS = {
    "role": "role",
    "timepoint": "time point",
    "size": "size (rows x cols)",
    "slices_x_frames": "slices x frames",
    "spacing": "spacing (mm)",
    "description": "description",
    "files": "files",
    "reason": "why this role",
}


def series_rows(series: Sequence[Series]) -> list[dict[str, Any]]:
    """One display row per series (:func:`deepoxymap.io.series_table`): no identifiers, no file paths."""
    rows = []
    for r in io.series_table(list(series)):
        row = {"uid": r["uid"]}
        row.update({label: r.get(key, "") for key, label in _COLUMNS.items()})
        if r.get("geometry") is False and "no geometry" not in str(row["spacing (mm)"]):
            row["spacing (mm)"] = f"{row['spacing (mm)']} (no geometry)"
        rows.append(row)
    return rows


ROLE_BY_LABEL = {r.label: r for r in Role}


def demo_manifest() -> Path:
    """The demo cohort's manifest path (may not exist)."""
    return settings().demo_dir / "manifest.csv"


def demo_cases() -> list[SubjectRecord]:
    """One record per demo case, ordered as :data:`deepoxymap.CLASSES`; empty if not generated.

    The manifest is parsed once per version of the file (its path, size and mtime).
    """
    m = demo_manifest()
    try:
        st_ = m.stat()
    except OSError:
        return []
    return list(_demo_rows(str(m), st_.st_size, st_.st_mtime_ns))


@functools.lru_cache(maxsize=2)
def _demo_rows(path: str, size: int, mtime_ns: int) -> tuple[SubjectRecord, ...]:
    return tuple(cohort.ordered_by_class(cohort.read_manifest(Path(path))))


def load_record(record: SubjectRecord) -> Case:
    """The case of a cohort record (:func:`deepoxymap.cohort.load_case`), loaded once per server process.

    Every session that opens the same demo (or cohort) case gets the same read-only
    :class:`~deepoxymap.case.Case` object: one copy in memory however many sessions hold
    it, one content hash (:func:`deepoxymap.ui.inference.case_key` is memoised per object)
    and no second read from disk. Concurrent openings wait for one read
    (:class:`~deepoxymap.ui.inference.SharedResults`). The key includes the modification
    times of the record's path and of its mask files, so a regenerated case is read again.
    """
    return _RECORDS.get_or_compute(repr(_record_key(record)), "case", lambda: cohort.load_case(record))


def _record_key(record: SubjectRecord) -> tuple[Any, ...]:
    def stamp(p: Any) -> int:
        try:
            return Path(p).stat().st_mtime_ns
        except (OSError, TypeError, ValueError):
            return -1

    masks = tuple(sorted((str(k), str(v), stamp(v)) for k, v in (record.masks or {}).items()))
    return (str(record.path), record.subject, record.label, record.kind, record.role, stamp(record.path), masks)


RECORDS_KEPT = 6
"""Most recently opened record cases kept in memory (the four demo cases fit)."""
_RECORDS = inference.SharedResults(max_cases=RECORDS_KEPT, max_entries=1)


def with_automatic_masks(case: Case) -> tuple[Case, list[str]]:
    """The case with an automatic label map on every image series that has none (:mod:`deepoxymap.automasks`)."""
    return automasks.with_automatic_masks(case)


def replace_masks(case: Case, sources: Sequence[Any], scheme: str = "phantom") -> tuple[Case, list[str]]:
    """Attach the user's own label maps (NIfTI or DICOM files, as paths or ``(name, bytes)``) to ``case``.

    Each map is recoded from ``scheme`` (a :data:`deepoxymap.cardiac.masks.SCHEMES` name) to the
    phantom scheme and attached to the image series whose grid it shares, replacing the
    automatic (or any earlier) map there.

    Returns:
        ``(case, notes)``: the new case and one note per file that was skipped or lies on no image grid.
    """
    from deepoxymap.cardiac.masks import SCHEMES, to_phantom_labels

    if scheme not in SCHEMES:
        raise ValueError(f"unknown label scheme {scheme!r}: one of {sorted(SCHEMES)}")
    res = load_sources(sources)
    notes = [f"{i.file}: {i.message}" for i in res.issues]
    images = [s for s in case.series if s.role != Role.MASK]
    new: list[Series] = []
    for s in res.series:
        data = to_phantom_labels(s.stack.data, SCHEMES[scheme]).astype("float32")
        stack = dataclasses.replace(s.stack, data=data, role=Role.MASK, units="label")
        new.append(dataclasses.replace(s, stack=stack, role=Role.MASK, role_reason=f"label map ({scheme})"))
    if not new and not notes:
        notes.append("the uploaded files hold no label map")
    attached = io.build_case([*images, *new]).masks
    own = {m.uid for m in new}
    masks = dict(case.masks)
    for uid, stack in attached.items():
        if uid in own:
            rows, cols = stack.data.shape[2], stack.data.shape[3]
            notes.append(
                f"label map {stack.description or uid} ({stack.data.shape[0]} slices of {rows} x {cols}) "
                "lies on none of the study's image grids"
            )
        else:
            masks[uid] = stack
    return dataclasses.replace(case, masks=masks), notes
