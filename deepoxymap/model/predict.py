"""Classify a case: per-slice probabilities and the case-level call.

:func:`predict_case` is what ``deepoxymap predict``, evaluation and the app
call. It preprocesses with the model card's spec through
:func:`~deepoxymap.model.preprocess.preprocess_case` (the training path) and
aggregates slices by the mean of their probabilities (see
:mod:`deepoxymap.model.metrics` for why), then applies the card's class-prior
correction, fitted on validation subjects (:mod:`deepoxymap.model.calibrate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Case
from deepoxymap.model.calibrate import apply_offset, card_offset
from deepoxymap.model.loading import LoadedModel
from deepoxymap.model.preprocess import Preprocessed, preprocess_case

__all__ = ["CasePrediction", "predict", "predict_array", "predict_case"]


@dataclass(frozen=True, eq=False)
class CasePrediction:
    """Prediction for one case.

    Attributes:
        case_id: the case.
        classes: class names in column order.
        slice_probs: float32 ``[n_slices, C]`` softmax probabilities per slice.
        case_probs: float32 ``[C]`` mean of the slice probabilities, with the card's class-prior
            correction (``decision``; :mod:`deepoxymap.model.calibrate`) where it has one.
        call: the class with the highest case probability.
        preprocessed: the model input and its transforms (for feature maps).
        mc_std: float32 ``[n_slices, C]`` MC-dropout std of the probabilities, or ``None``.
        mc_entropy: float32 ``[n_slices]`` predictive entropy (nats), or ``None``.
        notes: fallbacks taken by preprocessing.
    """

    case_id: str
    classes: tuple[str, ...]
    slice_probs: NDArray[np.float32]
    case_probs: NDArray[np.float32]
    call: str
    preprocessed: Preprocessed
    mc_std: NDArray[np.float32] | None = None
    mc_entropy: NDArray[np.float32] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        """Case probability of the call."""
        return float(self.case_probs.max())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        pre = self.preprocessed
        return {
            "case_id": self.case_id,
            "call": self.call,
            "case_probs": dict(zip(self.classes, map(float, self.case_probs), strict=True)),
            "slices": [
                {
                    "slice_index": int(k),
                    "frame": int(f),
                    "probs": dict(zip(self.classes, map(float, p), strict=True)),
                    **({"entropy": float(self.mc_entropy[i])} if self.mc_entropy is not None else {}),
                }
                for i, (k, f, p) in enumerate(zip(pre.slice_indices, pre.frames, self.slice_probs, strict=True))
            ],
            "timepoint": pre.timepoint,
            "notes": list(self.notes),
        }


def predict_array(model: Any, x: NDArray[np.float32], batch_size: int = 32) -> NDArray[np.float32]:
    """Softmax probabilities ``[n, C]`` of a preprocessed batch ``[n, H, W, 3]`` (inference mode)."""
    x = np.asarray(x, dtype=np.float32)
    outs = [np.asarray(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, int(model.output_shape[-1])), np.float32)


def predict(
    loaded: LoadedModel, pre: Preprocessed, *, case_id: str = "", mc_samples: int = 0, seed: int = 0
) -> CasePrediction:
    """Per-slice probabilities and the case call of an already preprocessed case.

    Args:
        loaded: from :func:`deepoxymap.model.load_model`.
        pre: ``preprocess_case(case, loaded.spec)`` (computed once and shared with
            the feature maps and the reference masks).
        case_id: recorded in the result.
        mc_samples: if > 0, MC-dropout samples; the probabilities are then the
            MC mean and ``mc_std`` / ``mc_entropy`` are filled.
        seed: MC-dropout seed.
    """
    std = ent = None
    if mc_samples > 0:
        from deepoxymap.model.architectures import mc_dropout_predict

        probs, std, ent = mc_dropout_predict(loaded.model, pre.x, mc_samples, seed=seed)
    else:
        probs = predict_array(loaded.model, pre.x)
    offset = card_offset(loaded.card, loaded.classes)
    case_probs = apply_offset(probs.mean(axis=0), offset).astype(np.float32)
    call = loaded.classes[int(np.argmax(case_probs))]
    return CasePrediction(
        case_id=case_id,
        classes=loaded.classes,
        slice_probs=probs,
        case_probs=case_probs,
        call=call,
        preprocessed=pre,
        mc_std=std,
        mc_entropy=ent,
        notes=list(pre.notes),
    )


def predict_case(loaded: LoadedModel, case: Case, *, mc_samples: int = 0, seed: int = 0) -> CasePrediction:
    """:func:`predict` after ``preprocess_case(case, loaded.spec)`` (for callers that hold only the case).

    Raises:
        CaseError: the case has nothing to classify.
    """
    pre = preprocess_case(case, loaded.spec)
    return predict(loaded, pre, case_id=case.case_id, mc_samples=mc_samples, seed=seed)
