"""``deepoxymap generate``: write a synthetic OS-CMR cohort (DICOM + ground truth)."""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from deepoxymap.phantom.generate import default_jobs, generate_cohort
from deepoxymap.phantom.params import COHORTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``deepoxymap generate``."""
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--cohort", choices=sorted(COHORTS), default="demo", help="study: 190 subjects; demo: one per class"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same pixels)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: min(2, cpus))")
    parser.add_argument("--limit", type=int, default=None, help="only the first N subjects of the plan")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _du(path: Path) -> int:
    try:
        return int(
            subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
        )
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(args: argparse.Namespace) -> int:
    """Generate the cohort; prints count, time and size."""
    t0 = time.perf_counter()
    jobs = args.jobs or default_jobs()
    rows = generate_cohort(args.out, args.cohort, args.seed, jobs=jobs, limit=args.limit, progress=not args.quiet)
    dt = time.perf_counter() - t0
    size = _du(args.out)
    print(
        f"wrote {len(rows)} subjects to {args.out} in {dt:.1f} s ({size / 1e6:.1f} MB); manifest {args.out / 'manifest.csv'}"
    )
    return 0
