"""Feature maps that can be trusted: CAM methods, raw feature maps, sanity checks.

Public API (TensorFlow is imported on first use, not on import)::

    explain(model, x, method="gradcam", target_class=None, layer=None) -> Heatmap
    explain_batch(model, x[n, H, W, C], method, target_class, layer) -> list[Heatmap]
    explain_methods(model, x, ["gradcam", "gradcam++", "layercam"], ...) -> {method: [Heatmap]}  # one gradient pass
    explain_batch(model, x, "layercam", layer="block3_conv4+block5_conv4")  # fused layers (fuse_maps)
    explain_batch(model, x, ..., normalize="batch")  # one min/max over the batch (a case's slices)
    feature_maps(model, x, layer=None, top_k=8) -> FeatureMaps
    METHODS                       # registry: gradcam, gradcam++, hirescam, layercam, scorecam, smoothgrad
    DEFAULT_METHOD                # the app's default method
    conv_layer_names(model), default_layer(model), layer_names(model, spec), layer_stride(model, spec)
    Heatmap.to_source(crop_transform)  # back onto the OS-CMR pixel grid
    randomization_check(...), deletion_curve(...)   # deepoxymap.explain.sanity
"""

from __future__ import annotations

from typing import Any

from deepoxymap.explain.heatmap import FeatureMaps, Heatmap, fuse_maps, normalize_map, pool_to_grid, upsample_map

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "FeatureMaps",
    "Heatmap",
    "conv_layer_names",
    "default_layer",
    "deletion_curve",
    "explain",
    "explain_batch",
    "explain_methods",
    "feature_maps",
    "fuse_maps",
    "layer_names",
    "layer_stride",
    "normalize_map",
    "pool_to_grid",
    "randomization_check",
    "upsample_map",
]

_LAZY = {
    "DEFAULT_METHOD": "deepoxymap.explain.methods",
    "METHODS": "deepoxymap.explain.methods",
    "layer_names": "deepoxymap.explain.methods",
    "layer_stride": "deepoxymap.explain.methods",
    "explain": "deepoxymap.explain.methods",
    "explain_batch": "deepoxymap.explain.methods",
    "explain_methods": "deepoxymap.explain.methods",
    "feature_maps": "deepoxymap.explain.methods",
    "conv_layer_names": "deepoxymap.explain.methods",
    "default_layer": "deepoxymap.explain.methods",
    "randomization_check": "deepoxymap.explain.sanity",
    "deletion_curve": "deepoxymap.explain.sanity",
}


def __getattr__(name: str) -> Any:
    """Import the TensorFlow-backed parts on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepoxymap.explain' has no attribute {name!r}")
