"""Fixtures for the explain tests."""

from __future__ import annotations

import pytest
from explain_tiny import build_oracle, build_tiny

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    """A seeded random tiny 4-class model."""
    return build_tiny()


@pytest.fixture(scope="module")
def oracle_model() -> keras.Model:
    """The hand-weighted bright-blob detector."""
    return build_oracle()
