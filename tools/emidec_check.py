"""Print the EMIDEC scar table: automatic scar % of myocardium vs the expert's, per case and method.

``python -m tools.emidec_check [CASE_DIR ...] [--implants tuning|test|none]``
(default: every case under ``<real_data_dir>/emidec``). For a scar-free case
(the EMIDEC negative sample) ``--implants`` adds semi-synthetic infarcts
(``tuning``: the seeds the defaults were chosen on; ``test``: held-out seeds)
and prints each implant's rows and the per-method mean and minimum Dice. The
numbers come from :mod:`deepoxymap.cardiac.emidec_check`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deepoxymap.cardiac.emidec_check import (
    TEST_SEEDS,
    TUNING_SEEDS,
    check_case,
    check_implants,
    find_cases,
    format_table,
    load_emidec_case,
    min_dice,
    summarize,
)
from deepoxymap.errors import DeepOxyMapError


def main(argv: Sequence[str] | None = None) -> int:
    """Print the tables (markdown) for the given case folders; 1 when there is none."""
    parser = argparse.ArgumentParser(prog="python -m tools.emidec_check", description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", type=Path, help="EMIDEC case folders (default: all under real_data_dir)")
    parser.add_argument("--implants", choices=("tuning", "test", "none"), default="test")
    parser.add_argument("--per-implant", action="store_true", help="also print every implant's rows")
    args = parser.parse_args(argv)
    dirs = list(args.cases) or find_cases()
    if not dirs:
        print("no EMIDEC cases found", file=sys.stderr)
        return 1
    print(format_table([]))
    loaded = []
    for d in dirs:
        try:
            img, lab, ps = load_emidec_case(d)
        except (DeepOxyMapError, OSError, StopIteration) as exc:
            print(f"error: {d}: {str(exc) or 'no NIfTI image or contours found'}", file=sys.stderr)
            return 1
        rows = check_case(img, lab, ps, d.name)
        print(format_table(rows, header=False), flush=True)
        loaded.append((d, img, lab, ps, rows))
    if args.implants == "none":
        return 0
    seeds = TUNING_SEEDS if args.implants == "tuning" else TEST_SEEDS
    for d, img, lab, ps, rows in loaded:
        if any(r.expert_percent > 0 for r in rows):
            continue
        imp_rows = check_implants(img, lab, ps, seeds, d.name)
        print(f"\nsemi-synthetic infarcts in {d.name}, {args.implants} seeds {seeds[0]}-{seeds[-1]}:\n")
        if args.per_implant:
            print(format_table(imp_rows))
            print()
        summ = summarize(imp_rows)
        mins = min_dice(imp_rows)
        print("| method | mean scar % | mean reference % | mean Dice | min Dice | mean threshold |")
        print("|---|---|---|---|---|---|")
        for r in summ:
            print(
                f"| {r.method} | {r.scar_percent:.1f} | {r.expert_percent:.1f} | {r.dice:.2f} | "
                f"{mins[r.method]:.2f} | {r.threshold:.0f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
