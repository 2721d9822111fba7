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


@pytest.mark.parametrize("name", ["predict", "evaluate", "audit"])
def test_cohort_commands_take_jobs_scheduler_and_no_cache(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`--jobs N` (a positive integer; unset: the CPU count, at most 4), `--scheduler ADDRESS` and `--no-cache`."""
    import argparse

    from deepoxymap.cli import command_module
    from deepoxymap.parallel import MAX_DEFAULT_JOBS, default_jobs, jobs_from_args

    parser = argparse.ArgumentParser()
    command_module(name).add_arguments(parser)
    base = ["--manifest", "m.csv"]
    args = parser.parse_args([*base, "--jobs", "3", "--scheduler", "tcp://h:8786", "--no-cache"])
    assert (args.jobs, args.scheduler, args.no_cache) == (3, "tcp://h:8786", True)
    unset = parser.parse_args(base)
    assert unset.jobs is None and unset.scheduler is None and not unset.no_cache
    assert jobs_from_args(unset) == default_jobs() and 1 <= default_jobs() <= MAX_DEFAULT_JOBS
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--jobs", bad])
    assert "expected a positive integer" in capsys.readouterr().err


def test_predict_needs_a_path_or_a_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict"]) == 2
    assert main(["predict", "x", "--manifest", "m.csv"]) == 2
    assert "--manifest" in capsys.readouterr().err
