"""AppTest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from app_helpers import make_tiny_case, write_tiny_model

from deepoxymap.case import Case


@pytest.fixture(autouse=True)
def _fresh_shared_results() -> Iterator[None]:
    """Each test starts with an empty process-wide result store (and leaves no background work running)."""
    from deepoxymap.ui import inference

    inference.wait_idle(120)
    inference.results().clear()
    yield
    inference.wait_idle(120)
    inference.results().clear()


@pytest.fixture
def tiny_case() -> Case:
    """A tiny in-memory case (fast; needs no generated data)."""
    return make_tiny_case()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny model + card (built once per test session)."""
    return write_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def demo_cases(demo_dir: Path) -> dict[str, Case]:
    """Every demo case, loaded once (skips where ``make demo`` has not run)."""
    from deepoxymap.cohort import load_case, read_manifest

    rows = read_manifest(demo_dir / "manifest.csv")
    return {r.label: load_case(r) for r in rows}
