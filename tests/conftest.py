"""Shared fixtures."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pacs_server
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
REAL = Path(os.environ.get("DEEPOXYMAP_REAL_DATA_DIR", ROOT.parent / "shared" / "data" / "real"))


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    """Put ``sys.modules["__main__"]`` back after each test.

    Streamlit's AppTest leaves its temporary page script as ``__main__`` (``AppTest.from_function``),
    and every spawned worker process started later in the session (``deepoxymap.parallel``, Dask)
    would re-run that script and die (``NameError: __args``).
    """
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


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


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pacs_server.OrthancServer]:
    """A real Orthanc with DICOMweb on a free loopback port (throwaway storage); skips where it is absent."""
    found = pacs_server.find_orthanc()
    if isinstance(found, str):
        pytest.skip(found)
    server = pacs_server.start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        pacs_server.stop_orthanc(server)


@pytest.fixture(scope="session")
def known_subject(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ischemic demo subject rewritten with known identifiers (``pacs_server.KNOWN_*``)."""
    src = demo_dir / "SUBJECT002"
    if not (src / "dicom").is_dir():
        pytest.skip("demo subject SUBJECT002 not generated: run `make demo`")
    return pacs_server.write_known_subject(src, tmp_path_factory.mktemp("known") / "SUBJECT002")
