"""The classifier: architectures, shared preprocessing, training, evaluation, safe loading.

Importing this package does not import TensorFlow; the heavy names below are
resolved lazily on first use.

Public API (see docs/CONTRACTS.md):
    preprocess.PreprocessSpec, preprocess.CropTransform, preprocess.preprocess_case
    load_model(path=None) -> LoadedModel; predict_case(loaded, case) -> CasePrediction
    build_model(arch, input_size, weights), mc_dropout_predict(model, x, n)
    train.train(TrainConfig) -> TrainResult; evaluate.evaluate_models(...)
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PreprocessSpec": "deepoxymap.model.preprocess",
    "CropTransform": "deepoxymap.model.preprocess",
    "Preprocessed": "deepoxymap.model.preprocess",
    "preprocess_case": "deepoxymap.model.preprocess",
    "LoadedModel": "deepoxymap.model.loading",
    "load_model": "deepoxymap.model.loading",
    "verify_model_file": "deepoxymap.model.loading",
    "CasePrediction": "deepoxymap.model.predict",
    "predict": "deepoxymap.model.predict",
    "predict_case": "deepoxymap.model.predict",
    "build_model": "deepoxymap.model.architectures",
    "mc_dropout_predict": "deepoxymap.model.architectures",
    "TrainConfig": "deepoxymap.model.train",
}

__all__ = [
    "CasePrediction",
    "CropTransform",
    "LoadedModel",
    "PreprocessSpec",
    "Preprocessed",
    "TrainConfig",
    "build_model",
    "load_model",
    "mc_dropout_predict",
    "predict",
    "predict_case",
    "preprocess_case",
    "verify_model_file",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepoxymap.model' has no attribute {name!r}")
