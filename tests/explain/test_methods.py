"""CAM methods on tiny models: equality with tf-keras-vis, ranges, oracle, rotation, no mutation."""

from __future__ import annotations

import numpy as np
import pytest
from explain_tiny import blob_image, build_tiny

from deepoxymap.errors import ExplainError
from deepoxymap.explain import METHODS, explain, explain_batch, feature_maps
from deepoxymap.explain.methods import _grad_fn, conv_layer_names, default_layer

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

ALL = sorted(METHODS)


def _tkv(cls, model, x, target, layer, **kw):
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    vis = cls(model, model_modifier=ReplaceToLinear(), clone=True)
    return np.asarray(vis(CategoricalScore([target]), x, penultimate_layer=layer, **kw))[0]


class TestAgainstTfKerasVis:
    @pytest.mark.parametrize("layer", ["conv_last", "conv1"])
    def test_gradcam_equals_tf_keras_vis(self, tiny_model, rng, layer):
        """Our cached tf.function Grad-CAM equals tf-keras-vis Gradcam (ReplaceToLinear + CategoricalScore)."""
        from tf_keras_vis.gradcam import Gradcam

        x = rng.random((1, 32, 32, 3), dtype=np.float32)
        for target in (0, 2):
            ours = explain(tiny_model, x, "gradcam", target_class=target, layer=layer, align="corner")
            low = _tkv(Gradcam, tiny_model, x, target, layer, expand_cam=False)
            full = _tkv(Gradcam, tiny_model, x, target, layer)
            raw = ours.raw / (ours.raw.max() - ours.raw.min() + 1e-7)
            np.testing.assert_allclose(raw, low, atol=1e-5)
            np.testing.assert_allclose(ours.array, full, atol=1e-5)

    @pytest.mark.parametrize(("method", "cls_name"), [("gradcam++", "GradcamPlusPlus"), ("layercam", "Layercam")])
    def test_other_gradient_cams_equal_tf_keras_vis(self, tiny_model, rng, method, cls_name):
        """Grad-CAM++ and Layer-CAM on the fast path agree with tf-keras-vis."""
        import tf_keras_vis.gradcam_plus_plus as gpp
        import tf_keras_vis.layercam as lc

        cls = {"GradcamPlusPlus": gpp.GradcamPlusPlus, "Layercam": lc.Layercam}[cls_name]
        x = rng.random((1, 32, 32, 3), dtype=np.float32)
        ours = explain(tiny_model, x, method, target_class=1, align="corner")
        full = _tkv(cls, tiny_model, x, 1, "conv_last")
        np.testing.assert_allclose(ours.array, full, atol=1e-4)

    def test_centre_alignment_differs_only_in_upsampling(self, tiny_model, rng):
        """The default (pixel-centre) upsampling keeps the same layer-grid CAM."""
        x = rng.random((1, 32, 32, 3), dtype=np.float32)
        a = explain(tiny_model, x, "gradcam", target_class=0)
        b = explain(tiny_model, x, "gradcam", target_class=0, align="corner")
        np.testing.assert_array_equal(a.raw, b.raw)
        assert np.corrcoef(a.array.ravel(), b.array.ravel())[0, 1] > 0.95


class TestRangeAndTargets:
    @pytest.mark.parametrize("method", ALL)
    def test_finite_in_unit_range(self, tiny_model, rng, method):
        """Every method returns a finite float32 [H, W] map in [0, 1]."""
        x = rng.random((2, 32, 32, 3), dtype=np.float32)
        hms = explain_batch(tiny_model, x, method, smooth_samples=4, max_n=4)
        assert len(hms) == 2
        for h in hms:
            assert h.array.shape == (32, 32) and h.array.dtype == np.float32
            assert np.all(np.isfinite(h.array)) and h.array.min() >= 0.0 and h.array.max() <= 1.0
            assert h.probabilities is not None and abs(float(h.probabilities.sum()) - 1) < 1e-5

    @pytest.mark.parametrize("method", ALL)
    def test_zero_gradient_gives_zeros(self, rng, method):
        """A model whose logits ignore the image gives all-zero maps, not NaN."""
        model = build_tiny(seed=3)
        model.get_layer("logits").set_weights([np.zeros((8, 4), np.float32), np.array([0, 1, 0, 0], np.float32)])
        h = explain(model, rng.random((32, 32, 3), dtype=np.float32), method, smooth_samples=2, max_n=2)
        assert np.all(np.isfinite(h.array))
        if method != "scorecam":  # score-CAM weights by softmax scores, not gradients
            assert np.all(h.array == 0.0)
        assert h.target_class == 1

    def test_default_target_is_predicted(self, tiny_model, rng):
        """target_class=None explains argmax of the logits, per input."""
        x = rng.random((3, 32, 32, 3), dtype=np.float32)
        pred = np.argmax(tiny_model(x, training=False).numpy(), axis=-1)
        hms = explain_batch(tiny_model, x)
        assert [h.target_class for h in hms] == pred.tolist()
        assert hms[0].class_name in ("healthy", "ischemic", "non-ischemic", "edema")
        again = explain_batch(tiny_model, x, target_class=pred.tolist())
        for a, b in zip(hms, again, strict=True):
            np.testing.assert_array_equal(a.array, b.array)

    def test_bad_arguments_raise(self, tiny_model, rng):
        """Unknown method, layer, class or input shape raise ExplainError."""
        x = rng.random((32, 32, 3), dtype=np.float32)
        with pytest.raises(ExplainError):
            explain(tiny_model, x, "nope")
        with pytest.raises(ExplainError):
            explain(tiny_model, x, layer="gap")
        with pytest.raises(ExplainError):
            explain(tiny_model, x, layer="missing")
        with pytest.raises(ExplainError):
            explain(tiny_model, x, target_class=4)
        with pytest.raises(ExplainError):
            explain(tiny_model, x[:16])

    def test_layers(self, tiny_model):
        """Convolutional layers are listed; the default is the last one."""
        assert conv_layer_names(tiny_model) == ["conv1", "conv_last"]
        assert default_layer(tiny_model) == "conv_last"


class TestNoMutationAndCache:
    def test_model_unchanged(self, rng):
        """Weights, output activation and outputs are identical after every method ran."""
        model = build_tiny(seed=5)
        x = rng.random((2, 32, 32, 3), dtype=np.float32)
        w0 = [w.copy() for w in model.get_weights()]
        y0 = model(x, training=False).numpy()
        a0 = keras.Model(model.inputs, model.get_layer("conv_last").output)(x).numpy()
        act0 = model.get_layer("probs").activation
        for m in ALL:
            explain_batch(model, x, m, smooth_samples=2, max_n=2)
            feature_maps(model, x[:1])
        for a, b in zip(w0, model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(y0, model(x, training=False).numpy())
        np.testing.assert_array_equal(a0, keras.Model(model.inputs, model.get_layer("conv_last").output)(x).numpy())
        assert model.get_layer("probs").activation is act0
        assert np.allclose(model(x).numpy().sum(axis=-1), 1.0)  # still a softmax

    def test_grad_model_cached_per_model_and_layer(self, tiny_model):
        """The grad function is built once per (model, layer)."""
        f1 = _grad_fn(tiny_model, "conv_last")
        assert _grad_fn(tiny_model, "conv_last") is f1
        assert _grad_fn(tiny_model, "conv1") is not f1
        other = build_tiny(seed=1)
        assert _grad_fn(other, "conv_last") is not f1


class TestOracleAndRotation:
    @pytest.mark.parametrize("method", ALL)
    def test_oracle_heatmap_lands_in_lesion(self, oracle_model, method):
        """The bright-blob detector's map peaks inside the blob, and most energy is there."""
        x, mask = blob_image()
        h = explain(oracle_model, x, method, target_class=1, smooth_samples=8, max_n=2)
        r, c = h.peak
        dilated = np.zeros_like(mask)
        rr, cc = np.nonzero(mask)
        for dr in (-2, -1, 0, 1, 2):
            for dc in (-2, -1, 0, 1, 2):
                dilated[np.clip(rr + dr, 0, 31), np.clip(cc + dc, 0, 31)] = True
        assert dilated[r, c], (method, h.peak)
        if method != "scorecam":  # Score-CAM also weights the flat background channel by a high score
            assert h.array[dilated].sum() / h.array.sum() > 0.5

    @pytest.mark.parametrize("k", [1, 2, 3])
    def test_rotated_input_gives_rotated_heatmap(self, oracle_model, k):
        """Grad-CAM of rot90(x) equals rot90 of Grad-CAM(x) for the rotation-symmetric oracle."""
        x, _ = blob_image(centre=(9, 21))
        h = explain(oracle_model, x, "gradcam", target_class=1).array
        hr = explain(oracle_model, np.rot90(x, k, axes=(0, 1)).copy(), "gradcam", target_class=1).array
        np.testing.assert_allclose(hr, np.rot90(h, k), atol=1e-5)


def test_feature_maps_top_k(tiny_model, rng):
    """Top-k channels come by decreasing mean activation, with their raw maps."""
    x = rng.random((32, 32, 3), dtype=np.float32)
    fm = feature_maps(tiny_model, x, "conv1", top_k=3)
    full = keras.Model(tiny_model.inputs, tiny_model.get_layer("conv1").output)(x[None]).numpy()[0]
    assert fm.maps.shape == (3, 32, 32) and fm.n_channels == 8
    np.testing.assert_allclose(fm.mean_activation, np.sort(full.mean(axis=(0, 1)))[::-1][:3], rtol=1e-5)
    np.testing.assert_allclose(fm.maps[0], full[..., fm.channels[0]], rtol=1e-5)
    assert fm.normalized((64, 64)).shape == (3, 64, 64)


@pytest.mark.parametrize("k", [1, 3])
def test_rotated_case_same_segment_energy(oracle_model, k):
    """SAX-like image with a bright inferolateral lesion: rotating image + labels keeps the CAM's AHA segment energy."""
    from deepoxymap.cardiac.segments import segment_energy_fraction, segment_map

    n = 32
    rr, cc = np.mgrid[0:n, 0:n].astype(float)
    dy, dx = -(rr - 15.5), cc - 15.5
    rad, th = np.hypot(dx, dy), np.degrees(np.arctan2(dy, dx)) % 360
    lab = np.zeros((n, n), np.uint8)
    lab[rad <= 6] = 1
    lab[(rad > 6) & (rad <= 10)] = 2
    lab[(rad > 10) & (rad <= 14) & (np.abs(th - 180) < 60)] = 3
    lesion = (lab == 2) & (np.abs(th - 320) < 25)
    img = np.where(lab == 1, 0.3, 0.1) + 0.9 * lesion
    x = np.repeat(img[..., None], 3, axis=-1).astype(np.float32)
    h = explain(oracle_model, x, "gradcam", target_class=1).array
    hr = explain(oracle_model, np.rot90(x, k).copy(), "gradcam", target_class=1).array
    seg, seg_r = segment_map(lab, "mid"), segment_map(np.rot90(lab, k), "mid")
    e, er = segment_energy_fraction(h, seg), segment_energy_fraction(hr, seg_r)
    np.testing.assert_allclose(e, er, atol=0.02)
    assert int(np.nanargmax(e)) + 1 == 11  # mid inferolateral


def test_explain_methods_shares_one_pass(tiny_model, rng):
    """explain_methods gives the same maps as one explain_batch call per method."""
    from deepoxymap.explain import explain_methods

    x = rng.random((2, 32, 32, 3), dtype=np.float32)
    many = explain_methods(tiny_model, x, ["gradcam", "Grad-CAM++", "layercam", "scorecam"], 2, "conv1", max_n=3)
    assert list(many) == ["gradcam", "gradcam++", "layercam", "scorecam"]
    for m, hms in many.items():
        for a, b in zip(hms, explain_batch(tiny_model, x, m, 2, "conv1", max_n=3), strict=True):
            np.testing.assert_array_equal(a.array, b.array)
