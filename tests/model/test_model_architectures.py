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


@pytest.mark.parametrize(("arch", "size"), [("tinycnn", 24), ("vgg19", 32)])
def test_conv_bn_training_form_folds_exactly_into_the_plain_graph(arch: str, size: int) -> None:
    """BatchNorm (with non-trivial statistics) folded into the convs gives the plain graph's logits."""
    import keras

    from deepoxymap.model.architectures import build_conv_bn_model, fold_conv_bn

    bn_model = build_conv_bn_model(arch, size, seed=3)
    rng = np.random.default_rng(0)
    n_bn = 0
    for layer in bn_model.layers:
        if type(layer).__name__ == "BatchNormalization":
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 2.0, c).astype("f4"))
            layer.beta.assign(rng.normal(0.0, 0.3, c).astype("f4"))
            layer.moving_mean.assign(rng.normal(0.0, 0.5, c).astype("f4"))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, c).astype("f4"))
            n_bn += 1
    lg = bn_model.get_layer("logits")
    lg.kernel.assign(rng.normal(0.0, 0.05, tuple(lg.kernel.shape)).astype("f4"))
    plain = build_model(arch, size, None)
    assert "BatchNormalization" not in {type(l).__name__ for l in plain.layers if not l.name.startswith("head")}
    n = fold_conv_bn(bn_model, plain)
    assert n == n_bn - 1  # every conv's BN, not the head's
    x = rng.normal(0.0, 1.0, (3, size, size, 3)).astype("f4")
    logits_bn = keras.Model(bn_model.input, bn_model.get_layer("logits").output)(x).numpy()
    logits_plain = keras.Model(plain.input, plain.get_layer("logits").output)(x).numpy()
    assert np.abs(logits_bn).max() > 0.1  # the comparison is not between zeros
    np.testing.assert_allclose(logits_plain, logits_bn, rtol=1e-4, atol=1e-4 * np.abs(logits_bn).max())
    # the last conv (the Grad-CAM layer) of the folded graph is the BN model's post-ReLU tensor
    last = ARCH_LAST[arch]
    a = keras.Model(plain.input, plain.get_layer(last).output)(x).numpy()
    b = keras.Model(bn_model.input, bn_model.get_layer(f"{last}_relu").output)(x).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


ARCH_LAST = {"tinycnn": "tiny_conv2", "vgg19": "block5_conv4"}
