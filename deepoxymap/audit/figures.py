"""The audit's summary figure as one PNG: confusion matrix, ROC per class, agreement per method.

Pure: takes the arrays and tables of an audit (as the app's Cohort audit page or
:func:`deepoxymap.audit.run_audit` hold them) and returns PNG bytes. Drawn with
matplotlib's object API (``Figure`` and its Agg canvas, never ``pyplot``), so it
is safe in a server thread and leaves no global figure state behind.
Nothing here computes a metric: the confusion matrix, the ROC points and the
agreement means come in as they are.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["AGREEMENT_METRICS", "audit_summary_png"]

AGREEMENT_METRICS: tuple[tuple[str, ...], ...] = (
    ("pointing game", "pointing"),
    ("Dice (myo)", "dice_myo", "Dice", "dice"),
)
"""The agreement panels, each the first of its column names the table has (display names of the
Cohort audit page first, then the core's keys): the pointing game and the Dice within the myocardium."""

_METHOD_COLUMN = "method"
_CLASS_COLUMN = "class"


def _records(table: Any) -> list[dict[str, Any]]:
    """Rows of a pandas DataFrame or a sequence of mappings, as plain dicts."""
    if table is None:
        return []
    if hasattr(table, "to_dict"):
        return [dict(r) for r in table.to_dict("records")]
    return [dict(r) for r in table]


def _number(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _draw_confusion(ax: Any, confusion: np.ndarray, classes: Sequence[str]) -> None:
    n = len(classes)
    im = ax.imshow(confusion, cmap="Blues", vmin=0, vmax=max(1.0, float(confusion.max())))
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=list(classes), rotation=30, ha="right")
    ax.set_yticks(range(n), labels=list(classes))
    ax.set_xlabel("model call")
    ax.set_ylabel("reference class")
    ax.set_title(f"Confusion matrix ({int(confusion.sum())} cases)")
    top = float(confusion.max()) if confusion.size else 0.0
    for i in range(n):
        for j in range(n):
            v = confusion[i, j]
            ax.text(j, i, f"{v:g}", ha="center", va="center", color="white" if v > top / 2 else "black")


def _draw_roc(ax: Any, roc: Mapping[str, tuple[ArrayLike, ArrayLike, float]]) -> None:
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance")
    for name, (fpr, tpr, auc) in roc.items():
        ax.plot(np.asarray(fpr, float), np.asarray(tpr, float), lw=2, label=f"{name} (AUC {float(auc):.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC per class (one vs rest)")
    ax.legend(loc="lower right", fontsize=8)
    if not roc:
        ax.text(0.5, 0.55, "no class with both positives and negatives", ha="center", fontsize=9, color="0.4")


def _draw_agreement(ax: Any, rows: list[dict[str, Any]], names: Sequence[str]) -> None:
    column = next((c for c in names if any(c in r for r in rows)), None)
    if column is None:
        ax.set_title(f"Agreement: {names[0]}")
        ax.text(0.5, 0.5, "no agreement figures\n(no reference lesion masks)", ha="center", va="center")
        ax.set_axis_off()
        return
    methods = list(dict.fromkeys(str(r.get(_METHOD_COLUMN, "")) for r in rows))
    groups = list(dict.fromkeys(str(r.get(_CLASS_COLUMN, "all")) for r in rows))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(groups), dtype=float)
    for k, m in enumerate(methods):
        values = []
        for g in groups:
            match = [
                _number(r.get(column))
                for r in rows
                if str(r.get(_METHOD_COLUMN, "")) == m and str(r.get(_CLASS_COLUMN, "all")) == g
            ]
            values.append(match[0] if match else math.nan)
        vals = np.asarray(values, float)
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, np.nan_to_num(vals, nan=0.0), width, label=m or "?")
        for xi, v in zip(x + (k - (len(methods) - 1) / 2) * width, vals, strict=True):
            ax.text(xi, (0 if np.isnan(v) else v) + 0.02, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", fontsize=7)
    ax.set_xticks(x, labels=groups, rotation=20, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(column)
    ax.set_title(f"Agreement with the reference lesions: {column}")
    ax.legend(title="method", fontsize=8, title_fontsize=8, loc="upper right")


def audit_summary_png(
    confusion: ArrayLike,
    classes: Sequence[str],
    roc: Mapping[str, tuple[ArrayLike, ArrayLike, float]],
    agreement: Any = None,
    *,
    title: str = "",
    size_in: tuple[float, float] = (13.0, 10.0),
    dpi: int = 100,
) -> bytes:
    """One PNG of an audit: confusion matrix, ROC per class, and agreement per method (two panels).

    Args:
        confusion: ``(n_classes, n_classes)`` counts, rows the reference class, columns the model call.
        classes: the ``n_classes`` class names, in the confusion matrix's order.
        roc: ``{class: (fpr, tpr, auc)}``, one-vs-rest ROC points (1-D arrays in [0, 1]) and the AUC.
        agreement: the per-method agreement table (a DataFrame or a sequence of mappings) with columns
            ``method``, optionally ``class`` (the audit group), and metric columns (see
            :data:`AGREEMENT_METRICS`, values in [0, 1]); ``None`` or empty: the panels say so.
        title: the figure's title (e.g. the cohort and the model).
        size_in: figure size in inches; the PNG is ``size_in * dpi`` pixels.
        dpi: pixels per inch.

    Returns:
        PNG bytes (8-bit RGBA).

    Raises:
        ValueError: the confusion matrix is not square or does not match ``classes``.
    """
    from matplotlib.figure import Figure

    cm = np.asarray(confusion, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {len(classes)} classes")
    rows = _records(agreement)
    fig = Figure(figsize=size_in, dpi=dpi, layout="constrained")
    axes = fig.subplots(2, 2)
    _draw_confusion(axes[0, 0], cm, classes)
    _draw_roc(axes[0, 1], roc)
    for ax, names in zip(axes[1], AGREEMENT_METRICS, strict=True):
        _draw_agreement(ax, rows, names)
    fig.suptitle(title or "Cohort audit", fontsize=12)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
