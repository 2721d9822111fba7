"""Heatmap-vs-mask agreement metrics (mm), thresholds, kappa, spread, bullseye, and an audit run on the demo phantom."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from deepoxymap.audit import (
    choose_segment_threshold,
    choose_threshold,
    cohen_kappa,
    dice_iou,
    energy_pointing_game,
    energy_spread,
    pointing_game,
)
from deepoxymap.cardiac.bullseye import bullseye_figure, plotly_bullseye_data, segment_geometry


def _disc(shape, centre, r):
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= r**2


class TestMetrics:
    def test_pointing_tolerance_in_mm(self):
        """A peak 4 px from the lesion hits at 2 mm pixels with 10 mm tolerance, misses at 5 mm tolerance."""
        mask = _disc((40, 40), (20, 20), 3)
        h = np.zeros((40, 40))
        h[20, 27] = 1.0  # 4 px right of the disc edge
        assert pointing_game(h, mask, (2.0, 2.0), tolerance_mm=10.0) == 1.0
        assert pointing_game(h, mask, (2.0, 2.0), tolerance_mm=5.0) == 0.0
        assert pointing_game(h, mask, (1.0, 1.0), tolerance_mm=5.0) == 1.0
        assert np.isnan(pointing_game(h, np.zeros_like(mask), (1.0, 1.0)))

    def test_pointing_inside_roi(self):
        """Restricting to the myocardium moves the peak to the best myocardial pixel."""
        mask = _disc((40, 40), (10, 10), 2)
        h = np.zeros((40, 40))
        h[30, 30] = 1.0
        h[10, 10] = 0.5
        roi = _disc((40, 40), (10, 10), 5)
        assert pointing_game(h, mask) == 0.0 and pointing_game(h, mask, roi=roi) == 1.0

    def test_ebpg_and_dice(self):
        """Energy share and Dice/IoU of a map that covers the lesion exactly are 1."""
        mask = _disc((30, 30), (15, 15), 5)
        h = mask.astype(float)
        assert energy_pointing_game(h, mask) == 1.0
        assert dice_iou(h, mask, 0.5) == (1.0, 1.0)
        half = h.copy()
        half[:, :15] *= 0.0
        d, i = dice_iou(half, mask, 0.5)
        assert 0.5 < d < 0.75 and i < d
        assert energy_pointing_game(np.ones((30, 30)), mask, roi=mask) == 1.0

    def test_threshold_chosen_on_validation(self):
        """The grid search finds the threshold that reproduces the lesion."""
        mask = _disc((30, 30), (15, 15), 6)
        rr, cc = np.mgrid[0:30, 0:30]
        h = np.clip(1 - np.hypot(rr - 15, cc - 15) / 15, 0, 1)  # 6 px radius -> 0.6
        tau, d = choose_threshold([h], [mask])
        assert abs(tau - 0.6) <= 0.051 and d > 0.9

    def test_kappa(self):
        """Perfect, chance and undefined agreement."""
        assert cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
        assert abs(cohen_kappa([1, 1, 0, 0], [1, 0, 1, 0])) < 1e-12
        assert np.isnan(cohen_kappa([0, 0, 0], [0, 0, 0]))
        tau, k = choose_segment_threshold([np.array([0.9, 0.2, 0.1])], [np.array([0.5, 0.0, 0.0])])
        assert k == 1.0 and 0.2 <= tau < 0.9

    def test_energy_spread(self):
        """A map concentrated in the myocardium has energy there and a small half-energy area."""
        myo = _disc((30, 30), (15, 15), 8) & ~_disc((30, 30), (15, 15), 5)
        seg = np.where(myo, 1 + (np.arange(30)[None, :] > 15).astype(int) * np.ones((30, 1), int), 0)
        e = energy_spread(myo.astype(float), myo, (2.0, 2.0), seg)
        assert e["energy_in_myocardium"] == 1.0 and e["peak_in_myocardium"] == 1.0
        assert abs(e["area50_mm2"] - 4.0 * np.ceil(myo.sum() / 2)) <= 4.0
        assert 0.95 < e["segment_entropy"] <= 1.0


def test_bullseye_layout_and_plotly():
    """Segment 1 at 12 o'clock, 2 at ~10, 14 at 9, 16 at 3; figure and plotly data build."""
    g = {d["segment"]: d for d in segment_geometry()}
    assert g[1]["theta_deg"] == 90 and g[2]["theta_deg"] == 150 and g[4]["theta_deg"] == 270
    assert g[14]["theta_deg"] == 180 and g[16]["theta_deg"] == 0 and g[17]["r_outer"] == 0.2
    fig = bullseye_figure({1: 0.5, 14: 1.0}, title="t", label="x")
    assert fig.axes
    d = plotly_bullseye_data(np.arange(17) / 16)
    assert len(d["trace"]["r"]) == 17 and d["values"][16] == 1.0
    json.dumps(d)


@pytest.fixture(scope="module")
def demo_cohort(tmp_path_factory):
    """The 4-subject demo phantom cohort (one per class), generated once."""
    from deepoxymap.cli import main

    out = tmp_path_factory.mktemp("demo")
    if main(["generate", "--cohort", "demo", "--seed", "0", "--out", str(out), "--quiet", "--jobs", "1"]) != 0:
        pytest.skip("phantom generator unavailable")
    return out


def test_scar_quantification_on_phantom_lge(demo_cohort):
    """Default n-SD 5 and seeded FWHM recover the phantom's LGE scar (Dice > 0.7) and find none in the healthy case."""
    from deepoxymap.cardiac.masks import labels_from_stack, masks_from_labels
    from deepoxymap.cardiac.scar import quantify_scar
    from deepoxymap.case import Role
    from deepoxymap.phantom.load import load_subject

    for subject, has_scar in (("SUBJECT001", False), ("SUBJECT002", True), ("SUBJECT003", True)):
        case = load_subject(demo_cohort / subject)
        lge = case.first(Role.LGE)
        m = masks_from_labels(labels_from_stack(case.masks[lge.uid]))
        for method in ("nsd", "fwhm"):
            q = quantify_scar(
                lge.stack.data[:, 0], m.myocardium, method=method, pixel_spacing=lge.stack.geometry.pixel_spacing
            )
            if has_scar:
                assert 2 * (q.mask & m.scar).sum() / (q.mask.sum() + m.scar.sum()) > 0.7, (subject, method)
            else:
                assert q.percent_of_myocardium < 1.0, (subject, method)


def test_audit_on_demo_phantom(demo_cohort, tmp_path):
    """End to end on a tiny model: thresholds from validation, tables, bullseyes, plotly data, progress."""
    keras = pytest.importorskip("keras")
    from deepoxymap import CLASSES
    from deepoxymap.audit import AuditConfig, audit_manifest, write_audit
    from deepoxymap.model.preprocess import PreprocessSpec

    spec = PreprocessSpec(input_size=48, crop_mm=96.0)
    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.MaxPooling2D(4)(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inp, keras.layers.Activation("softmax", name="probs")(x))
    loaded = SimpleNamespace(model=model, card={}, spec=spec)
    calls = []
    res = audit_manifest(
        demo_cohort / "manifest.csv",
        loaded,
        subjects=["SUBJECT001", "SUBJECT003", "SUBJECT004"],
        validation=["SUBJECT002"],
        config=AuditConfig(
            methods=("gradcam", "layercam", "smoothgrad"), layers=(None, "c1"), sanity_cases=2, smooth_samples=4
        ),
        progress=lambda d, t, m: calls.append((d, t)),
    )
    assert not (tmp_path / "audit").exists()  # the run is in memory; writing is separate
    assert res.subjects == ["SUBJECT001", "SUBJECT003", "SUBJECT004"]
    assert res.probabilities.shape == (3, 4) and np.allclose(res.probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert res.calls == [CLASSES[int(i)] for i in res.probabilities.argmax(axis=1)]
    assert res.labels == [r["class"] for r in res.per_case[:: 2 * 2 + 1]]
    write_audit(res, tmp_path / "audit")
    assert calls[-1][0] == calls[-1][1] == 5
    assert len(res.per_case) == 3 * (2 * 2 + 1)
    assert set(res.thresholds) == {"gradcam|c2", "gradcam|c1", "layercam|c2", "layercam|c1", "smoothgrad|input"}
    non_isch = [r for r in res.per_case if r["class"] == "non-ischemic"]
    assert all(0 <= r["ebpg"] <= 1 and 0 <= r["dice"] <= 1 for r in non_isch)
    healthy = [r for r in res.summary if r["class"] == "healthy"]
    assert healthy and np.isfinite(healthy[0]["energy_in_myocardium"])
    for name in ("per_case.csv", "summary.csv", "summary.md", "thresholds.json", "bullseye_data.json", "sanity.csv"):
        assert (tmp_path / "audit" / name).is_file(), name
    assert len(list((tmp_path / "audit" / "bullseye").glob("*.png"))) == 3 * 3  # first layer of each method
    assert "Healthy cases" in res.markdown and "Sanity checks" in res.markdown
    assert len(res.sanity) == 5 and all(np.isfinite(s["deletion_auc"]) for s in res.sanity)


def test_cli_end_to_end(demo_cohort, tmp_path, capsys):
    """`deepoxymap explain` and `deepoxymap audit` on a saved tiny model whose card records the split."""
    keras = pytest.importorskip("keras")
    from deepoxymap import CLASSES
    from deepoxymap.cli import main
    from deepoxymap.model.card import sha256_file, write_card
    from deepoxymap.model.preprocess import PreprocessSpec

    spec = PreprocessSpec(input_size=32, crop_mm=96.0)
    keras.utils.set_random_seed(1)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inp, keras.layers.Activation("softmax", name="probs")(x))
    path = tmp_path / "tiny.keras"
    model.save(path)
    split = {"name": "holdout", "train": [], "val": ["SUBJECT002"], "test": ["SUBJECT001", "SUBJECT003", "SUBJECT004"]}
    write_card(path.with_suffix(".json"), {
        "classes": list(CLASSES), "preprocessing": spec.to_dict(), "file": {"sha256": sha256_file(path)},
        "training": {"split": split, "manifest": str(demo_cohort / "manifest.csv")},
    })  # fmt: skip
    out = tmp_path / "ex"
    assert (
        main(
            [
                "explain",
                str(demo_cohort / "SUBJECT002"),
                "--model",
                str(path),
                "--slice",
                "1",
                "--out",
                str(out),
                "--feature-maps",
                "2",
            ]
        )
        == 0
    )
    assert "pointing(5 mm)" in capsys.readouterr().out
    npy = np.load(next(out.glob("*_s01_gradcam.npy")))
    assert npy.ndim == 2 and npy.dtype == np.float32 and 0 <= npy.min() and npy.max() <= 1
    assert list(out.glob("*_s01_gradcam.png")) and list(out.glob("*featuremaps_c1.npy"))
    rc = main(["audit", "--model", str(path), "--out", str(tmp_path / "au"), "--methods", "gradcam",
               "--sanity-cases", "0", "--no-bullseyes", "--quiet"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and "thresholds chosen on 1 validation subjects" in text and "3 test subjects" in text
    thr = tmp_path / "au" / "thresholds.json"
    assert main(["audit", "--model", str(path), "--out", str(tmp_path / "au2"), "--thresholds", str(thr),
                 "--sanity-cases", "0", "--no-bullseyes", "--quiet", "--methods", "gradcam"]) == 0  # fmt: skip
    assert "thresholds given (frozen)" in capsys.readouterr().out
