"""Randomisation and deletion checks."""

from __future__ import annotations

import numpy as np
import pytest
from explain_tiny import blob_image

from deepoxymap.explain import explain
from deepoxymap.explain.sanity import deletion_curve, randomization_check, randomized_clone

keras = pytest.importorskip("keras")


def test_randomized_clone_leaves_model_alone(tiny_model):
    """The clone differs in the top layer only; the original keeps its weights."""
    w0 = [w.copy() for w in tiny_model.get_weights()]
    clone = randomized_clone(tiny_model, n_top=1, seed=1)
    for a, b in zip(w0, tiny_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    cw = clone.get_weights()
    np.testing.assert_array_equal(cw[0], w0[0])  # conv1 kernel copied
    assert not np.allclose(cw[-2], w0[-2])  # logits kernel re-initialised


def test_gradcam_passes_randomisation_and_identity_fails(tiny_model, rng):
    """Grad-CAM changes when the logits are re-initialised; no re-initialisation is flagged."""
    x = rng.random((3, 32, 32, 3), dtype=np.float32)
    res = randomization_check(tiny_model, x, "gradcam", n_top=2, seed=2)
    assert res.passed and res.mean_spearman < 0.5
    same = randomization_check(tiny_model, x, "gradcam", n_top=0)
    assert not same.passed and same.mean_spearman > 0.99


def test_deletion_curve_oracle_beats_random(oracle_model):
    """Deleting the oracle's most-attended pixels kills the lesion score faster than random deletion."""
    x, _ = blob_image()
    h = explain(oracle_model, x, "gradcam", target_class=1)
    curve = deletion_curve(oracle_model, x, h, steps=10)
    assert curve.fractions.shape == curve.probabilities.shape == (11,)
    assert 0.0 <= curve.auc <= 1.0 and curve.auc < curve.random_auc
    assert curve.probabilities[0] > curve.probabilities[-1]
