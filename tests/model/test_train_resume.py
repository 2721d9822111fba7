"""Training progress, stop and resume: a stopped and resumed run ends where the straight run ends.

A tiny CNN on a fake 12-subject cohort, with every piece of state a resume must carry: two
phases (head only, then the whole network), conv-BN (BatchNorm statistics), dropout (seed
states), frame jitter + rotation + flip (the dataset's seed streams), Adam (moments, step count)
and ReduceLROnPlateau (its counters and the learning rate it lowered).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_synth import fake_loader, write_fake_manifest

pytest.importorskip("keras")

from deepoxymap.model.augment import AugmentSpec
from deepoxymap.model.loading import load_model
from deepoxymap.model.preprocess import PreprocessSpec
from deepoxymap.model.train import (
    ResumeError,
    TrainConfig,
    TrainResult,
    checkpoint_dir,
    progress_path,
    stop_files,
    train,
)

EPOCHS = 6
# With this config the straight run (measured) lowers the learning rate after epoch 4 (val loss
# rose) and stops early after epoch 5 (patience 2); the resumed run is stopped inside epochs 4
# and 5, so it must carry the LR schedule's and early stopping's counters to match.


def _cfg(root: Path, manifest: Path, out: str) -> TrainConfig:
    return TrainConfig(
        manifest=manifest,
        arch="tinycnn",
        out=root / out,
        spec=PreprocessSpec(input_size=24, crop_mm=80.0),
        augment=AugmentSpec("rot20"),
        epochs=EPOCHS,
        batch_size=4,
        lr=3e-2,
        patience=2,
        lr_patience=1,
        head_epochs=1,
        head_lr=3e-2,
        conv_bn=True,
        frame_jitter=1,
        n_boot=20,
        cache_dir=root / "cache",
        command="pytest resume",
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    return root, write_fake_manifest(root / "cohort", n_per_class=3)


@pytest.fixture(scope="module")
def straight(cohort: tuple[Path, Path]) -> tuple[TrainResult, list[str], list[dict[str, Any]]]:
    """The reference: EPOCHS epochs in one go (with the progress file read at every epoch line)."""
    root, manifest = cohort
    cfg = _cfg(root, manifest, "straight")
    lines: list[str] = []
    seen: list[dict[str, Any]] = []

    def log(s: str) -> None:
        lines.append(s)
        if s.startswith("epoch "):
            seen.append(json.loads(progress_path(cfg).read_text()))

    res = train(cfg, loader=fake_loader, log=log, progress_every_s=0.0)
    return res, lines, seen


def _weights(res: TrainResult) -> list[np.ndarray]:
    return list(load_model(res.model_path).model.get_weights())


def test_stopped_and_resumed_run_equals_the_straight_run(cohort, straight) -> None:
    """SIGINT after epoch 1 (the phase boundary), a STOP file inside epochs 4 and 5, then a resume to the end.

    The stopped runs leave a usable best-so-far model whose card says ``complete: false``;
    the final model's weights, history (learning rate included), best epoch and test metrics
    equal the straight run's exactly.
    """
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    root, manifest = cohort
    ref = straight[0]
    cfg = _cfg(root, manifest, "resumed")
    handler_before = signal.getsignal(signal.SIGINT)

    def sigint_after_epoch_1(s: str) -> None:
        if s.startswith("epoch 1/"):
            os.kill(os.getpid(), signal.SIGINT)

    first = train(cfg, loader=fake_loader, log=sigint_after_epoch_1, progress_every_s=0.0)
    assert not first.complete and "SIGINT" in first.stop_reason
    assert first.card["training"]["complete"] is False and first.card["training"]["epochs_run"] == 1
    assert checkpoint_dir(cfg).joinpath("state.json").is_file()
    usable = load_model(first.model_path)  # the best model so far loads (sha256 of its card verified)
    assert usable.model.predict(np.zeros((1, 24, 24, 3), np.float32), verbose=0).shape == (1, 4)
    assert json.loads(progress_path(cfg).read_text())["status"] == "stopped"
    assert signal.getsignal(signal.SIGINT) is handler_before  # the run's handler is gone

    stop_file = stop_files(cfg)[0]
    for inside, resumed_after in ((4, 1), (5, 3)):
        lines: list[str] = []

        def stop_inside(s: str, inside: int = inside, lines: list[str] = lines) -> None:
            if s.startswith(f"  epoch {inside}/") and not any(x.startswith(f"  epoch {inside}/") for x in lines):
                stop_file.touch()  # a fresh mtime: the stale file of the session before is ignored
            lines.append(s)

        res = train(cfg, loader=fake_loader, log=stop_inside, progress_every_s=0.0)
        assert any(s.startswith(f"resuming from the checkpoint after epoch {resumed_after}") for s in lines)
        assert not res.complete and "STOP file" in res.stop_reason
        assert any(s.startswith(f"  epoch {inside}/") for s in lines)
        assert res.card["training"]["epochs_run"] == inside - 1  # the unfinished epoch was dropped

    third = train(cfg, loader=fake_loader, log=lambda s: None, resume="require")  # stale STOP file ignored
    assert third.complete and not checkpoint_dir(cfg).exists()
    assert third.card["training"]["complete"] is True
    assert [s["from_epoch"] for s in third.card["training"]["sessions"]] == [0, 1, 3, 4]

    # the reference really exercises the LR schedule and early stopping across the stop points
    assert ref.history["learning_rate"][4] < ref.history["learning_rate"][3]
    assert ref.card["training"]["stop_reason"].startswith("early stopping") and len(ref.history["loss"]) == 5
    assert len(third.history["loss"]) == 5
    assert third.history == ref.history  # losses, accuracies and learning rates, epoch by epoch
    assert "learning_rate" in ref.history
    for key in ("best_epoch", "epochs_run", "phases", "stop_reason"):
        assert third.card["training"][key] == ref.card["training"][key], key
    wa, wb = _weights(ref), _weights(third)
    assert len(wa) == len(wb) > 0
    for u, v in zip(wa, wb, strict=True):
        np.testing.assert_array_equal(u, v)
    assert third.card["metrics"]["test"] == ref.card["metrics"]["test"]


def test_a_fit_ended_by_its_budget_keeps_its_checkpoint_and_goes_on(cohort) -> None:
    """A budget stop mid-phase keeps ``OUT/NAME.resume``; the same budget refuses; a larger one ends where the straight run ends."""
    root, manifest = cohort
    base = dataclasses.replace(_cfg(root, manifest, "budget_straight"), head_epochs=0, epochs=3, patience=10)
    ref = train(base, loader=fake_loader, log=lambda s: None)
    assert ref.complete and not ref.card["training"]["resumable"] and not checkpoint_dir(base).exists()

    cfg = dataclasses.replace(base, out=root / "budget", max_minutes=1e-6)  # ends after epoch 1, mid-phase
    lines: list[str] = []
    first = train(cfg, loader=fake_loader, log=lines.append)
    assert first.stop_reason.startswith("wall-clock budget") and first.card["training"]["epochs_run"] == 1
    assert first.card["training"]["resumable"] is True
    assert checkpoint_dir(cfg).joinpath("state.json").is_file()
    assert any("larger --max-minutes" in s for s in lines)

    with pytest.raises(ResumeError, match="leaves no room for another epoch"):
        train(cfg, loader=fake_loader, log=lambda s: None)  # the same command again: nothing it could add
    assert checkpoint_dir(cfg).joinpath("state.json").is_file()

    lines.clear()
    more = train(dataclasses.replace(cfg, max_minutes=None), loader=fake_loader, log=lines.append, resume="require")
    assert any(s.startswith("continuing after the last session's wall-clock budget") for s in lines)
    assert more.complete and more.stop_reason == "max epochs" and not checkpoint_dir(cfg).exists()
    assert more.card["training"]["epochs_run"] == 3 and not more.card["training"]["resumable"]
    assert more.history == ref.history
    for u, v in zip(_weights(ref), _weights(more), strict=True):
        np.testing.assert_array_equal(u, v)


def test_changed_config_or_data_refuses_to_resume(cohort, tmp_path) -> None:
    """A checkpoint resumes only the run that made it; ``--fresh`` discards it; ``--resume`` needs one."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    root, manifest0 = cohort
    manifest = tmp_path / "cohort" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_bytes(manifest0.read_bytes())
    for d in manifest0.parent.iterdir():
        if d.is_dir():
            (manifest.parent / d.name).symlink_to(d)
    cfg = dataclasses.replace(_cfg(root, manifest, "x"), out=tmp_path / "models", epochs=2, head_epochs=0)
    with pytest.raises(ResumeError, match="nothing to resume"):
        train(cfg, loader=fake_loader, log=lambda s: None, resume="require")

    def sigint_after_epoch_1(s: str) -> None:
        if s.startswith("epoch 1/"):
            os.kill(os.getpid(), signal.SIGINT)

    assert not train(cfg, loader=fake_loader, log=sigint_after_epoch_1).complete
    with pytest.raises(ResumeError, match=r"refusing to resume.*lr: 0\.03 in the checkpoint, 0\.001 now"):
        train(dataclasses.replace(cfg, lr=1e-3), loader=fake_loader, log=lambda s: None)
    with pytest.raises(ResumeError, match="augment"):
        train(dataclasses.replace(cfg, augment=AugmentSpec("rot40")), loader=fake_loader, log=lambda s: None)
    raw = manifest.read_bytes()
    manifest.write_bytes(raw.replace(b",A,", b",C,", 1))  # same subjects and labels, another site: other bytes
    with pytest.raises(ResumeError, match="manifest file's contents differ"):
        train(cfg, loader=fake_loader, log=lambda s: None)
    manifest.write_bytes(raw)
    # the budget and the bootstrap size may change; the run then resumes and completes
    res = train(dataclasses.replace(cfg, max_minutes=60.0, n_boot=10), loader=fake_loader, log=lambda s: None)
    assert res.complete and [s["from_epoch"] for s in res.card["training"]["sessions"]] == [0, 1]
    # --fresh discards a checkpoint
    assert not train(cfg, loader=fake_loader, log=sigint_after_epoch_1).complete
    lines: list[str] = []
    fresh = train(dataclasses.replace(cfg, lr=1e-3), loader=fake_loader, log=lines.append, resume="never")
    assert fresh.complete and any("discarding the checkpoint" in s for s in lines)
    assert [s["from_epoch"] for s in fresh.card["training"]["sessions"]] == [0]


def test_progress_lines_and_file(straight) -> None:
    """Within-epoch and per-epoch lines carry speed and ETA; the progress file climbs to 100% and says done."""
    res, lines, seen = straight
    n = len(res.history["loss"])
    inner = [s for s in lines if s.startswith("  epoch ")]
    per_epoch = [s for s in lines if s.startswith("epoch ")]
    assert len(per_epoch) == n and inner
    assert all("slices/s" in s and "ETA" in s for s in inner + per_epoch)
    assert all("val_loss" in s and "acc" in s for s in per_epoch)
    assert [p["epoch"] for p in seen] == list(range(1, n + 1))
    fractions = [p["fraction"] for p in seen]
    assert fractions == [round(e / EPOCHS, 4) for e in range(1, n + 1)]
    assert all(p["status"] == "training" and p["eta_s"] is not None and p["elapsed_s"] > 0 for p in seen)
    final = json.loads(progress_path(_cfg_of(res)).read_text())
    assert final["status"] == "done" and final["percent"] == 100.0 and final["fraction"] == 1.0
    assert final["epoch"] == n and final["eta_s"] == 0.0
    assert final["best_epoch"] == res.card["training"]["best_epoch"]
    assert final["model"] == str(res.model_path)
    assert final["stop_reason"] == res.card["training"]["stop_reason"]


def _cfg_of(res: TrainResult) -> TrainConfig:
    c = res.card["training"]["config"]
    return TrainConfig(manifest=Path(c["manifest"]), arch=c["arch"], out=Path(c["out"]), name=c["name"])


def test_cli_resume_without_checkpoint_says_so(cohort, tmp_path, capsys) -> None:
    from deepoxymap.cli import main

    _, manifest = cohort
    rc = main(["train", "--manifest", str(manifest), "--arch", "tinycnn", "--out", str(tmp_path), "--resume"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "nothing to resume" in err and str(tmp_path / "deepoxymap_tinycnn.resume") in err
