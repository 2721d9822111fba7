"""Cohort audit on 1 vs 2 worker processes: the speed-up, measured in the same run, and memory per worker.

The same generated cohort (``BENCH_WORKERS_N`` study subjects, default 24, seed 0) is
audited by :func:`deepoxymap.audit.run_audit` with the shipped model (Grad-CAM at its
default layer, fixed thresholds, no sanity checks, no cache) twice:

* ``jobs=1``: every case in this process (TensorFlow uses every core);
* ``jobs=2``: two spawned worker processes, each loading the model once and running
  TensorFlow on ``cpu_count // 2`` threads. Its wall time includes starting the workers
  (importing TensorFlow, loading the model), as a user's run does.

The anchor is the ``jobs=1`` run; the figure is ``t(jobs=1) / t(jobs=2)``. Both runs must
give the same per-case numbers (checked). Peak resident memory is sampled (psutil) for
this process and for each worker. ``REPEATS`` alternating runs of each; the best is
reported (the 2-core machine is shared). Target: speed-up >= 1.3 on 2 workers; on a 2-core
machine the ceiling is 2, minus the workers' start-up and the parts of a case that
TensorFlow already spread over both cores in process.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGET = 1.3
REPEATS = 2


class _PeakRSS:
    """Peak RSS (MiB) of this process and of each of its child processes, sampled every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.parent = 0.0
        self.children: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                self.parent = max(self.parent, self._me.memory_info().rss / 2**20)
                for c in self._me.children(recursive=True):
                    try:
                        self.children[c.pid] = max(self.children.get(c.pid, 0.0), c.memory_info().rss / 2**20)
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self._stop.wait(0.2)

    def __enter__(self) -> Self:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def _audit(records: list[Any], loaded: Any, jobs: int) -> tuple[float, Any, _PeakRSS | None, list[float]]:
    """Wall time, result, memory sampler and the time at which each case finished."""
    from deepoxymap.audit import AuditConfig, run_audit

    cfg = AuditConfig(methods=("gradcam",), sanity_cases=0, bullseyes=False)
    try:
        mem: _PeakRSS | None = _PeakRSS()
    except ImportError:
        mem = None
    done: list[float] = []
    t0 = time.perf_counter()

    def progress(i: int, total: int, msg: str) -> None:
        done.append(time.perf_counter() - t0)

    if mem is not None:
        with mem:
            res = run_audit(records, loaded, cfg, jobs=jobs, progress=progress)
    else:
        res = run_audit(records, loaded, cfg, jobs=jobs, progress=progress)
    return time.perf_counter() - t0, res, mem, done


def main() -> int:
    """Run the benchmark; returns 0 when the speed-up meets the target (or the shipped model is absent)."""
    import numpy as np

    from deepoxymap.cli import main as cli
    from deepoxymap.cohort import read_manifest
    from deepoxymap.config import settings
    from deepoxymap.model.loading import load_model

    if not Path(settings().model_path).is_file():
        print(f"SKIP: shipped model not found at {settings().model_path}")
        return 0
    n = int(os.environ.get("BENCH_WORKERS_N", "24"))
    print(f"cpus: {os.cpu_count()}; cohort: {n} generated study subjects; model: {Path(settings().model_path).name}")
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        out = Path(tmp) / "cohort"
        t0 = time.perf_counter()
        if cli(["generate", "--cohort", "study", "--seed", "0", "--limit", str(n), "--out", str(out), "--quiet"]):
            print("generator failed")
            return 1
        print(f"generated in {time.perf_counter() - t0:.1f} s")
        records = read_manifest(out / "manifest.csv")
        loaded = load_model()
        _audit(records[:1], loaded, 1)  # warm-up: TensorFlow graphs of this process
        runs: dict[int, list[tuple[float, Any, _PeakRSS | None, list[float]]]] = {1: [], 2: []}
        for _ in range(REPEATS):  # alternating, so both feel the same load on a shared machine
            for jobs in (1, 2):
                runs[jobs].append(_audit(records, loaded, jobs))
        t1, r1, m1, d1 = min(runs[1], key=lambda r: r[0])
        t2, r2, m2, d2 = min(runs[2], key=lambda r: r[0])
    print(
        f"wall times (s): jobs=1 {[round(r[0], 1) for r in runs[1]]}, jobs=2 {[round(r[0], 1) for r in runs[2]]}; best of each:"
    )
    same = len(r1.per_case) == len(r2.per_case) == n and all(
        a["subject"] == b["subject"]
        and all(
            (isinstance(a[k], str) and a[k] == b[k])
            or (not isinstance(a[k], str) and (np.isnan(a[k]) and np.isnan(b[k]) or abs(a[k] - b[k]) <= 1e-6))
            for k in a
            if isinstance(a[k], (str, int, float))
        )
        for a, b in zip(r1.per_case, r2.per_case, strict=True)
    )
    ratio = t1 / t2
    print(f"jobs=1 (in process): {t1:6.1f} s  ({t1 / n:.2f} s per case)")
    print(f"jobs=2 (2 workers):  {t2:6.1f} s  ({t2 / n:.2f} s per case, worker start-up included)")
    if n > 2:
        steady1 = (d1[-1] - d1[0]) / (n - 1)
        steady2 = (d2[-1] - d2[1]) / (n - 2)  # after both workers delivered their first case
        print(
            f"workers' start-up (first case back): {d2[0]:.1f} s; steady state {steady2:.2f} s per case on 2 workers "
            f"vs {steady1:.2f} s in process ({steady1 / steady2:.2f}x); break-even after ~"
            f"{d2[0] / max(steady1 - steady2, 1e-9):.0f} cases"
        )
    print(f"speed-up on 2 workers: {ratio:.2f}x (target >= {TARGET}); same per-case numbers: {same}")
    if m1 is not None and m2 is not None:
        workers = sorted(m2.children.values(), reverse=True)[:2]
        print(
            f"peak RSS: this process {m1.parent:.0f} MiB (jobs=1); each worker {', '.join(f'{w:.0f}' for w in workers)} MiB"
        )
    return 0 if ratio >= TARGET and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
