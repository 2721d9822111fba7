"""``deepoxymap training-manifest``: a manifest of generated training/validation subjects plus a test cohort.

The generated rows (``path = generate:<seed>:<index>``) are rendered on demand by
``deepoxymap train --manifest M --protocol manifest``; see :mod:`deepoxymap.model.synthetic`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("--out", type=Path, required=True, help="manifest CSV to write")
    parser.add_argument("--train", type=int, required=True, help="generated training subjects")
    parser.add_argument("--val", type=int, required=True, help="generated validation subjects")
    parser.add_argument("--seed", type=int, default=0, help="picks the generated streams (never a cohort's)")
    parser.add_argument(
        "--test-manifest", type=Path, default=None, help="a cohort whose subjects are the test rows (the study cohort)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the manifest and say what is in it."""
    from deepoxymap.cohort import read_manifest
    from deepoxymap.model.synthetic import synthetic_manifest

    path = synthetic_manifest(args.out, args.train, args.val, seed=args.seed, test_manifest=args.test_manifest)
    recs = read_manifest(path)
    counts = {s: sum(r.split == s for r in recs) for s in ("train", "val", "test")}
    print(f"wrote {path}: {counts['train']} generated train, {counts['val']} generated val, {counts['test']} test rows")
    return 0
