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
"""

from __future__ import annotations

import functools
import io
import json
import re
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepoxymap import CLASSES
from deepoxymap.audit import AuditConfig, audit_manifest, plan_subjects
from deepoxymap.cohort import SubjectRecord, read_manifest
from deepoxymap.config import Settings, settings
from deepoxymap.errors import ArchiveError, CaseError, Unavailable
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
        manifest: ``manifest.csv`` inside it.
        n_subjects: rows of the manifest.
        problems: info lines from the zip reader (auxiliary files ignored).
    """

    name: str
    key: tuple[Any, ...]
    root: Path
    manifest: Path
    n_subjects: int
    problems: list[str] = field(default_factory=list)

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


def _check_records(records: Sequence[SubjectRecord], root: Path, shown: str) -> None:
    """Every subject path and mask of an uploaded manifest lies inside the upload and exists."""
    for r in records:
        where = f"{shown}, line {r.line}"
        for what, path in [("path", r.path), *((f"mask_{k}", v) for k, v in r.masks.items())]:
            if not _inside(path, root):
                raise CaseError(
                    f"subject {r.subject}: {what} points outside the uploaded cohort",
                    source=where,
                    hint="use paths relative to manifest.csv inside the zip",
                )
            if not path.exists():
                rel = path.relative_to(root).as_posix()
                raise CaseError(f"subject {r.subject}: {what} {rel!r} is not in the zip", source=where)


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
    The manifest's subject and mask paths must stay inside the upload.

    Returns:
        The extracted cohort; its folder lives as long as the returned object.

    Raises:
        ArchiveError: not a zip, a member rejected, a limit reached or a name repeated.
        CaseError: no (or an ambiguous) ``manifest.csv``, a bad manifest, a path outside the upload
            or missing from it.
    """
    cfg = config or settings()
    if not data[:4] == b"PK\x03\x04":
        raise ArchiveError("not a zip archive", source=name, hint="upload the cohort as one .zip file")
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
        manifest = _find_manifest(root)
        shown = f"{name}:{manifest.relative_to(root).as_posix()}"
        try:
            records = read_manifest(manifest)
        except CaseError as exc:
            where = (exc.source or "").replace(str(manifest), shown) or shown
            raise CaseError(exc.message, source=where, hint=exc.hint) from None
        _check_records(records, root, shown)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    notes = [str(e) for _, e, sev in found.problems if sev != "error"]
    return CohortUpload(name, key or (name, len(data)), root, manifest, len(records), notes)


def _subjects(manifest: Path, rows: Sequence[SubjectRecord], card: dict[str, Any], limit: int) -> str | list[str]:
    """Who is scored: the core policy (``"all"``: every subject not held out for validation, and not in the
    card's training split when this is the manifest it was trained on); at most ``limit`` of them."""
    if not limit:
        return "all"
    plan = plan_subjects(rows, card, subjects="all", manifest=manifest)
    return [r.subject for r in plan.test][:limit]


def run_cohort_audit(
    manifest: Path, methods: Sequence[str], limit: int, progress: Progress, *, label: str | None = None
) -> AuditView:
    """Agreement per method and classification figures over a manifest; ``progress(done, total, label)``.

    ``label`` names the cohort in the results (default: the manifest path), e.g. the uploaded zip's name
    instead of its temporary folder.
    """
    loaded = modelinfo.loaded_model()
    rows = read_manifest(manifest)
    card = dict(loaded.card or {})
    by_subject = {r.subject: r for r in rows}
    classes = list(loaded.classes or CLASSES)
    res = audit_manifest(
        manifest,
        loaded,
        AuditConfig(methods=tuple(methods), sanity_cases=0, bullseyes=False),
        subjects=_subjects(manifest, rows, card, limit),
        progress=lambda done, total, msg: progress(done, total, f"· {msg}"),
    )
    if not res.subjects:
        raise Unavailable("No case of this manifest could be audited.")
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
    for k, c in enumerate(classes):
        auc = met["auc"].get(c, float("nan"))
        if np.isfinite(auc):
            fpr, tpr = roc_points(yy, p, k)
            roc[c] = (fpr, tpr, float(auc))
    summary_df = pd.DataFrame(res.summary)
    if not summary_df.empty:
        keep = [c for c in SUMMARY_COLUMNS if c in summary_df.columns]
        summary_df = summary_df[keep].rename(columns=SUMMARY_COLUMNS).round(3)
    shown = label or str(manifest)
    notes = [n if not n.startswith("manifest: ") else f"manifest: {shown}" for n in res.notes]
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
    )


UPLOAD = "dox_audit_upload"
"""Session key of this session's :class:`CohortUpload` (a plain key: it survives page switches)."""
RUNNING = "dox_audit_running"
"""Set while an audit runs; still set on the next run when the user stopped it (Cancel)."""


@dataclass(frozen=True)
class CohortChoice:
    """The cohort the user picked: the manifest to audit and how to name it."""

    manifest: Path
    label: str


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
        f"`{held.name}`: {held.n_subjects} subject(s), unpacked for this session only"
        + (f" · {len(held.problems)} auxiliary file(s) ignored" if held.problems else "")
    )
    return CohortChoice(held.manifest, f"uploaded cohort '{held.name}'")


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
        "research_use_only": True,
    }
    return json.dumps(_plain(doc), indent=2, allow_nan=False).encode()
