"""Inverse preprocessing: a heatmap peak lands back on the right OS-CMR pixel (model/preprocess.py CropTransform)."""

from __future__ import annotations

import numpy as np
import pytest

from deepoxymap.explain import Heatmap, explain

preprocess = pytest.importorskip("deepoxymap.model.preprocess")


@pytest.mark.parametrize(("i", "j"), [(5, 7), (16, 16), (28, 3)])
def test_delta_peak_maps_to_model_to_source(i, j):
    """A one-pixel heatmap at model (i, j) peaks at CropTransform.model_to_source(i, j) on the source grid."""
    t = preprocess.CropTransform(center=(60.5, 45.5), scale=(1.0, 1.0), model_shape=(32, 32), source_shape=(120, 100))
    h = np.zeros((32, 32), np.float32)
    h[i, j] = 1.0
    src = Heatmap(h, "gradcam", "x", 0, "healthy").to_source(t)
    assert src.grid == "source" and src.array.shape == (120, 100)
    assert src.peak == tuple(round(float(v)) for v in t.model_to_source((i, j)))


def test_oracle_peak_back_on_lesion_pixel(oracle_model):
    """LV-centred crop (anisotropic source pixels) -> oracle Grad-CAM -> to_source: peak within 3 mm of the blob."""
    rows, cols, ps = 110, 130, (1.4, 1.1)
    rr, cc = np.mgrid[0:rows, 0:cols]
    blob_rc = (38.0, 80.0)
    d_mm = np.hypot((rr - blob_rc[0]) * ps[0], (cc - blob_rc[1]) * ps[1])
    img = (0.1 + 0.02 * np.random.default_rng(1).standard_normal((rows, cols))).astype(np.float32)
    img[d_mm <= 6.0] = 1.0
    spec = preprocess.PreprocessSpec(input_size=32, crop_mm=80.0)
    crop, t = preprocess.crop_slice(img, ps, (50.0, 66.0), spec)
    h = explain(oracle_model, np.repeat(crop[..., None], 3, axis=-1), "gradcam", target_class=1)
    src = h.to_source(t)
    r, c = src.peak
    err_mm = np.hypot((r - blob_rc[0]) * ps[0], (c - blob_rc[1]) * ps[1])
    assert err_mm <= 3.0, (src.peak, err_mm)
    assert src.array[d_mm <= 12.0].sum() / src.array.sum() > 0.6
    outside = np.ones((rows, cols), bool)
    grid = t.source_grid()
    outside[
        int(np.ceil(grid[0].min())) : int(grid[0].max()) + 1, int(np.ceil(grid[1].min())) : int(grid[1].max()) + 1
    ] = False
    assert np.all(src.array[outside] == 0.0)
