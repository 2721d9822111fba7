"""Fixtures of the export tests: the known-identifier subject, its analysis and its exports (built once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deepoxymap.config import settings


@pytest.fixture(scope="session")
def loaded_model() -> Any:
    """The shipped classifier; skips where it is absent."""
    from deepoxymap.model.loading import load_model

    if not settings().model_path.is_file():
        pytest.skip(f"no model at {settings().model_path}: run `make model`")
    return load_model()


@pytest.fixture(scope="session")
def known_case(known_subject: Path) -> Any:
    """The known-identifier subject as a Case (with its ground truth)."""
    from deepoxymap.phantom import load_subject

    return load_subject(known_subject)


@pytest.fixture(scope="session")
def analysis(known_case: Any, loaded_model: Any) -> Any:
    """``analyse_case`` of the known subject (Grad-CAM, predicted class, threshold 0.5)."""
    from deepoxymap.export import analyse_case

    return analyse_case(known_case, loaded_model)


@pytest.fixture(scope="session")
def index(known_subject: Path) -> Any:
    """The source headers of the known subject."""
    from deepoxymap.export import SourceIndex

    return SourceIndex.from_case_paths([known_subject])


@pytest.fixture(scope="session")
def raw_bundle(analysis: Any, known_case: Any, index: Any) -> Any:
    """Every export with the source identifiers kept."""
    from deepoxymap.export import export_case

    return export_case(analysis, known_case, index, keep_identifiers=True)


@pytest.fixture(scope="session")
def deid_bundle(analysis: Any, known_case: Any, index: Any) -> Any:
    """Every export, de-identified (the default)."""
    from deepoxymap.export import export_case

    return export_case(analysis, known_case, index)
