"""Cohort audit for the page: one call of the core audit, arranged for display.

Agreement figures, predictions and probabilities all come from one
:func:`deepoxymap.audit.audit_manifest` run (thresholds chosen on validation
subjects, or fixed for a small cohort, by :func:`deepoxymap.audit.plan_subjects`);
the confusion matrix and the one-vs-rest ROC from :mod:`deepoxymap.model.metrics`
on the run's in-memory probabilities. Nothing here computes a metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepoxymap import CLASSES
from deepoxymap.audit import AuditConfig, audit_manifest
from deepoxymap.cohort import SubjectRecord, read_manifest
from deepoxymap.errors import Unavailable
from deepoxymap.model.metrics import compute_metrics, roc_points
from deepoxymap.ui import loading, modelinfo

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


def default_manifest() -> Path:
    """The manifest the model was trained on (its test split is audited), else the study cohort, else the demo."""
    card = modelinfo.read_card() or {}
    recorded = (card.get("training") or {}).get("manifest")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    return loading.default_audit_manifest()


def _subjects(rows: Sequence[SubjectRecord], card: dict[str, Any], limit: int) -> list[str]:
    """The card's test split if this manifest holds it, else every subject; at most ``limit``."""
    test = set(((card.get("training") or {}).get("split") or {}).get("test") or [])
    chosen = [r.subject for r in rows if r.subject in test] or [r.subject for r in rows]
    return chosen[:limit] if limit else chosen


def run_cohort_audit(manifest: Path, methods: Sequence[str], limit: int, progress: Progress) -> AuditView:
    """Agreement per method and classification figures over a manifest; ``progress(done, total, label)``."""
    loaded = modelinfo.loaded_model()
    rows = read_manifest(manifest)
    card = dict(loaded.card or {})
    by_subject = {r.subject: r for r in rows}
    classes = list(loaded.classes or CLASSES)
    res = audit_manifest(
        manifest,
        loaded,
        AuditConfig(methods=tuple(methods), sanity_cases=0, bullseyes=False),
        subjects=_subjects(rows, card, limit),
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
    return AuditView(
        manifest=str(manifest),
        n_cases=len(known),
        model_name=Path(loaded.path).name,
        classes=classes,
        confusion=np.asarray(met["confusion"]),
        roc=roc,
        summary={"accuracy": met["accuracy"], "macro AUC": met["macro_auc"], "ECE": met["ece"]},
        agreement=summary_df if not summary_df.empty else None,
        cases=pd.DataFrame(table),
        rows=[by_subject[s] for s in res.subjects],
        notes=list(res.notes),
    )
