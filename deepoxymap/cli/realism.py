"""``deepoxymap realism``: print the phantom-vs-real statistics table (:mod:`deepoxymap.phantom.realism`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepoxymap.phantom.realism import format_report, realism_report, save_figure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``deepoxymap realism``."""
    from deepoxymap.config import settings

    st = settings()
    parser.add_argument("--real", type=Path, default=st.real_data_dir, help="real data folder (holding sunnybrook/)")
    parser.add_argument("--cohort", type=Path, default=st.cohort_dir, help="generated cohort (manifest.csv)")
    parser.add_argument("--n", type=int, default=12, help="phantom subjects to measure")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    parser.add_argument("--figure", type=Path, default=None, help="also save a side-by-side PNG")


def run(args: argparse.Namespace) -> int:
    """Print the realism table (and optionally save JSON / a figure)."""
    rep = realism_report(args.real, args.cohort, args.n)
    print(format_report(rep))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1))
    if args.figure:
        print(f"figure: {save_figure(args.real, args.cohort, args.figure)}")
    return 0
