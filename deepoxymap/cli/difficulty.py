"""``deepoxymap difficulty``: print the trivial-baseline AUC table (:mod:`deepoxymap.phantom.difficulty`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepoxymap.phantom.difficulty import difficulty_report, format_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``deepoxymap difficulty``."""
    parser.add_argument("--cohort", type=Path, required=True, help="cohort folder with manifest.csv")
    parser.add_argument("--seed", type=int, default=0, help="CV shuffling seed")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the difficulty table; exit 0."""
    rep = difficulty_report(args.cohort, seed=args.seed)
    print(format_report(rep))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1))
    return 0
