"""Print the realism table: phantom image statistics beside the Sunnybrook cine with manual contours.

``python -m tools.realism_report [--real DIR] [--cohort DIR] [--n N] [--json F] [--figure F]``;
the same as ``deepoxymap realism`` (:mod:`deepoxymap.cli.realism`, numbers from
:func:`deepoxymap.phantom.realism.realism_report`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deepoxymap.cli.realism import add_arguments, run
from deepoxymap.errors import DeepOxyMapError


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and print the table."""
    parser = argparse.ArgumentParser(prog="python -m tools.realism_report", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except DeepOxyMapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
