"""Feature maps that can be trusted: CAM methods, raw feature maps, sanity checks.

Public API (TensorFlow is imported on first use, not on import)::

    explain(model, x, method="gradcam", target_class=None, layer=None) -> Heatmap
    explain_batch(model, x[n, H, W, C], method, target_class, layer) -> list[Heatmap]
    explain_methods(model, x, ["gradcam", "gradcam++", "layercam"], ...) -> {method: [Heatmap]}  # one gradient pass
    feature_maps(model, x, layer=None, top_k=8) -> FeatureMaps
    METHODS                       # registry: gradcam, gradcam++, layercam, scorecam, smoothgrad
    conv_layer_names(model), default_layer(model)
    Heatmap.to_source(crop_transform)  # back onto the OS-CMR pixel grid
    randomization_check(...), deletion_curve(...)   # deepoxymap.explain.sanity
"""

from __future__ import annotations

from typing import Any

from deepoxymap.explain.heatmap import FeatureMaps, Heatmap, normalize_map, upsample_map

__all__ = [
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
    "normalize_map",
    "randomization_check",
    "upsample_map",
]

_LAZY = {
    "METHODS": "deepoxymap.explain.methods",
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
