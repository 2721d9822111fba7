"""The lesion-decoder experiment's own parts: its loss, and a class score that passes through the lesion map."""

from __future__ import annotations

import numpy as np
import pytest

from tools.lesion_decoder import DECODER_LAYERS, _soft_dice_bce, build_decoder


def test_the_lesion_loss_rewards_the_lesion_and_punishes_its_complement() -> None:
    y = np.zeros((2, 16, 16, 1), np.float32)
    y[:, 4:8, 4:12] = 1.0
    good = float(_soft_dice_bce(y, np.clip(y, 0.01, 0.99)))
    empty = float(_soft_dice_bce(y, np.full_like(y, 0.01)))
    wrong = float(_soft_dice_bce(y, np.clip(1.0 - y, 0.01, 0.99)))
    assert good < 0.1
    assert empty > good + 0.9  # soft Dice near 0: an all-background answer is not rewarded
    assert wrong > empty


@pytest.mark.parametrize("head", ["both", "lesion"])
def test_the_class_logits_move_with_the_lesion_map_and_the_readouts_exist(head: str) -> None:
    train_model, view = build_decoder(seed=0, head=head)
    names = {layer.name for layer in view.layers}
    assert ("block5_pool" in names) == (head == "both")  # --head lesion: no path around the lesion map
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    out = train_model(x, training=False)
    assert tuple(out["probs"].shape) == (2, 4)
    assert tuple(out["lesion"].shape) == (2, 64, 64, 1)
    for name in DECODER_LAYERS:
        assert len(view.get_layer(name).output.shape) == 4
    import keras

    logits = view.get_layer("logits")
    k, b = logits.get_weights()
    logits.set_weights([np.random.default_rng(1).normal(size=k.shape).astype(np.float32), b])
    score = keras.Model(view.input, logits.output)
    before = np.asarray(score(x, training=False))
    head = view.get_layer("lesion")
    hk, hb = head.get_weights()
    head.set_weights([np.zeros_like(hk), hb + 8.0])  # the lesion map saturates at 1 everywhere
    after = np.asarray(score(x, training=False))
    assert np.abs(after - before).max() > 0.1
