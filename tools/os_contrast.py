"""Print how often the OS response flips the lesion contrast at breath-hold end, per class.

``python -m tools.os_contrast --cohort DIR [--json F]``; numbers from
:func:`deepoxymap.phantom.os_contrast.cohort_contrast` (generated truth only).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from deepoxymap.phantom.os_contrast import cohort_contrast, format_contrast


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and print the table; 1 with ``error:`` when the cohort holds no truth."""
    parser = argparse.ArgumentParser(prog="python -m tools.os_contrast", description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True, help="generated cohort folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if not any(args.cohort.glob("*/truth/truth.json")):
        print(f"error: no */truth/truth.json under {args.cohort}", file=sys.stderr)
        return 1
    rep = cohort_contrast(args.cohort)
    print(format_contrast(rep))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
