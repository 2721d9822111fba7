"""Run a ``deepoxymap`` sub-command as a ``python -m tools.<name>`` script (shared by the wrappers here)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deepoxymap.cli import command_module
from deepoxymap.errors import DeepOxyMapError


def run_command(command: str, prog: str, description: str, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with the sub-command's own options, run it, and print any ``DeepOxyMapError`` as one line."""
    mod = command_module(command)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    mod.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(mod.run(args) or 0)
    except DeepOxyMapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
