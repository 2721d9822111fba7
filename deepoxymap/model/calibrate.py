"""Class-prior correction of case probabilities, fitted on validation subjects.

A network trained with balanced class weights (``deepoxymap train`` weights each
class by ``n / (C * n_class)``) learns posteriors for a *uniform* class prior, and
where two classes look alike (healthy and global edema in one native frame) its
arg-max can settle on one of them for both. The cure is the textbook prior-shift
correction (Saerens, Latinne & Decaestecker, Neural Computation 2002): multiply
each class's probability by a constant and renormalise,

    p'_c = p_c * exp(b_c) / sum_k p_k * exp(b_k),

which leaves the network and its feature maps untouched. ``b`` (float64 ``[C]``,
natural-log units, gauge ``sum(b) = 0``) is chosen on **validation** subjects
only, by minimising their mean negative log-likelihood: a convex problem with
one optimum, so it cannot chase single subjects the way an accuracy search
would. The test cohort is never seen.

The offset is applied to **case** probabilities (the mean of the slice
probabilities; :mod:`deepoxymap.model.metrics`); slice probabilities stay the
network's own outputs. It lives in the model card under ``decision`` (see
:func:`card_offset`), so the app, ``predict``, ``evaluate`` and ``audit`` all
use it through :func:`deepoxymap.model.predict.predict`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap import CLASSES

__all__ = [
    "CASE_CALL_CORRECTED",
    "MIN_PER_CLASS",
    "apply_offset",
    "card_offset",
    "decision_card",
    "fit_log_prior_offset",
    "mean_nll",
    "not_fitted_card",
    "too_few_to_fit",
]

CASE_CALL_CORRECTED = "mean of slice probabilities, then the class-prior correction in 'decision'"
"""The card's ``case_aggregation`` text when a correction is fitted."""

MIN_PER_CLASS = 5
"""Fewest validation subjects of every class for which the correction is fitted (fewer: none)."""


def apply_offset(probs: NDArray[Any], offset: NDArray[Any] | None) -> NDArray[np.float64]:
    """``probs * exp(offset)`` renormalised per row.

    Args:
        probs: ``[n, C]`` or ``[C]`` probabilities.
        offset: float ``[C]`` log multipliers, or ``None`` (no change).

    Returns:
        float64 array of ``probs``' shape; rows sum to 1.
    """
    p = np.asarray(probs, dtype=np.float64)
    if offset is None:
        return p
    q = p * np.exp(np.asarray(offset, dtype=np.float64) - np.max(offset))
    s = q.sum(axis=-1, keepdims=True)
    return np.divide(q, s, out=np.full_like(q, 1.0 / q.shape[-1]), where=s > 0)


def mean_nll(probs: NDArray[Any], y: NDArray[Any], offset: NDArray[Any] | None = None, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood (nats) of labels ``y`` [n] under ``apply_offset(probs, offset)``."""
    q = apply_offset(probs, offset)
    return float(-np.mean(np.log(np.clip(q[np.arange(len(q)), np.asarray(y, dtype=int)], eps, 1.0))))


def fit_log_prior_offset(
    probs: NDArray[Any], y: NDArray[Any], *, eps: float = 1e-7, l2: float = 1e-3
) -> NDArray[np.float64]:
    """The offset ``b`` [C] minimising the mean NLL of ``y`` under ``apply_offset(probs, b)``.

    Args:
        probs: ``[n, C]`` case probabilities of validation subjects.
        y: int ``[n]`` their class indices.
        eps: probability floor inside the log.
        l2: small ridge on ``b`` so a class absent from ``y`` cannot run to -inf.

    Returns:
        float64 ``[C]`` with ``sum(b) = 0``.

    Raises:
        ValueError: empty input, or shapes that disagree.
    """
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1.0)
    yy = np.asarray(y, dtype=int)
    if p.ndim != 2 or len(p) == 0 or len(yy) != len(p):
        raise ValueError(f"need probs [n, C] and y [n] with n > 0; got {p.shape} and {yy.shape}")
    logp = np.log(p)
    onehot = np.eye(p.shape[1])[yy]

    def f(b: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        logq = log_softmax(logp + b, axis=1)
        nll = -np.mean(logq[np.arange(len(yy)), yy]) + l2 * float(b @ b)
        grad = np.mean(np.exp(logq) - onehot, axis=0) + 2 * l2 * b
        return float(nll), grad

    res = minimize(f, np.zeros(p.shape[1]), jac=True, method="L-BFGS-B")
    b = np.asarray(res.x, dtype=np.float64)
    return b - b.mean()


def card_offset(card: dict[str, Any], classes: tuple[str, ...]) -> NDArray[np.float64] | None:
    """The card's ``decision.log_prior_offset`` ({class: value}) as ``[C]`` in ``classes`` order, or ``None``."""
    dec = card.get("decision") or {}
    off = dec.get("log_prior_offset")
    if not off:
        return None
    return np.array([float(off.get(c, 0.0)) for c in classes], dtype=np.float64)


def decision_card(
    offset: NDArray[Any], val_probs: NDArray[Any], val_y: NDArray[Any], classes: tuple[str, ...] = CLASSES
) -> dict[str, Any]:
    """The model card's ``decision`` entry for an offset fitted on ``val_probs``/``val_y`` (validation cases)."""
    return {
        "rule": "arg-max of the case probabilities after the class-prior correction",
        "log_prior_offset": {c: round(float(v), 6) for c, v in zip(classes, offset, strict=True)},
        "method": (
            "p'_c = p_c exp(b_c) / sum_k p_k exp(b_k), b minimising the mean NLL of the validation cases "
            "(prior-shift correction, Saerens et al. 2002); deepoxymap.model.calibrate"
        ),
        "fitted_on": "validation",
        "fitted_on_subjects": len(val_y),
        "validation_nll": {
            "before": round(mean_nll(val_probs, val_y), 6),
            "after": round(mean_nll(val_probs, val_y, offset), 6),
        },
    }


def too_few_to_fit(y: NDArray[Any], n_classes: int = len(CLASSES), min_per_class: int = MIN_PER_CLASS) -> str | None:
    """Why the validation labels ``y`` [n] cannot choose a correction, or ``None`` when they can.

    Four validation subjects (one per class) would set four free constants from four
    cases: the correction is fitted only when every class has ``min_per_class`` of them.
    """
    counts = np.bincount(np.asarray(y, dtype=int), minlength=n_classes)
    if counts.min() < min_per_class:
        per = ", ".join(f"{c} {int(k)}" for c, k in zip(CLASSES, counts, strict=False))
        return f"too few validation subjects to fit a class-prior correction ({per}; need {min_per_class} of each)"
    return None


def not_fitted_card(reason: str) -> dict[str, Any]:
    """The card's ``decision`` entry when no correction was fitted."""
    return {"rule": "arg-max of the mean slice probabilities", "log_prior_offset": None, "not_fitted": reason}
