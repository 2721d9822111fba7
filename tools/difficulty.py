"""Print the difficulty table: trivial-baseline and leak-check AUCs on a generated cohort.

``python -m tools.difficulty --cohort DIR [--seed S] [--json F]``; the same as
``deepoxymap difficulty`` (:mod:`deepoxymap.cli.difficulty`, numbers from
:func:`deepoxymap.phantom.difficulty.difficulty_report`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as `python tools/<name>.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.command import run_command


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and print the table."""
    return run_command("difficulty", "python -m tools.difficulty", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
