"""Subject-level, class-stratified splits (never slices of one subject in two splits).

Every function takes one row per **subject** (ids, labels, optional sites) and
returns lists of subject ids; slices are attached to subjects only afterwards
(:mod:`deepoxymap.model.data`), so a subject's slices cannot straddle splits.
:func:`assert_disjoint` re-checks that on the slice level before training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Split", "assert_disjoint", "holdout_split", "kfold_splits", "site_split"]


@dataclass(frozen=True)
class Split:
    """Subject ids of one train/validation/test partition.

    Attributes:
        name: e.g. ``"holdout"``, ``"fold-2"``, ``"site A->B"``.
        train / val / test: subject ids (disjoint).
    """

    name: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"name": self.name, "train": list(self.train), "val": list(self.val), "test": list(self.test)}


def _stratified_take(
    ids: Sequence[str], labels: Sequence[str], fraction: float, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """Split ids into (taken, rest) taking ``round(fraction * n_c)`` of each class c (at least 1 if n_c >= 2)."""
    ids_a = np.asarray(ids, dtype=object)
    lab_a = np.asarray(labels, dtype=object)
    taken: list[str] = []
    rest: list[str] = []
    for c in sorted(set(labels)):
        members = ids_a[lab_a == c].tolist()
        members = sorted(members)
        rng.shuffle(members)
        k = round(fraction * len(members))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        else:
            k = 0
        taken += members[:k]
        rest += members[k:]
    return sorted(taken), sorted(rest)


def holdout_split(
    ids: Sequence[str], labels: Sequence[str], *, test_fraction: float = 0.2, val_fraction: float = 0.15, seed: int = 0
) -> Split:
    """The study's 80/20 hold-out, stratified by class, validation carved from the training part.

    Args:
        ids / labels: one per subject (ids unique).
        test_fraction: of all subjects, per class.
        val_fraction: of the non-test subjects, per class.
        seed: shuffling seed (the split is a pure function of ids, labels and seed).
    """
    _check_unique(ids)
    rng = np.random.default_rng(seed)
    test, trainval = _stratified_take(ids, labels, test_fraction, rng)
    lab = dict(zip(ids, labels, strict=True))
    val, train = _stratified_take(trainval, [lab[i] for i in trainval], val_fraction, rng)
    return Split("holdout", tuple(train), tuple(val), tuple(test))


def kfold_splits(
    ids: Sequence[str], labels: Sequence[str], *, k: int = 5, val_fraction: float = 0.15, seed: int = 0
) -> list[Split]:
    """Stratified k-fold over subjects; each fold's validation is carved from its training part."""
    from sklearn.model_selection import StratifiedKFold

    _check_unique(ids)
    order = np.argsort(np.asarray(ids, dtype=object))
    ids_s = [ids[i] for i in order]
    lab_s = [labels[i] for i in order]
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    out: list[Split] = []
    lab = dict(zip(ids_s, lab_s, strict=True))
    for i, (tr, te) in enumerate(skf.split(np.zeros(len(ids_s)), lab_s)):
        trainval = [ids_s[j] for j in tr]
        rng = np.random.default_rng(seed + 1000 + i)
        val, train = _stratified_take(trainval, [lab[s] for s in trainval], val_fraction, rng)
        out.append(Split(f"fold-{i}", tuple(train), tuple(val), tuple(sorted(ids_s[j] for j in te))))
    return out


def site_split(
    ids: Sequence[str],
    labels: Sequence[str],
    sites: Sequence[str],
    train_site: str,
    test_site: str,
    *,
    val_fraction: float = 0.15,
    seed: int = 0,
) -> Split:
    """Train (and validate) on ``train_site``'s subjects, test on ``test_site``'s."""
    _check_unique(ids)
    tr_ids = [i for i, s in zip(ids, sites, strict=True) if s == train_site]
    te_ids = sorted(i for i, s in zip(ids, sites, strict=True) if s == test_site)
    if not tr_ids or not te_ids:
        raise ValueError(f"sites {train_site!r} / {test_site!r} have {len(tr_ids)} / {len(te_ids)} subjects")
    lab = dict(zip(ids, labels, strict=True))
    val, train = _stratified_take(tr_ids, [lab[i] for i in tr_ids], val_fraction, np.random.default_rng(seed))
    return Split(f"site {train_site}->{test_site}", tuple(train), tuple(val), tuple(te_ids))


def assert_disjoint(split: Split, slice_subjects: Sequence[str] | None = None) -> None:
    """Raise ``AssertionError`` if any subject is in two parts of ``split``.

    Args:
        slice_subjects: optional subject id per slice of a built dataset;
            checked too (every slice's subject belongs to exactly one part).
    """
    parts = {"train": set(split.train), "val": set(split.val), "test": set(split.test)}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = parts[a] & parts[b]
        if both:
            raise AssertionError(f"{split.name}: subjects in both {a} and {b}: {sorted(both)[:5]}")
    if slice_subjects is not None:
        unknown = set(slice_subjects) - parts["train"] - parts["val"] - parts["test"]
        if unknown:
            raise AssertionError(f"{split.name}: slices of subjects outside the split: {sorted(unknown)[:5]}")


def _check_unique(ids: Sequence[str]) -> None:
    if len(set(ids)) != len(ids):
        raise ValueError("subject ids must be unique (one row per subject)")
