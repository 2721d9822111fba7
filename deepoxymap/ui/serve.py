"""Serve the app with the model warm-up started at server start: ``python -m deepoxymap.ui.serve``.

``streamlit run app.py`` runs none of the app's code until the first browser session's
first script run, so the model warm-up (:mod:`deepoxymap.ui.warmup`: TensorFlow's import,
the model load, its first traced forward pass and Grad-CAM; about 5 s on two quiet cores,
12 s on a busy day) can start no earlier than the moment a user opens the page. This
launcher starts that warm-up first, in the server process, and then hands the process to
Streamlit's own ``streamlit run`` (same flags, same ``.streamlit/config.toml``). The model
is then usually loaded and traced by the time the first user clicks Feature maps.

Cost: the server process holds TensorFlow and the shipped model whether or not a user ever
asks for it (idle RSS 30 s after start: 0.89 GB, against 0.07 GB with ``--no-warmup``), and
Streamlit's own start-up shares the two cores with the warm-up (first page about 1.5 s later
in ``bench app``). ``streamlit run app.py`` still works and warms at the first page view.

``make run``, the browser tests (``tests/e2e/server.py``) and ``bench app`` all serve with
it, with :data:`FLAGS`: loopback only, headless, no usage statistics, no file watcher.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["FLAGS", "ROOT", "main", "streamlit_argv"]

ROOT = Path(__file__).resolve().parents[2]
"""The checkout (``app.py`` beside ``deepoxymap/``)."""

FLAGS: tuple[str, ...] = (
    "--server.address",
    "127.0.0.1",
    "--server.headless",
    "true",
    "--browser.gatherUsageStats",
    "false",
    "--server.fileWatcherType",
    "none",
)
"""``streamlit run`` flags of every DeepOxyMap server (the port is added by :func:`streamlit_argv`)."""


def streamlit_argv(script: Path, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The ``streamlit run`` argument list (without the program name): script, :data:`FLAGS`, port, extras.

    ``extra`` comes last, so a flag given there overrides the house default.
    """
    return ["run", str(script), *FLAGS, "--server.port", str(int(port)), *extra]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deepoxymap.ui.serve",
        description="Serve DeepOxyMap on loopback with the model warm-up started at server start. "
        "Unknown arguments go to `streamlit run` (e.g. --server.address 0.0.0.0).",
    )
    p.add_argument("--port", type=int, default=8501, help="TCP port (default 8501)")
    p.add_argument("--script", type=Path, default=ROOT / "app.py", help="app script (default: the checkout's app.py)")
    p.add_argument("--no-warmup", action="store_true", help="do not load the model before the first page run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Start the warm-up (unless ``--no-warmup``), then run Streamlit's CLI in this process; its exit code."""
    args, extra = _parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if not args.no_warmup:
        from deepoxymap.ui import warmup

        warmup.start()  # background thread; app.py's own call is then a no-op
    from streamlit.web import cli as stcli

    sys.argv = ["streamlit", *streamlit_argv(args.script, args.port, extra)]
    try:
        stcli.main()  # a click command: it ends with SystemExit
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
