"""Print the difficulty table: trivial-baseline and leak-check AUCs on a generated cohort.

``python -m tools.difficulty --cohort DIR [--seed S] [--json F]``; the same as
``deepoxymap difficulty`` (:mod:`deepoxymap.cli.difficulty`, numbers from
:func:`deepoxymap.phantom.difficulty.difficulty_report`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deepoxymap.cli.difficulty import add_arguments, run
from deepoxymap.errors import DeepOxyMapError


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and print the table."""
    parser = argparse.ArgumentParser(prog="python -m tools.difficulty", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except DeepOxyMapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
