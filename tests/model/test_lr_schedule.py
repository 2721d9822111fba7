"""The cosine learning-rate schedule of ``train --lr-cosine``: its values, and that a fit follows it."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

pytest.importorskip("keras")

from model_synth import fake_loader, tiny_train_config

from deepoxymap.model.train import TrainConfig, train
from deepoxymap.model.train_loop import cosine_lr


def test_cosine_lr_runs_from_lr_to_a_hundredth_along_half_a_cosine() -> None:
    lr, n = 1e-3, 5
    got = [cosine_lr(e, n, lr) for e in range(n)]
    assert got[0] == pytest.approx(lr) and got[-1] == pytest.approx(lr / 100)
    # the midpoint is the mean of the two ends, and the curve falls monotonically
    assert got[2] == pytest.approx((lr + lr / 100) / 2)
    assert all(a > b for a, b in itertools.pairwise(got))
    assert got[1] == pytest.approx(lr / 100 + 0.5 * (lr - lr / 100) * (1 + math.cos(math.pi / 4)))
    # past the end it stays at the floor; a one-epoch phase keeps lr
    assert cosine_lr(9, n, lr) == pytest.approx(lr / 100) and cosine_lr(0, 1, lr) == lr


def test_a_fit_with_lr_cosine_follows_the_schedule_and_says_so(tmp_path) -> None:
    cfg = tiny_train_config(tmp_path, epochs=4, patience=10, lr=1e-2, lr_cosine=True)
    res = train(cfg, loader=fake_loader, log=lambda s: None)
    lrs = res.card["training"]["history"]["learning_rate"]
    assert len(lrs) == 4
    np.testing.assert_allclose(lrs, [cosine_lr(e, 4, 1e-2) for e in range(4)], rtol=1e-5)
    assert "cosine" in res.card["training"]["optimizer"]
    with pytest.raises(ValueError, match="choose one"):
        TrainConfig(manifest=cfg.manifest, lr_cosine=True, lr_patience=2)
