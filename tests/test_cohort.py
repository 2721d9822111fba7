"""The one cohort module: manifest rows -> records -> cases, for phantom and real image subjects."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from deepoxymap.case import Role
from deepoxymap.cohort import is_phantom_subject, load_case, read_manifest
from deepoxymap.errors import CaseError


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


def _nifti(path: Path, data: np.ndarray, spacing: float = 1.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([spacing, spacing, 8.0, 1.0])), str(path))
    return path


# ---------------------------------------------------------------------------
# manifest parsing: every bad row names its line
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"subject": "A", "class": "sick", "path": "a"}, "unknown class 'sick'"),
        ({"subject": "", "class": "healthy", "path": "a"}, "empty subject id"),
        ({"subject": "A", "class": "healthy", "path": ""}, "empty path"),
        ({"subject": "A", "class": "healthy", "path": "a", "role": "xray"}, "unknown role 'xray'"),
        ({"subject": "A", "class": "healthy", "path": "a", "labels": "acdc"}, "unknown label scheme 'acdc'"),
        ({"subject": "A", "class": "healthy", "path": "a", "field_strength": "strong"}, "is not a number"),
    ],
)
def test_bad_row_names_its_line(tmp_path: Path, row: dict[str, str], message: str) -> None:
    good = {"subject": "G", "class": "edema", "path": "g"}
    m = _write(tmp_path / "m.csv", [good, {**{k: "" for k in good}, **row}])
    with pytest.raises(CaseError) as exc:
        read_manifest(m)
    assert message in str(exc.value) and "line 3" in str(exc.value)


@pytest.mark.parametrize(
    ("path", "timepoints", "message"),
    [
        ("generate:12:x", ("bh-end",), "is not generate:<seed>:<index>"),
        ("generate:12:3", ("breath-hold",), "unknown OS-CMR time point"),
    ],
)
def test_bad_generated_row_names_its_line(tmp_path: Path, path: str, timepoints: tuple[str, ...], message: str) -> None:
    rec = read_manifest(_write(tmp_path / "m.csv", [{"subject": "G", "class": "edema", "path": path}]))[0]
    assert rec.kind == "generated"
    with pytest.raises(CaseError) as exc:
        load_case(rec, os_timepoints=timepoints)
    assert message in str(exc.value) and "line 2" in str(exc.value)


def test_records_resolve_paths_masks_and_extras(tmp_path: Path) -> None:
    m = _write(
        tmp_path / "m.csv",
        [
            {"subject": "A", "class": "ischemic", "path": "a", "split": "train", "role": "lge", "labels": "emidec",
             "mask_lge": "a_lab.nii.gz", "scanner": "X"},
            {"subject": "B", "class": "healthy", "path": "/abs/b", "split": "", "role": "", "labels": "",
             "mask_lge": "", "scanner": "Y"},
        ],
    )  # fmt: skip
    a, b = read_manifest(m)
    assert a.path == (tmp_path / "a").resolve() and b.path == Path("/abs/b")
    assert a.masks == {"lge": (tmp_path / "a_lab.nii.gz").resolve()} and b.masks == {}
    assert (a.split, a.role, a.labels, b.labels) == ("train", "lge", "emidec", "phantom")
    assert a.extra == {"scanner": "X"} and a.line == 2 and b.line == 3
    assert a.kind == "images" and not is_phantom_subject(a.path)


# ---------------------------------------------------------------------------
# image subjects with label maps
# ---------------------------------------------------------------------------


def _lge_subject(tmp_path: Path, shape: tuple[int, int, int] = (40, 44, 3)) -> tuple[Path, np.ndarray]:
    img = np.random.default_rng(0).normal(100, 5, shape).astype(np.float32)
    lab = np.zeros(shape, np.int16)
    lab[15:25, 15:25] = 2  # EMIDEC normal myocardium
    lab[18:22, 18:22] = 1  # cavity
    lab[15:17, 15:25] = 3  # infarct
    lab[15, 20] = 4  # MVO
    _nifti(tmp_path / "s" / "img.nii.gz", img)
    _nifti(tmp_path / "s_lab.nii.gz", lab)
    return tmp_path / "s", lab


def test_image_subject_gets_role_and_recoded_mask(tmp_path: Path) -> None:
    """A NIfTI LGE with an EMIDEC label map: the row's role, the mask on its grid in the phantom scheme."""
    _, lab = _lge_subject(tmp_path)
    m = _write(tmp_path / "m.csv", [{"subject": "E1", "class": "ischemic", "path": "s", "role": "lge",
                                     "labels": "emidec", "mask_lge": "s_lab.nii.gz"}])  # fmt: skip
    (rec,) = read_manifest(m)
    case = load_case(rec)
    lge = case.first(Role.LGE)
    assert lge is not None and case.label == "ischemic" and case.case_id == "E1"
    mask = case.mask_for(lge.uid)
    assert mask is not None and mask.data.shape == lge.stack.data.shape
    got = np.rint(mask.data[:, 0]).astype(int)  # [slice, row, col]; the NIfTI is [row, col, slice] here
    assert set(np.unique(got)) == {0, 1, 2, 4, 6}
    assert (got == 4).sum() == ((lab == 3).sum()) and (got == 6).sum() == (lab == 4).sum()
    assert (got == 2).sum() == (lab == 2).sum() and (got == 1).sum() == (lab == 1).sum()


def test_mask_errors_name_the_row(tmp_path: Path) -> None:
    _lge_subject(tmp_path)
    _nifti(tmp_path / "wrong.nii.gz", np.zeros((30, 30, 3), np.int16))
    rows = [
        {"subject": "M", "class": "edema", "path": "s", "role": "lge", "mask_lge": "missing.nii.gz"},
        {"subject": "W", "class": "edema", "path": "s", "role": "lge", "mask_lge": "wrong.nii.gz"},
        {"subject": "N", "class": "edema", "path": "nowhere", "role": "lge", "mask_lge": ""},
    ]
    recs = read_manifest(_write(tmp_path / "m.csv", rows))
    expected = ["does not exist", "lies on none of the subject's image grids", "does not exist"]
    for rec, want in zip(recs, expected, strict=True):
        with pytest.raises(CaseError) as exc:
            load_case(rec)
        assert want in str(exc.value) and f"line {rec.line}, subject {rec.subject}" in str(exc.value)


def test_phantom_subject_keeps_its_truth(demo_dir: Path) -> None:
    rec = next(r for r in read_manifest(demo_dir / "manifest.csv") if r.label == "ischemic")
    case = load_case(rec)
    assert rec.kind == "phantom" and case.label == "ischemic"
    assert case.truth.levels and case.truth.record["class"] == "ischemic" and case.masks


# ---------------------------------------------------------------------------
# a real manifest from ../shared/data/real
# ---------------------------------------------------------------------------


def real_manifest(real: Path, out: Path) -> Path:
    """A manifest of the shared real samples (their classes are stand-ins: none of them is OS-CMR).

    Two real cines carry reference masks (Sunnybrook: manual contours; CineMyoPS: a
    label map), and the EMIDEC negative LGE comes with its label map. Only two cines
    exist, so the Sunnybrook patient appears a second time under another id to give
    the split a test subject: this checks that the pipeline runs and the masks line
    up, not accuracy.
    """
    sb = real / "sunnybrook"
    rows = [
        {"subject": "SCD0000101", "class": "ischemic", "path": str(sb / "SCD0000101"), "split": "train",
         "mask_contours": str(sb / "contours" / "SC-HF-I-1"), "labels": "phantom", "role": ""},
        {"subject": "Case0101", "class": "non-ischemic", "path": str(real / "cinemyops/Case0101/images"),
         "split": "val", "mask_labels": str(real / "cinemyops/Case0101/labels"), "labels": "cinemyops", "role": "cine"},
        {"subject": "SCD0000101-b", "class": "healthy", "path": str(sb / "SCD0000101"), "split": "test",
         "mask_contours": str(sb / "contours" / "SC-HF-I-1"), "labels": "phantom", "role": ""},
        {"subject": "emidec-neg", "class": "healthy", "path": str(real / "emidec/sampleNegative/Images"),
         "split": "", "mask_labels": str(real / "emidec/sampleNegative/Contours"), "labels": "emidec", "role": "lge"},
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    return _write(out / "manifest.csv", rows)


@pytest.mark.realdata
def test_real_manifest_masks_line_up(real_data_dir: Path, tmp_path: Path) -> None:
    """Every real row loads; its mask sits on its image grid and marks the anatomy it names."""
    recs = read_manifest(real_manifest(real_data_dir, tmp_path))
    for rec in recs:
        case = load_case(rec)
        image = case.first(Role.LGE if rec.role == "lge" else Role.CINE)
        assert image is not None, rec.subject
        mask = case.mask_for(image.uid)
        assert mask is not None, rec.subject
        lab = np.rint(mask.data).astype(int)
        assert (lab == 2).any() and (lab == 1).any(), rec.subject
        img = image.stack.data  # [slice, frame, row, col]
        frames = np.arange(img.shape[1]) if mask.n_frames == img.shape[1] else np.zeros(mask.n_frames, int)
        pairs = [(img[:, f], lab[:, j]) for j, f in enumerate(frames) if (lab[:, j] == 2).any()]
        blood = np.concatenate([im[lb == 1] for im, lb in pairs])
        wall = np.concatenate([im[lb == 2] for im, lb in pairs])
        if rec.role != "lge":  # bright-blood cine: the blood pool is brighter than the wall
            assert blood.mean() > 1.3 * wall.mean(), (rec.subject, blood.mean(), wall.mean())
        if rec.subject == "emidec-neg":
            assert not (lab == 4).any()  # the negative case has no infarct


@pytest.mark.realdata
@pytest.mark.slow
def test_train_evaluate_predict_on_a_real_manifest(real_data_dir: Path, tmp_path: Path) -> None:
    """`train` (tiny model, the manifest's split), `evaluate` and `predict` run on real DICOM and NIfTI cines."""
    pytest.importorskip("keras")
    from deepoxymap.cli import main
    from deepoxymap.model.evaluate import evaluate_model
    from deepoxymap.model.preprocess import PreprocessSpec
    from deepoxymap.model.train import TrainConfig, train

    full = read_manifest(real_manifest(real_data_dir, tmp_path / "cohort"))
    cines = [r for r in full if r.role != "lge"]  # the LGE-only subject has nothing to classify
    manifest = _write(
        tmp_path / "cines.csv",
        [{"subject": r.subject, "class": r.label, "path": str(r.path), "split": r.split, "role": r.role}
         for r in cines],
    )  # fmt: skip
    cfg = TrainConfig(
        manifest=manifest,
        arch="tinycnn",
        weights="none",
        protocol="manifest",
        out=tmp_path / "models",
        spec=PreprocessSpec(input_size=32, crop_mm=100.0),
        epochs=1,
        batch_size=4,
        n_boot=20,
        cache_dir=tmp_path / "cache",
        command="pytest real manifest",
    )
    res = train(cfg, log=lambda s: None)
    assert res.model_path.is_file()
    ev = evaluate_model(res.model_path, manifest, subjects="test", n_boot=20, cache_dir=tmp_path / "cache")
    assert ev["subjects"] == ["SCD0000101-b"] and np.asarray(ev["probs"]).shape == (1, 4)
    assert main(["predict", str(cines[1].path), "--model", str(res.model_path), "--json"]) == 0

    # the cohort commands on the whole real manifest plus a row whose folder is gone: the LGE-only
    # subject (nothing to classify) and the missing folder fail with their line, the others still run
    rows = [{"subject": r.subject, "class": r.label, "path": str(r.path), "split": r.split, "role": r.role,
             "labels": r.labels, **{f"mask_{k}": str(v) for k, v in r.masks.items()}} for r in full]  # fmt: skip
    rows.append({"subject": "gone", "class": "healthy", "path": str(tmp_path / "no_such_study")})
    bad = _write(tmp_path / "with_bad_rows.csv", rows)
    out = tmp_path / "predict"
    rc = main(["predict", "--manifest", str(bad), "--model", str(res.model_path), "--out", str(out), "--jobs", "2",
               "--quiet"])  # fmt: skip
    assert rc == 3
    doc = json.loads((out / "predictions.json").read_text())
    assert [p["subject"] for p in doc["predictions"]] == ["SCD0000101", "Case0101", "SCD0000101-b"]
    assert {(f["subject"], f["line"]) for f in doc["failed"]} == {("emidec-neg", 5), ("gone", 6)}
    assert all("line" in f["error"] for f in doc["failed"])
    rc = main(["evaluate", "--manifest", str(bad), "--model", str(res.model_path), "--subjects", "all",
               "--out", str(tmp_path / "eval"), "--no-baseline", "--n-boot", "20", "--jobs", "1", "--quiet",
               "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    ev = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert rc == 3 and ev["results"][0]["subjects"] == ["SCD0000101-b"]  # the card's train/val subjects are not scored
    assert {f["subject"] for f in ev["failed"]} == {"emidec-neg", "gone"}
    rc = main(["audit", "--manifest", str(bad), "--model", str(res.model_path), "--subjects", "all",
               "--out", str(tmp_path / "audit"), "--methods", "gradcam", "--sanity-cases", "0", "--no-bullseyes",
               "--jobs", "1", "--quiet"])  # fmt: skip
    assert rc == 3
    with (tmp_path / "audit" / "failed.csv").open() as fh:
        assert {(r["subject"], r["line"]) for r in csv.DictReader(fh)} == {("emidec-neg", "5"), ("gone", "6")}
    with (tmp_path / "audit" / "per_case.csv").open() as fh:
        audited = {r["subject"] for r in csv.DictReader(fh)}
    assert audited == {"SCD0000101", "SCD0000101-b"}  # Case0101 chose the thresholds (the card's val split)
