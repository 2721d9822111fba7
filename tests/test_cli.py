"""The `deepoxymap` command dispatches to its sub-commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deepoxymap.cli import COMMANDS, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`deepoxymap --help` names each registered sub-command."""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_every_registered_module_exists() -> None:
    """Each sub-command module imports and exposes add_arguments and run."""
    from deepoxymap.cli import command_module

    for name in COMMANDS:
        mod = command_module(name)
        assert mod.__name__.startswith("deepoxymap.cli."), name
        assert callable(mod.add_arguments), name
        assert callable(mod.run), name


def test_console_entry_point_runs() -> None:
    """`python -m deepoxymap --help` works as a process."""
    r = subprocess.run(
        [sys.executable, "-m", "deepoxymap", "--help"], check=False, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "generate" in r.stdout
