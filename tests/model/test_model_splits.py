"""Subject-level splitting: no subject ever in two splits; classes stratified."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from deepoxymap import CLASSES
from deepoxymap.model.data import SliceData
from deepoxymap.model.splits import Split, assert_disjoint, holdout_split, kfold_splits, site_split

# the study's class counts: 68 healthy, 42 ischemic, 33 non-ischemic, 47 edema
COUNTS = {"healthy": 68, "ischemic": 42, "non-ischemic": 33, "edema": 47}
IDS = [f"{c[:3]}{i:03d}" for c, n in COUNTS.items() for i in range(n)]
LABELS = [c for c, n in COUNTS.items() for _ in range(n)]


def _slices(ids, per_subject=3) -> SliceData:
    """Three slices per subject, interleaved (as a slice-level split would see them)."""
    subs = [s for _ in range(per_subject) for s in ids]
    lab = dict(zip(IDS, LABELS, strict=True))
    y = np.array([CLASSES.index(lab[s]) for s in subs])
    return SliceData(np.zeros((len(subs), 2, 2, 3), np.float32), y, subs, np.zeros(len(subs), np.int64))


def _check(split: Split, data: SliceData) -> None:
    parts = [set(data.select(p).subjects) for p in (split.train, split.val, split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    # every slice of every subject goes with its subject
    for p in (split.train, split.val, split.test):
        sel = data.select(p)
        assert Counter(sel.subjects) == Counter({s: 3 for s in p})


def test_holdout_is_subject_level_and_stratified() -> None:
    split = holdout_split(IDS, LABELS, seed=3)
    assert_disjoint(split)
    _check(split, _slices(IDS))
    assert len(split.train) + len(split.val) + len(split.test) == 190
    lab = dict(zip(IDS, LABELS, strict=True))
    test_counts = Counter(lab[s] for s in split.test)
    for c, n in COUNTS.items():
        assert test_counts[c] == round(0.2 * n)
    assert holdout_split(IDS, LABELS, seed=3) == split  # deterministic
    assert holdout_split(IDS, LABELS, seed=4) != split


def test_kfold_tests_partition_subjects() -> None:
    folds = kfold_splits(IDS, LABELS, k=5, seed=0)
    data = _slices(IDS)
    seen: list[str] = []
    for f in folds:
        assert_disjoint(f)
        _check(f, data)
        seen += f.test
    assert sorted(seen) == sorted(IDS)  # each subject tested exactly once


def test_site_split() -> None:
    sites = ["A" if i % 3 else "B" for i in range(len(IDS))]
    s = site_split(IDS, LABELS, sites, "A", "B")
    site = dict(zip(IDS, sites, strict=True))
    assert {site[i] for i in s.train + s.val} == {"A"} and {site[i] for i in s.test} == {"B"}
    assert_disjoint(s)


def test_a_slice_level_split_is_caught() -> None:
    """The guard fails on the classic leak: slices (not subjects) shuffled into splits."""
    data = _slices(IDS)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.subjects))
    cut = int(0.8 * len(order))
    leaky = Split(
        "slice-level",
        tuple({data.subjects[i] for i in order[:cut]}),
        (),
        tuple({data.subjects[i] for i in order[cut:]}),
    )
    with pytest.raises(AssertionError, match="both train and test"):
        assert_disjoint(leaky)
