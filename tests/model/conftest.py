"""Fixtures for the model tests (hand-made cases; a tiny CNN, never a full VGG19 training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from model_synth import fake_loader, make_case, write_fake_manifest


@pytest.fixture
def synth_case():
    """One two-slice case (OS-CMR baseline + bh-end), ES at frame 2."""
    return make_case("T001", "ischemic", es_frame=2)


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory):
    """A tinycnn trained for 2 epochs on a fake 16-subject cohort: (TrainResult, manifest, cache)."""
    from deepoxymap.model.augment import AugmentSpec
    from deepoxymap.model.preprocess import PreprocessSpec
    from deepoxymap.model.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny")
    manifest = write_fake_manifest(root / "cohort", n_per_class=4)
    cfg = TrainConfig(
        manifest=manifest,
        arch="tinycnn",
        weights="none",
        out=root / "models",
        spec=PreprocessSpec(input_size=32, crop_mm=80.0),
        augment=AugmentSpec("rot20"),
        epochs=2,
        batch_size=8,
        lr=1e-3,
        n_boot=50,
        cache_dir=root / "cache",
        command="pytest tiny",
    )
    res = train(cfg, loader=fake_loader, log=lambda s: None)
    return res, manifest, root / "cache"
