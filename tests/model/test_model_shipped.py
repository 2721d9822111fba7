"""The shipped model (assets/models): card, hash, safe-mode load, and a call on every demo case.

Skips where the model is absent (a development tree) or the demo cohort has not
been generated (`make demo`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from deepoxymap import CLASSES
from deepoxymap.config import Settings

MODEL = Settings().model_path
SHIPPED_CARD = Path(__file__).resolve().parents[2] / "assets" / "models" / "deepoxymap_vgg19.json"


@pytest.fixture(scope="module")
def shipped():
    if not MODEL.is_file():
        pytest.skip(f"no shipped model at {MODEL}")
    from deepoxymap.model.loading import load_model

    return load_model(MODEL)  # verifies the sha256 against the card, safe_mode=True


def test_card_is_complete() -> None:
    if not MODEL.is_file():
        pytest.skip(f"no shipped model at {MODEL}")
    card = json.loads(MODEL.with_suffix(".json").read_text())
    assert card["classes"] == list(CLASSES)
    assert card["arch"] == "vgg19"
    assert "from scratch" in card["weights"]
    assert "SYNTHETIC" in card["intended_use"]
    assert card["training"]["command"].startswith("deepoxymap train")
    assert card["file"]["name"] == MODEL.name and len(card["file"]["sha256"]) == 64
    test = card["metrics"]["test"]
    assert test["n"] >= 30
    for k in ("accuracy", "macro_precision", "macro_recall", "macro_auc", "ece"):
        assert len(test[k]["ci"]) == 2
    split = card["training"]["split"]
    assert not set(split["train"]) & set(split["test"])
    assert MODEL.stat().st_size < 100e6  # no optimizer state (VGG19 + head ~ 81 MB)


def test_shipped_model_loads_and_is_flat(shipped) -> None:
    import keras

    assert shipped.classes == CLASSES
    assert not any(isinstance(layer, keras.Model) for layer in shipped.model.layers)
    assert shipped.model.get_layer("logits") is not None
    assert shipped.model.get_layer(shipped.card["gradcam_layer"]) is not None


def test_shipped_model_classifies_every_demo_case(shipped, demo_dir: Path) -> None:
    from deepoxymap.model.predict import predict_case
    from deepoxymap.phantom import load_subject

    with (demo_dir / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for row in rows:
        case = load_subject(demo_dir / row["path"])
        pred = predict_case(shipped, case)
        n = pred.preprocessed.x.shape[0]
        assert n >= 1 and pred.slice_probs.shape == (n, 4)
        assert np.allclose(pred.slice_probs.sum(axis=1), 1.0, atol=1e-4)
        assert pred.call in CLASSES


def test_cv_runs_the_shipped_training_recipe() -> None:
    """``evaluate --cv`` accepts the shipped card's training options and builds the same config as ``train``.

    Only where the models go and which split they train on may differ: a CV that silently
    dropped --conv-bn or --frame-jitter would evaluate another recipe than the one shipped.
    """
    import dataclasses
    import shlex

    from deepoxymap.cli import build_parser
    from deepoxymap.cli.train import config_from_args

    card = json.loads(SHIPPED_CARD.read_text())
    argv = shlex.split(card["training"]["command"])[1:]
    assert argv[0] == "train" and "--conv-bn" in argv and "--frame-jitter" in argv
    parser = build_parser()
    tr = config_from_args(parser.parse_args(argv))
    i = argv.index("--out")
    cv_argv = ["evaluate", "--cv", "5", *argv[1:i], *argv[i + 2 :]]
    cv = config_from_args(parser.parse_args(cv_argv))
    neutral = {"out": None, "name": None, "command": "", "jobs": None}  # where and how fast, not the recipe
    assert dataclasses.replace(tr, **neutral) == dataclasses.replace(cv, **neutral)
    assert cv.conv_bn and cv.frame_jitter == 2 and cv.lr_patience == 4 and cv.spec.crop_mm == 120.0
    # the recipe the card records is the one these options build
    assert card["training"]["config"]["lr"] == cv.lr and card["training"]["config"]["batch_size"] == cv.batch_size
