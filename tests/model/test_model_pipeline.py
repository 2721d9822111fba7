"""train -> save (+card) -> safe load (hash) -> predict -> evaluate, on a tiny CNN and fake cases.

Also: training and inference use the same preprocessing function and give the same tensor.
"""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("keras")

from model_synth import fake_loader

from deepoxymap import CLASSES
from deepoxymap.cli import model_check as cli_check
from deepoxymap.cohort import read_manifest
from deepoxymap.errors import ModelLoadError
from deepoxymap.model import predict as predict_mod
from deepoxymap.model.data import build_slices
from deepoxymap.model.evaluate import comparison_markdown, evaluate_model, plot_roc
from deepoxymap.model.loading import load_model
from deepoxymap.model.preprocess import preprocess_case


def test_training_writes_model_and_card(tiny_trained) -> None:
    res, _manifest, _ = tiny_trained
    card = json.loads(res.model_path.with_suffix(".json").read_text())
    assert card["classes"] == list(CLASSES)
    assert card["preprocessing"]["input_size"] == 32
    assert card["training"]["command"] == "pytest tiny"
    split = card["training"]["split"]
    assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])
    assert set(card["metrics"]["test_predictions"]) == set(split["test"])
    assert card["metrics"]["test"]["accuracy"]["ci"][0] <= card["metrics"]["test"]["accuracy"]["value"]
    assert "from scratch" in card["weights"]
    assert card["file"]["sha256"] and card["library_versions"]["keras"]
    # four validation subjects (one per class) are too few to choose a class-prior correction
    dec = card["decision"]
    assert dec["log_prior_offset"] is None and "too few validation subjects" in dec["not_fitted"]
    assert card["case_aggregation"] == "mean of slice probabilities"
    assert "without_prior_correction" in card["metrics"]


def test_saved_without_optimizer_and_loads_safely(tiny_trained) -> None:
    import zipfile

    res, _, _ = tiny_trained
    with zipfile.ZipFile(res.model_path) as z:
        cfg = json.loads(z.read("config.json"))
    assert not cfg.get("compile_config")  # uncompiled: no optimizer state saved
    loaded = load_model(res.model_path)
    assert loaded.spec.input_size == 32 and loaded.classes == CLASSES
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    assert np.allclose(np.asarray(loaded.model(x)), np.asarray(res.model(x, training=False)), atol=1e-5)


def test_training_and_inference_preprocessing_are_one_path(tiny_trained, monkeypatch) -> None:
    """The tensor training used for a subject == preprocess_case(case) == what predict_case feeds the model."""
    res, manifest, cache = tiny_trained
    loaded = load_model(res.model_path)
    rec = read_manifest(manifest)[5]
    case = fake_loader(rec.path)
    train_x = build_slices(
        [rec], loaded.spec, loader=fake_loader, cache_dir=cache, verbose=False
    ).x  # cached by training
    fresh_x = preprocess_case(case, loaded.spec).x
    fed: list[np.ndarray] = []
    real = predict_mod.predict_array

    def spy(model, x, batch_size=32):
        fed.append(np.array(x))
        return real(model, x, batch_size)

    monkeypatch.setattr(predict_mod, "predict_array", spy)
    pred = predict_mod.predict_case(loaded, case)
    assert np.array_equal(train_x, fresh_x)
    assert np.array_equal(fed[0], fresh_x)
    # and the code path is literally the same function: training calls preprocess_case_offsets,
    # inference calls preprocess_case, which is preprocess_case_offsets at offset 0
    import deepoxymap.model.data as data_mod
    import deepoxymap.model.preprocess as pre_mod

    assert predict_mod.preprocess_case is preprocess_case is pre_mod.preprocess_case
    assert data_mod.preprocess_case_offsets is pre_mod.preprocess_case_offsets
    calls: list[tuple[int, ...]] = []
    real_offsets = pre_mod.preprocess_case_offsets

    def spy_offsets(c, spec, offsets):
        calls.append(tuple(offsets))
        return real_offsets(c, spec, offsets)

    monkeypatch.setattr(pre_mod, "preprocess_case_offsets", spy_offsets)
    assert np.array_equal(pre_mod.preprocess_case(case, loaded.spec).x, fresh_x) and calls == [(0,)]
    assert pred.slice_probs.shape == (2, 4) and pred.call in CLASSES
    assert np.allclose(pred.case_probs, pred.slice_probs.mean(axis=0))  # no correction in this card
    # a card with a correction: predict applies it to the case probabilities, not to the slices
    import dataclasses

    from deepoxymap.model.calibrate import apply_offset

    off = {"healthy": 1.0, "ischemic": -1.0, "non-ischemic": 0.0, "edema": 0.0}
    corrected = predict_mod.predict_case(
        dataclasses.replace(loaded, card={**loaded.card, "decision": {"log_prior_offset": off}}), case
    )
    assert np.allclose(corrected.slice_probs, pred.slice_probs)
    assert np.allclose(
        corrected.case_probs, apply_offset(pred.slice_probs.mean(axis=0), np.array([1.0, -1.0, 0.0, 0.0])), atol=1e-6
    )
    assert corrected.call == CLASSES[int(np.argmax(corrected.case_probs))]
    mc = predict_mod.predict_case(loaded, case, mc_samples=5)
    assert mc.mc_entropy is not None and mc.mc_entropy.shape == (2,)
    d = pred.to_dict()
    assert d["call"] == pred.call and len(d["slices"]) == 2


def test_evaluate_reproduces_card(tiny_trained, tmp_path) -> None:
    res, manifest, cache = tiny_trained
    r = evaluate_model(res.model_path, manifest, n_boot=50, loader=fake_loader, cache_dir=cache)
    assert r["max_abs_diff_vs_card"] < 1e-5
    assert r["metrics"]["accuracy"]["value"] == pytest.approx(res.card["metrics"]["test"]["accuracy"]["value"])
    assert set(r["subjects"]) == set(res.card["training"]["split"]["test"])
    assert set(r["per_site"]) <= {"A", "B"}
    md = comparison_markdown([r])
    assert "| Model |" in md and "deepoxymap_tinycnn" in md
    png = plot_roc([r], tmp_path / "roc.png")
    assert png.stat().st_size > 1000


def test_corrupt_or_missing_model(tiny_trained, tmp_path, capsys) -> None:
    res, _, _ = tiny_trained
    bad = tmp_path / "m.keras"
    shutil.copy(res.model_path, bad)
    shutil.copy(res.model_path.with_suffix(".json"), bad.with_suffix(".json"))
    with bad.open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelLoadError, match="does not match its card") as ei:
        load_model(bad)
    assert "deepoxymap train" in str(ei.value)
    assert cli_check.run(argparse.Namespace(model=bad, hash_only=False)) == 1
    missing = tmp_path / "none.keras"
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(missing)
    assert cli_check.run(argparse.Namespace(model=missing, hash_only=False)) == 0
    assert "warning" in capsys.readouterr().err
    # a card whose file hash matches but the file is not a Keras zip
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip")
    card = json.loads(res.model_path.with_suffix(".json").read_text())
    from deepoxymap.model.card import sha256_file

    card["file"]["sha256"] = sha256_file(junk)
    junk.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="Keras could not load"):
        load_model(junk)
    assert cli_check.run(argparse.Namespace(model=res.model_path, hash_only=False)) == 0


def test_cli_train_rejects_offline_imagenet_fast(tmp_path, monkeypatch) -> None:
    import socket

    from deepoxymap.cli import main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    (tmp_path / "m.csv").write_text("subject,class,path\n")
    rc = main(["train", "--manifest", str(tmp_path / "m.csv"), "--weights", "imagenet"])
    assert rc == 1


def test_manifest_errors(tmp_path) -> None:
    from deepoxymap.errors import CaseError

    with pytest.raises(CaseError, match="not found"):
        read_manifest(tmp_path / "nope.csv")
    p = tmp_path / "m.csv"
    p.write_text("subject,class,path\nA,sick,A\n")
    with pytest.raises(CaseError, match="unknown class"):
        read_manifest(p)
    p.write_text("subject,class,path\nA,healthy,A\nA,edema,B\n")
    with pytest.raises(CaseError, match="duplicate"):
        read_manifest(p)


def test_cross_validation_and_site_protocol(tmp_path) -> None:
    """k-fold CV scores every subject exactly once; a site split tests only the other site."""
    import dataclasses

    from model_synth import write_fake_manifest

    from deepoxymap.model.evaluate import cross_validate
    from deepoxymap.model.preprocess import PreprocessSpec
    from deepoxymap.model.train import TrainConfig, make_split

    manifest = write_fake_manifest(tmp_path / "cohort", n_per_class=3)
    cfg = TrainConfig(
        manifest=manifest,
        arch="tinycnn",
        spec=PreprocessSpec(input_size=16, crop_mm=80.0),
        epochs=1,
        batch_size=8,
        n_boot=20,
        cache_dir=tmp_path / "cache",
    )
    cv = cross_validate(cfg, k=2, out_dir=tmp_path / "cv", loader=fake_loader, n_boot=20, log=lambda s: None)
    assert sorted(cv["subjects"]) == sorted(r.subject for r in read_manifest(manifest))
    assert len(cv["per_fold"]) == 2 and cv["metrics"]["n"] == 12
    site = make_split(dataclasses.replace(cfg, protocol="site", train_site="A", test_site="B"), read_manifest(manifest))
    sites = {r.subject: r.site for r in read_manifest(manifest)}
    assert {sites[s] for s in site.test} == {"B"} and {sites[s] for s in site.train + site.val} == {"A"}


def test_conv_bn_training_saves_the_plain_graph(tmp_path) -> None:
    """``conv_bn`` trains with BatchNorm after each conv, and the saved file is the plain graph with the same outputs."""
    import dataclasses

    from model_synth import tiny_train_config

    from deepoxymap.model.train import train

    cfg = tiny_train_config(tmp_path, conv_bn=True, lr_patience=1)
    res = train(cfg, loader=fake_loader, log=lambda s: None)
    loaded = load_model(res.model_path)
    model, card = loaded.model, loaded.card
    kinds = {type(l).__name__ for l in model.layers if not l.name.startswith("head")}
    assert "BatchNormalization" not in kinds and "ReLU" not in kinds
    fold = card["training"]["batchnorm_folding"]
    assert fold["batchnorm_layers_folded"] == 2 and fold["max_abs_prob_change_on_test_slices"] < 1e-4
    assert "folded" in card["training"]["training_form"]
    assert "x0.3 after 1 epochs" in card["training"]["optimizer"]
    with pytest.raises(ValueError, match="weights none"):
        train(dataclasses.replace(cfg, weights=str(tmp_path / "w.h5")), loader=fake_loader)


def test_frame_jitter_slices_and_dataset(tmp_path) -> None:
    """build_slices stacks the offsets (offset 0 == the inference tensor); the dataset draws among them."""
    import tensorflow as tf
    from model_synth import write_fake_manifest

    from deepoxymap.model.data import make_dataset
    from deepoxymap.model.preprocess import PreprocessSpec

    manifest = write_fake_manifest(tmp_path / "cohort", n_per_class=1)
    recs = read_manifest(manifest)
    spec = PreprocessSpec(input_size=16, crop_mm=80.0)
    d = build_slices(
        recs, spec, loader=fake_loader, cache_dir=tmp_path / "cache", verbose=False, frame_offsets=[0, -1, 1]
    )
    assert d.x_frames is not None and d.x_frames.shape == (len(d), 3, 16, 16, 3)
    np.testing.assert_array_equal(d.x_frames[:, 0], d.x)
    for r in recs:
        pre = preprocess_case(fake_loader(r.path), spec, frame_offset=-1)
        np.testing.assert_array_equal(d.select([r.subject]).x_frames[:, 1], pre.x)
    # cached: a second call reads the same arrays back; plain calls still give x only
    d2 = build_slices(
        recs, spec, loader=fake_loader, cache_dir=tmp_path / "cache", verbose=False, frame_offsets=[0, -1, 1]
    )
    np.testing.assert_array_equal(d2.x_frames, d.x_frames)
    assert build_slices(recs, spec, loader=fake_loader, cache_dir=tmp_path / "cache", verbose=False).x_frames is None
    tf.random.set_seed(0)
    ds = make_dataset(d.x, d.y, batch_size=len(d), x_frames=d.x_frames)
    seen = set()
    for _ in range(6):
        xb = next(iter(ds))[0].numpy()
        for i in range(len(d)):
            j = [k for k in range(3) if np.array_equal(xb[i], d.x_frames[i, k])]
            assert len(j) >= 1
            seen.add(j[0])
    assert seen == {0, 1, 2}


def test_training_pipeline_is_deterministic_per_seed() -> None:
    """Same seed: the same shuffled, jittered, rotated and flipped batches in every run, epoch by epoch.

    Each epoch draws anew, and another seed draws differently. Fails if any draw
    goes back to the global (thread-order dependent) generator.
    """
    from deepoxymap.model.augment import AugmentSpec
    from deepoxymap.model.data import make_dataset

    rng = np.random.default_rng(1)
    n, j = 24, 5
    frames = rng.random((n, j, 12, 12, 3), dtype=np.float32)
    y = np.arange(n) % 4

    def epochs(seed: int) -> list[np.ndarray]:
        ds = make_dataset(
            frames[:, 0], y, batch_size=8, augment=AugmentSpec("rot20"), shuffle=True, seed=seed, x_frames=frames
        )
        return [np.concatenate([b[0].numpy() for b in ds]) for _ in range(3)]

    a, b, c = epochs(0), epochs(0), epochs(1)
    for ea, eb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ea, eb)
    assert not np.allclose(a[0], a[1]) and not np.allclose(a[1], a[2])
    assert not np.allclose(a[0], c[0])
    # labels travel with their images and the key column is dropped
    ds = make_dataset(frames[:, 0], y, batch_size=8, augment=AugmentSpec("rot20"), shuffle=True, x_frames=frames)
    xb, yb = next(iter(ds))
    assert xb.shape == (8, 12, 12, 3) and yb.shape == (8, 4)


def test_same_seed_same_model(tmp_path) -> None:
    """Two trainings with one config (conv-BN, frame jitter, rotation + flip) give the same weights and card metrics."""
    import dataclasses

    from model_synth import write_fake_manifest

    from deepoxymap.model.augment import AugmentSpec
    from deepoxymap.model.preprocess import PreprocessSpec
    from deepoxymap.model.train import TrainConfig, train

    manifest = write_fake_manifest(tmp_path / "cohort", n_per_class=3)
    cfg = TrainConfig(
        manifest=manifest,
        arch="tinycnn",
        out=tmp_path / "a",
        spec=PreprocessSpec(input_size=24, crop_mm=80.0),
        augment=AugmentSpec("rot20"),
        epochs=2,
        batch_size=4,
        lr=1e-3,
        n_boot=20,
        cache_dir=tmp_path / "cache",
        conv_bn=True,
        frame_jitter=1,
    )
    runs = [train(dataclasses.replace(cfg, out=tmp_path / o), loader=fake_loader, log=lambda s: None) for o in "ab"]
    wa, wb = (load_model(r.model_path).model.get_weights() for r in runs)
    assert len(wa) == len(wb) > 0
    for u, v in zip(wa, wb, strict=True):
        np.testing.assert_array_equal(u, v)
    assert runs[0].card["metrics"]["test"] == runs[1].card["metrics"]["test"]
    assert runs[0].history == runs[1].history
