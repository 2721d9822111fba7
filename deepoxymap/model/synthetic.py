"""Training subjects straight from the generator: a manifest of generated rows, rendered on demand.

The study cohort (``deepoxymap generate --cohort study --seed 0``, read from its
DICOM by the app's loader) is the test set and is never trained or tuned on.
Training and validation subjects come from the phantom itself, as many as wanted:

* :func:`synthetic_manifest` writes a manifest whose train/val rows say
  ``path = generate:<seed>:<index>`` (class, sub-type and site stratified like
  the study, :func:`deepoxymap.phantom.generate.cohort_plan`) and whose test rows
  are the study cohort's subjects;
* training (:func:`deepoxymap.model.data.build_slices`) renders a generated row in
  memory, only the OS-CMR time points the preprocessing reads
  (``load_case(record, os_timepoints=...)``: ``simulate_subject(series=...)`` ->
  :func:`deepoxymap.phantom.load.case_of`, no LGE/T1/T2, no file), and passes it
  through the very ``preprocess_case`` inference uses. The Case is what the app's
  loader reads back from the subject's DICOM (the same stored pixels, geometry, frame
  times, roles and slice order; tests/model/test_generated_in_memory.py compares the
  tensors with the round trip's at every frame offset). Render + load take about a fifth
  of the round trip's time, about a third with the preprocessing
  (``python -m bench.bench_phantom training``);
* :func:`deepoxymap.cohort.load_case` without ``os_timepoints`` still renders the whole
  subject into a temporary folder (RAM-backed ``/dev/shm`` where available) with
  :func:`deepoxymap.phantom.generate.generate_subject`, reads it back with the app's
  loader (:func:`deepoxymap.phantom.load_subject`) and deletes it (evaluation, audit, the app);
* ``deepoxymap train --manifest M --protocol manifest --jobs 2`` then trains, with
  the preprocessed tensors cached per subject (:func:`deepoxymap.model.data.build_slices`).

Seeds: a generated row's cohort seed is ``TRAIN_SEED_BASE + seed``. The study and
demo cohorts (and every ``deepoxymap generate`` cohort) use seeds below
:data:`deepoxymap.phantom.generate.MAX_COHORT_SEED` (2**32), and the phantom
draws subject ``i`` from ``SeedSequence([cohort_seed, i])`` only, so no generated
training row can ever reproduce a study-cohort or demo subject.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from deepoxymap.cohort import read_manifest
from deepoxymap.errors import CaseError
from deepoxymap.phantom.generate import MAX_COHORT_SEED, cohort_plan
from deepoxymap.phantom.params import STUDY, CohortSpec

__all__ = ["TRAIN_SEED_BASE", "scaled_spec", "synthetic_manifest"]

TRAIN_SEED_BASE = 1 << 40
"""Generated training/validation rows draw from cohort seeds ``TRAIN_SEED_BASE + seed`` (>= 2**32)."""

_VAL_OFFSET = 1 << 20
"""Validation rows use ``seed + _VAL_OFFSET`` so they never share a generator stream with training rows."""


def scaled_spec(n: int, like: CohortSpec = STUDY, name: str = "train") -> CohortSpec:
    """A cohort spec of ``n`` subjects with the class and site proportions of ``like``."""
    if n < len(like.class_counts):
        raise CaseError(f"need at least {len(like.class_counts)} subjects (one per class), got {n}")
    tot = sum(like.class_counts.values())

    def share(counts: dict[str, int]) -> dict[str, int]:
        raw = {k: n * v / tot for k, v in counts.items()}
        out = {k: max(1, math.floor(v)) for k, v in raw.items()}
        for k in sorted(raw, key=lambda k: raw[k] - math.floor(raw[k]), reverse=True):
            if sum(out.values()) >= n:
                break
            out[k] += 1
        while sum(out.values()) > n:
            k = max(out, key=lambda k: out[k])
            out[k] -= 1
        return out

    return CohortSpec(name=name, class_counts=share(like.class_counts), site_counts=share(like.site_counts))


def _rows(n: int, seed: int, split: str, prefix: str) -> list[dict[str, str]]:
    cohort_seed = TRAIN_SEED_BASE + seed
    return [
        {"subject": f"{prefix}{r['index']:05d}", "class": r["class"], "subtype": r["subtype"], "site": r["site"],
         "path": f"generate:{cohort_seed}:{r['index']}", "split": split}
        for r in cohort_plan(scaled_spec(n), cohort_seed)
    ]  # fmt: skip


def synthetic_manifest(
    out: str | os.PathLike[str],
    n_train: int,
    n_val: int,
    *,
    seed: int = 0,
    test_manifest: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a training manifest of generated rows (and the test cohort's rows).

    Args:
        out: the manifest file to write.
        n_train / n_val: generated subjects for training and validation (study proportions).
        seed: picks the generated streams (``TRAIN_SEED_BASE + seed``; validation adds an offset).
        test_manifest: a cohort whose subjects become the ``test`` rows (e.g. the
            study cohort's ``manifest.csv``), with absolute paths.

    Returns:
        the manifest path.

    Raises:
        CaseError: ``seed`` out of range, or the test manifest is unreadable.
    """
    if not 0 <= seed < _VAL_OFFSET:
        raise CaseError(f"seed must be in [0, {_VAL_OFFSET}), got {seed}")
    if TRAIN_SEED_BASE < MAX_COHORT_SEED:  # pragma: no cover - a guard on the constants themselves
        raise CaseError("training seeds must lie above every cohort seed")
    rows = _rows(n_train, seed, "train", "GEN") + _rows(n_val, seed + _VAL_OFFSET, "val", "GENVAL")
    if test_manifest is not None:
        for r in read_manifest(test_manifest):
            rows.append({"subject": r.subject, "class": r.label, "subtype": r.subtype, "site": r.site,
                         "path": str(r.path), "split": "test"})  # fmt: skip
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["subject", "class", "subtype", "site", "path", "split"])
        w.writeheader()
        w.writerows(rows)
    return p
