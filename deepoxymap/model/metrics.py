"""Case-level metrics with 95% bootstrap confidence intervals over subjects.

Slice probabilities are first aggregated per subject (:func:`aggregate_cases`,
mean of slice probabilities), so every metric and every bootstrap resample is
over **subjects**, the unit of the study's labels.

Why the mean of slice probabilities: a subject's slices share one label; the
mean is the ensemble average of the per-slice posteriors, keeps a probability
vector that sums to 1 (so calibration can be measured), and is robust to one
slice where the LV localisation or the frame choice went wrong. A focal scar
visible in one slice of three pulls its class by a third of that slice's
confidence; max-pooling would react more but lets any one noisy slice decide.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap import CLASSES

__all__ = [
    "aggregate_cases",
    "bootstrap_metrics",
    "compute_metrics",
    "expected_calibration_error",
    "headline",
    "roc_points",
]


def aggregate_cases(slice_probs: NDArray[Any], slice_subjects: Sequence[str]) -> tuple[list[str], NDArray[np.float64]]:
    """Mean of slice probabilities per subject.

    Args:
        slice_probs: ``[n_slices, C]`` probabilities.
        slice_subjects: subject id per slice.

    Returns:
        ``(subjects in first-seen order, case_probs [n_subjects, C] float64)``.
    """
    p = np.asarray(slice_probs, dtype=np.float64)
    order: list[str] = []
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(slice_subjects):
        if s not in rows:
            rows[s] = []
            order.append(s)
        rows[s].append(i)
    return order, np.stack([p[rows[s]].mean(axis=0) for s in order]) if order else np.zeros((0, p.shape[-1]))


def expected_calibration_error(y: NDArray[Any], probs: NDArray[Any], n_bins: int = 10) -> float:
    """Top-label ECE: sum over equal-width confidence bins of ``|acc - conf| * n_bin / n``."""
    p = np.asarray(probs, dtype=np.float64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(y)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += abs(correct[m].mean() - conf[m].mean()) * m.mean()
    return float(ece)


def compute_metrics(y: NDArray[Any], probs: NDArray[Any], classes: Sequence[str] = CLASSES) -> dict[str, Any]:
    """Point metrics on subjects.

    Args:
        y: ``[n]`` true class indices.
        probs: ``[n, C]`` case probabilities.

    Returns:
        dict with ``accuracy``, ``macro_precision``, ``macro_recall`` (over classes
        present in ``y``), ``auc`` (per class, one-vs-rest; NaN if a class is
        absent or alone), ``macro_auc`` (mean of finite per-class AUCs), ``ece``,
        ``confusion`` (rows true, columns predicted, ``C x C`` counts), ``n``.
    """
    from sklearn.metrics import confusion_matrix, precision_score, recall_score, roc_auc_score

    y = np.asarray(y, dtype=int)
    p = np.asarray(probs, dtype=np.float64)
    pred = p.argmax(axis=1)
    labels = sorted(set(y.tolist()))
    aucs: dict[str, float] = {}
    for k, c in enumerate(classes):
        pos = y == k
        aucs[c] = float(roc_auc_score(pos, p[:, k])) if 0 < pos.sum() < len(y) else float("nan")
    finite = [v for v in aucs.values() if np.isfinite(v)]
    return {
        "n": len(y),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "macro_precision": float(precision_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "macro_recall": float(recall_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "auc": aucs,
        "macro_auc": float(np.mean(finite)) if finite else float("nan"),
        "ece": expected_calibration_error(y, p),
        "confusion": confusion_matrix(y, pred, labels=list(range(len(classes)))).tolist(),
    }


def bootstrap_metrics(
    y: NDArray[Any],
    probs: NDArray[Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
    """:func:`compute_metrics` plus a 95% percentile bootstrap CI (subjects resampled with replacement).

    Returns:
        the point metrics, with each scalar metric ``m`` replaced by
        ``{"value": m, "ci": [lo, hi]}`` (per-class AUCs likewise); the
        confusion matrix is reported without a CI.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(probs, dtype=np.float64)
    point = compute_metrics(y, p, classes)
    rng = np.random.default_rng(seed)
    keys = ["accuracy", "macro_precision", "macro_recall", "macro_auc", "ece"]
    draws: dict[str, list[float]] = {k: [] for k in keys}
    auc_draws: dict[str, list[float]] = {c: [] for c in classes}
    n = len(y)
    for _ in range(n_boot if n else 0):
        idx = rng.integers(0, n, n)
        m = compute_metrics(y[idx], p[idx], classes)
        for k in keys:
            draws[k].append(m[k])
        for c in classes:
            auc_draws[c].append(m["auc"][c])

    def ci(vals: list[float]) -> list[float]:
        a = np.asarray(vals, dtype=np.float64)
        a = a[np.isfinite(a)]
        if a.size == 0:
            return [float("nan"), float("nan")]
        return [float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))]

    out: dict[str, Any] = {"n": point["n"], "n_boot": int(n_boot), "confusion": point["confusion"]}
    for k in keys:
        out[k] = {"value": point[k], "ci": ci(draws[k])}
    out["auc"] = {c: {"value": point["auc"][c], "ci": ci(auc_draws[c])} for c in classes}
    return out


def headline(boot: dict[str, Any], classes: Sequence[str] = CLASSES) -> dict[str, Any]:
    """The headline figures of :func:`bootstrap_metrics`, each with its 95% CI.

    Args:
        boot: a :func:`bootstrap_metrics` result.

    Returns:
        ``{"n", "n_boot", "ci_level": 0.95, "accuracy": {"value", "ci": [lo, hi]},
        "macro_auc": {...}, "auc": {class: {"value", "ci"}}}``; undefined values
        (e.g. the AUC of a class absent from the subjects) are ``None``.
    """

    def fig(m: dict[str, Any]) -> dict[str, Any]:
        def f(v: Any) -> float | None:
            return float(v) if v is not None and np.isfinite(v) else None

        return {"value": f(m["value"]), "ci": [f(v) for v in m["ci"]]}

    return {
        "n": int(boot["n"]),
        "n_boot": int(boot["n_boot"]),
        "ci_level": 0.95,
        "accuracy": fig(boot["accuracy"]),
        "macro_auc": fig(boot["macro_auc"]),
        "auc": {c: fig(boot["auc"][c]) for c in classes},
    }


def roc_points(y: NDArray[Any], probs: NDArray[Any], k: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One-vs-rest ROC curve ``(fpr, tpr)`` of class index ``k``."""
    from sklearn.metrics import roc_curve

    pos = np.asarray(y) == k
    if not 0 < pos.sum() < len(pos):
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    fpr, tpr, _ = roc_curve(pos, np.asarray(probs)[:, k])
    return fpr, tpr
