"""Settings: defaults < ``deepoxymap.toml`` < ``DEEPOXYMAP_*`` environment variables.

Only this module reads the environment. Every value is documented with its
unit. ``settings()`` returns a frozen snapshot; tests build their own
``Settings`` rather than mutating a global.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
"""Repository root (where ``assets/`` and ``data/`` live)."""


@dataclass(frozen=True)
class Settings:
    """Project-wide settings.

    Attributes:
        model_path: the shipped classifier (``.keras``); its card is the same
            name with ``.json``.
        segmenter_path: the learned LV / RV segmenter (``.keras``, see
            :mod:`deepoxymap.segmentation.learned`).
        demo_dir: where ``make demo`` writes the demo cases (one per class).
        cohort_dir: default location of the synthetic study cohort.
        real_data_dir: the shared real CMR samples (tests only; may be absent).
        max_upload_files: most files accepted from one upload or zip.
        max_upload_bytes: most uncompressed bytes accepted from one upload or zip.
        max_zip_ratio: largest compression ratio accepted for a zip member (bomb guard).
        max_archive_ratio: largest expansion ratio of a whole zip archive, once it has
            expanded past 64 MiB (many small members of zeros; real studies compress < 10:1).
        max_image_bytes: most bytes one image file (DICOM or NIfTI) may decode to, from its
            header before any decoder runs: rows x columns x samples x frames x the larger of
            4 (float32) and the stored bytes per value; also caps deflated DICOM inflation.
        max_frames: most 2D images the DICOM headers of one load declare in total, and most
            images (slices x frames) in one stack.
        max_frames_per_file: most frames one DICOM file may declare (reading per-frame
            functional groups costs ~0.1 ms a frame).
        max_stack_bytes: most float32 bytes of one assembled stack.
        max_load_bytes: most float32 bytes of all stacks of one load together.
        slice_match_tol_deg: planes whose normals differ by more are not matched.
        slice_match_max_mm: a matched slice further than this is shown as "no match".
        pacs_url: DICOMweb root of the PACS (QIDO/WADO/STOW), e.g.
            ``http://127.0.0.1:8042/dicom-web``; empty: no PACS configured.
        pacs_username: HTTP basic-auth user name for the PACS (empty: none).
        pacs_password: HTTP basic-auth password (set it in ``DEEPOXYMAP_PACS_PASSWORD``,
            never in a committed file).
        pacs_trusted: the PACS belongs to the care team: pushes keep identifiers.
            Every push to a server not marked trusted is de-identified.
        pacs_timeout_s: seconds to wait for the PACS to answer one request.
        cohorts: cohort manifests the app may audit, by name (``[cohorts]`` table in
            ``deepoxymap.toml``: ``name = "path/to/manifest.csv"``, relative to the
            repository root; or ``DEEPOXYMAP_COHORTS`` as a JSON object). The demo and
            study cohorts are registered without it: see :meth:`cohort_manifests`.
    """

    model_path: Path = ROOT / "assets" / "models" / "deepoxymap_vgg19.keras"
    segmenter_path: Path = ROOT / "assets" / "models" / "segmenter_unet.keras"
    demo_dir: Path = ROOT / "data" / "demo"
    cohort_dir: Path = ROOT / "data" / "study"
    real_data_dir: Path = ROOT.parent / "shared" / "data" / "real"
    max_upload_files: int = 5000
    max_upload_bytes: int = 2 * 1024**3
    max_zip_ratio: float = 200.0
    max_archive_ratio: float = 20.0
    max_image_bytes: int = 256 * 1024**2
    max_frames: int = 100_000
    max_frames_per_file: int = 20_000
    max_stack_bytes: int = 512 * 1024**2
    max_load_bytes: int = 4 * 1024**3
    slice_match_tol_deg: float = 10.0
    slice_match_max_mm: float = 10.0
    pacs_url: str = ""
    pacs_username: str = ""
    pacs_password: str = ""
    pacs_trusted: bool = False
    pacs_timeout_s: float = 10.0
    cohorts: Mapping[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def model_card_path(self) -> Path:
        """The model card JSON beside :attr:`model_path`."""
        return self.model_path.with_suffix(".json")

    def cohort_manifests(self) -> dict[str, Path]:
        """The registered cohorts whose manifest exists now, by name.

        ``demo`` (``demo_dir/manifest.csv``) and ``study`` (``cohort_dir/manifest.csv``)
        first, then :attr:`cohorts` (an entry of the same name replaces a built-in one).
        These are the only manifests the app's Cohort audit reads from the server's disk.
        """
        found = {"demo": self.demo_dir / "manifest.csv", "study": self.cohort_dir / "manifest.csv"}
        found.update(self.cohorts)
        return {name: path for name, path in found.items() if path.is_file()}


def _cohorts(value: Any) -> dict[str, Path]:
    """``cohorts`` from TOML (a table) or the environment (a JSON object); relative paths from :data:`ROOT`."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping) or not all(isinstance(v, str | Path) for v in value.values()):
        raise ValueError('cohorts must map a name to a manifest path, e.g. {"site-a": "data/a/manifest.csv"}')
    out: dict[str, Path] = {}
    for name, raw in value.items():
        p = Path(raw).expanduser()
        out[str(name)] = p if p.is_absolute() else ROOT / p
    return out


def _coerce(field: dataclasses.Field[Any], value: Any) -> Any:
    if field.name == "cohorts":
        return _cohorts(value)
    default = field.default
    if isinstance(default, Path):
        return Path(value).expanduser()
    if isinstance(default, bool):
        return str(value).lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def load_settings(toml_path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults, an optional TOML file and ``DEEPOXYMAP_*`` variables.

    Args:
        toml_path: defaults to ``deepoxymap.toml`` in the repository root, if present.
        env: defaults to ``os.environ``.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    path = toml_path or ROOT / "deepoxymap.toml"
    if path.is_file():
        with path.open("rb") as fh:
            values.update(tomllib.load(fh))
    for f in dataclasses.fields(Settings):
        key = f"DEEPOXYMAP_{f.name.upper()}"
        if key in env:
            values[f.name] = env[key]
    known = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)} in {path}")
    return Settings(**{k: _coerce(known[k], v) for k, v in values.items()})


@functools.cache
def settings() -> Settings:
    """The process's settings, read once (defaults < ``deepoxymap.toml`` < ``DEEPOXYMAP_*``).

    Settings are frozen for the life of a process; after changing the file or the
    environment in a running process, call ``settings.cache_clear()``.
    """
    return load_settings()
