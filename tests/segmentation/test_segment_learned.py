"""The learned segmenter: its synthetic training images, the grid mapping, training and resuming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepoxymap.segmentation import learned
from deepoxymap.segmentation.check import dice
from deepoxymap.segmentation.synth import FINE_SIZE, SIZE, TARGET_OF_TISSUE, synth_batch, tissue_bank


@pytest.fixture(scope="module")
def bank() -> np.ndarray:
    return tissue_bank(2, seed=3)


def test_tissue_bank_is_centred_on_the_lv_and_has_every_target(bank: np.ndarray) -> None:
    assert bank.shape == (2 * 3 * 3, FINE_SIZE, FINE_SIZE) and bank.dtype == np.uint8
    target = TARGET_OF_TISSUE[bank]
    c = FINE_SIZE // 2
    assert (target[:, c, c] == 1).all()  # the LV centre of every slice is LV blood pool
    for lab in (1, 2, 3):
        assert (target == lab).any(axis=(1, 2)).all(), f"label {lab} missing from some map"
    # end-systole (third contraction) has a smaller cavity than end-diastole
    ed, es = (target[0::3] == 1).sum(axis=(1, 2)), (target[2::3] == 1).sum(axis=(1, 2))
    assert (es < ed).all()


def test_synth_batch_is_reproducible_and_labels_follow_the_image(bank: np.ndarray) -> None:
    x1, y1 = synth_batch(bank, np.random.default_rng(5), 6)
    x2, y2 = synth_batch(bank, np.random.default_rng(5), 6)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (6, SIZE, SIZE, 1) and y1.shape == (6, SIZE, SIZE)
    assert x1.dtype == np.float32 and 0.0 <= x1.min() and x1.max() <= 1.0
    # the appearance is random: the LV blood pool is brighter than the myocardium in some, darker in others
    diffs = [x1[b, ..., 0][y1[b] == 1].mean() - x1[b, ..., 0][y1[b] == 2].mean() for b in range(6)]
    assert all(abs(d) > 0.01 for d in diffs)
    # the LV stays within the shift range of the grid centre
    for b in range(6):
        rr, cc = np.nonzero(y1[b] == 1)
        assert abs(rr.mean() - SIZE / 2) * 1.5 < 25 and abs(cc.mean() - SIZE / 2) * 1.5 < 25


class _ThresholdModel:
    """Stands in for the U-Net: label 1 where the input is bright, else background; keeps its inputs."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, x: np.ndarray, batch_size: int = 16, verbose: int = 0) -> np.ndarray:
        self.seen.append(np.array(x))
        bright = x[..., 0] > 0.5
        out = np.zeros((*x.shape[:3], 4), np.float32)
        out[..., 1] = bright
        out[..., 0] = ~bright
        return out


def test_predict_probs_maps_back_to_the_native_grid() -> None:
    """A disc on an anisotropic, off-centre native grid reaches the network round, 1.5 mm per pixel,
    where the centre puts it, and comes back where it was."""
    rows, cols, ps = 150, 200, (1.2, 0.9)
    rr, cc = np.mgrid[0:rows, 0:cols]
    centre = (60.0, 120.0)
    disc = np.hypot((rr - centre[0]) * ps[0], (cc - centre[1]) * ps[1]) <= 20.0
    img = np.where(disc, 800.0, 100.0) + np.random.default_rng(0).normal(0, 5, (rows, cols))
    model = _ThresholdModel()
    given = (centre[0] + 4.0, centre[1] - 6.0)  # the LV centre handed over is off by (4, -6) px
    prob = learned.predict_probs(img[None], ps, [given], model)
    # on the network grid: a round disc 40 mm / 1.5 mm = 26.7 px across, offset by the centre's error in mm
    net = model.seen[0][0, ..., 0] > 0.5
    nr, nc = np.nonzero(net)
    assert abs((nr.max() - nr.min() + 1) - 40.0 / 1.5) <= 1.5 and abs((nc.max() - nc.min() + 1) - 40.0 / 1.5) <= 1.5
    half = (SIZE - 1) / 2.0
    assert abs(nr.mean() - (half - 4.0 * ps[0] / 1.5)) < 0.7 and abs(nc.mean() - (half + 6.0 * ps[1] / 1.5)) < 0.7
    assert prob.shape == (1, rows, cols, 4)
    assert np.allclose(prob.sum(-1), 1.0, atol=1e-5)
    assert dice(prob[0, ..., 1] > 0.5, disc) > 0.97
    lab = learned.segment_unet(img[None], ps, [centre], model=_ThresholdModel())
    assert dice(lab[0] == 1, disc) > 0.97


def test_train_writes_model_and_card_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = learned.SegmenterConfig(base_filters=4, depth=2, bank_subjects=1, steps=4, batch=2)
    out = tmp_path / "seg.keras"
    real = learned.synth_batch
    calls = {"n": 0}

    def flaky(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # stopped during step 4
        return real(*a, **k)

    monkeypatch.setattr(learned, "synth_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        learned.train_segmenter(out, cfg, log=lambda s: None, checkpoint_every=2)
    assert out.with_suffix(".ckpt.keras").is_file() and not out.exists()
    import keras

    ckpt = keras.models.load_model(out.with_suffix(".ckpt.keras"), compile=True, custom_objects={"loss": learned._loss()})
    assert int(ckpt.optimizer.iterations.numpy()) == 2  # the optimiser's state is in the checkpoint
    monkeypatch.setattr(learned, "synth_batch", real)
    said: list[str] = []
    learned.train_segmenter(out, cfg, log=said.append, checkpoint_every=2)
    assert "resuming at step 2" in said
    assert out.is_file() and not out.with_suffix(".ckpt.keras").exists()
    import json

    card = json.loads(out.with_suffix(".json").read_text())
    assert card["config"]["steps"] == 4 and card["grid"] == {"size": SIZE, "pixel_mm": 1.5}
    model = learned.load_segmenter(out)
    assert model.output_shape == (None, SIZE, SIZE, 4)
    # a different appearance is a different run: it does not pick up another run's checkpoint
    out2 = tmp_path / "seg2.keras"
    calls["n"] = 0
    monkeypatch.setattr(learned, "synth_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        learned.train_segmenter(out2, cfg, log=lambda s: None, checkpoint_every=2)
    monkeypatch.setattr(learned, "synth_batch", real)
    other: list[str] = []
    learned.train_segmenter(
        out2, cfg, appearance=learned.AppearanceRanges(tissue_field=0.0), log=other.append, checkpoint_every=2
    )
    assert not any("resuming" in line for line in other)
    assert json.loads(out2.with_suffix(".json").read_text())["appearance"]["tissue_field"] == 0.0
    # so is a different anatomy spread (the tissue bank's trabeculae), and the card records it
    out3 = tmp_path / "seg3.keras"
    calls["n"] = 0
    monkeypatch.setattr(learned, "synth_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        learned.train_segmenter(out3, cfg, log=lambda s: None, checkpoint_every=2)
    monkeypatch.setattr(learned, "synth_batch", real)
    third: list[str] = []
    denser = learned.BankVariation(trabeculae=5, trabecula_depth_mm=(0.0, 4.0))
    learned.train_segmenter(out3, cfg, variation=denser, log=third.append, checkpoint_every=2)
    assert not any("resuming" in line for line in third)
    card3 = json.loads(out3.with_suffix(".json").read_text())
    assert card3["variation"]["trabeculae"] == 5 and card3["variation"]["trabecula_depth_mm"] == [0.0, 4.0]


def test_missing_or_broken_model_says_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(learned.SegmenterUnavailable, match="deepoxymap.segmentation.learned"):
        learned.load_segmenter(tmp_path / "none.keras")
    pointer = tmp_path / "lfs.keras"  # what a clone without Git LFS would hold
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 16216333\n")
    with pytest.raises(learned.SegmenterUnavailable, match="could not load") as ei:
        learned.load_segmenter(pointer)
    assert str(pointer) in str(ei.value)


def test_model_check_verifies_the_segmenter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`deepoxymap model-check` checks the segmenter's sha256: the shipped file passes, a changed
    file fails naming it, a missing one is a warning."""
    import argparse
    import json
    import shutil

    from deepoxymap.cli import model_check
    from deepoxymap.config import settings
    from deepoxymap.model.card import sha256_file

    shipped = settings().segmenter_path
    args = argparse.Namespace(model=tmp_path / "no-classifier.keras", hash_only=True, segmenter=shipped)
    assert model_check.run(args) == 0
    assert "segmenter_unet.keras sha256" in capsys.readouterr().out
    bad = tmp_path / "seg.keras"
    bad.write_bytes(b"not the model")
    shutil.copy(shipped.with_suffix(".json"), bad.with_suffix(".json"))
    assert model_check.run(argparse.Namespace(model=args.model, hash_only=True, segmenter=bad)) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "does not match its card" in err
    card = json.loads(bad.with_suffix(".json").read_text())
    card["sha256"] = sha256_file(bad)
    bad.with_suffix(".json").write_text(json.dumps(card))
    assert model_check.run(argparse.Namespace(model=args.model, hash_only=False, segmenter=bad)) == 1
    assert str(bad) in capsys.readouterr().err
    none = argparse.Namespace(model=args.model, hash_only=True, segmenter=tmp_path / "none.keras")
    assert model_check.run(none) == 0
    assert "classical method" in capsys.readouterr().err
