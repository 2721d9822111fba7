"""Cohort audit for the page: run the core over a manifest, reshape the results for display.

Uses ``deepoxymap.audit``'s cohort audit where it exists; otherwise it drives
the same core functions case by case (load, predict, explain, agreement) and
computes the classification metrics with ``deepoxymap.model.metrics``.
"""

from __future__ import annotations

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


def _case_agreement(case: Any, stack: Any, cams: list[Any]) -> dict[str, float] | None:
    try:
        fn = need("deepoxymap.audit", "case_agreement", "Agreement figures")
    except Missing:
        return None
    res = fn(case, stack, cams)
    metrics = dict(res) if isinstance(res, dict) else dict(getattr(res, "metrics", {}) or {})
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def run_audit(manifest: Path, methods: Sequence[str], limit: int, progress: Progress) -> AuditView:
    """Classify (and explain with ``methods``) every case of ``manifest``; ``progress(done, total, label)``."""
    loaded = modelinfo.loaded_model()
    rows = core.read_manifest(manifest)
    if limit:
        rows = rows[:limit]
    if not rows:
        raise Missing(f"The manifest `{manifest}` lists no cases.")
    predict_case = core.need_any([("deepoxymap.model", "predict_case"), ("deepoxymap.model.predict", "predict_case")], "Classification")
    explain_batch = need("deepoxymap.explain", "explain_batch", "Feature maps")
    metrics = need("deepoxymap.model.metrics", "compute_metrics", "Classification metrics")
    roc_points = need("deepoxymap.model.metrics", "roc_points", "ROC curves")
    classes = list(getattr(loaded, "classes", CLASSES))

    table: list[dict[str, Any]] = []
    agree_rows: list[dict[str, Any]] = []
    probs: list[Any] = []
    y: list[int] = []
    kept: list[core.ManifestRow] = []
    for i, row in enumerate(rows):
        progress(i, len(rows), f"· {row.subject}")
        try:
            case = core.load_subject(row.path, row.label)
            pred = predict_case(loaded, case)
        except Exception as exc:  # noqa: BLE001 - one bad case must not stop the audit
            table.append({"subject": row.subject, "reference": row.label, "model call": f"failed: {type(exc).__name__}"})
            continue
        entry: dict[str, Any] = {"subject": row.subject, "reference": row.label, "subtype": row.subtype,
                                 "site": row.site, "model call": pred.call, "correct": pred.call == row.label}
        for j, c in enumerate(classes):
            entry[f"p({c})"] = round(float(pred.case_probs[j]), 3)
        pre = pred.preprocessed
        for m in methods:
            heat = explain_batch(loaded.model, pre.x, m)
            cams = [h.to_source(t).array for h, t in zip(heat, pre.transforms, strict=True)]
            agr = _case_agreement(case, pre.stack, cams) if case.masks and row.label != "healthy" else None
            if agr:
                agree_rows.append({"subject": row.subject, "class": row.label, "method": m, **agr})
                for k, v in agr.items():
                    entry[f"{m}: {k}"] = round(v, 3)
        table.append(entry)
        if row.label in classes:
            probs.append(np.asarray(pred.case_probs, dtype=float))
            y.append(classes.index(row.label))
            kept.append(row)
    progress(len(rows), len(rows), "")
    if not probs:
        raise Missing("No case of this manifest could be classified.")
    p = np.stack(probs)
    yy = np.asarray(y)
    res = metrics(yy, p, classes)
    roc: dict[str, tuple[Any, Any, float]] = {}
    for k, c in enumerate(classes):
        auc = res["auc"].get(c, float("nan"))
        if np.isfinite(auc):
            fpr, tpr = roc_points(yy, p, k)
            roc[c] = (fpr, tpr, float(auc))
    agreement = None
    if agree_rows:
        df = pd.DataFrame(agree_rows)
        num = [c for c in df.columns if c not in ("subject", "class", "method")]
        agreement = df.groupby("method")[num].agg(["mean", "std"]).round(3)
        agreement.columns = [f"{a} ({b})" for a, b in agreement.columns]
        agreement = agreement.reset_index()
        agreement.insert(1, "cases", df.groupby("method").size().values)
    cases = pd.DataFrame(table)
    # rows that failed are listed but cannot be opened; keep the table and rows aligned
    ok_rows = {r.subject: r for r in rows}
    aligned = [ok_rows[s] for s in cases["subject"]]
    return AuditView(
        manifest=str(manifest),
        n_cases=len(kept),
        model_name=Path(getattr(loaded, "path", "model")).name,
        classes=classes,
        confusion=np.asarray(res["confusion"]),
        roc=roc,
        summary={"accuracy": res["accuracy"], "macro AUC": res["macro_auc"], "ECE": res["ece"]},
        agreement=agreement,
        cases=cases,
        rows=aligned,
    )
