"""Cohort runs past one process: the same numbers in process, in spawned workers and on Dask; resume; bad rows.

One small cohort (the 4-subject demo phantom plus two bad rows where needed) and a
tiny saved model keep this under ~90 s on 2 cores; worker pools are 2 processes.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from deepoxymap.parallel import Pool, ResultCache, TaskFailed, default_jobs, fingerprint, normalise

TOL = 1e-6

# ---------------------------------------------------------------------------
# the pool and the cache on their own
# ---------------------------------------------------------------------------


def _square_or_fail(x: int) -> dict[str, Any]:
    if x == 3:
        raise ValueError("three is a bad row")
    return {"x": x, "sq": np.float32(x * x), "arr": np.arange(x, dtype=np.int16), "t": (x, "a")}


def test_pool_in_process_and_workers_agree_and_isolate_failures(tmp_path: Path) -> None:
    args = list(range(6))
    with Pool(1) as p1:
        r1, s1 = p1.run(_square_or_fail, args)
    with Pool(2) as p2:
        r2, s2 = p2.run(_square_or_fail, args)
    for a, b in zip(r1, r2, strict=True):
        if isinstance(a, TaskFailed):
            assert isinstance(b, TaskFailed) and a.error == b.error == "ValueError: three is a bad row"
            continue
        assert a["x"] == b["x"] and a["sq"] == b["sq"] and isinstance(a["sq"], float)
        assert a["t"] == [a["x"], "a"]  # tuples come back as lists, fresh or cached
        np.testing.assert_array_equal(a["arr"], b["arr"])
    assert s1.failed == s2.failed == [3] and s1.computed == s2.computed == [0, 1, 2, 4, 5]
    assert 1 <= default_jobs() <= 4


def test_result_cache_round_trip_and_resume(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c")
    value = {"a": [1.5, float("nan")], "m": np.eye(2, dtype=np.float32), "n": None}
    cache.put("S1", "k" * 64, value)
    hit, got = cache.get("S1", "k" * 64)
    assert hit and got["n"] is None and np.isnan(got["a"][1]) and got["m"].dtype == np.float32
    np.testing.assert_array_equal(got["m"], value["m"])
    assert cache.get("S1", "k" * 63 + "x") == (False, None)  # another key: a miss, not a stale hit
    assert not list((tmp_path / "c").glob("*.tmp"))
    keys = [fingerprint("t", i) for i in range(5)]
    with Pool(1) as pool:
        first, s = pool.run(_square_or_fail, list(range(5)), names=[f"s{i}" for i in range(5)], keys=keys, cache=cache)
        assert s.computed == [0, 1, 2, 4] and s.failed == [3]  # failures are not cached
        next(tmp_path.joinpath("c").glob("s1-*")).unlink()
        again, s = pool.run(_square_or_fail, list(range(5)), names=[f"s{i}" for i in range(5)], keys=keys, cache=cache)
    assert s.cached == [0, 2, 4] and s.computed == [1] and s.failed == [3]
    for a, b in zip(first[:3], again[:3], strict=True):
        assert a["sq"] == b["sq"] and a["t"] == b["t"]
    assert normalise({"k": (np.int64(2),)}) == {"k": [2]}


# ---------------------------------------------------------------------------
# a small cohort and a tiny saved model
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo phantom (one subject per class), a tiny saved model whose card splits it, and a manifest with bad rows."""
    keras = pytest.importorskip("keras")
    from deepoxymap import CLASSES
    from deepoxymap.cli import main
    from deepoxymap.model.card import sha256_file, write_card
    from deepoxymap.model.preprocess import PreprocessSpec

    root = tmp_path_factory.mktemp("par")
    demo = root / "demo"
    if main(["generate", "--cohort", "demo", "--seed", "0", "--out", str(demo), "--quiet", "--jobs", "1"]) != 0:
        pytest.skip("phantom generator unavailable")
    spec = PreprocessSpec(input_size=32, crop_mm=96.0)
    keras.utils.set_random_seed(3)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inp, keras.layers.Activation("softmax", name="probs")(x))
    path = root / "tiny.keras"
    model.save(path)
    split = {"name": "holdout", "train": [], "val": ["SUBJECT002"], "test": ["SUBJECT001", "SUBJECT003", "SUBJECT004"]}
    write_card(path.with_suffix(".json"), {
        "classes": list(CLASSES), "preprocessing": spec.to_dict(), "file": {"sha256": sha256_file(path)},
        "training": {"split": split, "manifest": str(demo / "manifest.csv")},
    })  # fmt: skip
    # bad rows: a folder that does not exist, a label map on none of the subject's grids, an unknown class
    wrong = root / "wrong_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((30, 30, 3), np.int16), np.eye(4)), str(wrong))
    with (demo / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    keys = list(rows[0])
    bad = [
        {**{k: "" for k in keys}, "subject": "GONE", "class": "healthy", "path": str(root / "no_such_folder")},
        {
            **{k: "" for k in keys},
            "subject": "BADMASK",
            "class": "ischemic",
            "path": str(demo / "SUBJECT003" / "dicom"),
        },
    ]
    with (root / "with_bad_rows.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*keys, "mask_lge"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "path": str(demo / r["path"]), "mask_lge": ""})
        w.writerow({**bad[0], "mask_lge": ""})
        w.writerow({**bad[1], "mask_lge": str(wrong)})
        w.writerow({**rows[0], "subject": "ODDCLASS", "class": "myocarditis", "path": str(demo / rows[0]["path"])})
    return {"root": root, "manifest": demo / "manifest.csv", "model": path, "bad": root / "with_bad_rows.csv"}


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A local Dask cluster of 2 worker processes (1 thread each)."""
    distributed = pytest.importorskip("distributed")
    for attempt in range(3):  # a Nanny can fail to start its worker on a loaded 2-core machine; try again
        try:
            cluster = distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
            )
            break
        except RuntimeError:
            if attempt == 2:
                raise
    with cluster:
        yield cluster.scheduler_address


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _close(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON-like values, numbers to TOL (NaN == NaN); strings that hold numbers are compared as numbers."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, str) and isinstance(b, str):
        try:
            fa, fb = float(a), float(b)
        except ValueError:
            assert a == b, where
            return
        _close(fa, fb, where)
    elif isinstance(a, bool) or a is None:
        assert a == b, where
    elif isinstance(a, (int, float)):
        assert isinstance(b, (int, float)) and not isinstance(b, bool), where
        if np.isnan(a):
            assert np.isnan(b), where
        else:
            assert abs(a - b) <= TOL, (where, a, b)
    else:
        assert a == b, where


def _audit(cohort: dict[str, Path], out: Path, *extra: str, manifest: Path | None = None) -> int:
    from deepoxymap.cli import main

    return main(["audit", "--model", str(cohort["model"]), "--manifest", str(manifest or cohort["manifest"]),
                 "--out", str(out), "--methods", "gradcam,layercam", "--layers", "c2,c1", "--sanity-cases", "1",
                 "--no-bullseyes", "--quiet", *extra])  # fmt: skip


AUDIT_FILES = ("summary.json", "thresholds.json")
AUDIT_TABLES = ("per_case.csv", "summary.csv", "sanity.csv", "failed.csv")


def _same_audit(a: Path, b: Path) -> None:
    for name in AUDIT_FILES:
        _close(json.loads((a / name).read_text()), json.loads((b / name).read_text()), name)
    for name in AUDIT_TABLES:
        _close(_read_csv(a / name), _read_csv(b / name), name)


# ---------------------------------------------------------------------------
# same numbers: --jobs 1 == --jobs 2 == Dask
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_audit_jobs_and_dask_give_the_same_numbers(cohort: dict[str, Path], scheduler: str, tmp_path: Path) -> None:
    assert _audit(cohort, tmp_path / "j1", "--jobs", "1") == 0
    assert _audit(cohort, tmp_path / "j2", "--jobs", "2") == 0
    assert _audit(cohort, tmp_path / "dask", "--scheduler", scheduler) == 0
    one = json.loads((tmp_path / "j1" / "summary.json").read_text())
    assert sum(f["n"] for f in one["default"]["classes"].values()) == 3  # the card's 3 test subjects
    assert len(_read_csv(tmp_path / "j1" / "per_case.csv")) == 3 * 4 and _read_csv(tmp_path / "j1" / "sanity.csv")
    assert json.loads((tmp_path / "j1" / "thresholds.json").read_text())["gradcam|c2"]["n_val"] == 1
    _same_audit(tmp_path / "j1", tmp_path / "j2")
    _same_audit(tmp_path / "j1", tmp_path / "dask")


@pytest.mark.slow
def test_evaluate_and_predict_jobs_and_dask_give_the_same_numbers(
    cohort: dict[str, Path], scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepoxymap.cli import main

    def evaluate(name: str, *extra: str) -> dict[str, Any]:
        rc = main(["evaluate", "--manifest", str(cohort["manifest"]), "--subjects", "all", "--model",
                   str(cohort["model"]), "--out", str(tmp_path / name), "--no-baseline", "--n-boot", "50",
                   "--cache-dir", str(tmp_path / f"slices_{name}"), "--quiet", *extra])  # fmt: skip
        assert rc == 0
        return dict(json.loads((tmp_path / name / "evaluation.json").read_text()))

    def predict(name: str, *extra: str) -> dict[str, Any]:
        rc = main(["predict", "--manifest", str(cohort["manifest"]), "--model", str(cohort["model"]),
                   "--out", str(tmp_path / name), "--quiet", *extra])  # fmt: skip
        assert rc == 0
        return dict(json.loads((tmp_path / name / "predictions.json").read_text()))

    e1, ed = evaluate("e1", "--jobs", "1"), evaluate("ed", "--scheduler", scheduler)
    assert e1["n"] == 3 and e1["results"][0]["subjects"] == ["SUBJECT001", "SUBJECT003", "SUBJECT004"]
    assert e1["failed"] == [] and np.allclose(np.sum(e1["results"][0]["probs"], axis=1), 1.0, atol=1e-5)
    _close(e1, ed, "evaluation.json")
    p1, pd_ = predict("p1", "--jobs", "1"), predict("pd", "--scheduler", scheduler)
    assert [p["subject"] for p in p1["predictions"]] == ["SUBJECT001", "SUBJECT002", "SUBJECT003", "SUBJECT004"]
    _close(p1, pd_, "predictions.json")
    # --jobs 2: both through one pair of spawned workers (the CLI's --jobs only picks this pool)
    from deepoxymap.cohort import read_manifest
    from deepoxymap.model.evaluate import evaluate_model, evaluation_json, predict_records
    from deepoxymap.model.loading import load_model

    with Pool(2) as pool:
        r2 = evaluate_model(cohort["model"], cohort["manifest"], subjects="all", n_boot=50, pool=pool,
                            cache_dir=tmp_path / "slices_e2")  # fmt: skip
        preds2, failed2, _ = predict_records(load_model(cohort["model"]), read_manifest(cohort["manifest"]), pool=pool)
    e2 = json.loads(json.dumps({**evaluation_json([r2]), "failed": []}, default=str))
    _close(e1, e2, "evaluation.json (2 workers)")
    _close(p1["predictions"], normalise(preds2), "predictions (2 workers)")
    assert failed2 == []
    # the cohort predict agrees with the single-case one
    capsys.readouterr()
    assert (
        main(["predict", str(cohort["manifest"].parent / "SUBJECT003"), "--model", str(cohort["model"]), "--json"]) == 0
    )
    single = json.loads(capsys.readouterr().out)
    _close(single["case_probs"], next(p for p in p1["predictions"] if p["subject"] == "SUBJECT003")["case_probs"])


# ---------------------------------------------------------------------------
# resume: an interrupted run recomputes only what is missing
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_audit_resumes_from_its_cache(cohort: dict[str, Path], tmp_path: Path) -> None:
    from deepoxymap.audit import AuditConfig, audit_manifest, write_audit
    from deepoxymap.model.loading import load_model

    loaded = load_model(cohort["model"])
    cfg = AuditConfig(methods=("gradcam",), layers=("c2",), sanity_cases=0, bullseyes=False)
    cache = tmp_path / "out" / ".cache"

    def run(progress: Any = None) -> Any:
        return audit_manifest(cohort["manifest"], loaded, cfg, subjects="all", progress=progress, cache_dir=cache)

    class Interrupted(Exception):
        pass

    def stop_after_two(done: int, total: int, msg: str) -> None:
        if done == 3:  # the validation subject and two test subjects are done (and cached)
            raise Interrupted

    with pytest.raises(Interrupted):
        run(stop_after_two)
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()) == [
        "SUBJECT001",
        "SUBJECT002.validation",
        "SUBJECT003",
    ]
    resumed = run()
    assert sorted(resumed.cached) == ["SUBJECT001", "SUBJECT002.validation", "SUBJECT003"]  # only SUBJECT004 computed
    fresh = audit_manifest(cohort["manifest"], loaded, cfg, subjects="all")
    assert fresh.cached == []
    write_audit(resumed, tmp_path / "resumed")
    write_audit(fresh, tmp_path / "fresh")
    for name in ("summary.json", "thresholds.json"):
        _close(
            json.loads((tmp_path / "resumed" / name).read_text()), json.loads((tmp_path / "fresh" / name).read_text())
        )
    _close(_read_csv(tmp_path / "resumed" / "per_case.csv"), _read_csv(tmp_path / "fresh" / "per_case.csv"))
    # a changed config (or model) misses every entry
    other = audit_manifest(
        cohort["manifest"], loaded, AuditConfig(methods=("gradcam",), layers=("c1",), sanity_cases=0, bullseyes=False),
        subjects="all", cache_dir=cache,
    )  # fmt: skip
    assert other.cached == []
    # deleting entries recomputes exactly those
    for p in cache.glob("SUBJECT00[14]-*"):
        p.unlink()
    again = run()
    assert "SUBJECT001" not in again.cached and "SUBJECT003" in again.cached
    _close(again.per_case, fresh.per_case)


# ---------------------------------------------------------------------------
# bad rows: named, listed, the others still run
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_bad_rows_are_reported_and_the_others_still_run(
    cohort: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepoxymap.cli import main

    manifest = cohort["bad"]
    rc = main(["predict", "--manifest", str(manifest), "--model", str(cohort["model"]), "--out", str(tmp_path / "p"),
               "--jobs", "1", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 3
    doc = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert [p["subject"] for p in doc["predictions"]] == ["SUBJECT001", "SUBJECT002", "SUBJECT003", "SUBJECT004"]
    failed = {f["subject"]: f for f in doc["failed"]}
    assert set(failed) == {"GONE", "BADMASK", "ODDCLASS"}
    assert (failed["GONE"]["line"], failed["BADMASK"]["line"], failed["ODDCLASS"]["line"]) == (6, 7, 8)
    assert "unknown class 'myocarditis'" in failed["ODDCLASS"]["error"]
    assert "does not exist" in failed["GONE"]["error"] and "line 6, subject GONE" in failed["GONE"]["error"]
    assert "lies on none of the subject's image grids" in failed["BADMASK"]["error"]
    assert "manifest line 6, subject GONE" in err and "manifest line 7, subject BADMASK" in err
    assert {r["subject"] for r in _read_csv(tmp_path / "p" / "failed.csv")} == {"GONE", "BADMASK", "ODDCLASS"}

    rc = main(["evaluate", "--manifest", str(manifest), "--subjects", "all", "--model", str(cohort["model"]),
               "--out", str(tmp_path / "e"), "--no-baseline", "--n-boot", "20", "--cache-dir", str(tmp_path / "sc"),
               "--jobs", "1", "--quiet"])  # fmt: skip
    assert rc == 3
    ev = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert ev["n"] == 3 and {f["subject"] for f in ev["failed"]} == {"GONE", "BADMASK", "ODDCLASS"}

    out = tmp_path / "a"
    assert _audit(cohort, out, "--subjects", "all", "--jobs", "1", manifest=manifest) == 3
    rows = _read_csv(out / "failed.csv")
    assert {(r["subject"], r["line"], r["phase"]) for r in rows} == {
        ("GONE", "6", "test"),
        ("BADMASK", "7", "test"),
        ("ODDCLASS", "8", "manifest"),
    }
    assert sum(f["n"] for f in json.loads((out / "summary.json").read_text())["default"]["classes"].values()) == 3
    assert "Failed rows" in (out / "summary.md").read_text()
    shutil.rmtree(tmp_path / "sc", ignore_errors=True)
