"""Case-level metrics, ECE and bootstrap CIs."""

from __future__ import annotations

import numpy as np
import pytest

from deepoxymap.model.metrics import aggregate_cases, bootstrap_metrics, compute_metrics, expected_calibration_error


def test_aggregate_is_mean_of_slice_probabilities() -> None:
    p = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]])
    subs, cp = aggregate_cases(p, ["a", "a", "b"])
    assert subs == ["a", "b"]
    assert np.allclose(cp[0], [0.4, 0.4, 0.1, 0.1]) and np.allclose(cp[1], 0.25)


def test_perfect_and_chance() -> None:
    y = np.repeat(np.arange(4), 10)
    perfect = np.eye(4)[y] * 0.9 + 0.025
    m = compute_metrics(y, perfect)
    assert m["accuracy"] == 1.0 and m["macro_auc"] == 1.0 and m["macro_recall"] == 1.0
    assert m["confusion"] == (np.eye(4, dtype=int) * 10).tolist()
    assert m["ece"] == pytest.approx(0.075)  # confidence 0.925, accuracy 1
    rng = np.random.default_rng(0)
    rand = rng.dirichlet(np.ones(4), size=4000)
    yr = rng.integers(0, 4, 4000)
    assert abs(compute_metrics(yr, rand)["macro_auc"] - 0.5) < 0.03


def test_ece_zero_when_calibrated() -> None:
    # 10 cases at confidence 0.8, 8 correct
    p = np.tile([0.8, 0.2 / 3, 0.2 / 3, 0.2 / 3], (10, 1))
    y = np.array([0] * 8 + [1, 2])
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_bootstrap_ci_brackets_point_estimate() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 60)
    p = 0.15 * np.eye(4)[y] + 0.85 * rng.dirichlet(np.ones(4), 60)
    b = bootstrap_metrics(y, p, n_boot=100, seed=0)
    for k in ("accuracy", "macro_precision", "macro_recall", "macro_auc", "ece"):
        lo, hi = b[k]["ci"]
        assert lo <= b[k]["value"] <= hi and hi - lo > 0
    assert b["n"] == 60 and len(b["confusion"]) == 4
