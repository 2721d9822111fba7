"""Thin adapters from the pages to the core (``deepoxymap.*``).

The pages never import a core module directly for the optional parts: they
call these functions, which import lazily and raise :class:`Missing` (shown as
an ``st.info`` saying what is needed) when a capability is not installed or
not built yet. No science lives here: only calls, argument plumbing and
presentation tables.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepoxymap import CLASSES
from deepoxymap.case import Case, Role, Series
from deepoxymap.config import settings


class Missing(Exception):
    """A capability the page needs is not available (yet); the message says what to do."""


def need(module: str, attr: str, what: str, how: str = "") -> Any:
    """``module.attr``, or raise :class:`Missing` naming ``what`` is needed and ``how`` to get it."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise Missing(f"{what} is not available in this build (`{module}` is missing). {how}".strip()) from None
        raise
    fn = getattr(mod, attr, None)
    if fn is None:
        raise Missing(f"{what} is not available in this build (`{module}.{attr}` is missing). {how}".strip())
    return fn


def need_any(candidates: Sequence[tuple[str, str]], what: str, how: str = "") -> Any:
    """The first of ``(module, attr)`` candidates that exists, or raise :class:`Missing` for the first."""
    first: Missing | None = None
    for module, attr in candidates:
        try:
            return need(module, attr, what, how)
        except Missing as exc:
            first = first or exc
    assert first is not None
    raise first


def has(module: str, attr: str) -> bool:
    """Whether ``module.attr`` exists (never raises)."""
    try:
        need(module, attr, "")
    except Exception:  # noqa: BLE001 - a probe
        return False
    return True


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def load_sources(sources: Sequence[Any]) -> Any:
    """``deepoxymap.io.load`` on paths or ``(name, bytes)`` pairs -> ``LoadResult``."""
    load = need("deepoxymap.io", "load", "Reading DICOM/NIfTI files")
    return load(list(sources))


def upload_case_id(series: Iterable[Series]) -> str:
    """A non-identifying case id for an upload: a short hash of its series UIDs."""
    h = hashlib.sha256("|".join(sorted(s.uid for s in series)).encode()).hexdigest()[:10]
    return f"upload-{h}"


def build_case(series: Sequence[Series], case_id: str) -> Case:
    """``deepoxymap.io.build_case`` (falls back to a plain :class:`Case` when io lacks it)."""
    try:
        build = need("deepoxymap.io", "build_case", "Assembling a case")
    except Missing:
        return Case(case_id=case_id, series=tuple(series))
    return build(list(series), case_id)  # type: ignore[no-any-return]


def with_roles(case: Case, series: Sequence[Series], roles: dict[str, Role]) -> tuple[Case, list[Series]]:
    """Rebuild ``case`` after the user changed roles (``roles`` by series uid).

    Uses ``deepoxymap.io.override_role`` when available. A case that came with
    ground truth (demo/cohort) keeps its label, truth and masks.

    Returns:
        ``(case, series)``: the rebuilt case and the full series list with the new roles.
    """
    import dataclasses

    changed = list(series)
    try:
        override = need("deepoxymap.io", "override_role", "Role override")
        for uid, role in roles.items():
            changed = override(changed, uid, role)
    except Missing:
        changed = [s.with_role(roles[s.uid]) if s.uid in roles else s for s in changed]
    rebuilt = build_case(changed, case.case_id)
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
    """One display row per series (``deepoxymap.io.series_table``): no identifiers, no file paths."""
    try:
        table = need("deepoxymap.io", "series_table", "The series table")(list(series))
    except Missing:
        table = _fallback_rows(series)
    rows = []
    for r in table:
        row = {"uid": r["uid"]}
        row.update({label: r.get(key, "") for key, label in _COLUMNS.items()})
        if r.get("geometry") is False and "no geometry" not in str(row["spacing (mm)"]):
            row["spacing (mm)"] = f"{row['spacing (mm)']} (no geometry)"
        rows.append(row)
    return rows


def _fallback_rows(series: Sequence[Series]) -> list[dict[str, Any]]:
    out = []
    for s in series:
        st_, g = s.stack, s.stack.geometry
        sp = f"{g.pixel_spacing[0]:.2f} x {g.pixel_spacing[1]:.2f}"
        if g.slice_spacing:
            sp += f" x {g.slice_spacing:.1f}"
        out.append(
            {
                "uid": s.uid,
                "role": s.role.label,
                "timepoint": st_.timepoint or "",
                "size": f"{g.shape[0]} x {g.shape[1]}",
                "slices_x_frames": f"{st_.n_slices} x {st_.n_frames}",
                "spacing": sp,
                "description": s.description,
                "files": len(s.files),
                "reason": s.role_reason,
                "geometry": g.has_geometry,
            }
        )
    return out


ROLE_BY_LABEL = {r.label: r for r in Role}


# ---------------------------------------------------------------------------
# demo cohort
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestRow:
    """One subject of a cohort manifest (path resolved)."""

    subject: str
    label: str
    subtype: str
    site: str
    path: Path


def read_manifest(path: Path) -> list[ManifestRow]:
    """Rows of a cohort manifest CSV (``subject,class,subtype,site,field_strength,path``)."""
    rows: list[ManifestRow] = []
    with Path(path).open(newline="") as fh:
        for r in csv.DictReader(fh):
            p = Path(r.get("path", r.get("subject", "")))
            rows.append(
                ManifestRow(
                    subject=r.get("subject", p.name),
                    label=r.get("class", ""),
                    subtype=r.get("subtype", ""),
                    site=r.get("site", ""),
                    path=p if p.is_absolute() else Path(path).parent / p,
                )
            )
    return rows


def demo_manifest() -> Path:
    """The demo cohort's manifest path (may not exist)."""
    return settings().demo_dir / "manifest.csv"


def demo_cases() -> list[ManifestRow]:
    """One row per demo case, ordered as :data:`deepoxymap.CLASSES`; empty if not generated."""
    m = demo_manifest()
    if not m.is_file():
        return []
    rows = read_manifest(m)
    order = {c: i for i, c in enumerate(CLASSES)}
    return sorted(rows, key=lambda r: (order.get(r.label, 99), r.subject))


def load_subject(path: Path, label: str | None = None) -> Case:
    """A phantom subject folder -> :class:`Case` with label, truth and masks.

    Uses ``deepoxymap.phantom.load_subject``; where that is not available, the
    subject's DICOM is read with ``deepoxymap.io`` (no masks or truth then).
    """
    import dataclasses

    try:
        load = need("deepoxymap.phantom", "load_subject", "Loading synthetic cases")
    except Missing:
        folder = Path(path) / "dicom"
        result = load_sources([folder if folder.is_dir() else Path(path)])
        if not result.series:
            raise Missing(f"No images found in {Path(path).name}.") from None
        case = build_case(result.series, Path(path).name)
        return dataclasses.replace(case, label=label) if label else case
    return load(Path(path))  # type: ignore[no-any-return]


def default_audit_manifest() -> Path:
    """The bundled synthetic test split if generated, else the demo manifest."""
    s = settings()
    for p in (s.cohort_dir / "test.csv", s.cohort_dir / "manifest_test.csv", s.cohort_dir / "manifest.csv"):
        if p.is_file():
            return p
    return demo_manifest()
