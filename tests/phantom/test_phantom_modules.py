"""Structure of the generator and the validation checks: one module per sequence, libraries that never print."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepoxymap.errors import PhantomError

ROOT = Path(__file__).resolve().parents[2]
GENERATOR_MODULES = [
    "generate",
    "exam",
    "render",
    "imaging",
    "seq_oscine",
    "seq_lge",
    "seq_maps",
    "truth",
]
LIBRARIES = [
    *(
        ROOT / "deepoxymap" / "phantom" / f"{m}.py"
        for m in [*GENERATOR_MODULES, "realism", "difficulty", "os_contrast"]
    ),
    ROOT / "deepoxymap" / "cardiac" / "emidec_check.py",
]


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("path", LIBRARIES, ids=lambda p: p.stem)
def test_libraries_never_print(path: Path) -> None:
    """Printing belongs to the command adapters and tools/, not to the library."""
    calls = [
        n.lineno
        for n in ast.walk(_tree(path))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
    ]
    assert calls == []


@pytest.mark.parametrize("path", LIBRARIES, ids=lambda p: p.stem)
def test_no_private_names_across_modules_and_no_asserts(path: Path) -> None:
    tree = _tree(path)
    private = [
        f"{n.module}.{a.name}"
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("deepoxymap")
        for a in n.names
        if a.name.startswith("_")
    ]
    assert private == []
    assert not [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]


def test_generator_modules_are_small() -> None:
    sizes = {m: len((ROOT / "deepoxymap" / "phantom" / f"{m}.py").read_text().splitlines()) for m in GENERATOR_MODULES}
    assert max(sizes.values()) < 800, sizes
    gen = _tree(ROOT / "deepoxymap" / "phantom" / "generate.py")
    fn = next(n for n in gen.body if isinstance(n, ast.FunctionDef) and n.name == "generate_subject")
    assert fn.end_lineno is not None and fn.end_lineno - fn.lineno < 60


def test_public_names_still_importable_from_generate() -> None:
    from deepoxymap import phantom
    from deepoxymap.phantom import generate

    for name in generate.__all__:
        assert getattr(generate, name) is not None, name
    for name in ("cohort_plan", "generate_cohort", "generate_subject", "write_manifest"):
        assert getattr(phantom, name) is getattr(generate, name)
    from deepoxymap.phantom.exam import sample_orientation
    from deepoxymap.phantom.render import render_series
    from deepoxymap.phantom.seq_oscine import sample_os

    assert generate.render_series is render_series
    assert generate.sample_os is sample_os and generate.sample_orientation is sample_orientation


def test_draw_shift_draws_the_magnitude_only_when_moving() -> None:
    """The OS baseline draws one number (the angle), every other series two: the order the cohort bytes rely on."""
    from deepoxymap.phantom.exam import draw_shift

    a, b = np.random.default_rng(0), np.random.default_rng(0)
    assert draw_shift(a, 2.5, still=True) == (0.0, 0.0)
    b.uniform()
    assert a.uniform() == b.uniform()
    dx, dy = draw_shift(a, 3.0)
    assert np.hypot(dx, dy) <= 3.0


def test_unknown_cohort_is_a_phantom_error(tmp_path: Path) -> None:
    from deepoxymap.phantom import generate_cohort

    with pytest.raises(PhantomError, match="unknown cohort"):
        generate_cohort(tmp_path, "nope")


def test_cohort_progress_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from deepoxymap.phantom import generate

    monkeypatch.setattr(generate, "generate_subject", lambda *a, **k: None)
    with caplog.at_level(logging.INFO, logger="deepoxymap.phantom.generate"):
        rows = generate.generate_cohort(tmp_path, "study", 0, limit=10, progress=True)
    assert len(rows) == 10
    assert [r.getMessage().split(",")[0].strip() for r in caplog.records] == ["10/10 subjects"]


# ---------------------------------------------------------------------------
# validation checks: library results, command adapters, tools/
# ---------------------------------------------------------------------------


def test_emidec_table_format() -> None:
    from deepoxymap.cardiac.emidec_check import TABLE_HEADER, EmidecRow, format_table

    rows = [EmidecRow("c1", "nsd5", 1.234, 0.0, float("nan"), 2801.4), EmidecRow("c1", "fwhm", 0.0, 2.0, 0.5, 10.0)]
    lines = format_table(rows).splitlines()
    assert lines[:2] == list(TABLE_HEADER)
    assert lines[2] == "| c1 | nsd5 | 1.23 | 0.00 | n/a | 2801 |"
    assert lines[3] == "| c1 | fwhm | 0.00 | 2.00 | 0.50 | 10 |"
    assert format_table(rows, header=False).splitlines() == lines[2:]


def test_emidec_find_cases(tmp_path: Path) -> None:
    from deepoxymap.cardiac.emidec_check import find_cases

    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "f.txt").write_text("")
    assert [p.name for p in find_cases(tmp_path)] == ["a", "b"]
    assert find_cases(tmp_path / "missing") == []


@pytest.mark.parametrize("name", ["realism", "difficulty"])
def test_command_adapters(name: str) -> None:
    import argparse

    from deepoxymap.cli import command_module

    mod = command_module(name)
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    assert callable(mod.run)


def test_difficulty_report_is_plain_json_types() -> None:
    """``cv_auc`` returns the TypedDict's keys as plain floats (JSON, ``dict()`` in evaluate)."""
    import json

    from deepoxymap.phantom.difficulty import CvAuc, cv_auc

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 20)
    r = cv_auc(rng.normal(size=(80, 3)), y, np.repeat(np.arange(40), 2))
    assert set(r) == set(CvAuc.__annotations__)
    json.dumps(r)


def test_tools_run_as_modules(tmp_path: Path) -> None:
    for name in ("difficulty", "realism_report", "emidec_check", "os_contrast"):
        r = subprocess.run(
            [sys.executable, "-m", f"tools.{name}", "--help"],
            cwd=ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert f"tools.{name}" in r.stdout
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "difficulty.py"), "--cohort", str(tmp_path)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and r.stderr.startswith("error:") and "manifest not found" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "tools.os_contrast", "--cohort", str(tmp_path)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and r.stderr.startswith("error:") and "truth.json" in r.stderr
