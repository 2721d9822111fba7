"""Flat graphs, named head layers, weights routes (PATH honestly, ImageNet offline), MC-dropout."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from deepoxymap.errors import ModelLoadError, WeightsUnavailableError
from deepoxymap.model.architectures import HEAD_LAYERS, build_base, build_model, mc_dropout_predict


@pytest.fixture(scope="module")
def vgg32():
    return build_model("vgg19", 32, None, seed=0)


def test_vgg19_is_one_flat_graph(vgg32) -> None:
    assert not any(isinstance(layer, keras.Model) for layer in vgg32.layers), "nested model breaks CAMs"
    names = [layer.name for layer in vgg32.layers]
    assert names[-len(HEAD_LAYERS) :] == list(HEAD_LAYERS)
    assert "block5_conv4" in names
    assert vgg32.get_layer("probs").get_config()["activation"] == "softmax"
    assert vgg32.get_layer("logits").get_config()["activation"] == "linear"
    assert vgg32.output_shape == (None, 4)
    p = np.asarray(vgg32(np.zeros((2, 32, 32, 3), np.float32)))
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("arch", ["resnet50", "efficientnetb0"])
def test_baselines_are_flat(arch: str) -> None:
    m = build_model(arch, 32, None)
    assert not any(isinstance(layer, keras.Model) for layer in m.layers)
    assert m.get_layer("logits") is not None and m.output_shape == (None, 4)


def test_weights_from_local_file_round_trip(tmp_path, vgg32) -> None:
    """Save a randomly initialised base's weights, load them by PATH, compare every array."""
    keras.utils.set_random_seed(123)
    base = build_base("vgg19", 32, None)
    f = tmp_path / "vgg19_random_notop.weights.h5"
    base.save_weights(f)
    keras.utils.set_random_seed(999)  # a different init, so equality proves the load
    m = build_model("vgg19", 32, str(f))
    for w_saved, layer in zip(base.get_weights(), [v for v in m.weights][: len(base.weights)], strict=True):
        assert np.array_equal(w_saved, np.asarray(layer))
    assert not np.array_equal(base.get_weights()[0], vgg32.get_weights()[0])


def test_missing_weights_file() -> None:
    with pytest.raises(WeightsUnavailableError, match="weights file not found"):
        build_model("vgg19", 32, "/nonexistent/vgg.h5")


def test_wrong_weights_file(tmp_path) -> None:
    f = tmp_path / "tiny.weights.h5"
    build_base("tinycnn", 32, None).save_weights(f)
    with pytest.raises(ModelLoadError):
        build_base("vgg19", 32, str(f))


def test_imagenet_offline_fails_fast_naming_the_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty cache

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as ei:
        build_model("vgg19", 32, "imagenet")
    assert time.perf_counter() - t0 < 5
    msg = str(ei.value)
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in msg
    assert "~/.keras/models" in msg and "--weights PATH" in msg


def test_mc_dropout(vgg32) -> None:
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    mean, std, ent = mc_dropout_predict(vgg32, x, n_samples=10)
    assert mean.shape == (3, 4) and std.shape == (3, 4) and ent.shape == (3,)
    assert np.allclose(mean.sum(axis=1), 1.0, atol=1e-5)
    assert (std > 0).any() and (ent > 0).all() and (ent <= np.log(4) + 1e-6).all()
    # the deterministic model is untouched (no dropout at inference)
    a, b = np.asarray(vgg32(x)), np.asarray(vgg32(x))
    assert np.array_equal(a, b)
