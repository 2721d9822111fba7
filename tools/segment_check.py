"""Print the segmentation validation table: per-dataset Dice (myocardium, blood pool) and insertion-angle error.

``python -m tools.segment_check [REAL_DATA_DIR] [--method polar|unet]`` (default: ``settings().real_data_dir``,
i.e. ``../shared/data/real``); the numbers come from
:func:`deepoxymap.segmentation.check.check_all`. The first line printed is the
command line that produced the table.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from deepoxymap.errors import DeepOxyMapError
from deepoxymap.segmentation.api import DEFAULT_METHOD, METHODS
from deepoxymap.segmentation.check import check_all, format_table


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (markdown) for the real data folder; 1 when it holds none of the datasets."""
    parser = argparse.ArgumentParser(prog="python -m tools.segment_check", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, help="real data folder (default: settings().real_data_dir)")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD, help="segmentation method")
    args = parser.parse_args(argv)
    if args.root is None:
        from deepoxymap.config import settings

        root = settings().real_data_dir
    else:
        root = args.root
    shown = sys.argv[1:] if argv is None else list(argv)
    print(f"$ python -m tools.segment_check {shlex.join(shown)}".rstrip())
    if not root.is_dir():
        print(f"error: {root}: real data folder not found", file=sys.stderr)
        return 1
    try:
        rows = check_all(root, args.method)
    except (DeepOxyMapError, OSError) as exc:  # a missing model file is an OSError too
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not rows:
        print(f"error: {root}: none of the Sunnybrook / CineMyoPS / EMIDEC cases found", file=sys.stderr)
        return 1
    print(format_table(rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
