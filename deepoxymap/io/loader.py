"""The public entry point: :func:`load` anything, get series and a load report."""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepoxymap.case import Case, Role, Series, Stack
from deepoxymap.config import Settings
from deepoxymap.config import settings as current_settings
from deepoxymap.errors import CaseError, DeepOxyMapError, DicomReadError
from deepoxymap.io import dicom
from deepoxymap.io.limits import Budget
from deepoxymap.io.sources import Entry, Source, expand, is_nifti_name

__all__ = [
    "LoadIssue",
    "LoadResult",
    "build_case",
    "format_report",
    "load",
    "override_role",
    "printable_name",
    "series_table",
]

log = logging.getLogger(__name__)

UNACCOUNTED = "was read but ended in no series and no other report line"
"""The message of the safety net in :func:`load` (a loader bug if it ever shows; the fuzz test checks it never does)."""


@dataclass(frozen=True)
class LoadIssue:
    """One problem met while loading.

    Attributes:
        file: display name of the file (or zip member, or series) concerned.
        message: the full sentence (``str(error)``), naming the file.
        error: the :class:`~deepoxymap.errors.DeepOxyMapError` itself.
        severity: ``"error"`` (the file was skipped), ``"warning"`` (loaded
            with a caveat, e.g. no geometry) or ``"info"`` (an auxiliary file
            or duplicate was ignored).
    """

    file: str
    message: str
    error: DeepOxyMapError
    severity: str = "error"


@dataclass
class LoadResult:
    """What :func:`load` found.

    Attributes:
        series: loaded series (DICOM first, then NIfTI), each with one stack.
        issues: every file skipped or loaded with a caveat, with the reason.
        n_files: number of files (or zip members) examined.
    """

    series: list[Series] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)
    n_files: int = 0

    @property
    def errors(self) -> list[LoadIssue]:
        """Issues of severity ``"error"`` (files that were skipped)."""
        return [i for i in self.issues if i.severity == "error"]

    def by_role(self, role: Role) -> list[Series]:
        """Series of one role."""
        return [s for s in self.series if s.role == role]


def _issue(name: str, err: DeepOxyMapError, severity: str = "error") -> LoadIssue:
    return LoadIssue(name, str(err), err, severity)


def load(sources: Source | Iterable[Source], *, settings: Settings | None = None) -> LoadResult:
    """Read DICOM files, folders, zips, uploads and NIfTI into series.

    Args:
        sources: a path (file, folder searched recursively, ``.zip``,
            ``.nii``/``.nii.gz``), an upload ``(name, bytes)``, or an iterable
            of those.
        settings: the limits (``max_upload_files``, ``max_upload_bytes``,
            ``max_zip_ratio``, ``max_archive_ratio``, ``max_image_bytes``, ``max_frames``,
            ``max_frames_per_file``,
            ``max_stack_bytes``, ``max_load_bytes``); defaults to
            :func:`deepoxymap.config.settings`.

    Returns:
        :class:`LoadResult`. Never raises for a bad file: each one becomes a
        :class:`LoadIssue` naming the file and what is wrong, and every good
        file still loads; every file examined ends in a series or in the
        issues. Every input is bounded before it is expanded (see
        :mod:`deepoxymap.io.limits`). DICOM series are split into slices by
        position along the slice normal and into frames by TriggerTime, slices
        ordered base to apex; NIfTI geometry comes from the affine (RAS -> LPS).
    """
    cfg = settings or current_settings()
    budget = Budget(cfg)
    result = LoadResult()
    exp = expand(sources, cfg, budget)
    result.issues.extend(_issue(n, e, sev) for n, e, sev in exp.problems)
    result.n_files = len(exp.entries)
    # Loading creates ~100 small objects per file; pausing the cyclic GC avoids repeated full
    # collections of the (possibly large) host process heap. Nothing here creates cycles.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with dicom.quiet_pydicom():
            _load_dicom_and_nifti(exp.entries, cfg, budget, result)
    finally:
        if gc_was_enabled:
            gc.enable()
    _account_for_every_file(exp.entries, result)
    result.series.sort(key=_series_order)
    return result


def _account_for_every_file(entries: list[Entry], result: LoadResult) -> None:
    """Safety net: an entry in no series and no issue gets an issue (:data:`UNACCOUNTED`)."""
    seen = {f for s in result.series for f in s.files} | {i.file for i in result.issues}
    for e in entries:
        if e.name not in seen:
            log.warning("%s %s", e.name, UNACCOUNTED)
            result.issues.append(_issue(e.name, CaseError(UNACCOUNTED, source=e.name)))


_ROLE_ORDER = {
    r: i for i, r in enumerate([Role.OS_CMR, Role.CINE, Role.LGE, Role.T1_MAP, Role.T2_MAP, Role.MASK, Role.UNKNOWN])
}


def _series_order(s: Series) -> tuple[int, float, str, str]:
    t = s.stack.acquisition_time_s
    return (_ROLE_ORDER.get(s.role, 99), float("inf") if t is None else t, s.description, s.uid)


def _read_headers(entries: list[Entry], cfg: Settings, budget: Budget, result: LoadResult) -> list[dicom.DicomHeader]:
    """Parsed DICOM headers within the frame budget; every other entry becomes an issue."""
    headers: list[dicom.DicomHeader] = []
    for entry in entries:
        try:
            h = dicom.read_header(entry, cfg)
        except dicom.IgnoredFile as exc:
            result.issues.append(_issue(entry.name, exc, "info"))
            continue
        except DicomReadError as exc:
            result.issues.append(_issue(entry.name, exc, "error"))
            continue
        except Exception as exc:  # noqa: BLE001 - nothing may escape for one bad file
            err = DicomReadError(f"could not be read ({type(exc).__name__}: {exc})", source=entry.name)
            result.issues.append(_issue(entry.name, err))
            continue
        refused = budget.take_frames(entry.name, h.n_frames)
        if refused is not None:
            result.issues.append(_issue(entry.name, refused))
            continue
        headers.append(h)
    return headers


def _load_dicom_and_nifti(entries: list[Entry], cfg: Settings, budget: Budget, result: LoadResult) -> None:
    nifti_entries = [e for e in entries if is_nifti_name(e.name)]
    headers = _read_headers([e for e in entries if not is_nifti_name(e.name)], cfg, budget, result)
    try:
        series, problems = dicom.assemble(headers, budget=budget)
    except Exception as exc:  # pragma: no cover - defensive: assemble reports per stack
        log.exception("DICOM assembly failed")
        series = []
        problems = [
            dicom.DicomProblem(h.name, CaseError(f"DICOM assembly failed: {exc}", source=h.name), "error")
            for h in headers
        ]
    result.series.extend(series)
    result.issues.extend(_issue(p.source, p.error, p.severity) for p in problems)
    if nifti_entries:
        from deepoxymap.io import nifti

        n_series, n_problems = nifti.load_entries(nifti_entries, cfg, budget=budget)
        result.series.extend(n_series)
        result.issues.extend(_issue(p[0], p[1], p[2]) for p in n_problems)


def _grid_matches(a: Stack, b: Stack, tol_mm: float = 1.0) -> bool:
    ga, gb = a.geometry, b.geometry
    if ga.shape != gb.shape or ga.n_slices != gb.n_slices:
        return False
    if not (ga.has_geometry and gb.has_geometry):
        return ga.has_geometry == gb.has_geometry
    if abs(float(ga.normal @ gb.normal)) < 0.999:
        return False
    return bool(np.max(np.linalg.norm(ga.slice_origins - gb.slice_origins, axis=1)) <= tol_mm)


def build_case(series: Sequence[Series], case_id: str | None = None) -> Case:
    """Assemble loaded series into a :class:`~deepoxymap.case.Case`.

    Mask series (role ``MASK``) are also attached to ``Case.masks`` under the
    uid of the image series whose grid they share (same slice count, size and
    slice origins within 1 mm); a mask with no such partner is kept under its
    own uid.

    Args:
        series: e.g. ``load(...).series``, possibly after :func:`override_role`.
        case_id: a non-identifying id; defaults to a short hash of the series uids.
    """
    ser = tuple(series)
    if case_id is None:
        h = hashlib.sha1("|".join(sorted(s.uid for s in ser)).encode()).hexdigest()[:10]
        case_id = f"case-{h}"
    masks: dict[str, Stack] = {}
    images = [s for s in ser if s.role != Role.MASK]
    for m in (s for s in ser if s.role == Role.MASK):
        partner = next((s for s in images if _grid_matches(s.stack, m.stack)), None)
        masks[partner.uid if partner else m.uid] = m.stack
    return Case(case_id=case_id, series=ser, masks=masks)


def override_role(series: Sequence[Series], uid: str, role: Role | str, reason: str = "set by user") -> list[Series]:
    """A new list where the series ``uid`` has ``role`` (the user's override).

    Raises:
        CaseError: no series has that uid, or the role name is unknown.
    """
    try:
        r = role if isinstance(role, Role) else Role(role)
    except ValueError as exc:
        raise CaseError(f"unknown role '{role}'", hint=f"one of {[x.value for x in Role]}") from exc
    out = []
    found = False
    for s in series:
        if s.uid == uid:
            s = s.with_role(r, reason)
            if r in (Role.T1_MAP, Role.T2_MAP):
                s = _with_units(s, "ms")
            elif r == Role.MASK:
                s = _with_units(s, "label")
            found = True
        out.append(s)
    if not found:
        raise CaseError(f"no series with uid '{uid}'")
    return out


def _with_units(s: Series, units: str) -> Series:
    import dataclasses

    return dataclasses.replace(s, stack=dataclasses.replace(s.stack, units=units))


def _fmt_spacing(stack: Stack) -> str:
    g = stack.geometry
    r, c = g.pixel_spacing
    sl = g.slice_spacing
    txt = f"{r:.2f} x {c:.2f}"
    if sl is not None:
        txt += f" x {sl:.2f}"
    elif g.slice_thickness:
        txt += f" x ({g.slice_thickness:.2f})"
    return txt + " mm" + ("" if g.has_geometry else " (no geometry)")


def series_table(series: Sequence[Series]) -> list[dict[str, Any]]:
    """One row per series for tables (no patient identifiers).

    Keys: ``uid``, ``role`` (label), ``size`` (``"rows x cols"``), ``slices``,
    ``frames``, ``slices_x_frames``, ``spacing`` (``"row x col x slice mm"``),
    ``description``, ``timepoint``, ``geometry`` (bool), ``files`` (count),
    ``reason`` (the role rule that decided). ``pandas.DataFrame(series_table(s))``
    gives a frame.
    """
    rows = []
    for s in series:
        st = s.stack
        rows.append(
            {
                "uid": s.uid,
                "role": s.role.label,
                "size": f"{st.geometry.shape[0]} x {st.geometry.shape[1]}",
                "slices": st.n_slices,
                "frames": st.n_frames,
                "slices_x_frames": f"{st.n_slices} x {st.n_frames}",
                "spacing": _fmt_spacing(st),
                "description": s.description,
                "timepoint": st.timepoint or "",
                "geometry": st.geometry.has_geometry,
                "files": len(s.files),
                "reason": s.role_reason,
            }
        )
    return rows


def printable_name(text: str) -> str:
    """``text`` safe to print on a terminal: every non-printable character escaped.

    Newlines, tabs, ANSI escape sequences (``ESC``), other control characters,
    bidirectional overrides such as U+202E, zero-width and other format
    characters, line separators and unpaired surrogates (undecodable bytes in
    file names) become ``\\n``, ``\\t``, ``\\x1b``, ``\\u202e``..., so that a file
    name can neither start a new report line nor restyle or reorder the text
    after it. Printable text (any script, spaces) is unchanged.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        else:
            cp = ord(ch)
            out.append(f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}")
    return "".join(out)


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def format_report(result: LoadResult) -> str:
    """Plain-text series table and load report (what ``deepoxymap info`` prints).

    Every cell and message goes through :func:`printable_name`: file names and
    descriptions come from the files and may hold control characters.
    """
    lines = []
    table = [{k: printable_name(str(v)) for k, v in row.items()} for row in series_table(result.series)]
    cols = ["role", "size", "slices_x_frames", "spacing", "description", "reason"]
    heads = ["role", "rows x cols", "slices x frames", "spacing", "description", "role reason"]
    if table:
        widths = [max(len(h), *(len(str(r[c])) for r in table)) for h, c in zip(heads, cols, strict=True)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for r in table:
            lines.append("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    else:
        lines.append("no series loaded")
    lines.append("")
    n_err = len(result.errors)
    lines.append(f"load report: {result.n_files} file(s) examined, {len(result.series)} series, {n_err} skipped")
    for i in result.issues:
        lines.append(f"  [{i.severity}] {printable_name(i.message)}")
    return "\n".join(lines)
