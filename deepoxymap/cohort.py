"""Cohorts: a manifest row -> a :class:`SubjectRecord` -> a :class:`~deepoxymap.case.Case`.

The one place that reads cohort manifests and turns a subject into a case.
``train``, ``evaluate``, ``predict``, ``audit`` and the app all go through it.

Manifest
--------
A CSV with a header row. Required columns: ``subject`` (unique id), ``class``
(one of :data:`deepoxymap.CLASSES`) and ``path`` (relative to the manifest's
folder, or absolute). Optional: ``subtype``, ``site``, ``field_strength``
(tesla), ``split`` (``train``/``val``/``test``), ``role`` (the role of image
series whose files cannot tell, e.g. NIfTI: ``cine``, ``os-cmr``, ``lge``,
``t1-map``, ``t2-map``), ``labels`` (the label scheme of the mask columns:
``phantom`` (default), ``emidec`` or ``cinemyops``, see
:data:`deepoxymap.cardiac.masks.SCHEMES`), and reference mask columns named
``mask_<name>`` (paths, relative like ``path``):

* ``mask_contours``: a Sunnybrook-style contour folder (``i-contours/``,
  ``o-contours/``), rasterised onto the subject's cine series;
* any other ``mask_<name>``: a label map (NIfTI file or folder, or DICOM) on
  the grid of one of the subject's image series; its values are recoded from
  the ``labels`` scheme to the phantom scheme (0 background, 1 LV blood,
  2 myocardium, 3 RV, 4 scar, 5 edema, 6 MVO) that every downstream part reads.

Extra columns are kept in :attr:`SubjectRecord.extra`.

Kinds of subject
----------------
* **phantom**: a generated subject folder (``truth/truth.json`` beside
  ``dicom/``), loaded with :func:`deepoxymap.phantom.load_subject`: label,
  :class:`~deepoxymap.case.Truth` and label-map masks come from the generator.
* **images**: anything the app's reader takes (a DICOM folder or zip, NIfTI
  files); loaded with :func:`deepoxymap.io.load` and labelled from the manifest.
* **generated**: ``path = generate:<cohort seed>:<index>``, rendered on demand by
  the phantom: by default the whole subject written to a temporary folder and read
  back like a phantom subject; with ``load_case(record, os_timepoints=...)`` (training)
  only those OS-CMR series, in memory (:func:`deepoxymap.phantom.load.case_of`: the
  same pixels, geometry and times as the round trip, no file).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepoxymap import CLASSES
from deepoxymap.cardiac.masks import SCHEMES, to_phantom_labels
from deepoxymap.case import Case, Role, Series
from deepoxymap.errors import CaseError, DeepOxyMapError

__all__ = [
    "REQUIRED_COLUMNS",
    "RowError",
    "SubjectRecord",
    "is_phantom_subject",
    "load_case",
    "load_paths",
    "manifest_sha256",
    "ordered_by_class",
    "read_manifest",
    "read_manifest_rows",
]

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("subject", "class", "path")
"""Columns every manifest must have."""

_KNOWN = {"subject", "class", "path", "subtype", "site", "field_strength", "split", "role", "labels"}


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
        role: role given to image series the reader could not classify (``""``: none).
        labels: label scheme of the mask files (``"phantom"`` by default).
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
    role: str = ""
    labels: str = "phantom"
    masks: Mapping[str, Path] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)
    line: int = 0

    @property
    def y(self) -> int:
        """Class index in :data:`deepoxymap.CLASSES`."""
        return CLASSES.index(self.label)

    @property
    def kind(self) -> str:
        """``"generated"`` (rendered on demand), ``"phantom"`` (a generated subject folder) or ``"images"``."""
        if str(self.path).startswith(GENERATED_PREFIX):
            return "generated"
        return "phantom" if is_phantom_subject(self.path) else "images"


GENERATED_PREFIX = "generate:"
"""``path = generate:<cohort seed>:<index>``: a subject rendered on demand by the phantom (:mod:`deepoxymap.model.synthetic`)."""


def _resolve(root: Path, value: str) -> Path:
    if value.startswith(GENERATED_PREFIX):
        return Path(value)
    p = Path(value)
    return (p if p.is_absolute() else root / p).resolve()


@dataclass(frozen=True)
class RowError:
    """A manifest row that could not be parsed: its ``line`` (1 = header), ``subject`` (may be ``""``) and ``message``."""

    line: int
    subject: str
    message: str


def read_manifest(path: str | os.PathLike[str]) -> list[SubjectRecord]:
    """Parse a cohort manifest (see the module doc); the first bad row stops it.

    Raises:
        CaseError: missing file or columns, unknown class, duplicate subject or an
            unreadable field; the message names the manifest and the line.
    """
    records, errors = read_manifest_rows(path)
    if errors:
        raise CaseError(errors[0].message, source=f"{Path(path)}, line {errors[0].line}")
    return records


def read_manifest_rows(path: str | os.PathLike[str]) -> tuple[list[SubjectRecord], list[RowError]]:
    """Parse a cohort manifest row by row: the good rows, and one :class:`RowError` per bad row.

    The cohort commands use it so that one bad row (unknown class, empty id or path,
    duplicate subject, unknown role or label scheme, unreadable field) is reported while
    the other rows still run.

    Raises:
        CaseError: the file is missing, empty or lacks a required column (nothing can run).
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
    errors: list[RowError] = []
    seen: set[str] = set()
    for line, r in enumerate(rows, start=2):
        subject = (r.get("subject") or "").strip()
        try:
            out.append(_parse_row(p, line, r, subject, seen))
            seen.add(subject)
        except _RowProblem as exc:
            errors.append(RowError(line, subject, str(exc)))
    return out, errors


class _RowProblem(ValueError):
    pass


def _parse_row(p: Path, line: int, r: Mapping[str, str], subject: str, seen: set[str]) -> SubjectRecord:
    if not subject:
        raise _RowProblem("empty subject id")
    if r["class"] not in CLASSES:
        raise _RowProblem(f"unknown class {r['class']!r} for subject {subject} (expected one of {CLASSES})")
    if subject in seen:
        raise _RowProblem(f"duplicate subject {subject}")
    if not (r.get("path") or "").strip():
        raise _RowProblem(f"empty path for subject {subject}")
    try:
        fs = float(r.get("field_strength") or "nan")
    except ValueError:
        raise _RowProblem(f"field_strength {r.get('field_strength')!r} is not a number") from None
    masks = {k.removeprefix("mask_"): _resolve(p.parent, v) for k, v in r.items() if k.startswith("mask_") and v}
    role = (r.get("role") or "").strip()
    if role and role not in {x.value for x in Role}:
        raise _RowProblem(f"unknown role {role!r} (expected one of {[x.value for x in Role]})")
    labels = (r.get("labels") or "phantom").strip()
    if labels not in SCHEMES:
        raise _RowProblem(f"unknown label scheme {labels!r} (expected one of {sorted(SCHEMES)})")
    extra = {k: v for k, v in r.items() if k not in _KNOWN and not k.startswith("mask_") and k is not None}
    return SubjectRecord(
        subject=subject,
        label=r["class"],
        path=_resolve(p.parent, r["path"]),
        site=r.get("site", "") or "",
        subtype=r.get("subtype", "") or "",
        field_strength=fs,
        split=(r.get("split") or "").strip(),
        role=role,
        labels=labels,
        masks=masks,
        extra=extra,
        line=line,
    )


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
    from deepoxymap.io import build_case
    from deepoxymap.io.seg import load  # DICOM SEG files become label maps on their series

    res = load([str(p) for p in ps])
    issues = [f"{i.file}: {i.message}" for i in res.issues]
    if not res.series:
        raise CaseError("no readable image series", source=", ".join(map(str, ps)))
    return build_case(res.series, case_id or (ps[0].stem if ps else "case")), issues


def _with_role(series: list[Series], role: str) -> list[Series]:
    """Series the reader could not classify get the manifest's role."""
    if not role:
        return series
    return [s.with_role(Role(role), "set by the manifest") if s.role == Role.UNKNOWN else s for s in series]


def _mask_series(record: SubjectRecord, name: str, path: Path, images: list[Series], where: str) -> list[Series]:
    """The reference mask of one ``mask_<name>`` column as ``Role.MASK`` series in the phantom scheme."""
    from deepoxymap.io import load

    if not path.exists():
        raise CaseError(f"mask_{name}: {path} does not exist", source=where)
    if name == "contours":
        from deepoxymap.io.contours import load_sunnybrook_contours

        cine = next((s for s in images if s.role in (Role.CINE, Role.OS_CMR)), None)
        if cine is None:
            raise CaseError("mask_contours needs a cine series to draw the contours on", source=where)
        try:
            stack = load_sunnybrook_contours(path, cine)
        except DeepOxyMapError as exc:
            raise CaseError(f"mask_contours: {exc.message}", source=where) from None
        return [Series(uid=f"{cine.uid}.contours", stack=stack, role=Role.MASK, role_reason="mask_contours")]
    res = load([str(path)])
    found = [s for s in res.series if s.role in (Role.MASK, Role.UNKNOWN)]
    if not found:
        why = "; ".join(f"{i.file}: {i.message}" for i in res.issues[:2]) or "no image series"
        raise CaseError(f"mask_{name}: {path} holds no label map ({why})", source=where)
    scheme = SCHEMES[record.labels]
    out = []
    for s in found:
        data = to_phantom_labels(s.stack.data, scheme).astype(np.float32)
        stack = dataclasses.replace(s.stack, data=data, role=Role.MASK, units="label")
        out.append(dataclasses.replace(s, stack=stack, role=Role.MASK, role_reason=f"mask_{name} ({record.labels})"))
    return out


def _load_images(record: SubjectRecord, where: str) -> Case:
    from deepoxymap.io import build_case
    from deepoxymap.io.seg import load  # DICOM SEG files become label maps on their series

    src = record.path / "dicom" if (record.path / "dicom").is_dir() else record.path
    res = load([str(src)])
    for i in res.issues:
        log.warning("%s: %s: %s", where, i.file, i.message)
    images = _with_role([s for s in res.series if s.role != Role.MASK], record.role)
    if not images:
        raise CaseError(f"no readable image series in {src}", source=where)
    masks = [m for name, mp in record.masks.items() for m in _mask_series(record, name, mp, images, where)]
    case = build_case([*images, *[s for s in res.series if s.role == Role.MASK], *masks], record.subject)
    image_uids = {s.uid for s in images}
    for m in masks:
        if not any(uid in image_uids and st is m.stack for uid, st in case.masks.items()):
            raise CaseError(
                f"{m.role_reason}: the label map ({m.stack.data.shape[0]} slices of "
                f"{m.stack.data.shape[2]} x {m.stack.data.shape[3]}) lies on none of the subject's image grids",
                source=where,
            )
    return case


def _generated_seed(record: SubjectRecord, where: str) -> tuple[int, int]:
    """``(cohort seed, index)`` of a ``generate:<seed>:<index>`` row."""
    try:
        _, seed, index = str(record.path).split(":")
        return int(seed), int(index)
    except ValueError:
        raise CaseError(f"generated path {record.path} is not generate:<seed>:<index>", source=where) from None


def _simulate(record: SubjectRecord, where: str, timepoints: Collection[str]) -> Case:
    """Render only the OS-CMR ``timepoints`` of a generated row, in memory (no LGE/T1/T2, no file)."""
    from deepoxymap.errors import PhantomError
    from deepoxymap.phantom.exam import os_series_keys
    from deepoxymap.phantom.generate import simulate_subject
    from deepoxymap.phantom.load import case_of
    from deepoxymap.phantom.params import PhantomParams

    seed_i, index_i = _generated_seed(record, where)
    try:
        keys = os_series_keys(timepoints, PhantomParams())
    except PhantomError as exc:
        raise CaseError(exc.message, source=where, hint=exc.hint) from None
    sim = simulate_subject(
        record.subject, record.label, record.subtype, record.site or "A", seed_i, index_i, series=keys
    )
    return case_of(sim)


def _render(record: SubjectRecord, where: str) -> Case:
    """Render a ``generate:<seed>:<index>`` row to a temporary folder and read it back with the app's loader."""
    import shutil
    import tempfile

    from deepoxymap.phantom.generate import generate_subject
    from deepoxymap.phantom.load import load_subject

    seed_i, index_i = _generated_seed(record, where)
    shm = Path("/dev/shm")
    tmp = Path(tempfile.mkdtemp(prefix="deepoxymap-gen-", dir=shm if shm.is_dir() else None))
    try:
        generate_subject(tmp, record.subject, record.label, record.subtype, record.site or "A", seed_i, index_i)
        case = load_subject(tmp / record.subject)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return case


def load_case(record: SubjectRecord, *, os_timepoints: Collection[str] | None = None) -> Case:
    """The :class:`Case` of one manifest row, labelled with the row's class.

    Phantom subjects carry their ground truth (one provider of reference masks);
    image subjects are read with the app's reader (a DICOM sub-folder ``dicom/``
    is preferred when present), given the row's ``role`` where the files cannot
    tell, and get the row's ``mask_<name>`` label maps recoded to the phantom
    scheme and attached to the image series whose grid they share.

    Args:
        record: the manifest row.
        os_timepoints: generated rows only (ignored for the others): render just these
            OS-CMR manoeuvre time points (``"baseline"``, ``"hv-end"``, ``"bh-start"``,
            ``"bh-end"``), in memory, with their masks and truth: no LGE, T1 or T2 map and
            no file (:func:`deepoxymap.phantom.load.case_of`; what training reads, see
            :func:`deepoxymap.model.data.build_slices`). ``None``: the whole subject,
            written to a temporary folder and read back with the app's loader.

    Raises:
        CaseError: the path does not exist, holds no readable image series, or a
            mask is missing, unreadable or on no image grid (the message names the
            manifest line and the subject).
    """
    where = f"line {record.line}, subject {record.subject}" if record.line else record.subject
    if record.kind == "generated":
        return _render(record, where) if os_timepoints is None else _simulate(record, where, os_timepoints)
    if not record.path.exists():
        raise CaseError(f"path {record.path} does not exist", source=where)
    if record.kind == "phantom":
        from deepoxymap.phantom.load import load_subject

        case = load_subject(record.path)
    else:
        case = _load_images(record, where)
    if case.label != record.label:
        case = dataclasses.replace(case, label=record.label)
    if record.subtype and not case.truth.subtype:
        case = dataclasses.replace(case, truth=dataclasses.replace(case.truth, subtype=record.subtype))
    return case
