"""HiResCAM, fused multi-layer CAMs, layer strides and per-batch (per-case) normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from explain_tiny import blob_image, build_tiny

from deepoxymap.errors import ExplainError
from deepoxymap.explain import METHODS, explain, explain_batch, fuse_maps, normalize_map, pool_to_grid
from deepoxymap.explain.methods import _grad_fn, check_method, layer_names, layer_stride

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


def _acts_grads(model, x, target, layer):
    t = tf.constant(np.full(len(x), target, np.int32))
    a, g, _, _ = _grad_fn(model, layer)(tf.constant(x), t, tf.constant(np.full(len(x), -1, np.int32)))
    return np.asarray(a[0]), np.asarray(g[0])


class TestContrast:
    @pytest.mark.parametrize("method", ["gradcam", "hirescam", "layercam"])
    def test_contrastive_map_is_the_method_on_the_gradient_difference(self, tiny_model, rng, method):
        """d(logit_t - logit_c)/dA = g_t - g_c: the contrastive map is the method applied to that difference."""
        from deepoxymap.explain.methods import _GRAD_CAMS

        x = rng.random((3, 32, 32, 3), dtype=np.float32)
        a, g2 = _acts_grads(tiny_model, x, 2, "conv1")
        _, g0 = _acts_grads(tiny_model, x, 0, "conv1")
        want = _GRAD_CAMS[method](a, g2 - g0)
        got = explain_batch(tiny_model, x, method, 2, "conv1", contrast_class=0)
        assert [h.contrast_class for h in got] == [0, 0, 0] and [h.target_class for h in got] == [2, 2, 2]
        np.testing.assert_allclose(np.stack([h.raw for h in got]), want, rtol=1e-4, atol=1e-6)
        plain = explain_batch(tiny_model, x, method, 2, "conv1")
        assert not np.allclose(np.stack([h.raw for h in plain]), want, atol=1e-6)

    def test_contrast_equal_to_the_target_is_the_plain_map(self, tiny_model, rng):
        x = rng.random((2, 32, 32, 3), dtype=np.float32)
        same = explain_batch(tiny_model, x, "gradcam", [1, 3], "conv1", contrast_class=[1, 0])
        plain = explain_batch(tiny_model, x, "gradcam", [1, 3], "conv1")
        assert same[0].contrast_class is None and same[1].contrast_class == 0
        np.testing.assert_allclose(same[0].raw, plain[0].raw, atol=1e-7)

    def test_contrast_needs_a_gradient_cam(self, tiny_model, rng):
        x = rng.random((1, 32, 32, 3), dtype=np.float32)
        with pytest.raises(ExplainError, match="contrast class needs a gradient CAM"):
            explain_batch(tiny_model, x, "smoothgrad", 1, contrast_class=0)
        with pytest.raises(ExplainError, match="out of range"):
            explain_batch(tiny_model, x, "gradcam", 1, contrast_class=7)


class TestHiResCAM:
    def test_registered(self):
        """HiResCAM is in the registry and its spellings resolve."""
        assert METHODS["hirescam"].uses_layer and "Draelos" in METHODS["hirescam"].reference
        assert check_method("HiResCAM") == check_method("hires_cam") == "hirescam"

    def test_equals_gradcam_when_gradient_is_spatially_constant(self, tiny_model, rng):
        """conv_last -> GAP -> Dense: d logit / dA_k(i, j) = w_k / (h w) everywhere, so HiResCAM == Grad-CAM."""
        x = rng.random((3, 32, 32, 3), dtype=np.float32)
        _, g = _acts_grads(tiny_model, x, 2, "conv_last")
        np.testing.assert_allclose(g, np.broadcast_to(g[:, :1, :1, :], g.shape), atol=1e-7)  # the premise
        hi = explain_batch(tiny_model, x, "hirescam", 2, "conv_last")
        gc = explain_batch(tiny_model, x, "gradcam", 2, "conv_last")
        for a, b in zip(hi, gc, strict=True):
            np.testing.assert_allclose(a.raw, b.raw, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(a.array, b.array, atol=1e-5)

    def test_differs_when_gradient_varies(self, tiny_model, rng):
        """At conv1 (max-pool and a conv above it) the gradient varies: HiResCAM = ReLU(sum_k g * A), not Grad-CAM."""
        x = rng.random((2, 32, 32, 3), dtype=np.float32)
        a, g = _acts_grads(tiny_model, x, 1, "conv1")
        assert g.std(axis=(1, 2)).max() > 1e-6  # the premise: not spatially constant
        hi = explain_batch(tiny_model, x, "hirescam", 1, "conv1")
        gc = explain_batch(tiny_model, x, "gradcam", 1, "conv1")
        for i in range(2):
            np.testing.assert_allclose(hi[i].raw, np.maximum((g[i] * a[i]).sum(axis=-1), 0.0), rtol=1e-5, atol=1e-7)
            assert not np.allclose(hi[i].array, gc[i].array, atol=1e-3)


class TestFusedLayers:
    def test_names_and_order(self, tiny_model):
        """A tuple, a list and a '+'-joined string name the same layers, shallow to deep."""
        assert layer_names(tiny_model, "conv_last+conv1") == ("conv1", "conv_last")
        assert layer_names(tiny_model, ["conv_last", "conv1", "conv1"]) == ("conv1", "conv_last")
        assert layer_names(tiny_model, None) == ("conv_last",)
        with pytest.raises(ExplainError):
            layer_names(tiny_model, "conv1+gap")

    def test_stride(self, tiny_model):
        """conv_last is a 16 x 16 grid on the 32-px input (stride 2); fused with conv1 it reads at stride 1."""
        assert layer_stride(tiny_model, "conv_last") == (2.0, 2.0)
        assert layer_stride(tiny_model, ("conv1", "conv_last")) == (1.0, 1.0)

    def test_fused_layercam_has_the_finest_resolution_and_the_documented_rule(self, tiny_model, rng):
        """Fused raw map on conv1's 32 x 32 grid; the map is fuse_maps of the single-layer maps, normalised."""
        x = rng.random((2, 32, 32, 3), dtype=np.float32)
        fused = explain_batch(tiny_model, x, "layercam", 0, "conv_last+conv1")
        same = explain_batch(tiny_model, x, "layercam", 0, ("conv1", "conv_last"))
        deep = explain_batch(tiny_model, x, "layercam", 0, "conv_last")
        fine = explain_batch(tiny_model, x, "layercam", 0, "conv1")
        assert deep[0].raw.shape == (16, 16)
        for i in range(2):
            assert fused[i].layer == "conv1+conv_last"
            assert fused[i].raw.shape == (32, 32)  # the finest layer's grid
            np.testing.assert_array_equal(fused[i].array, same[i].array)
            want = fuse_maps([fine[i].raw[None], deep[i].raw[None]], (32, 32))[0]
            np.testing.assert_allclose(fused[i].array, normalize_map(want), atol=1e-6)
            # the rule by hand: tanh(2 m) for the shallow layer, element-wise maximum
            m1, m2 = normalize_map(fine[i].raw), normalize_map(deep[i].array)
            np.testing.assert_allclose(fused[i].array, normalize_map(np.maximum(np.tanh(2 * m1), m2)), atol=1e-3)

    def test_fused_map_keeps_fine_detail(self):
        """A one-pixel-wide stripe the fine layer sees survives fusion: the map varies inside one 8-px coarse cell."""
        fine = np.zeros((1, 32, 32), np.float32)
        fine[0, :, 20] = 1.0
        coarse = np.zeros((1, 4, 4), np.float32)
        coarse[0, 0, 0] = 1.0  # deep evidence far from the stripe
        f = fuse_maps([fine, coarse], (32, 32))[0]
        assert f.shape == (32, 32) and f[0, 0] == pytest.approx(1.0)
        assert f[16:, 20].min() > 0.9  # tanh(2) = 0.96 on the stripe
        assert f[16:, 17].max() < 0.2 and f[16:, 23].max() < 0.2  # same coarse cell (columns 16-23), off the stripe

    def test_scorecam_takes_one_layer(self, tiny_model, rng):
        """Score-CAM with several layers is refused."""
        with pytest.raises(ExplainError):
            explain(tiny_model, rng.random((32, 32, 3), dtype=np.float32), "scorecam", layer="conv1+conv_last")

    def test_every_gradient_cam_fuses(self, tiny_model, rng):
        """Grad-CAM, Grad-CAM++, HiResCAM and Layer-CAM all accept fused layers, one gradient pass."""
        from deepoxymap.explain import explain_methods

        x = rng.random((2, 32, 32, 3), dtype=np.float32)
        res = explain_methods(tiny_model, x, ["gradcam", "gradcam++", "hirescam", "layercam"], 1, "conv1+conv_last")
        for hms in res.values():
            for h in hms:
                assert h.raw.shape == (32, 32) and 0 <= h.array.min() and h.array.max() <= 1


class TestNormalisation:
    def test_batch_normalisation_keeps_a_weak_input_weak(self, oracle_model):
        """One maximum over the batch: a dimmer blob's map peaks below 1 (per slice it would be forced to 1)."""
        x1, _ = blob_image()
        x2, _ = blob_image(centre=(20, 10))
        x2 = np.where(x2 > 0.5, 0.72, x2).astype(np.float32)  # a weaker lesion
        x = np.stack([x1, x2])
        per_slice = explain_batch(oracle_model, x, "gradcam", 1)
        per_case = explain_batch(oracle_model, x, "gradcam", 1, normalize="batch")
        assert per_slice[1].array.max() == pytest.approx(1.0, abs=1e-3)
        assert per_case[0].array.max() == pytest.approx(1.0, abs=1e-3)
        assert per_case[1].array.max() < 0.8
        assert per_case[1].peak == per_slice[1].peak  # same shape, smaller scale

    def test_bad_normalisation(self, tiny_model, rng):
        """An unknown normalisation is refused."""
        with pytest.raises(ExplainError):
            explain_batch(tiny_model, rng.random((1, 32, 32, 3), dtype=np.float32), normalize="image")  # type: ignore[arg-type]


def test_pool_to_grid():
    """Average pooling onto a layer grid, also when the size does not divide."""
    a = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_allclose(pool_to_grid(a, (2, 2)), [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_allclose(pool_to_grid(a, (4, 4)), a)
    b = np.ones((7, 5))
    np.testing.assert_allclose(pool_to_grid(b, (3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError):
        pool_to_grid(a, (5, 1))


def test_default_method_is_registered():
    """The app's default method is a registry name."""
    from deepoxymap.explain import DEFAULT_METHOD

    assert DEFAULT_METHOD in METHODS and build_tiny is not None
