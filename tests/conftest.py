"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
REAL = Path(os.environ.get("DEEPOXYMAP_REAL_DATA_DIR", ROOT.parent / "shared" / "data" / "real"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """``../shared/data/real``; skips the test where it is absent."""
    if not REAL.is_dir():
        pytest.skip(f"real CMR samples not found at {REAL} (they live in ../shared/data/real, never in the repo)")
    return REAL


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The demo cohort written by ``make demo``; skips where it has not been generated."""
    d = ROOT / "data" / "demo"
    if not (d / "manifest.csv").is_file():
        pytest.skip("demo cases not generated: run `make demo`")
    return d
