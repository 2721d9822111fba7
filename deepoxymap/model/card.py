"""Model cards: the JSON written beside every ``.keras`` file.

A card records everything needed to use and to reproduce a model: classes (in
output order), input spec and preprocessing, how it was trained (data, split,
seed, the exact command), test metrics with CIs, library versions and the
sha256 of the ``.keras`` file (verified on load).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["CARD_SCHEMA", "card_path_for", "library_versions", "read_card", "sha256_file", "write_card"]

CARD_SCHEMA = "deepoxymap-model-card/1"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that define the model's numbers."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "scipy", "scikit-learn", "deepoxymap"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def card_path_for(model_path: str | os.PathLike[str]) -> Path:
    """The card beside a model: same name, ``.json``."""
    return Path(model_path).with_suffix(".json")


def _jsonable(o: Any) -> Any:
    import numpy as np

    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and math.isnan(o):  # NaN -> null
        return None
    if isinstance(o, Path):
        return str(o)
    return o


def write_card(path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write a card as pretty JSON (NaN written as null)."""
    p = Path(path)
    p.write_text(json.dumps(_jsonable({"schema": CARD_SCHEMA, **card}), indent=2) + "\n")
    return p


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a card (``ValueError`` on bad JSON)."""
    return json.loads(Path(path).read_text())
