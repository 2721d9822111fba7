"""Start the model warm-up first thing in the server process.

:mod:`deepoxymap.ui.serve` (``make run``) calls :func:`start` at server start, before
Streamlit itself comes up; ``app.py`` calls it again before anything else of its first
script run (a no-op then; the start under a plain ``streamlit run app.py``). So
TensorFlow's import (4-6 s on two cores), the model load and its first traced forward pass
and Grad-CAM (:func:`deepoxymap.ui.analysis._warm_job`) overlap Streamlit's start-up and
the Home and Load-case pages instead of following them. Only light modules are imported here (the
settings and the shared inference worker); the job imports TensorFlow itself, then the
analysis module, on the background thread. Nothing here waits: a page that needs the
model waits for it where it asks (:func:`deepoxymap.ui.modelinfo.loaded_model`).
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from deepoxymap.config import settings
from deepoxymap.ui import inference

__all__ = ["start"]


def _job(path: Path) -> None:
    import tensorflow  # noqa: F401 - the bulk of the warm-up, first (the script thread imports the rest meanwhile)

    from deepoxymap.ui import analysis

    analysis._warm_job(path)


def start() -> Future[Any] | None:
    """Start loading and tracing the shipped model in the background, once per server process (never blocks).

    Returns the job's future the first time, ``None`` after (or without a model file).
    """
    return inference.warm(settings().model_path, _job)
