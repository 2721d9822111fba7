"""Which manifest subjects an audit scores and which choose its thresholds; the audit of a manifest.

:func:`plan_subjects` holds the small-cohort threshold policy; :func:`audit_manifest`
reads a manifest (bad rows listed, the others run), plans it and calls
:func:`deepoxymap.audit.run.run_audit`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepoxymap import CLASSES
from deepoxymap.audit.run import AuditConfig, AuditResult, ProgressFn, run_audit
from deepoxymap.cohort import SubjectRecord, read_manifest_rows
from deepoxymap.errors import DeepOxyMapError

__all__ = ["SubjectPlan", "audit_manifest", "default_manifest", "plan_subjects"]


@dataclass(frozen=True)
class SubjectPlan:
    """Which manifest subjects are scored and which choose the thresholds.

    Attributes:
        test: scored records.
        validation: records that choose the thresholds (empty: fixed or given thresholds).
        notes: how the choice was made (for the report).
    """

    test: list[SubjectRecord]
    validation: list[SubjectRecord]
    notes: list[str]


def _is_training_manifest(card: Mapping[str, Any] | None, manifest: str | Path | None) -> bool:
    """Whether ``manifest`` may be the card's training manifest (True when either is unknown)."""
    from deepoxymap.config import ROOT

    recorded = ((card or {}).get("training") or {}).get("manifest")
    if manifest is None or not recorded:
        return True
    here = Path(manifest).resolve()
    rec = Path(recorded)
    return here in {rec.resolve(), (ROOT / rec).resolve()} if not rec.is_absolute() else here == rec.resolve()


def _card_split(card: Mapping[str, Any] | None) -> dict[str, list[str]]:
    split = ((card or {}).get("training") or {}).get("split") or {}
    return {k: list(split.get(k) or []) for k in ("train", "val", "test")}


def plan_subjects(
    records: Sequence[SubjectRecord],
    card: Mapping[str, Any] | None,
    *,
    subjects: str | Sequence[str] | None = None,
    validation: Sequence[str] | None = None,
    frozen: bool = False,
    small_cohort: int = AuditConfig.small_cohort,
    seed: int = 0,
    manifest: str | Path | None = None,
) -> SubjectPlan:
    """The audit's subject policy: thresholds are chosen on validation subjects only, never on scored ones.

    Test subjects: ``subjects``, else the model card's test split, else every
    record. ``subjects="all"`` (or ``["all"]``): every record not used for
    validation, nor in the card's training split when ``manifest`` is the one
    the card was trained on (or either is unknown): a model is never scored on
    what it learnt from, while a different cohort whose ids happen to match is
    scored whole. Validation: ``validation``, else the card's
    validation split; with neither (and no ``frozen`` thresholds), a
    class-stratified third of the test subjects chooses the thresholds and is
    excluded from the figures, unless fewer than ``small_cohort`` subjects are
    scored: then fixed thresholds are used.

    Raises:
        DeepOxyMapError: none of the requested test subjects is in the records.
    """
    by_id = {r.subject: r for r in records}
    split = _card_split(card)
    notes: list[str] = []
    if isinstance(subjects, str):
        subjects = [subjects]
    every = list(subjects or []) == ["all"]
    if every:
        val = [s for s in (validation if validation is not None else split["val"]) if s in by_id]
        trained = set(split["train"]) & set(by_id)
        if trained and not _is_training_manifest(card, manifest):
            notes.append(
                f"{len(trained)} subject ids of this manifest are also in the card's training split, but the card was "
                "trained on another manifest: they are other subjects and are scored"
            )
            trained = set()
        elif trained:
            notes.append(f"{len(trained)} subjects of the card's training split are not scored")
        test = [s for s in by_id if s not in set(val) and s not in trained]
    else:
        test = [s for s in (subjects or split["test"] or sorted(by_id)) if s in by_id]
        val = [s for s in (validation if validation is not None else split["val"]) if s in by_id and s not in test]
    if not test:
        raise DeepOxyMapError("none of the test subjects is in this manifest")
    if frozen:
        notes.append("thresholds given (frozen)")
        val = []
    elif val:
        notes.append(f"thresholds chosen on {len(val)} validation subjects")
    elif len(test) < small_cohort:
        notes.append(f"fewer than {small_cohort} cases: fixed thresholds (0.5 of the maximum), no validation hold-out")
    else:
        rng = np.random.default_rng(seed)
        take: list[str] = []
        for c in CLASSES:
            members = sorted(s for s in test if by_id[s].label == c)
            rng.shuffle(members)
            take += members[: len(members) // 3]
        val = sorted(take)
        test = [s for s in test if s not in val]
        notes.append(
            f"no validation split available: {len(val)} test subjects (a stratified third) chose the thresholds "
            "and are excluded from the figures"
        )
    return SubjectPlan([by_id[s] for s in test], [by_id[s] for s in val], notes)


def default_manifest(card: Mapping[str, Any] | None) -> Path:
    """The manifest recorded in the model card (``training.manifest``), else the study cohort's."""
    from deepoxymap.config import settings

    recorded = ((card or {}).get("training") or {}).get("manifest")
    return Path(recorded) if recorded and Path(recorded).is_file() else settings().cohort_dir / "manifest.csv"


def audit_manifest(
    manifest: Path | None,
    loaded: Any,
    config: AuditConfig = AuditConfig(),
    *,
    subjects: str | Sequence[str] | None = None,
    validation: Sequence[str] | None = None,
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    progress: ProgressFn | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    cache_dir: str | Path | None = None,
) -> AuditResult:
    """:func:`plan_subjects` on a manifest (default: :func:`default_manifest`), then :func:`run_audit`.

    ``jobs``, ``scheduler`` and ``cache_dir`` go to :func:`run_audit` (the same numbers for any of them).
    """
    from deepoxymap.parallel import row_failures

    manifest = Path(manifest) if manifest is not None else default_manifest(loaded.card)
    records, row_errors = read_manifest_rows(manifest)
    plan = plan_subjects(
        records,
        loaded.card,
        subjects=subjects,
        validation=validation,
        frozen=thresholds is not None,
        small_cohort=config.small_cohort,
        manifest=manifest,
    )
    res = run_audit(
        plan.test,
        loaded,
        config,
        validation=plan.validation,
        thresholds=thresholds,
        progress=progress,
        jobs=jobs,
        scheduler=scheduler,
        cache_dir=cache_dir,
    )
    res.failed[:0] = row_failures(row_errors, phase="manifest")
    res.notes[:0] = [
        f"manifest: {manifest}",
        *([f"{len(row_errors)} manifest rows could not be read (failed.csv)"] if row_errors else []),
        *plan.notes,
        f"{len(plan.test)} test subjects; target class: {config.target}; pointing tolerance {config.tolerance_mm} mm",
    ]
    return res
