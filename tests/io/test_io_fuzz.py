"""Seeded fuzz test of the loader (issue 15): mutants of real headers and compressed frames keep the invariants.

:mod:`io_fuzz` mutates one valid file of each kind (native, implicit, RLE
single/multi-frame, JPEG baseline, JPEG-LS, JPEG 2000, JPEG Lossless, enhanced,
deflated, Float Pixel Data, NIfTI, zip) with byte flips, truncations, splices,
header tag edits (Rows, Columns, NumberOfFrames, BitsAllocated,
TransferSyntaxUID, PixelSpacing, ...), compressed-frame edits and NIfTI header
edits; every mutant is loaded beside the good cine through the upload API. The
invariants: no exception escapes ``load``, each case finishes within
``TIME_BOUND_S``, the good files are kept (the good stack intact), every input
ends in a series or the report, every issue names its file, and the process's
peak memory grows by less than 1 GB. A longer run: ``python -m bench fuzz``.
"""

from __future__ import annotations

import resource
import time
from collections import Counter

import pytest
from io_fuzz import MUTATIONS, TIME_BOUND_S, make_cases, run_case, seeds
from io_hostile import good_files

from deepoxymap.io import load

N_CASES = 1500
SEED = 15


@pytest.fixture(scope="module")
def seed_files() -> dict[str, bytes]:
    return seeds()


def test_seeds_are_valid_files(seed_files):
    """The mutator starts from real files: every seed loads (a no-geometry warning at most) with its own series."""
    good = good_files()
    for kind, data in seed_files.items():
        name = "seed" + {"nii": ".nii", "nii_gz": ".nii.gz", "zip": ".zip"}.get(kind, ".dcm")
        res = load([*good.items(), (name, data)])
        assert not res.errors, (kind, res.issues)
        assert len(res.series) >= 2, kind


@pytest.mark.filterwarnings("ignore")  # pydicom and nibabel warn about the corrupt data itself
def test_fuzz_invariants(seed_files):
    """1500 seeded mutants: no traceback, bounded time and memory, good files kept, every file accounted for."""
    cases = make_cases(N_CASES, seed=SEED, kinds=seed_files)
    good = good_files()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    outcomes = [run_case(c, good) for c in cases]
    total = time.perf_counter() - t0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    bad = [o for o in outcomes if o.problems]
    assert not bad, "\n".join(f"{o.case.name} {o.case.mutations}: {o.problems}" for o in bad[:10])
    slowest = max(outcomes, key=lambda o: o.seconds)
    assert slowest.seconds < TIME_BOUND_S, (slowest.case.name, slowest.case.mutations)
    assert grown_kib < 1024 * 1024, f"peak RSS grew by {grown_kib / 1024:.0f} MiB"
    assert total < 60, f"the seeded fuzz run took {total:.0f} s"
    # what was covered: every seed kind, every mutation kind, and all three outcomes
    assert {c.kind for c in cases} == set(seed_files)
    used = Counter(m.split(":")[0] for c in cases for m in c.mutations)
    for kind in ("flip", "truncate", "tag", "frame", "nifti"):
        assert used[kind] > 0, used
    assert used["insert"] + used["delete"] > 0
    assert set(MUTATIONS) >= {"flip", "truncate", "splice", "tag", "frame", "nifti"}
    status = Counter(o.status for o in outcomes)
    assert status["refused"] > 0 and status["loaded"] > 0 and status["warned"] > 0, status


def test_fuzz_is_reproducible(seed_files):
    """The same seed gives the same mutants (bytes and mutation lists)."""
    a, b = make_cases(30, seed=7, kinds=seed_files), make_cases(30, seed=7, kinds=seed_files)
    assert [(c.name, c.data, c.mutations) for c in a] == [(c.name, c.data, c.mutations) for c in b]
