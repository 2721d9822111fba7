"""Cohort audit for the page: run the core over a manifest and arrange the results for display.

Agreement figures come from ``deepoxymap.audit.run_audit`` (thresholds chosen on
validation subjects, then frozen); the classification figures (confusion
matrix, one-vs-rest ROC) from ``deepoxymap.model.predict_case`` on the same
subjects and ``deepoxymap.model.metrics``. Nothing here computes a metric.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepoxymap import CLASSES
from deepoxymap.ui import core, modelinfo
from deepoxymap.ui.core import Missing, need

Progress = Callable[[int, int, str], None]

SMALL_COHORT = 12
"""Below this many subjects no validation third is held out: fixed thresholds (0.5) are used."""

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
    rows: list[core.ManifestRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def default_manifest() -> Path:
    """The manifest the model was trained on (its test split is audited), else the study cohort, else the demo."""
    card = modelinfo.read_card() or {}
    recorded = (card.get("training") or {}).get("manifest")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    return core.default_audit_manifest()


def _subjects(rows: Sequence[core.ManifestRow], card: dict[str, Any], limit: int) -> list[str]:
    """The card's test split if this manifest holds it, else every subject; at most ``limit``."""
    test = set(((card.get("training") or {}).get("split") or {}).get("test") or [])
    chosen = [r.subject for r in rows if r.subject in test] or [r.subject for r in rows]
    return chosen[:limit] if limit else chosen


def run_audit(manifest: Path, methods: Sequence[str], limit: int, progress: Progress) -> AuditView:
    """Agreement per method and classification figures over a manifest; ``progress(done, total, label)``."""
    loaded = modelinfo.loaded_model()
    rows = core.read_manifest(manifest)
    if not rows:
        raise Missing(f"The manifest `{manifest}` lists no cases.")
    card = dict(getattr(loaded, "card", {}) or {})
    subjects = _subjects(rows, card, limit)
    by_subject = {r.subject: r for r in rows}
    classes = list(getattr(loaded, "classes", CLASSES))
    run = need("deepoxymap.audit", "run_audit", "The cohort audit")
    config_cls = need("deepoxymap.audit", "AuditConfig", "The cohort audit")
    predict_case = core.need_any(
        [("deepoxymap.model", "predict_case"), ("deepoxymap.model.predict", "predict_case")], "Classification"
    )
    compute_metrics = need("deepoxymap.model.metrics", "compute_metrics", "Classification metrics")
    roc_points = need("deepoxymap.model.metrics", "roc_points", "ROC curves")

    # 1. agreement (core audit), first part of the progress bar
    def p1(done: int, total: int, msg: str) -> None:
        progress(done, 2 * max(total, 1), f"· feature maps {msg}")

    small = len(subjects) < SMALL_COHORT
    config = config_cls(methods=tuple(methods), sanity_cases=0, bullseyes=False)
    with tempfile.TemporaryDirectory(prefix="deepoxymap-audit-") as tmp:
        res = run(
            manifest,
            Path(tmp),
            loaded=loaded,
            subjects=subjects,
            thresholds={} if small else None,
            config=config,
            progress=p1,
        )
    tested = list(dict.fromkeys(r["subject"] for r in res.per_case)) or subjects

    # 2. classification of the same subjects
    table: list[dict[str, Any]] = []
    probs: list[Any] = []
    y: list[int] = []
    agree = pd.DataFrame(res.per_case)
    for i, s in enumerate(tested):
        progress(len(tested) + i, 2 * len(tested), f"· classifying {s}")
        row = by_subject[s]
        entry: dict[str, Any] = {"subject": s, "reference": row.label, "subtype": row.subtype, "site": row.site}
        try:
            pred = predict_case(loaded, core.load_subject(row.path, row.label))
        except Exception as exc:  # noqa: BLE001 - one bad case must not stop the audit
            entry["model call"] = f"failed ({type(exc).__name__})"
            table.append(entry)
            continue
        entry["model call"] = pred.call
        entry["correct"] = pred.call == row.label
        for j, c in enumerate(classes):
            entry[f"p({c})"] = round(float(pred.case_probs[j]), 3)
        if not agree.empty:
            for m in methods:
                sel = agree[(agree["subject"] == s) & (agree["method"] == m)]
                for k in CASE_COLUMNS:
                    if not sel.empty and k in sel and pd.notna(sel[k].iloc[0]):
                        entry[f"{m}: {k}"] = round(float(sel[k].iloc[0]), 3)
        table.append(entry)
        if row.label in classes:
            probs.append(np.asarray(pred.case_probs, dtype=float))
            y.append(classes.index(row.label))
    progress(2 * len(tested), 2 * len(tested), "")
    if not probs:
        raise Missing("No case of this manifest could be classified.")
    p, yy = np.stack(probs), np.asarray(y)
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
    cases = pd.DataFrame(table)
    notes = list(getattr(res, "notes", []) or [])
    if small:
        notes.append(f"fewer than {SMALL_COHORT} cases: fixed thresholds (0.5 of the maximum), no validation hold-out")
    return AuditView(
        manifest=str(manifest),
        n_cases=len(y),
        model_name=Path(getattr(loaded, "path", "model")).name,
        classes=classes,
        confusion=np.asarray(met["confusion"]),
        roc=roc,
        summary={"accuracy": met["accuracy"], "macro AUC": met["macro_auc"], "ECE": met["ece"]},
        agreement=summary_df if not summary_df.empty else None,
        cases=cases,
        rows=[by_subject[s] for s in cases["subject"]],
        notes=notes,
    )
