"""Synthetic cohort: counts, determinism, round trip through the reader, DICOM validity, truth."""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from deepoxymap import CLASSES
from deepoxymap.case import Role
from deepoxymap.phantom import (
    STUDY,
    CohortSpec,
    PhantomParams,
    cohort_plan,
    generate_cohort,
    generate_subject,
    load_subject,
)
from deepoxymap.phantom.anatomy import aha_segment
from deepoxymap.phantom.generate import MAP_KEYS, OS_KEYS
from deepoxymap.phantom.load import read_labels, read_truth

SUBJECTS = {
    "H": ("healthy", "normal", "A"),
    "I": ("ischemic", "LAD-transmural", "A"),
    "D": ("non-ischemic", "DCM", "B"),
    "E": ("edema", "global", "A"),
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four subjects, one per class, 6 cine phases (fast)."""
    out = tmp_path_factory.mktemp("phantom")
    for i, (sid, (c, st, site)) in enumerate(SUBJECTS.items()):
        generate_subject(out, sid, c, st, site, seed=3, index=i, n_frames=6)
    return out


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# cohort plan
# ---------------------------------------------------------------------------


def test_study_plan_counts() -> None:
    plan = cohort_plan(STUDY, seed=0)
    assert len(plan) == 190
    assert collections.Counter(r["class"] for r in plan) == {
        "healthy": 68,
        "ischemic": 42,
        "non-ischemic": 33,
        "edema": 47,
    }
    assert collections.Counter(r["site"] for r in plan) == {"A": 160, "B": 30}
    # class mix is the same at both sites (within rounding)
    by = collections.Counter((r["class"], r["site"]) for r in plan)
    for c in CLASSES:
        assert abs(by[(c, "B")] / 30 - by[(c, "A")] / 160) < 0.05
    assert len({r["subject"] for r in plan}) == 190
    subs = collections.Counter(r["subtype"] for r in plan if r["class"] == "non-ischemic")
    assert subs == {"DCM": 13, "HCM": 12, "myocarditis": 8}
    # ids carry no class: the order is shuffled, and differs with the seed
    assert [r["class"] for r in plan[:20]] != sorted(r["class"] for r in plan[:20])
    assert [r["class"] for r in cohort_plan(STUDY, seed=1)] != [r["class"] for r in plan]
    assert [r["class"] for r in cohort_plan(STUDY, seed=0)] == [r["class"] for r in plan]


def test_custom_cohort_and_manifest(tmp_path: Path) -> None:
    spec = CohortSpec("tiny", {"healthy": 1, "ischemic": 1, "non-ischemic": 0, "edema": 1}, {"A": 2, "B": 1})
    rows = generate_cohort(tmp_path, spec, seed=5, n_frames=2)
    assert len(rows) == 3
    text = (tmp_path / "manifest.csv").read_text().splitlines()
    assert text[0] == "subject,class,subtype,site,field_strength,path"
    assert len(text) == 4
    for line in text[1:]:
        _sub, cls, _st, site, fs, path = line.split(",")
        assert (tmp_path / path / "truth" / "truth.json").is_file()
        assert float(fs) == (3.0 if site == "A" else 1.5)
        assert read_truth(tmp_path / path)["class"] == cls


# ---------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_subject(a, "S", "ischemic", "RCA-subendocardial", "A", seed=11, index=4, n_frames=2)
    generate_subject(b, "S", "ischemic", "RCA-subendocardial", "A", seed=11, index=4, n_frames=2)
    generate_subject(c, "S", "ischemic", "RCA-subendocardial", "A", seed=12, index=4, n_frames=2)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_scanner_parameters_do_not_depend_on_class(cohort: Path) -> None:
    """Same seed and index: identical protocol whatever the class (no leak via tags)."""
    out = cohort.parent / "leak"
    t1 = generate_subject(out, "X1", "healthy", "normal", "A", seed=9, index=1, n_frames=2)
    t2 = generate_subject(out, "X2", "non-ischemic", "HCM", "A", seed=9, index=1, n_frames=2)
    keys = [k for k in t1["scanner"] if k not in ("banding", "rr_ms", "noise_sigma_signal")]  # physiology
    assert {k: t1["scanner"][k] for k in keys} == {k: t2["scanner"][k] for k in keys}
    for key in (*OS_KEYS, *MAP_KEYS):
        d1 = pydicom.dcmread(out / "X1" / "dicom" / key / "IM_01_001.dcm")
        d2 = pydicom.dcmread(out / "X2" / "dicom" / key / "IM_01_001.dcm")
        for kw in ("Rows", "Columns", "PixelSpacing", "RepetitionTime", "EchoTime", "FlipAngle", "SliceThickness"):
            assert d1.get(kw) == d2.get(kw), (key, kw)
    shutil.rmtree(out)


# ---------------------------------------------------------------------------
# round trip through the project's reader
# ---------------------------------------------------------------------------


def test_round_trip_geometry_and_roles(cohort: Path) -> None:
    for sid, (cls, _st, _site) in SUBJECTS.items():
        case = load_subject(cohort / sid)
        truth = case.truth.record
        assert case.label == cls
        roles = collections.Counter(s.role for s in case.series)
        assert roles == {Role.OS_CMR: 4, Role.LGE: 1, Role.T1_MAP: 1, Role.T2_MAP: 1}
        assert list(case.os_timepoints()) == ["baseline", "hv-end", "bh-start", "bh-end"]
        by_uid = {s.uid: s for s in case.series}
        for key, st in truth["series"].items():
            s = by_uid[st["uid"]]
            g = s.stack.geometry
            assert g.shape == tuple(st["shape"])
            assert s.stack.n_slices == 3 and s.stack.n_frames == st["n_frames"]
            assert np.allclose(g.pixel_spacing, st["pixel_spacing_mm"], atol=1e-4)
            # the reader's base->apex order is the generator's slice order
            for k in range(3):
                ds = pydicom.dcmread(cohort / sid / "dicom" / key / f"IM_{k + 1:02d}_001.dcm")
                assert np.allclose(g.slice_origins[k], np.asarray(ds.ImagePositionPatient, float), atol=1e-3)
                assert np.allclose(
                    s.stack.data[k, 0], ds.pixel_array * float(getattr(ds, "RescaleSlope", 1.0)), atol=1e-3
                )
            # oblique, not axis-aligned
            assert np.max(np.abs(g.normal)) < 0.95
            assert s.stack.timepoint == st["timepoint"]
            if key in ("t1map", "t2map"):
                assert s.stack.units == "ms"
            m = case.masks[s.uid]
            assert m.data.shape[0] == 3 and m.data.shape[2:] == g.shape
        # all series share study and frame of reference
        assert len({s.stack.geometry.frame_of_reference_uid for s in case.series}) == 1


def test_map_values_in_ms(cohort: Path) -> None:
    case = load_subject(cohort / "H")
    t1 = next(s for s in case.series if s.role == Role.T1_MAP)
    t2 = next(s for s in case.series if s.role == Role.T2_MAP)
    for s, lo, hi in ((t1, 1000, 1350), (t2, 35, 60)):
        myo = case.masks[s.uid].data[:, 0] == 2
        med = float(np.median(s.stack.data[:, 0][myo]))
        assert lo < med < hi, (s.description, med)


# ---------------------------------------------------------------------------
# external tools
# ---------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_dciodvfy_no_errors(cohort: Path) -> None:
    for key in (*OS_KEYS, *MAP_KEYS):
        f = cohort / "I" / "dicom" / key / "IM_02_001.dcm"
        res = subprocess.run(["dciodvfy", str(f)], check=False, capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], (key, errors)


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix not installed")
def test_dcm2niix_converts(cohort: Path, tmp_path: Path) -> None:
    for key in ("os_bh-end", "lge", "t1map"):
        out = tmp_path / key
        out.mkdir()
        res = subprocess.run(
            ["dcm2niix", "-z", "n", "-f", "%d", "-o", str(out), str(cohort / "D" / "dicom" / key)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        niis = list(out.glob("*.nii"))
        assert niis, res.stdout
        import nibabel as nib

        img = nib.load(niis[0])
        shapes = {m for sp in PhantomParams().sites.values() for m in (sp.os_matrix, sp.lge_matrix, sp.map_matrix)}
        assert img.shape[0] * img.shape[1] in {r * c for r, c in shapes}


# ---------------------------------------------------------------------------
# ground truth consistency
# ---------------------------------------------------------------------------


def _world_centroid(case: Any, uid: str, labels: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    s = next(x for x in case.series if x.uid == uid)
    pts = []
    for k in range(labels.shape[0]):
        rr, cc = np.nonzero(np.isin(labels[k], values))
        if rr.size:
            pts.append(s.stack.geometry.pixel_to_patient(k, rr, cc))
    return np.concatenate(pts).mean(axis=0)


def test_labels_contract_and_lesion_alignment(cohort: Path) -> None:
    case = load_subject(cohort / "I")
    labels = read_labels(cohort / "I")
    truth = case.truth.record
    for st in truth["series"].values():
        lab = labels[st["uid"]]
        assert lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1, 2, 3, 4, 5, 6}
        assert labels[st["uid"] + "__edema"].dtype == bool
        assert (lab == 4).sum() > 0, st["description"]
    # scar lines up across series within misregistration + breathing + a pixel
    ref = truth["series"]["lge"]["uid"]
    c_ref = _world_centroid(case, ref, labels[ref], (4, 6))
    for key in ("t1map", "t2map", "os_baseline"):
        uid = truth["series"][key]["uid"]
        lab = labels[uid + "__cine"][:, 0] if key.startswith("os") else labels[uid]
        c = _world_centroid(case, uid, lab, (4, 6))
        assert np.linalg.norm(c - c_ref) < 3.0 + 2.5 + 3.0, key
    # AHA segments of a LAD scar are LAD segments
    lad = {1, 2, 7, 8, 13, 14, 16, 17}
    scar = truth["segments"]["scar"]
    segs = set(truth["segments"]["scar_segments"])
    assert segs and len(segs & lad) >= 0.6 * len(segs)
    assert int(max(scar, key=lambda k: scar[k]["extent"])) in lad


def test_aha_segments_convention() -> None:
    assert aha_segment(90.0, "mid") == 7  # anterior
    assert aha_segment(150.0, "basal") == 2  # anteroseptal
    assert aha_segment(210.0, "basal") == 3  # inferoseptal
    assert aha_segment(270.0, "mid") == 10  # inferior
    assert aha_segment(330.0, "mid") == 11  # inferolateral
    assert aha_segment(30.0, "mid") == 12  # anterolateral
    assert [int(aha_segment(t, "apical")) for t in (90.0, 180.0, 270.0, 0.0)] == [13, 14, 15, 16]


# ---------------------------------------------------------------------------
# class-specific properties
# ---------------------------------------------------------------------------


def _series(case: Any, role: Role) -> Any:
    return next(s for s in case.series if s.role == role)


def test_lge_scar_brighter_than_remote(cohort: Path) -> None:
    case = load_subject(cohort / "I")
    s = _series(case, Role.LGE)
    lab = case.masks[s.uid].data[:, 0]
    img = s.stack.data[:, 0]
    scar = img[lab == 4].mean()
    remote = img[lab == 2].mean()
    assert scar > 2.5 * remote
    hcase = load_subject(cohort / "H")
    hs = _series(hcase, Role.LGE)
    hl = hcase.masks[hs.uid].data[:, 0]
    assert hs.stack.data[:, 0][hl == 1].mean() > 4 * hs.stack.data[:, 0][hl == 2].mean()  # nulled myocardium


def test_t2_raised_in_edema(cohort: Path) -> None:
    e = load_subject(cohort / "E")
    h = load_subject(cohort / "H")

    def myo_t2(case: Any) -> float:
        s = _series(case, Role.T2_MAP)
        lab = case.masks[s.uid].data[:, 0]
        return float(np.median(s.stack.data[:, 0][np.isin(lab, (2, 5))]))

    t_e, t_h = myo_t2(e), myo_t2(h)
    remote = e.truth.record["anatomy"]["tissue"]["t2_myo_ms"]
    assert t_e > remote + 4.0
    assert e.truth.record["segments"]["edema_segments"] == list(range(1, 17))
    assert t_e > t_h


def test_dcm_dilated_and_ischemic_thinned(cohort: Path) -> None:
    def cavity_mm2(sid: str) -> float:
        case = load_subject(cohort / sid)
        s = case.os_timepoints()["baseline"]
        m = case.masks[s.series_uid].data
        px = s.geometry.pixel_spacing[0] * s.geometry.pixel_spacing[1]
        return float((m[1, 0] == 1).sum() * px)

    assert cavity_mm2("D") > 1.4 * cavity_mm2("H")
    t = read_truth(cohort / "I")
    assert t["anatomy"]["lesion"]["scar_wall_ed_mm"] < t["anatomy"]["wall_ed_mid_mm"]


def test_os_response_healthy_vs_ischemic(cohort: Path) -> None:
    """truth.json holds the regionally coherent OS model: lesion = remote + effect + deviation."""
    h = json.loads((cohort / "H" / "truth" / "truth.json").read_text())["os_response"]
    assert set(h) >= {"remote", "lesion", "subject", "effect", "deviation", "blood_bh_pct", "het_sd_pct"}
    assert -5.0 <= h["remote"]["bh_pct"] <= 30.0
    i = json.loads((cohort / "I" / "truth" / "truth.json").read_text())["os_response"]
    assert i["remote"] == i["subject"]
    assert i["lesion"]["bh_pct"] == pytest.approx(
        i["remote"]["bh_pct"] + i["effect"]["lesion"]["bh_pct"] + i["deviation"]["lesion"]["bh_pct"], abs=1e-4
    )


# ---------------------------------------------------------------------------
# CLI, demo, realism and difficulty helpers
# ---------------------------------------------------------------------------


def test_generate_cli_demo_plan(tmp_path: Path) -> None:
    from deepoxymap.cli import main
    from deepoxymap.phantom import DEMO

    plan = cohort_plan(DEMO, 0)
    assert sorted(r["class"] for r in plan) == sorted(CLASSES)
    assert {r["subtype"] for r in plan} == {"normal", "LAD-transmural", "HCM", "AAR"}
    rc = main(
        [
            "generate",
            "--out",
            str(tmp_path),
            "--cohort",
            "demo",
            "--seed",
            "0",
            "--limit",
            "1",
            "--quiet",
            "--jobs",
            "1",
        ]
    )
    assert rc == 0
    assert (tmp_path / "manifest.csv").read_text().count("\n") == 2


def test_realism_stats_on_phantom(cohort: Path) -> None:
    from deepoxymap.phantom.realism import stack_stats

    case = load_subject(cohort / "H")
    s = case.os_timepoints()["baseline"]
    st = stack_stats(s, case.masks[s.series_uid], myo_labels=(2, 4, 5, 6))
    assert 2.0 < np.median(st["blood/myo ratio"]) < 5.0
    assert 4.0 < np.median(st["ED wall thickness (mm)"]) < 11.0
    assert np.median(st["ES cavity diameter (mm)"]) < np.median(st["ED cavity diameter (mm)"])
    assert 8.0 < np.median(st["myocardial SNR"]) < 60.0
    assert 1.6 < np.median(st["background mean/SD"]) < 2.3  # Rayleigh background: 1.91


def test_realism_real_sunnybrook(real_data_dir: Path) -> None:
    from deepoxymap.phantom.realism import real_stats

    st = real_stats(real_data_dir)
    assert len(st["blood/myo ratio"]) >= 3
    assert 1.5 < np.median(st["blood/myo ratio"]) < 6.0


def test_difficulty_helpers() -> None:
    from deepoxymap.phantom.difficulty import cv_auc, engineered_features, slice_features

    lab = np.zeros((20, 20), np.uint8)
    lab[5:15, 5:15] = 2
    lab[8:12, 8:12] = 1
    img = np.where(lab == 1, 300.0, np.where(lab == 2, 100.0, 0.0))
    h, blood = slice_features(img, lab)
    assert blood == 300.0 and h.sum() == pytest.approx(1.0) and h.argmax() == 10  # 1/3 ratio bin
    e = engineered_features(img, lab, 2.0, 1)
    assert len(e) == 15 and e[0] == 16 * 4.0 and e[1] == 84 * 4.0
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    groups = np.repeat(np.arange(40), 3)
    X_sep = np.eye(4)[y] * 3 + rng.normal(0, 0.3, (120, 4))
    X_rand = rng.normal(size=(120, 4))
    assert cv_auc(X_sep, y, groups)["macro_subject"] > 0.95
    assert abs(cv_auc(X_rand, y, groups)["macro_subject"] - 0.5) < 0.2


def test_truth_is_json_and_edema_masks(cohort: Path) -> None:
    from deepoxymap.phantom import read_edema_masks

    case = load_subject(cohort / "E")
    json.dumps(dict(case.truth.record))
    ed = read_edema_masks(cohort / "E")
    assert set(ed) == set(case.truth.edema_masks)
    assert set(ed) == {st["uid"] for st in case.truth.record["series"].values()}
    t2 = case.truth.record["series"]["t2map"]["uid"]
    lab = case.masks[t2].data[:, 0]
    assert ed[t2].sum() >= (lab == 5).sum() > 0


def test_code_reproduces_generated_study_cohort(tmp_path: Path) -> None:
    """The model is trained on data/study: the generator must still produce its exact bytes."""
    study = Path(__file__).resolve().parents[2] / "data" / "study"
    if not (study / "manifest.csv").is_file():
        pytest.skip("data/study not generated (deepoxymap generate --out data/study --cohort study --seed 0)")
    r = cohort_plan(STUDY, 0)[0]
    tj = study / r["subject"] / "truth" / "truth.json"
    if not tj.is_file() or json.loads(tj.read_text()).get("seed") != 0:
        pytest.skip("data/study is not the seed-0 study cohort")
    from deepoxymap.phantom.truth import GENERATOR

    if json.loads(tj.read_text()).get("generator") != GENERATOR:
        pytest.skip(f"data/study was written by another generator version (this code: {GENERATOR}); regenerate it")
    generate_subject(tmp_path, r["subject"], r["class"], r["subtype"], r["site"], 0, r["index"])
    assert _digest(tmp_path / r["subject"]) == _digest(study / r["subject"])


def test_os_contrast_on_generated_truth(cohort: Path) -> None:
    """The wrong-sign check reads generated truth: ischemic transmural scar is darker and stays darker."""
    from deepoxymap.phantom.os_contrast import cohort_contrast, format_contrast, lesion_contrast

    rep = cohort_contrast(cohort)
    assert {k: v["n"] for k, v in rep.items()} == {"ischemic": 1, "non-ischemic": 1, "edema": 0, "edema-global": 1}
    c = lesion_contrast(read_truth(cohort / "I"))
    assert c is not None and c["native"] < -0.05 and not c["flipped"]
    assert lesion_contrast(read_truth(cohort / "H")) is None
    assert "flipped" in format_contrast(rep)


def test_transfer_baselines_fit_on_one_cohort_and_score_another(cohort: Path, tmp_path: Path) -> None:
    """``difficulty --train-cohort``: fitted on one folder's slices, scored per subject on the other's."""
    from deepoxymap.phantom.difficulty import transfer_baselines

    rows = ["subject,class,subtype,site,path"] + [
        f"{sid},{c},{st},{site},{cohort / sid}" for sid, (c, st, site) in SUBJECTS.items()
    ]
    (cohort / "manifest.csv").write_text("\n".join(rows) + "\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.csv").write_text("\n".join(rows[:3]) + "\n")  # two of the subjects only
    r = transfer_baselines(cohort, other, n_boot=20)
    assert r["train_subjects"] == len(SUBJECTS) and r["test_subjects"] == 2
    for name in ("histogram", "engineered", "leak_check"):
        assert r[name]["n"] == 2 and 0.0 <= r[name]["accuracy"]["value"] <= 1.0
    # the engineered features of the training slices themselves are separable: fitted and scored
    # on the same four subjects, the regression must call every one of them right
    assert transfer_baselines(cohort, cohort, n_boot=20)["engineered"]["accuracy"]["value"] == 1.0
