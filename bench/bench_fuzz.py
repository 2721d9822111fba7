"""Long seeded fuzz run of ``deepoxymap.io.load`` (the CI part is ``tests/io/test_io_fuzz.py``).

The mutator and the invariants are ``tests/io/io_fuzz.py``: one valid file of
each kind (native, implicit, RLE, JPEG baseline, JPEG-LS, JPEG 2000, JPEG
Lossless, enhanced, deflated, Float Pixel Data, NIfTI, zip) is mutated (byte
flips, truncations, splices, header tag edits, compressed-frame edits, NIfTI
header edits) and loaded beside a good cine through the upload API.

Anchor: loading the same good cine plus one *clean* seed (medians over every
kind, in the same run). Printed: counts by outcome, by seed kind and by
mutation, the slowest cases and their ratio to the anchor, and the growth of
the process's peak RSS. Target: no invariant broken, no case over 10 s, peak
RSS growth under 1 GB.

``BENCH_FUZZ_N`` (cases, default 5000) and ``BENCH_FUZZ_SEED`` (default 2026)
change the run.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "io"))

N_CASES = int(os.environ.get("BENCH_FUZZ_N", "5000"))
SEED = int(os.environ.get("BENCH_FUZZ_SEED", "2026"))
TARGET_MAX_S = 10.0
TARGET_RSS_GROWTH_MIB = 1024


def main() -> int:
    """Run the fuzz; 0 when every invariant holds and the slowest case is under 10 s."""
    from io_fuzz import TIME_BOUND_S, Case, make_cases, run_case, seeds
    from io_hostile import good_files

    warnings.simplefilter("ignore")  # pydicom and nibabel warn about the corrupt data itself
    base = seeds()
    good = good_files()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # anchor: the good cine plus one clean seed, every kind, a few times (after one warm-up each)
    clean = [Case(f"clean/{k}{_suffix(k)}", d, k) for k, d in base.items()]
    for c in clean:
        run_case(c, good)
    anchor_times = [run_case(c, good).seconds for _ in range(5) for c in clean]
    anchor = statistics.median(anchor_times)
    t0 = time.perf_counter()
    cases = make_cases(N_CASES, seed=SEED, kinds=base)
    t_make = time.perf_counter() - t0
    t0 = time.perf_counter()
    outcomes = [run_case(c, good) for c in cases]
    t_run = time.perf_counter() - t0
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024

    status = Counter(o.status for o in outcomes)
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    by_mutation: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        by_kind[o.case.kind][o.status] += 1
        for m in o.case.mutations:
            by_mutation[m.split(":")[0]][o.status] += 1
    times = [o.seconds for o in outcomes]
    slow = sorted(outcomes, key=lambda o: -o.seconds)[:5]
    bad = [o for o in outcomes if o.problems]

    print(f"seed {SEED}: {len(cases)} cases from {len(base)} seed kinds ({', '.join(sorted(base))})")
    print(f"made in {t_make:.1f} s, loaded in {t_run:.1f} s ({t_run / len(cases) * 1000:.1f} ms per case)")
    print("outcomes: " + ", ".join(f"{k} {status[k]}" for k in ("refused", "loaded", "warned", "ignored", "violation")))
    cols = ("refused", "loaded", "warned", "ignored", "violation")
    print(f"  {'seed kind':<14}" + "".join(f"{c:>10}" for c in cols))
    for k in sorted(by_kind):
        print(f"  {k:<14}" + "".join(f"{by_kind[k][c]:>10}" for c in cols))
    print(f"  {'mutation':<14}" + "".join(f"{c:>10}" for c in cols))
    for k in sorted(by_mutation):
        print(f"  {k:<14}" + "".join(f"{by_mutation[k][c]:>10}" for c in cols))
    print(f"anchor (good cine + one clean seed, median of {len(anchor_times)}): {anchor * 1000:.1f} ms")
    print(
        f"per case: median {statistics.median(times) * 1000:.1f} ms "
        f"(ratio {statistics.median(times) / anchor:.2f}), p99 {_quantile(times, 0.99) * 1000:.1f} ms"
    )
    for o in slow:
        print(
            f"slow: {o.seconds * 1000:.0f} ms (ratio {o.seconds / anchor:.1f} vs anchor) {o.case.name} "
            f"{o.case.mutations} -> {o.status}: {o.message[:140]!r}"
        )
    print(f"peak RSS growth over the run: {grown_mib:.0f} MiB (target < {TARGET_RSS_GROWTH_MIB} MiB)")
    for o in bad[:10]:
        print(f"VIOLATION {o.case.name} {o.case.mutations}: {o.problems}")
    ok = not bad and slow[0].seconds < min(TARGET_MAX_S, TIME_BOUND_S) and grown_mib < TARGET_RSS_GROWTH_MIB
    print(f"invariants: {'all held' if not bad else f'{len(bad)} case(s) broke them'}; slowest {slow[0].seconds:.2f} s")
    return 0 if ok else 1


def _suffix(kind: str) -> str:
    return {"nii": ".nii", "nii_gz": ".nii.gz", "zip": ".zip"}.get(kind, ".dcm")


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


if __name__ == "__main__":
    raise SystemExit(main())
