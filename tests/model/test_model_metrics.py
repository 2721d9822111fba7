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


def test_headline_has_each_figure_with_its_ci() -> None:
    """accuracy, macro AUC and every class AUC as {value, ci}; an undefined AUC is None, not NaN."""
    import json

    from deepoxymap.model.metrics import headline

    rng = np.random.default_rng(2)
    y = np.array([0, 1, 2] * 10)  # no edema subject: its AUC is undefined
    p = 0.3 * np.eye(4)[y] + 0.7 * rng.dirichlet(np.ones(4), 30)
    h = headline(bootstrap_metrics(y, p, n_boot=50, seed=0))
    assert h["n"] == 30 and h["n_boot"] == 50 and h["ci_level"] == 0.95
    for fig in (h["accuracy"], h["macro_auc"], h["auc"]["healthy"]):
        lo, hi = fig["ci"]
        assert lo <= fig["value"] <= hi
    assert h["auc"]["edema"] == {"value": None, "ci": [None, None]}
    json.dumps(h, allow_nan=False)


def test_evaluation_json_top_level_is_the_first_model() -> None:
    """evaluation.json: the first result's headline at the top, every result kept, strict JSON."""
    import json

    from deepoxymap.model.evaluate import evaluation_json

    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 5)
    results = [
        {"name": n, "split": "holdout", "subjects_scored": "all", "metrics": bootstrap_metrics(y, rng.dirichlet(np.ones(4), 20), n_boot=20),
         "extra": float("nan")}
        for n in ("a", "b")
    ]  # fmt: skip
    out = evaluation_json(results, None)
    assert out["model"] == "a" and out["subjects_scored"] == "all" and out["n"] == 20
    assert out["accuracy"]["value"] == results[0]["metrics"]["accuracy"]["value"]
    assert [m["model"] for m in out["models"]] == ["a", "b"] and len(out["results"]) == 2
    assert out["results"][0]["extra"] is None
    json.dumps(out, allow_nan=False)
    with pytest.raises(ValueError):
        evaluation_json([])
