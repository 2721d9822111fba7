"""Print the EMIDEC scar table: automatic scar % of myocardium vs the expert's, per case and method.

``python -m tools.emidec_check [CASE_DIR ...]`` (default: every case under
``<real_data_dir>/emidec``); the numbers come from
:func:`deepoxymap.cardiac.emidec_check.check_case`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deepoxymap.cardiac.emidec_check import check_case, find_cases, format_table, load_emidec_case
from deepoxymap.errors import DeepOxyMapError


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (markdown) for the given case folders; 1 when there is none."""
    parser = argparse.ArgumentParser(prog="python -m tools.emidec_check", description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", type=Path, help="EMIDEC case folders (default: all under real_data_dir)")
    args = parser.parse_args(argv)
    dirs = list(args.cases) or find_cases()
    if not dirs:
        print("no EMIDEC cases found", file=sys.stderr)
        return 1
    print(format_table([]))
    for d in dirs:
        try:
            img, lab, ps = load_emidec_case(d)
        except (DeepOxyMapError, OSError, StopIteration) as exc:
            print(f"error: {d}: {str(exc) or 'no NIfTI image or contours found'}", file=sys.stderr)
            return 1
        print(format_table(check_case(img, lab, ps, d.name), header=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
