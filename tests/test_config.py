"""Settings precedence: defaults < deepoxymap.toml < DEEPOXYMAP_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepoxymap.config import Settings, load_settings


def test_defaults_when_nothing_set(tmp_path: Path) -> None:
    """No file, no variables: the dataclass defaults."""
    s = load_settings(tmp_path / "absent.toml", env={})
    assert s == Settings()
    assert s.model_card_path.suffix == ".json"


def test_toml_then_env_override(tmp_path: Path) -> None:
    """The environment wins over the file, which wins over the defaults."""
    toml = tmp_path / "deepoxymap.toml"
    toml.write_text('max_upload_files = 10\nslice_match_max_mm = 4.5\nmodel_path = "/x/m.keras"\n')
    s = load_settings(toml, env={"DEEPOXYMAP_MAX_UPLOAD_FILES": "7"})
    assert s.max_upload_files == 7
    assert s.slice_match_max_mm == 4.5
    assert s.model_path == Path("/x/m.keras")


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    """A typo in the file is reported, not ignored."""
    toml = tmp_path / "deepoxymap.toml"
    toml.write_text("max_upload_filez = 10\n")
    with pytest.raises(ValueError, match="max_upload_filez"):
        load_settings(toml, env={})
