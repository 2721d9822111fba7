"""Cohort audit for the page: one call of the core audit, arranged for display.

Agreement figures, predictions and probabilities all come from one
:func:`deepoxymap.audit.audit_manifest` run (thresholds chosen on validation
subjects, or fixed for a small cohort, by :func:`deepoxymap.audit.plan_subjects`);
the confusion matrix and the one-vs-rest ROC from :mod:`deepoxymap.model.metrics`
on the run's in-memory probabilities. Nothing here computes a metric.

Which cohorts the page may audit: only those registered in the settings
(:meth:`deepoxymap.config.Settings.cohort_manifests`: demo, study and the
``cohorts`` table) and cohort zips the user uploads (:func:`extract_cohort_zip`),
never a free-form path on the server's disk.

An uploaded manifest is screened row by row (:func:`extract_cohort_zip`): a row
with an unknown class, a repeated subject, a path that leaves the upload (``..``,
absolute) or names nothing in the zip is listed with its line and left out; the
other rows are audited. The results download as CSV (:func:`results_csv`), JSON
(:func:`results_json`) and one summary PNG (:func:`results_png`, drawn by
:func:`deepoxymap.audit.figures.audit_summary_png`).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepoxymap import CLASSES
from deepoxymap.audit import AuditConfig, audit_manifest, plan_subjects
from deepoxymap.cohort import GENERATED_PREFIX, SubjectRecord, read_manifest
from deepoxymap.config import Settings, settings
from deepoxymap.errors import ArchiveError, CaseError, DeepOxyMapError, Unavailable
from deepoxymap.io.limits import fmt_bytes
from deepoxymap.io.sources import expand
from deepoxymap.model.metrics import compute_metrics, roc_points
from deepoxymap.ui import modelinfo

Progress = Callable[[int, int, str], None]

SUMMARY_COLUMNS = {
    "class": "class",
    "method": "method",
    "n": "cases",
    "accuracy": "accuracy",
    "pointing": "pointing game",
    "pointing_myo": "pointing (myo)",
    "ebpg": "energy in lesion",
    "ebpg_myo": "energy in lesion (myo)",
    "dice": "Dice",
    "dice_myo": "Dice (myo)",
    "iou": "IoU",
    "kappa_pooled": "segment κ (pooled)",
    "energy_in_myocardium": "energy in myocardium",
    "tau": "threshold",
}

CASE_COLUMNS = ("pointing", "ebpg_myo", "dice", "kappa", "energy_in_myocardium")


@dataclass(frozen=True)
class AuditView:
    """Everything the Cohort audit page shows."""

    manifest: str
    n_cases: int
    model_name: str
    classes: list[str]
    confusion: Any
    roc: dict[str, tuple[Any, Any, float]]
    summary: dict[str, Any]
    agreement: pd.DataFrame | None
    cases: pd.DataFrame
    rows: list[SubjectRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """One line per subject the run could not audit (``"<cohort>, line N: subject S (phase): why"``)."""


def registered_cohorts(config: Settings | None = None) -> dict[str, Path]:
    """The cohorts this server may audit from its own disk, by name (those whose manifest exists)."""
    return (config or settings()).cohort_manifests()


def default_cohort(cohorts: dict[str, Path]) -> str | None:
    """The registered cohort the model was trained on (its test split is audited), else ``study``, else the first."""
    if not cohorts:
        return None
    card = modelinfo.read_card() or {}
    recorded = (card.get("training") or {}).get("manifest")
    if recorded:
        target = Path(recorded).resolve()
        for name, path in cohorts.items():
            if path.resolve() == target:
                return name
    return "study" if "study" in cohorts else next(iter(cohorts))


MANIFEST_NAME = "manifest.csv"
_DUPLICATE = re.compile(r" \[\d+\]$")


@dataclass
class CohortUpload:
    """An uploaded cohort zip, extracted into a temporary folder of this session.

    The folder is removed when the object is garbage-collected (the session ends or
    another upload replaces it), at interpreter exit, or by :meth:`remove`.

    Attributes:
        name: the zip's file name (display only).
        key: identifies the upload (name, size, upload id) so a rerun does not extract it again.
        root: the temporary folder.
        manifest: the manifest to audit: ``manifest.csv`` inside it, or, when rows were left out,
            a screened copy beside it (:data:`SCREENED_NAME`) holding only the good rows.
        n_subjects: rows of the manifest that will be audited.
        problems: info lines from the zip reader (auxiliary files ignored).
        rejected: one line per manifest row left out (``"<zip>:manifest.csv, line N: <why>"``).
        lines: line of each row of :attr:`manifest` -> its line in the uploaded ``manifest.csv``.
    """

    name: str
    key: tuple[Any, ...]
    root: Path
    manifest: Path
    n_subjects: int
    problems: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    lines: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.root), True)

    def remove(self) -> None:
        """Delete the temporary folder now."""
        self._finalizer()

    @property
    def present(self) -> bool:
        """Whether the extracted files are still there."""
        return self.manifest.is_file()


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _find_manifest(root: Path) -> Path:
    """The shallowest ``manifest.csv`` in the extracted tree (the zip root or one folder down, typically)."""
    found = sorted(root.rglob(MANIFEST_NAME), key=lambda p: (len(p.relative_to(root).parts), str(p)))
    if not found:
        raise CaseError(
            f"the zip holds no {MANIFEST_NAME}",
            hint="zip the cohort folder: manifest.csv (subject, class, path) beside the subject folders",
        )
    depth = len(found[0].relative_to(root).parts)
    same = [p for p in found if len(p.relative_to(root).parts) == depth]
    if len(same) > 1:
        names = ", ".join(str(p.relative_to(root)) for p in same[:4])
        raise CaseError(f"the zip holds more than one {MANIFEST_NAME} at the same level ({names})")
    return found[0]


def _row_problem(r: SubjectRecord, root: Path) -> str | None:
    """Why one row of an uploaded manifest cannot be audited (its paths leave the upload or are missing), or ``None``."""
    for what, path in [("path", r.path), *((f"mask_{k}", v) for k, v in r.masks.items())]:
        if str(path).startswith(GENERATED_PREFIX):
            return (
                f"subject {r.subject}: {what} {str(path)!r} renders a phantom on the server, which an uploaded "
                "cohort may not ask for (put the generated subject folder in the zip)"
            )
        if not _inside(path, root):
            return (
                f"subject {r.subject}: {what} points outside the uploaded cohort "
                "(use paths relative to manifest.csv inside the zip, without '..' or a leading '/')"
            )
        if not path.exists():
            return f"subject {r.subject}: {what} {path.relative_to(root).as_posix()!r} is not in the zip"
    return None


SCREENED_NAME = ".deepoxymap-screened-manifest.csv"
"""The screened copy of an uploaded manifest (only its good rows), written beside it."""
MAX_REJECTED = 50
"""More bad rows than this refuse the whole upload (the manifest is likely not a cohort manifest)."""
_LINE = re.compile(r", line (\d+)$")


def _write_rows(path: Path, header: list[str], rows: Sequence[list[str]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _screen_manifest(
    manifest: Path, root: Path, shown: str
) -> tuple[Path, list[SubjectRecord], list[str], dict[int, int]]:
    """Parse an uploaded manifest row by row: bad rows are listed (naming their line) and left out.

    Every row goes through :func:`deepoxymap.cohort.read_manifest` (the one manifest parser); a row
    it refuses is dropped and the rest parsed again. Rows whose paths leave the upload or are missing
    are dropped too. When rows were dropped, the good ones are written to :data:`SCREENED_NAME`
    beside ``manifest`` (so relative paths resolve the same) and that file is returned.

    Returns:
        ``(manifest to audit, its records, rejected lines, its line -> line in the upload)``.

    Raises:
        CaseError: a problem with the whole file (no header, missing columns), no good row,
            or more than :data:`MAX_REJECTED` bad rows; the message names the manifest in the zip.
    """
    with manifest.open(newline="") as fh:
        table = [row for row in csv.reader(fh) if row]  # DictReader skips blank rows too: same line numbers
    if not table:
        raise CaseError("manifest is empty", source=shown)
    header, kept = table[0], list(enumerate(table[1:], start=2))
    rejected: dict[int, str] = {}
    screened = manifest.with_name(SCREENED_NAME)

    def refuse_all(why: str) -> CaseError:
        listed = "; ".join(f"{shown}, line {n}: {m}" for n, m in sorted(rejected.items())[:3])
        more = f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
        return CaseError(f"{why} ({listed}{more})" if rejected else why)

    while True:
        if not kept:
            raise refuse_all(f"no row of {shown} can be audited")
        if len(rejected) > MAX_REJECTED:
            raise refuse_all(f"more than {MAX_REJECTED} rows of {shown} are bad")
        _write_rows(screened, header, [row for _, row in kept])
        try:
            records = read_manifest(screened)
        except CaseError as exc:
            m = _LINE.search(exc.source or "")
            if m is None:  # the whole file (columns): nothing to leave out
                raise CaseError(exc.message, source=shown, hint=exc.hint) from None
            line, _ = kept.pop(int(m.group(1)) - 2)
            rejected[line] = exc.message
            continue
        bad = [(i, why) for i, r in enumerate(records) if (why := _row_problem(r, root)) is not None]
        if not bad:
            break
        for i, why in reversed(bad):
            line, _ = kept.pop(i)
            rejected[line] = why
    lines = {i: line for i, (line, _) in enumerate(kept, start=2)}
    if not rejected:
        screened.unlink()
        screened = manifest
    return screened, records, [f"{shown}, line {n}: {m}" for n, m in sorted(rejected.items())], lines


_NESTED = "inside a zip are not opened"


def _member_bytes(archive: bytes, member: str) -> bytes:
    """One member of ``archive`` that the loader's reader already admitted, read at most to its declared size."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        info = zf.getinfo(member)
        with zf.open(info) as fh:
            blob = fh.read(info.file_size + 1)
    if len(blob) != info.file_size:
        raise ArchiveError("zip member is larger than its header declares (possible zip bomb)", source=member)
    return blob


def extract_cohort_zip(
    name: str, data: bytes, *, key: tuple[Any, ...] = (), config: Settings | None = None
) -> CohortUpload:
    """Unpack an uploaded cohort zip (``manifest.csv`` plus subject folders) into a new temporary folder.

    Members are read by the loader's zip reader (:func:`deepoxymap.io.sources.expand`), so every
    upload limit and zip-safety check of the loader applies (file count, total bytes, compression
    ratio per member and per archive, unsafe or encrypted members, nested zips). Any member it
    rejects rejects the whole cohort: an audit must not run on a silently incomplete cohort.
    The zip itself may be at most ``max_upload_bytes`` (as may its expanded members, together).

    The manifest is screened row by row (:func:`_screen_manifest`): a row with an unknown class, a
    repeated subject, a subject or mask path outside the upload (``..``, absolute) or missing from
    it is listed in :attr:`CohortUpload.rejected` with its line, and the other rows are audited.

    Returns:
        The extracted cohort; its folder lives as long as the returned object.

    Raises:
        ArchiveError: not a zip, too large, a member rejected, a limit reached or a name repeated.
        CaseError: no (or an ambiguous) ``manifest.csv``, a manifest without the required columns,
            or no row that can be audited (the message lists the first bad rows).
    """
    cfg = config or settings()
    if not data[:4] == b"PK\x03\x04":
        raise ArchiveError("not a zip archive", source=name, hint="upload the cohort as one .zip file")
    if len(data) > cfg.max_upload_bytes:
        raise ArchiveError(
            f"the zip is {fmt_bytes(len(data))}, over the upload limit of {fmt_bytes(cfg.max_upload_bytes)}",
            source=name,
            hint="raise max_upload_bytes (DEEPOXYMAP_MAX_UPLOAD_BYTES) or audit a smaller cohort",
        )
    found = expand([(name, data)], cfg)
    prefix = f"{name}:"
    # NumPy label archives (a generated subject's truth/labels.npz) are zip files themselves: the
    # reader admits them through every size limit, then declines to open them as archives. They
    # are kept as files (never opened here), read again at most at the size the reader admitted.
    npz = [n for n, e, sev in found.problems if sev == "error" and _NESTED in str(e) and n.lower().endswith(".npz")]
    errors = [(n, e) for n, e, sev in found.problems if sev == "error" and n not in npz]
    if errors:
        lines = "; ".join(str(e) for _, e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ArchiveError(f"the cohort zip cannot be used: {lines}{more}", source=name)
    if not found.entries:
        raise ArchiveError("the zip holds no files", source=name)
    members = [(e.name.removeprefix(prefix), e.read) for e in found.entries]
    members += [(n.removeprefix(prefix), functools.partial(_member_bytes, data, n.removeprefix(prefix))) for n in npz]
    root = Path(tempfile.mkdtemp(prefix="deepoxymap-cohort-")).resolve()
    try:
        for rel, read in sorted(members, key=lambda m: m[0]):
            if _DUPLICATE.search(rel):
                raise ArchiveError(f"{_DUPLICATE.sub('', rel)!r} appears more than once in the zip", source=name)
            target = root / rel
            if not _inside(target, root):  # the reader already refuses such names; checked again before writing
                raise ArchiveError(f"member {rel!r} points outside the archive", source=name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(read())
        found_manifest = _find_manifest(root)
        shown = f"{name}:{found_manifest.relative_to(root).as_posix()}"
        manifest, records, rejected, line_map = _screen_manifest(found_manifest, root, shown)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    notes = [str(e) for _, e, sev in found.problems if sev != "error"]
    return CohortUpload(name, key or (name, len(data)), root, manifest, len(records), notes, rejected, line_map)


def _subjects(manifest: Path, rows: Sequence[SubjectRecord], card: dict[str, Any], limit: int) -> str | list[str]:
    """Who is scored: the core policy (``"all"``: every subject not held out for validation, and not in the
    card's training split when this is the manifest it was trained on); at most ``limit`` of them."""
    if not limit:
        return "all"
    plan = plan_subjects(rows, card, subjects="all", manifest=manifest)
    return [r.subject for r in plan.test][:limit]


def _renamed(exc: DeepOxyMapError, manifest: Path, label: str, lines: Mapping[int, int]) -> DeepOxyMapError:
    """``exc`` with the temporary folder replaced by the cohort's name, and (in its source) the screened
    manifest's line numbers by those of the user's file."""

    def unpath(text: str) -> str:
        return text.replace(str(manifest.parent) + "/", "").replace(str(manifest), label)

    def reline(text: str) -> str:
        return re.sub(r"\bline (\d+)", lambda m: f"line {lines.get(int(m.group(1)), int(m.group(1)))}", text)

    if not lines and str(manifest.parent) not in f"{exc.source} {exc.message}":
        return exc
    source = reline(unpath(exc.source)) if exc.source else exc.source
    return type(exc)(unpath(exc.message), source=source, hint=exc.hint)


_FAILED_NOTE = "subjects failed and are left out of the figures"
_ROW_LEAD = re.compile(r"^(line \d+, )?subject [^:]+: ")


def _failed_lines(
    failed: Sequence[Mapping[str, Any]], manifest: Path, label: str, lines: Mapping[int, int]
) -> list[str]:
    """The run's failed subjects (:attr:`deepoxymap.audit.AuditResult.failed`) as lines naming the user's row."""
    out = []
    for f in failed:
        line = int(f.get("line") or 0)
        error = _ROW_LEAD.sub("", str(f.get("error", "")))
        error = error.replace(str(manifest.parent) + "/", "").replace(str(manifest), label)
        where = f"{label}, line {lines.get(line, line)}" if line else label
        out.append(f"{where}: subject {f.get('subject')} ({f.get('phase', 'test')}): {error}")
    return out


def run_cohort_audit(
    manifest: Path,
    methods: Sequence[str],
    limit: int,
    progress: Progress,
    *,
    label: str | None = None,
    lines: Mapping[int, int] | None = None,
) -> AuditView:
    """Agreement per method and classification figures over a manifest; ``progress(done, total, label)``.

    ``label`` names the cohort in the results (default: the manifest path), e.g. the uploaded zip's name
    instead of its temporary folder. ``lines`` maps the manifest's line numbers to those of the file the
    user gave (a screened upload, :attr:`CohortUpload.lines`), so an error names the user's line.

    ``progress`` runs in the script thread after every case: a Streamlit rerun raised there (the page's
    Cancel button) stops the audit at that case.
    """
    loaded = modelinfo.loaded_model()
    rows = read_manifest(manifest)
    card = dict(loaded.card or {})
    by_subject = {r.subject: r for r in rows}
    classes = list(loaded.classes or CLASSES)
    try:
        res = audit_manifest(
            manifest,
            loaded,
            AuditConfig(methods=tuple(methods), sanity_cases=0, bullseyes=False),
            subjects=_subjects(manifest, rows, card, limit),
            progress=lambda done, total, msg: progress(done, total, f"· {msg}"),
        )
    except DeepOxyMapError as exc:
        raise _renamed(exc, manifest, label or str(manifest), lines or {}) from None
    shown = label or str(manifest)
    failed = _failed_lines(res.failed, manifest, shown, lines or {})
    if not res.subjects:
        why = ("; ".join(failed[:3]) + (f" (and {len(failed) - 3} more)" if len(failed) > 3 else "")) or "no case"
        raise Unavailable(f"No case of this manifest could be audited: {why}")
    agree = pd.DataFrame(res.per_case)
    table: list[dict[str, Any]] = []
    for i, s in enumerate(res.subjects):
        row = by_subject[s]
        entry: dict[str, Any] = {"subject": s, "reference": row.label, "subtype": row.subtype, "site": row.site}
        entry["model call"] = res.calls[i]
        entry["correct"] = res.calls[i] == row.label
        for j, c in enumerate(classes):
            entry[f"p({c})"] = round(float(res.probabilities[i, j]), 3)
        for m in methods:
            sel = agree[(agree["subject"] == s) & (agree["method"] == m)]
            for k in CASE_COLUMNS:
                if not sel.empty and k in sel and pd.notna(sel[k].iloc[0]):
                    entry[f"{m}: {k}"] = round(float(sel[k].iloc[0]), 3)
        table.append(entry)
    known = [i for i, lab in enumerate(res.labels) if lab in classes]
    p = res.probabilities[known].astype(float)
    yy = np.asarray([classes.index(res.labels[i]) for i in known])
    met = compute_metrics(yy, p, classes)
    roc: dict[str, tuple[Any, Any, float]] = {}
    for ci, c in enumerate(classes):
        auc = met["auc"].get(c, float("nan"))
        if np.isfinite(auc):
            fpr, tpr = roc_points(yy, p, ci)
            roc[c] = (fpr, tpr, float(auc))
    summary_df = pd.DataFrame(res.summary)
    if not summary_df.empty:
        keep = [c for c in SUMMARY_COLUMNS if c in summary_df.columns]
        summary_df = summary_df[keep].rename(columns=SUMMARY_COLUMNS).round(3)
    notes = [
        n if not n.startswith("manifest: ") else f"manifest: {shown}"
        for n in res.notes
        if not (res.failed and _FAILED_NOTE in n)  # listed as `failed` instead, with the user's lines
    ]
    return AuditView(
        manifest=shown,
        n_cases=len(known),
        model_name=Path(loaded.path).name,
        classes=classes,
        confusion=np.asarray(met["confusion"]),
        roc=roc,
        summary={"accuracy": met["accuracy"], "macro AUC": met["macro_auc"], "ECE": met["ece"]},
        agreement=summary_df if not summary_df.empty else None,
        cases=pd.DataFrame(table),
        rows=[by_subject[s] for s in res.subjects],
        notes=notes,
        failed=failed,
    )


UPLOAD = "dox_audit_upload"
"""Session key of this session's :class:`CohortUpload` (a plain key: it survives page switches)."""
RUNNING = "dox_audit_running"
"""Set while an audit runs; still set on the next run when the user stopped it (Cancel)."""


@dataclass(frozen=True)
class CohortChoice:
    """The cohort the user picked: the manifest to audit, how to name it, and (uploads) its line numbers."""

    manifest: Path
    label: str
    lines: dict[int, int] = field(default_factory=dict)


def cohort_source_ui() -> CohortChoice | None:
    """A registered cohort (selectbox) or an uploaded cohort zip; ``None`` until one is ready.

    Widget keys: ``audit_source`` (radio), ``audit_cohort`` (selectbox), ``audit_zip`` (uploader).
    """
    import streamlit as st

    from deepoxymap.ui import widgets

    cohorts = registered_cohorts()
    options = ["Registered cohort", "Upload a cohort (zip)"]
    source = st.radio(
        "Cohort", options, horizontal=True, key="audit_source", index=0 if cohorts else 1, label_visibility="collapsed"
    )
    if source == options[0]:
        if not cohorts:
            st.info(
                "No cohort is registered on this server: run `make demo`, generate the study cohort, or add a "
                '`[cohorts]` table to `deepoxymap.toml` (`name = "path/to/manifest.csv"`). Or upload a cohort zip.'
            )
            return None
        names = list(cohorts)
        first = default_cohort(cohorts)
        name = st.selectbox(
            "Registered cohort",
            names,
            index=names.index(first) if first in names else 0,
            key="audit_cohort",
            help="Cohorts registered in the settings (demo, study and the [cohorts] table of deepoxymap.toml).",
        )
        return CohortChoice(cohorts[name], f"registered cohort '{name}'")
    up = st.file_uploader(
        "Cohort zip: manifest.csv (subject, class, path; optional subtype, site, field_strength, split, "
        "mask_<name>) beside the subject folders",
        type=["zip"],
        key="audit_zip",
    )
    held: CohortUpload | None = st.session_state.get(UPLOAD)
    if up is not None:
        key = (up.name, up.size, getattr(up, "file_id", None))
        if held is None or held.key != key or not held.present:
            if held is not None:
                held.remove()
                st.session_state.pop(UPLOAD, None)
            with widgets.guard("read the cohort zip"), st.spinner("Unpacking the cohort…"):
                held = extract_cohort_zip(up.name, up.getvalue(), key=key)
                st.session_state[UPLOAD] = held
            held = st.session_state.get(UPLOAD)
            if held is None or held.key != key:
                return None
    if held is None or not held.present:
        return None
    st.caption(
        f"`{held.name}`: {held.n_subjects} subject(s) to audit, unpacked for this session only"
        + (f" · {len(held.problems)} auxiliary file(s) ignored" if held.problems else "")
    )
    if held.rejected:
        with st.container(key="audit_rejected"):
            st.warning(
                f"{len(held.rejected)} row(s) of the manifest are left out; the other {held.n_subjects} are audited:\n"
                + "\n".join(f"- {line}" for line in held.rejected[:20])
                + (f"\n- … and {len(held.rejected) - 20} more" if len(held.rejected) > 20 else "")
            )
    return CohortChoice(held.manifest, f"uploaded cohort '{held.name}'", dict(held.lines))


def _plain(value: Any) -> Any:
    """JSON-ready copy of a value (numpy scalars and arrays, NaN as ``None``)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def results_csv(view: AuditView) -> bytes:
    """The per-case table as CSV (one row per audited subject)."""
    return view.cases.to_csv(index=False).encode()


def results_png(view: AuditView) -> bytes:
    """The summary figure (confusion matrix, ROC per class, agreement per method) as one PNG, drawn server-side."""
    from deepoxymap.audit.figures import audit_summary_png

    title = f"Cohort audit: {view.manifest} · {view.n_cases} cases · model {view.model_name} · research use only"
    return audit_summary_png(view.confusion, view.classes, view.roc, view.agreement, title=title)


def results_json(view: AuditView) -> bytes:
    """Everything the page shows, as one JSON document (cohort, model, summary, confusion, ROC, agreement, cases)."""
    doc = {
        "cohort": view.manifest,
        "model": view.model_name,
        "n_cases": view.n_cases,
        "classes": list(view.classes),
        "summary": view.summary,
        "confusion": {"rows": "reference class", "columns": "model call", "matrix": view.confusion},
        "roc": {c: {"auc": auc, "fpr": fpr, "tpr": tpr} for c, (fpr, tpr, auc) in view.roc.items()},
        "agreement": view.agreement.to_dict("records") if view.agreement is not None else [],
        "cases": view.cases.to_dict("records"),
        "notes": list(view.notes),
        "failed": list(view.failed),
        "research_use_only": True,
    }
    return json.dumps(_plain(doc), indent=2, allow_nan=False).encode()
