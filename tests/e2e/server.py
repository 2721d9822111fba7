"""Serving the app for browser tests and benchmarks: a free loopback port, ``streamlit run``, health, stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An unused localhost TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_streamlit(script: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Serve ``script`` headless on ``127.0.0.1:port`` (stdout/stderr discarded: no patient data in logs).

    The app (``app.py``) is served as ``make run`` serves it, through :mod:`deepoxymap.ui.serve`
    (model warm-up from server start); any other script (a benchmark's anchor page) through
    plain ``streamlit run`` with the same flags.
    """
    from deepoxymap.ui.serve import streamlit_argv

    if Path(script).resolve() == (ROOT / "app.py").resolve():
        cmd = [sys.executable, "-m", "deepoxymap.ui.serve", "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "streamlit", *streamlit_argv(Path(script), port)]
    return subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_healthy(url: str, timeout: float = 60.0) -> float:
    """Poll ``/_stcore/health`` until it answers ``ok``; returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server we started (by its own pid)."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
