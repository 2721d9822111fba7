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
            methods=("gradcam", "layercam", "smoothgrad"),
            layers=(None, "c1", "c2+c1"),
            sanity_cases=2,
            smooth_samples=4,
        ),
        progress=lambda d, t, m: calls.append((d, t)),
    )
    assert not (tmp_path / "audit").exists()  # the run is in memory; writing is separate
    assert res.subjects == ["SUBJECT001", "SUBJECT003", "SUBJECT004"]
    assert res.probabilities.shape == (3, 4) and np.allclose(res.probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert res.calls == [CLASSES[int(i)] for i in res.probabilities.argmax(axis=1)]
    assert res.labels == [r["class"] for r in res.per_case[:: 2 * 3 + 1]]
    write_audit(res, tmp_path / "audit")
    assert calls[-1][0] == calls[-1][1] == 5
    assert len(res.per_case) == 3 * (2 * 3 + 1)
    assert set(res.thresholds) == {"gradcam|c2", "gradcam|c1", "gradcam|c1+c2", "layercam|c2", "layercam|c1",
                                   "layercam|c1+c2", "smoothgrad|input"}  # fmt: skip
    fused = [r for r in res.per_case if r["layer"] == "c1+c2" and r["class"] != "healthy"]
    c1 = [r for r in res.per_case if r["layer"] == "c1" and r["class"] != "healthy"]
    assert [r["dice_myo_ideal"] for r in fused] == [r["dice_myo_ideal"] for r in c1]  # the finest layer's ceiling
    non_isch = [r for r in res.per_case if r["class"] == "non-ischemic"]
    assert all(0 <= r["ebpg"] <= 1 and 0 <= r["dice"] <= 1 for r in non_isch)
    healthy = [r for r in res.summary if r["class"] == "healthy"]
    assert healthy and np.isfinite(healthy[0]["energy_in_myocardium"])
    for name in ("per_case.csv", "summary.csv", "summary.md", "thresholds.json", "bullseye_data.json", "sanity.csv",
                 "summary.json"):  # fmt: skip
        assert (tmp_path / "audit" / name).is_file(), name
    summary = json.loads((tmp_path / "audit" / "summary.json").read_text())
    _check_summary_schema(summary)
    assert (summary["default"]["method"], summary["default"]["layer"]) == ("gradcam", "c2")
    assert summary["default"]["classes"]["edema-focal"]["n"] == 1  # the demo's edema is area-at-risk
    assert summary["default"]["classes"]["non-ischemic"]["dice_myo_ideal"] is not None
    assert {r["group"] for r in res.per_case} == {"healthy", "non-ischemic", "edema-focal"}
    assert all(np.isfinite(t["tau_myo_ideal"]) for t in res.thresholds.values())
    assert len(list((tmp_path / "audit" / "bullseye").glob("*.png"))) == 3 * 3  # first layer of each method
    assert "Healthy cases" in res.markdown and "Sanity checks" in res.markdown
    assert len(res.sanity) == 7 and all(np.isfinite(s["deletion_auc"]) for s in res.sanity)


def _one_conv_model(seed: int):
    """A seeded one-conv 4-class model (conv ``c1`` -> GAP -> ``logits`` -> softmax) at 48 px, and its spec."""
    keras = pytest.importorskip("keras")
    from deepoxymap.model.preprocess import PreprocessSpec

    keras.utils.set_random_seed(seed)
    inp = keras.Input((48, 48, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.Dense(4, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, keras.layers.Activation("softmax", name="probs")(x))
    return model, PreprocessSpec(input_size=48, crop_mm=96.0)


def test_audit_case_call_applies_the_cards_class_prior_correction(demo_cohort):
    """The audit's case call is predict's: the card's ``decision`` offset moves the call, never the maps."""
    from deepoxymap import CLASSES
    from deepoxymap.audit import AuditConfig, audit_manifest
    from deepoxymap.model.calibrate import apply_offset

    model, spec = _one_conv_model(0)
    cfg = AuditConfig(methods=("gradcam",), layers=(None,), sanity_cases=0, bullseyes=False)
    subjects = ["SUBJECT001", "SUBJECT003", "SUBJECT004"]

    def run(card):
        loaded = SimpleNamespace(model=model, card=card, spec=spec)
        return audit_manifest(demo_cohort / "manifest.csv", loaded, subjects=subjects, validation=["SUBJECT002"],
                              config=cfg)  # fmt: skip

    offset = {"healthy": 0.0, "ischemic": 0.0, "non-ischemic": 40.0, "edema": 0.0}
    raw, corrected = run({}), run({"decision": {"log_prior_offset": offset}})
    assert not raw.failed and not corrected.failed and raw.subjects == corrected.subjects == subjects
    b = np.array([offset[c] for c in CLASSES])
    assert np.allclose(corrected.probabilities, apply_offset(raw.probabilities, b), atol=1e-5)
    assert corrected.calls == ["non-ischemic"] * 3  # +40 in log space outweighs any tiny-model output
    assert raw.calls == [CLASSES[int(i)] for i in raw.probabilities.argmax(axis=1)]
    assert [r["predicted"] for r in corrected.per_case] == ["non-ischemic"] * len(corrected.per_case)
    from deepoxymap.audit.run import RELIANCE_KEYS

    probs = ("predicted", "p_true", *RELIANCE_KEYS)  # the lesion-fill check reads the corrected case call too
    maps = [{k: v for k, v in r.items() if k not in probs} for r in raw.per_case]
    assert maps == [{k: v for k, v in r.items() if k not in probs} for r in corrected.per_case]
    assert any("lesion_reliance" in r for r in corrected.per_case)


def test_audit_contrast_explains_the_label_against_healthy(demo_cohort):
    """``contrast="healthy"``: lesion cases get contrastive maps (other figures), healthy cases stay plain."""
    from deepoxymap.audit import AuditConfig, audit_manifest
    from deepoxymap.errors import ExplainError

    model, spec = _one_conv_model(1)
    loaded = SimpleNamespace(model=model, card={}, spec=spec)

    def run(contrast, methods=("gradcam",)):
        cfg = AuditConfig(methods=methods, layers=("c1",), sanity_cases=0, bullseyes=False, contrast=contrast)
        return audit_manifest(demo_cohort / "manifest.csv", loaded, subjects=["SUBJECT001", "SUBJECT003"],
                              validation=["SUBJECT002"], config=cfg)  # fmt: skip

    plain, vs = run(None), run("healthy")
    assert not plain.failed and not vs.failed
    by = {r["subject"]: r for r in plain.per_case}
    for r in vs.per_case:
        same = {k: v for k, v in r.items() if k in ("energy_in_myocardium", "ebpg", "seg_auc")}
        ref = {k: v for k, v in by[r["subject"]].items() if k in same}
        if r["class"] == "healthy":
            assert same == ref  # the healthy class against itself: the plain map
        else:
            assert same != ref
    assert "contrasted with healthy" in vs.markdown
    with pytest.raises(ExplainError, match="gradient CAMs"):
        run("healthy", methods=("gradcam", "smoothgrad"))


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
    rc = main(["audit", "--manifest", str(demo_cohort / "manifest.csv"), "--model", str(path), "--subjects", "all",
               "--out", str(tmp_path / "au3"), "--methods", "gradcam,layercam", "--layers", "c1",
               "--default-method", "hirescam", "--sanity-cases", "0", "--no-bullseyes", "--quiet"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and "3 test subjects" in text and "thresholds chosen on 1 validation subjects" in text
    summary = json.loads((tmp_path / "au3" / "summary.json").read_text())
    _check_summary_schema(summary)
    assert (summary["default"]["method"], summary["default"]["layer"]) == ("hirescam", "c1")
    assert {(e["method"], e["layer"]) for e in summary["all"]} == {
        ("gradcam", "c1"),
        ("layercam", "c1"),
        ("hirescam", "c1"),
    }
    assert sum(f["n"] for f in summary["default"]["classes"].values()) == 3
    rc = main(["evaluate", "--manifest", str(demo_cohort / "manifest.csv"), "--subjects", "all", "--model", str(path),
               "--out", str(tmp_path / "ev"), "--no-baseline", "--n-boot", "20", "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert rc == 0
    ev = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert ev["n"] == 3 and set(ev["auc"]) == set(CLASSES)
    for fig in (ev["accuracy"], ev["macro_auc"], *ev["auc"].values()):
        assert set(fig) == {"value", "ci"} and len(fig["ci"]) == 2
    assert 0.0 <= ev["accuracy"]["value"] <= 1.0 and ev["results"][0]["subjects"] == [
        "SUBJECT001",
        "SUBJECT003",
        "SUBJECT004",
    ]


# ---------------------------------------------------------------------------
# fairness: per-case normalisation, edema by extent, ideal ceiling, segment AUC, summary.json
# ---------------------------------------------------------------------------


def _ring_case(
    n_slices: int = 1,
    *,
    model_shape: tuple[int, int] = (64, 64),
    scale: float = 1.0,
    lesion_deg: tuple[float, float] | None = (0.0, 100.0),
    lesion_depth: float = 20.0,
    label: str = "ischemic",
    subtype: str = "",
):
    """A synthetic CaseReference on a 64 x 64 source grid: a myocardial ring (radius 14-20 px) in six
    60-degree AHA-like segments, the lesion a sector of the ring (out to radius ``lesion_depth``) on slice 0 only."""
    from deepoxymap.audit import CaseReference, SliceReference
    from deepoxymap.model.preprocess import CropTransform

    n = 64
    rr, cc = np.mgrid[0:n, 0:n].astype(float)
    rad = np.hypot(rr - 31.5, cc - 31.5)
    th = np.degrees(np.arctan2(-(rr - 31.5), cc - 31.5)) % 360
    myo = (rad >= 14) & (rad <= 20)
    seg = np.where(myo, 1 + (th // 60).astype(np.int64), 0)
    slices, transforms = [], []
    for k in range(n_slices):
        sector = (th >= lesion_deg[0]) & (th < lesion_deg[1]) & (rad <= lesion_depth) if lesion_deg else False
        lesion = myo & sector if k == 0 else np.zeros_like(myo)
        labels = np.where(myo, 2, np.where(rad < 14, 1, 0)).astype(np.int64)
        labels[lesion] = 4
        slices.append(SliceReference(k, 0, labels, myo, lesion, seg, lesion.astype(float), "mid"))
        transforms.append(CropTransform(center=(31.5, 31.5), scale=(scale, scale), model_shape=model_shape,
                                        source_shape=(n, n), slice_index=k))  # fmt: skip
    x = np.zeros((n_slices, *model_shape, 3), np.float32)
    kind = "none" if label == "healthy" else ("edema" if label == "edema" else "scar")
    return CaseReference("S", label, subtype, x, transforms, slices, (2.0, 2.0), kind)


def _perfect_maps(cm):
    """The reference lesion itself as a CAM: on the model grid, normalised per case, mapped back."""
    from deepoxymap.audit import lesion_on_model_grid
    from deepoxymap.explain import normalize_map

    scaled = normalize_map(np.stack(lesion_on_model_grid(cm)))
    return [t.to_source(a) for a, t in zip(scaled, cm.transforms, strict=True)]


class TestFairness:
    def test_segment_auc(self):
        """Perfect ranking 1, reversed 0, ties one half, undefined without both kinds of segment."""
        from deepoxymap.audit import segment_auc

        assert segment_auc([0.9, 0.8, 0.1, 0.0], [True, True, False, False]) == 1.0
        assert segment_auc([0.1, 0.0, 0.9, 0.8], [True, True, False, False]) == 0.0
        assert segment_auc([0.5, 0.5], [True, False]) == 0.5
        assert segment_auc([0.9, np.nan, 0.1], [True, True, False]) == 1.0  # absent segment dropped
        assert np.isnan(segment_auc([0.9, 0.8], [True, True]))

    def test_segment_auc_of_a_perfect_map_is_one(self):
        """A map equal to the lesion ranks every lesion-positive segment first: per-case segment AUC 1."""
        from deepoxymap.audit import case_metrics

        cm = _ring_case(2)
        met = case_metrics(cm, _perfect_maps(cm), tau=0.5, tau_myo=0.5, tau_segment=0.5)
        assert met["segment_auc"] == 1.0 and met["dice_myo"] == 1.0 and met["pointing_myo"] == 1.0
        assert met["energy_in_lesion_myo"] == pytest.approx(1.0)
        lesion_share = cm.slices[0].lesion.sum() / (2 * cm.slices[0].myocardium.sum())  # over both slices
        assert met["energy_chance"] == pytest.approx(lesion_share)

    @pytest.mark.parametrize("scale", [1.0, 1.3])
    def test_ideal_ceiling_equals_own_dice_at_full_resolution_and_drops_when_coarser(self, scale):
        """Stride 1: the ideal map is the perfect map (same Dice at any threshold); pooled to coarser grids
        (stride 2, 4, 8) its best Dice falls (averaged over five lesion positions: one position aliases)."""
        from deepoxymap.audit import case_metrics, choose_threshold, ideal_heatmaps

        shape = (48, 48) if scale != 1.0 else (64, 64)
        best = np.zeros((5, 4))
        for i, lo in enumerate((0.0, 25.0, 50.0, 75.0, 100.0)):
            cm = _ring_case(2, model_shape=shape, scale=scale, lesion_deg=(lo, lo + 60.0), lesion_depth=17.0)
            perfect = _perfect_maps(cm)
            for tau in (0.3, 0.5):
                met = case_metrics(cm, perfect, tau=tau, tau_myo=tau, tau_segment=0.5, ideal=ideal_heatmaps(cm, shape))
                assert met["dice_myo_ideal"] == met["dice_myo"] and met["dice_ideal"] == met["dice"]
            L = np.stack([s.lesion for s in cm.slices])
            M = np.stack([s.myocardium for s in cm.slices])
            for j, stride in enumerate((1, 2, 4, 8)):
                ideal = ideal_heatmaps(cm, (shape[0] // stride, shape[1] // stride))
                assert len(ideal) == 2 and ideal[0].shape == (64, 64) and 0 <= ideal[0].min() <= ideal[0].max() <= 1
                best[i, j] = choose_threshold([np.stack(ideal)], [L], [M])[1]
        mean = best.mean(axis=0)
        assert mean[0] > 0.95 and mean[0] > mean[1] > mean[2] > mean[3], mean

    def test_per_case_normalisation_keeps_a_weak_lesion_free_slice_weak(self):
        """The audit's maps share one maximum per case: a lesion-free slice with a weak response stays weak,
        where per-slice normalisation would force it to a full-strength hot spot."""
        keras = pytest.importorskip("keras")
        from deepoxymap.audit import AuditConfig
        from deepoxymap.audit.run import _all_heatmaps
        from deepoxymap.explain import explain_batch

        inp = keras.Input((64, 64, 3))
        conv = keras.layers.Conv2D(1, 5, padding="same", activation="relu", name="blob")
        dense = keras.layers.Dense(4, name="logits")
        out = keras.layers.Activation("softmax")(dense(keras.layers.GlobalAveragePooling2D()(conv(inp))))
        model = keras.Model(inp, out)
        k = np.zeros((5, 5, 3, 1), np.float32)
        k[:, :, 0, 0] = 1.0 / 25.0
        conv.set_weights([k, np.array([-0.3], np.float32)])
        dense.set_weights([np.array([[0.0, 10.0, 0.0, 0.0]], np.float32), np.zeros(4, np.float32)])
        cm = _ring_case(2)
        x = np.full((2, 64, 64, 3), 0.1, np.float32)
        x[0][cm.slices[0].lesion] = 1.0  # the lesion, bright
        rr, cc = np.mgrid[0:64, 0:64]
        x[1][(rr - 50) ** 2 + (cc - 32) ** 2 <= 9] = 0.5  # a weak blob on the lesion-free slice
        cm = type(cm)(cm.subject, cm.label, cm.subtype, x, cm.transforms, cm.slices, cm.pixel_spacing, cm.lesion_kind)
        maps, _, _ = _all_heatmaps(model, cm, ["blob"], AuditConfig(methods=("gradcam",)))[("gradcam", "blob")]
        per_slice = explain_batch(model, x, "gradcam", 1, "blob")
        assert per_slice[1].array.max() > 0.99  # per slice: forced hot spot
        assert maps[0].max() > 0.95 and maps[1].max() < 0.5  # per case: stays weak

    def test_edema_reported_by_extent(self):
        """Global edema (sub-type 'global') is its own group; focal and area-at-risk edema are 'edema-focal'."""
        from deepoxymap.audit import AUDIT_CLASSES, AuditConfig, audit_group
        from deepoxymap.audit.run import _summarise

        assert AUDIT_CLASSES == ("ischemic", "non-ischemic", "edema-focal", "edema-global", "healthy")
        assert audit_group("edema", "global") == audit_group("edema", " Global ") == "edema-global"
        assert audit_group("edema", "AAR") == audit_group("edema", "focal") == audit_group("edema") == "edema-focal"
        assert audit_group("ischemic", "global") == "ischemic" and audit_group("healthy") == "healthy"
        rows = [
            {"subject": s, "class": "edema", "group": audit_group("edema", st), "subtype": st, "method": "gradcam",
             "layer": "c", "predicted": p, "dice_myo": d}
            for s, st, p, d in (("a", "global", "edema", 0.9), ("b", "AAR", "healthy", 0.2), ("c", "focal", "edema", 0.4))
        ]  # fmt: skip
        summ = _summarise(rows, {}, {}, AuditConfig(methods=("gradcam",)), ["c"])
        by = {d["class"]: d for d in summ}
        assert set(by) == {"edema-focal", "edema-global"}
        assert by["edema-global"]["n"] == 1 and by["edema-global"]["dice_myo"] == 0.9
        assert by["edema-focal"]["n"] == 2 and by["edema-focal"]["dice_myo"] == pytest.approx(0.3)
        assert by["edema-focal"]["accuracy"] == 0.5 and by["edema-focal"]["label"] == "edema"

    def test_summary_json_schema(self):
        """summary.json: {"default": {method, layer, classes}, "all": [...]}, five classes, the named figures."""
        from deepoxymap.audit import AUDIT_CLASSES, AuditConfig, AuditResult, summary_json
        from deepoxymap.audit.run import _summarise

        cfg = AuditConfig(methods=("gradcam", "hirescam"))
        rows = [
            {"subject": f"s{i}", "class": c, "group": c, "subtype": "", "method": m, "layer": "c2",
             "predicted": c, "dice_myo": 0.5, "dice_myo_ideal": 0.7, "segment_auc": 0.8, "energy_in_myocardium": 0.4}
            for i, c in enumerate(("ischemic", "healthy")) for m in cfg.methods
        ]  # fmt: skip
        res = AuditResult(summary=_summarise(rows, {}, {}, cfg, ["c2"]), config=cfg, layers=("c2",),
                          default=("gradcam", "c2"),
                          sanity=[{"method": "gradcam", "layer": "c2", "randomization_passed": True,
                                   "spearman_mean": 0.1, "n_images": 3, "randomize_top": 2,
                                   "deletion_auc": 0.2, "deletion_auc_random": 0.4}])  # fmt: skip
        out = json.loads(json.dumps(summary_json(res), allow_nan=False))
        _check_summary_schema(out)
        assert out["default"]["method"] == "gradcam" and out["default"]["layer"] == "c2"
        assert [(e["method"], e["layer"]) for e in out["all"]] == [("gradcam", "c2"), ("hirescam", "c2")]
        isch = out["default"]["classes"]["ischemic"]
        assert (
            isch["n"] == 1 and isch["dice_myo"] == 0.5 and isch["dice_myo_ideal"] == 0.7 and isch["segment_auc"] == 0.8
        )
        assert isch["sanity"]["randomization_passed"] is True
        assert (
            out["default"]["classes"]["edema-global"]["n"] == 0
            and out["default"]["classes"]["edema-global"]["dice_myo"] is None
        )
        assert out["default"]["classes"]["healthy"]["energy_in_myocardium"] == 0.4
        assert out["all"][1]["classes"]["ischemic"]["sanity"] is None  # hirescam's checks were not run
        assert set(out["default"]["classes"]) == set(AUDIT_CLASSES)

    def test_plan_subjects_all(self, tmp_path):
        """'all': every manifest subject not used for validation (nor trained on); thresholds never on scored ones."""
        from deepoxymap.audit import plan_subjects
        from deepoxymap.cohort import SubjectRecord

        recs = [SubjectRecord(f"S{i:02d}", ("healthy", "ischemic", "non-ischemic", "edema")[i % 4], tmp_path)
                for i in range(20)]  # fmt: skip
        card = {"training": {"split": {"train": ["S00"], "val": ["S01", "S02"], "test": ["S03"]}}}
        plan = plan_subjects(recs, card, subjects="all")
        assert [r.subject for r in plan.validation] == ["S01", "S02"]
        assert [r.subject for r in plan.test] == [f"S{i:02d}" for i in range(3, 20)]
        assert plan_subjects(recs, card, subjects=["all"]).test == plan.test
        # the card was trained on another manifest: a matching id is another subject, and is scored
        card_elsewhere = {"training": {**card["training"], "manifest": str(tmp_path / "other.csv")}}
        here = plan_subjects(recs, card_elsewhere, subjects="all", manifest=tmp_path / "this.csv")
        assert "S00" in [r.subject for r in here.test] and len(here.test) == 18
        same = plan_subjects(recs, card_elsewhere, subjects="all", manifest=tmp_path / "other.csv")
        assert same.test == plan.test
        # no validation split anywhere: a stratified third chooses the thresholds and is not scored
        plan2 = plan_subjects(recs, {}, subjects="all")
        val, test = {r.subject for r in plan2.validation}, {r.subject for r in plan2.test}
        assert val and not val & test and len(val) + len(test) == 20


FIGURES = ("n", "pointing_myo", "pointing_myo_chance", "energy_in_lesion_myo", "energy_chance", "dice_myo",
           "dice_myo_ideal", "dice_myo_all_myo", "segment_auc", "segment_kappa", "sanity")  # fmt: skip


def _check_summary_schema(out):
    from deepoxymap.audit import AUDIT_CLASSES
    from deepoxymap.audit.report import SPREAD_FIGURES

    assert set(out) == {"default", "all"}
    for entry in [out["default"], *out["all"]]:
        assert set(entry) == {"method", "layer", "classes"}
        assert list(entry["classes"]) == list(AUDIT_CLASSES)
        for c, fig in entry["classes"].items():
            assert set(FIGURES) <= set(fig), (c, set(FIGURES) - set(fig))
            if c == "healthy":
                assert set(SPREAD_FIGURES) <= set(fig)
    assert any((e["method"], e["layer"]) == (out["default"]["method"], out["default"]["layer"]) for e in out["all"])
