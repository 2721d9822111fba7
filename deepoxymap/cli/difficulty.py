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
    parser.add_argument(
        "--train-cohort",
        type=Path,
        default=None,
        help="fit the baselines on this generated cohort and score --cohort (no cross-validation on it)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the difficulty table; exit 0."""
    if args.train_cohort is not None:
        from deepoxymap.phantom.difficulty import transfer_baselines

        tr = transfer_baselines(args.train_cohort, args.cohort, seed=args.seed)
        print(
            f"fitted on {tr['train_subjects']} subjects of {args.train_cohort}; scored on {tr['test_subjects']} of {args.cohort}"
        )
        for name in ("histogram", "engineered", "leak_check"):
            m = tr[name]
            acc, auc = m["accuracy"], m["macro_auc"]
            per = " ".join(f"{c} {v['value']:.3f}" for c, v in m["auc"].items())
            print(
                f"{name:<12} acc {acc['value']:.3f} [{acc['ci'][0]:.3f}, {acc['ci'][1]:.3f}]  "
                f"macro AUC {auc['value']:.3f} [{auc['ci'][0]:.3f}, {auc['ci'][1]:.3f}]  ({per})"
            )
        if args.json:
            args.json.write_text(json.dumps(tr, indent=1))
        return 0
    rep = difficulty_report(args.cohort, seed=args.seed)
    print(format_report(rep))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1))
    return 0
