"""Print the realism table: phantom image statistics beside the Sunnybrook cine with manual contours.

``python -m tools.realism_report [--real DIR] [--cohort DIR] [--n N] [--json F] [--figure F]``;
the same as ``deepoxymap realism`` (:mod:`deepoxymap.cli.realism`, numbers from
:func:`deepoxymap.phantom.realism.realism_report`).
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
    return run_command("realism", "python -m tools.realism_report", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
