"""Safe loading of a shipped or trained model: card, hash, Keras safe mode.

:func:`load_model` reads the card beside the ``.keras`` file, verifies the
file's sha256 against it, then loads with ``keras.saving.load_model(...,
compile=False, safe_mode=True)`` (no arbitrary code: no Lambda layers) and
checks the graph (a ``logits`` layer, 4 outputs, the card's input size).
Every failure is a :class:`ModelLoadError` that says how to get a model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepoxymap import CLASSES
from deepoxymap.config import settings
from deepoxymap.errors import ModelLoadError
from deepoxymap.model.card import card_path_for, read_card, sha256_file
from deepoxymap.model.preprocess import PreprocessSpec

__all__ = ["TRAIN_HINT", "LoadedModel", "load_model", "verify_model_file"]

TRAIN_HINT = (
    "train one with `deepoxymap train --manifest data/study/manifest.csv --arch vgg19 --weights none "
    "--out assets/models` (see the model card's training.command), or restore assets/models/ from the repository"
)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A loaded classifier and its card.

    Attributes:
        model: flat ``keras.Model``; input float32 ``[n, S, S, 3]``, output
            softmax probabilities ``[n, 4]``; layer ``"logits"`` precedes the softmax.
        card: the model card dict.
        spec: the preprocessing spec from the card.
        path: the ``.keras`` file.
        classes: class names in output order (from the card; must equal ``deepoxymap.CLASSES``).
    """

    model: Any
    card: dict[str, Any]
    spec: PreprocessSpec
    path: Path
    classes: tuple[str, ...] = field(default=CLASSES)

    @property
    def arch(self) -> str:
        """Architecture name from the card."""
        return str(self.card.get("arch", "?"))


def verify_model_file(path: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """Check that a model file and its card exist and that the file's sha256 matches the card.

    Returns:
        ``(model_path, card)``.

    Raises:
        ModelLoadError: missing file or card, unreadable card, hash mismatch.
    """
    p = Path(path) if path is not None else settings().model_path
    if not p.is_file():
        raise ModelLoadError("model file not found", source=str(p), hint=TRAIN_HINT)
    cp = card_path_for(p)
    if not cp.is_file():
        raise ModelLoadError("model card (JSON beside the .keras file) not found", source=str(cp), hint=TRAIN_HINT)
    try:
        card = read_card(cp)
    except ValueError as exc:
        raise ModelLoadError(f"model card is not valid JSON: {exc}", source=str(cp), hint=TRAIN_HINT) from None
    expected = (card.get("file") or {}).get("sha256")
    if not expected:
        raise ModelLoadError("model card has no file.sha256", source=str(cp), hint=TRAIN_HINT)
    actual = sha256_file(p)
    if actual != expected:
        raise ModelLoadError(
            f"model file hash {actual[:12]}... does not match its card ({expected[:12]}...): "
            "the file is corrupt, truncated (e.g. a Git LFS pointer) or belongs to another card",
            source=str(p),
            hint=TRAIN_HINT,
        )
    return p, card


def load_model(path: str | os.PathLike[str] | None = None, *, verify_hash: bool = True) -> LoadedModel:
    """Load a classifier safely (see module doc).

    Args:
        path: the ``.keras`` file; default ``settings().model_path`` (the shipped model).
        verify_hash: compare the file's sha256 with the card (default True).

    Raises:
        ModelLoadError: missing/corrupt file or card, hash mismatch, unexpected graph.
    """
    if verify_hash:
        p, card = verify_model_file(path)
    else:
        p = Path(path) if path is not None else settings().model_path
        if not p.is_file():
            raise ModelLoadError("model file not found", source=str(p), hint=TRAIN_HINT)
        card = read_card(card_path_for(p))
    classes = tuple(card.get("classes") or ())
    if classes != CLASSES:
        raise ModelLoadError(
            f"model card classes {list(classes)} differ from this version's {list(CLASSES)}",
            source=str(p),
            hint=TRAIN_HINT,
        )
    try:
        spec = PreprocessSpec.from_dict(card["preprocessing"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"model card preprocessing is invalid: {exc}", source=str(p), hint=TRAIN_HINT) from None
    import keras

    try:
        model = keras.saving.load_model(str(p), compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - zip, h5 and deserialisation errors alike
        raise ModelLoadError(f"Keras could not load the model: {exc}", source=str(p), hint=TRAIN_HINT) from None
    try:
        model.get_layer("logits")
    except ValueError:
        raise ModelLoadError("model has no 'logits' layer", source=str(p), hint=TRAIN_HINT) from None
    in_shape = tuple(model.input_shape[1:])
    if in_shape != (spec.input_size, spec.input_size, 3) or int(model.output_shape[-1]) != len(CLASSES):
        raise ModelLoadError(
            f"model input {in_shape} / output {model.output_shape} do not match the card "
            f"({spec.input_size}x{spec.input_size}x3 -> {len(CLASSES)})",
            source=str(p),
            hint=TRAIN_HINT,
        )
    return LoadedModel(model=model, card=card, spec=spec, path=p, classes=classes)
