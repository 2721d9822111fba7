"""Cohorts: a manifest row -> a :class:`SubjectRecord` -> a :class:`~deepoxymap.case.Case`.

The one place that reads cohort manifests and turns a subject into a case.
``train``, ``evaluate``, ``predict``, ``audit`` and the app all go through it.

Manifest
--------
A CSV with a header row. Required columns: ``subject`` (unique id), ``class``
(one of :data:`deepoxymap.CLASSES`) and ``path`` (relative to the manifest's
folder, or absolute). Optional: ``subtype``, ``site``, ``field_strength``
(tesla), ``split`` (``train``/``val``/``test``), and any number of reference
mask columns named ``mask_<name>`` (a file path, relative like ``path``).
Extra columns are kept in :attr:`SubjectRecord.extra`.

Kinds of subject
----------------
* **phantom**: a generated subject folder (``truth/truth.json`` beside
  ``dicom/``), loaded with :func:`deepoxymap.phantom.load_subject`: label,
  :class:`~deepoxymap.case.Truth` and label-map masks come from the generator.
* **images**: anything the app's reader takes (a DICOM folder or zip, NIfTI
  files); loaded with :func:`deepoxymap.io.load` and labelled from the manifest.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepoxymap import CLASSES
from deepoxymap.case import Case
from deepoxymap.errors import CaseError

__all__ = [
    "REQUIRED_COLUMNS",
    "SubjectRecord",
    "is_phantom_subject",
    "load_case",
    "load_paths",
    "manifest_sha256",
    "ordered_by_class",
    "read_manifest",
]

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("subject", "class", "path")
"""Columns every manifest must have."""

_KNOWN = {"subject", "class", "path", "subtype", "site", "field_strength", "split"}


@dataclass(frozen=True)
class SubjectRecord:
    """One manifest row, paths resolved.

    Attributes:
        subject: subject id (unique within the manifest).
        label: class name (one of ``deepoxymap.CLASSES``).
        path: absolute path of the subject (folder, zip or image file).
        site: acquisition site (``""`` if absent).
        subtype: class sub-phenotype (``""`` if absent).
        field_strength: tesla (NaN if absent).
        split: ``train``/``val``/``test`` if the manifest says (``""`` if absent).
        masks: reference mask files by name (from the ``mask_<name>`` columns).
        extra: any other columns, verbatim.
        line: line number of the row in the manifest (1 = header), for messages.
    """

    subject: str
    label: str
    path: Path
    site: str = ""
    subtype: str = ""
    field_strength: float = float("nan")
    split: str = ""
    masks: Mapping[str, Path] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)
    line: int = 0

    @property
    def y(self) -> int:
        """Class index in :data:`deepoxymap.CLASSES`."""
        return CLASSES.index(self.label)

    @property
    def kind(self) -> str:
        """``"phantom"`` for a generated subject folder, else ``"images"``."""
        return "phantom" if is_phantom_subject(self.path) else "images"


def _resolve(root: Path, value: str) -> Path:
    p = Path(value)
    return (p if p.is_absolute() else root / p).resolve()


def read_manifest(path: str | os.PathLike[str]) -> list[SubjectRecord]:
    """Parse a cohort manifest (see the module doc).

    Raises:
        CaseError: missing file or columns, unknown class, duplicate subject or an
            unreadable field; the message names the manifest and the line.
    """
    p = Path(path)
    if not p.is_file():
        raise CaseError("manifest not found", source=str(p), hint="generate one with `deepoxymap generate --out DIR`")
    with p.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise CaseError("manifest is empty", source=str(p))
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        raise CaseError(f"manifest lacks columns {missing}", source=str(p))
    out: list[SubjectRecord] = []
    seen: set[str] = set()
    for line, r in enumerate(rows, start=2):
        where = f"{p}, line {line}"
        subject = (r.get("subject") or "").strip()
        if not subject:
            raise CaseError("empty subject id", source=where)
        if r["class"] not in CLASSES:
            raise CaseError(
                f"unknown class {r['class']!r} for subject {subject} (expected one of {CLASSES})", source=where
            )
        if subject in seen:
            raise CaseError(f"duplicate subject {subject}", source=where)
        if not (r.get("path") or "").strip():
            raise CaseError(f"empty path for subject {subject}", source=where)
        seen.add(subject)
        try:
            fs = float(r.get("field_strength") or "nan")
        except ValueError:
            raise CaseError(f"field_strength {r.get('field_strength')!r} is not a number", source=where) from None
        masks = {k.removeprefix("mask_"): _resolve(p.parent, v) for k, v in r.items() if k.startswith("mask_") and v}
        extra = {k: v for k, v in r.items() if k not in _KNOWN and not k.startswith("mask_") and k is not None}
        out.append(
            SubjectRecord(
                subject=subject,
                label=r["class"],
                path=_resolve(p.parent, r["path"]),
                site=r.get("site", "") or "",
                subtype=r.get("subtype", "") or "",
                field_strength=fs,
                split=(r.get("split") or "").strip(),
                masks=masks,
                extra=extra,
                line=line,
            )
        )
    return out


def manifest_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of the manifest file's bytes (recorded in model cards)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ordered_by_class(records: Sequence[SubjectRecord]) -> list[SubjectRecord]:
    """Records ordered as :data:`deepoxymap.CLASSES`, then by subject id."""
    order = {c: i for i, c in enumerate(CLASSES)}
    return sorted(records, key=lambda r: (order.get(r.label, len(order)), r.subject))


def is_phantom_subject(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a generated subject folder (``truth/truth.json`` present)."""
    return (Path(path) / "truth" / "truth.json").is_file()


def load_paths(paths: Sequence[str | os.PathLike[str]], case_id: str | None = None) -> tuple[Case, list[str]]:
    """Images from files, folders, zips or NIfTI -> a case, with the reader's issues as text.

    A single generated subject folder is read with its ground truth
    (:func:`deepoxymap.phantom.load_subject`).

    Returns:
        ``(case, issues)``: ``issues`` are ``"file: message"`` lines for every
        file that was skipped or loaded with a caveat.

    Raises:
        CaseError: no readable image series at all.
        PhantomError: a generated subject folder whose files are broken.
    """
    ps = [Path(p) for p in paths]
    if len(ps) == 1 and is_phantom_subject(ps[0]):
        from deepoxymap.phantom.load import load_subject

        return load_subject(ps[0]), []
    from deepoxymap.io import build_case, load

    res = load([str(p) for p in ps])
    issues = [f"{i.file}: {i.message}" for i in res.issues]
    if not res.series:
        raise CaseError("no readable image series", source=", ".join(map(str, ps)))
    return build_case(res.series, case_id or (ps[0].stem if ps else "case")), issues


def load_case(record: SubjectRecord) -> Case:
    """The :class:`Case` of one manifest row, labelled with the row's class.

    Phantom subjects carry their ground truth; image subjects are read with the
    app's reader (a DICOM sub-folder ``dicom/`` is preferred when present).

    Raises:
        CaseError: the path does not exist or holds no readable image series
            (the message names the manifest line and the subject).
    """
    where = f"line {record.line}, subject {record.subject}" if record.line else record.subject
    if not record.path.exists():
        raise CaseError(f"path {record.path} does not exist", source=where)
    if record.kind == "phantom":
        from deepoxymap.phantom.load import load_subject

        case = load_subject(record.path)
    else:
        src = record.path / "dicom" if (record.path / "dicom").is_dir() else record.path
        try:
            case, issues = load_paths([src], case_id=record.subject)
        except CaseError as exc:
            raise CaseError(exc.message, source=where, hint=exc.hint) from None
        for text in issues:
            log.warning("%s: %s", where, text)
    if case.label != record.label:
        case = dataclasses.replace(case, label=record.label)
    return case
