"""Tiny Keras models and images for the explain tests (tf-keras-vis style: named conv layers, logits, softmax)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")


def build_tiny(size: int = 32, n_classes: int = 4, seed: int = 0) -> keras.Model:
    """32x32x3 -> conv1 (8) -> pool -> conv_last (8) -> GAP -> logits -> softmax."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_last")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(n_classes, name="logits")(x)
    out = keras.layers.Activation("softmax", name="probs")(x)
    return keras.Model(inp, out, name="tiny")


def build_oracle(size: int = 32) -> keras.Model:
    """A hand-weighted model whose class 1 ('lesion') logit is the mean bright-blob response.

    ``conv_blob`` channel 0 is a symmetric 5x5 averaging filter on channel 0
    minus a threshold (fires only on bright blobs); channel 1 fires on
    everything (background evidence for class 0). ``logits``: class 1 =
    10 * GAP(ch0), class 0 = GAP(ch1) - 10 * GAP(ch0).
    """
    inp = keras.Input((size, size, 3), name="image")
    conv = keras.layers.Conv2D(2, 5, padding="same", activation="relu", name="conv_blob")
    x = conv(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    dense = keras.layers.Dense(2, name="logits")
    x = dense(x)
    out = keras.layers.Activation("softmax", name="probs")(x)
    model = keras.Model(inp, out, name="oracle")
    k = np.zeros((5, 5, 3, 2), np.float32)
    k[:, :, 0, 0] = 1.0 / 25.0
    k[2, 2, 0, 1] = 0.1
    conv.set_weights([k, np.array([-0.5, 0.5], np.float32)])
    dense.set_weights([np.array([[-10.0, 10.0], [1.0, 0.0]], np.float32), np.zeros(2, np.float32)])
    return model


def blob_image(
    size: int = 32, centre: tuple[int, int] = (8, 22), radius: float = 3.5, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A dark noisy image with one bright disc; returns (x float32 [H, W, 3], mask bool [H, W])."""
    rng = rng or np.random.default_rng(0)
    rr, cc = np.mgrid[0:size, 0:size]
    mask = (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= radius**2
    img = 0.1 + 0.05 * rng.standard_normal((size, size))
    img[mask] = 1.0
    x = np.repeat(img[..., None], 3, axis=-1).astype(np.float32)
    return x, mask
