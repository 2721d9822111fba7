"""Generated training subjects: seeds apart from every cohort, rendered through the app's loader, trainable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepoxymap.cohort import load_case, read_manifest
from deepoxymap.errors import PhantomError
from deepoxymap.model.synthetic import TRAIN_SEED_BASE, scaled_spec, synthetic_manifest
from deepoxymap.phantom.generate import MAX_COHORT_SEED, generate_cohort


def test_scaled_spec_keeps_study_proportions() -> None:
    s = scaled_spec(1900)
    assert sum(s.class_counts.values()) == 1900 and sum(s.site_counts.values()) == 1900
    assert s.class_counts == {"healthy": 680, "ischemic": 420, "non-ischemic": 330, "edema": 470}
    small = scaled_spec(8)
    assert sum(small.class_counts.values()) == 8 and min(small.class_counts.values()) >= 1


def test_generated_seeds_can_never_be_a_cohort(tmp_path: Path) -> None:
    """Every cohort seed is < 2**32 (refused above); every generated row's seed is >= 2**40."""
    assert TRAIN_SEED_BASE >= MAX_COHORT_SEED
    with pytest.raises(PhantomError):
        generate_cohort(tmp_path / "c", "demo", seed=MAX_COHORT_SEED, limit=1)
    m = synthetic_manifest(tmp_path / "m.csv", 8, 4, seed=3)
    recs = read_manifest(m)
    assert [r.split for r in recs] == ["train"] * 8 + ["val"] * 4
    seeds = {int(str(r.path).split(":")[1]) for r in recs}
    assert all(s >= TRAIN_SEED_BASE for s in seeds) and len(seeds) == 2  # train and val streams differ
    assert all(r.kind == "generated" for r in recs)


def test_generated_row_renders_like_the_written_subject(tmp_path: Path) -> None:
    """A generated row is the phantom subject written to DICOM and read back by the app's loader."""
    from deepoxymap.model.preprocess import PreprocessSpec, preprocess_case
    from deepoxymap.phantom.generate import generate_subject
    from deepoxymap.phantom.load import load_subject

    rec = read_manifest(synthetic_manifest(tmp_path / "m.csv", 4, 4, seed=1))[0]
    case = load_case(rec)
    assert case.label == rec.label and case.truth.levels and case.masks
    _, seed, index = str(rec.path).split(":")
    generate_subject(tmp_path / "w", rec.subject, rec.label, rec.subtype, rec.site, int(seed), int(index))
    ref = load_subject(tmp_path / "w" / rec.subject)
    spec = PreprocessSpec(input_size=32, crop_mm=100.0)
    np.testing.assert_array_equal(preprocess_case(case, spec).x, preprocess_case(ref, spec).x)


@pytest.mark.slow
def test_train_on_generated_rows_with_workers(tmp_path: Path, demo_dir: Path) -> None:
    """`training-manifest` then `train --protocol manifest --jobs 2`: generated train/val, the demo cohort as test."""
    pytest.importorskip("keras")
    from deepoxymap.cli import main
    from deepoxymap.model.data import build_slices
    from deepoxymap.model.preprocess import PreprocessSpec

    m = tmp_path / "train.csv"
    assert main(["training-manifest", "--out", str(m), "--train", "8", "--val", "4",
                 "--test-manifest", str(demo_dir / "manifest.csv")]) == 0  # fmt: skip
    rc = main(["train", "--manifest", str(m), "--protocol", "manifest", "--arch", "tinycnn", "--weights", "none",
               "--input-size", "32", "--crop-mm", "100", "--epochs", "1", "--batch-size", "8", "--n-boot", "20",
               "--jobs", "2", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "models")])  # fmt: skip
    assert rc == 0 and list((tmp_path / "models").glob("*.keras"))
    recs = read_manifest(m)
    gen = [r for r in recs if r.kind == "generated"][:3]
    spec = PreprocessSpec(input_size=32, crop_mm=100.0)
    cached = build_slices(gen, spec, cache_dir=tmp_path / "cache", verbose=False)  # filled by the workers
    fresh = build_slices(gen, spec, cache_dir=None, verbose=False)
    np.testing.assert_array_equal(cached.x, fresh.x)
