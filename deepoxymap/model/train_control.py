"""Control of a running training: progress reporting, stop requests, and the resume checkpoint.

Used by :func:`deepoxymap.model.train.train`; nothing here runs TensorFlow.

Files of a run named ``NAME`` in the output folder ``OUT``:

* ``OUT/NAME.progress.json``: the run's progress, rewritten atomically (at most every
  ``min_interval_s`` within an epoch, and at every epoch end and state change); see
  :class:`ProgressFile`.
* ``OUT/NAME.resume/``: the checkpoint of the last completed epoch (``state.json`` plus one
  ``epoch-NNNN.npz`` of arrays), see :class:`Checkpoint`. It is removed when the run completes.
* ``OUT/STOP`` (every run in ``OUT``) or ``OUT/NAME.STOP`` (this run only): created or touched
  while the run is going, it stops the run like Ctrl-C does. A STOP file older than the run's
  start is ignored, so a stale one does not stop the resumed run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.errors import DeepOxyMapError

__all__ = [
    "Checkpoint",
    "ProgressFile",
    "ResumeError",
    "StopRequest",
    "TrainingStopped",
    "arrays_sha256",
    "config_fingerprint",
    "stop_requests",
]

log = logging.getLogger(__name__)


class ResumeError(DeepOxyMapError):
    """A checkpoint cannot be resumed (missing, from another config or data, or unreadable)."""


class TrainingStopped(DeepOxyMapError):
    """The run was stopped before it had a model to save."""


def arrays_sha256(arrays: Sequence[NDArray[Any] | None]) -> str:
    """sha256 (hex) over the dtype, shape and bytes of each array (``None`` hashes as a marker)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        c = np.ascontiguousarray(a)
        h.update(f"{c.dtype.str}{c.shape};".encode())
        h.update(c.data.cast("B"))
    return h.hexdigest()


def config_fingerprint(config: dict[str, Any], data_sha256: str, manifest_sha256: str) -> str:
    """sha256 (hex) of a JSON-ready config dict plus the data's and manifest's hashes."""
    blob = json.dumps({"config": config, "data": data_sha256, "manifest": manifest_sha256}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# ----------------------------------------------------------------------------------- stop requests


@dataclass
class StopRequest:
    """Why the run was asked to stop (``reason`` is ``None`` while it was not).

    Attributes:
        reason: e.g. ``"SIGINT (Ctrl-C)"`` or ``"STOP file OUT/STOP"``.
        files: the STOP files that count (checked by :meth:`poll`).
        since: wall-clock time (``time.time()``) of the run's start; older STOP files are ignored.
    """

    files: tuple[Path, ...] = ()
    since: float = 0.0
    reason: str | None = None

    def poll(self) -> str | None:
        """The stop reason, checking the STOP files (one ``stat`` each)."""
        if self.reason is None:
            for f in self.files:
                try:
                    mtime = f.stat().st_mtime
                except OSError:
                    continue
                if mtime >= self.since:
                    self.reason = f"STOP file {f}"
                    break
        return self.reason

    def stale_files(self) -> list[Path]:
        """STOP files that exist but are older than the run (ignored)."""
        out = []
        for f in self.files:
            with contextlib.suppress(OSError):
                if f.stat().st_mtime < self.since:
                    out.append(f)
        return out


@contextlib.contextmanager
def stop_requests(req: StopRequest, say: Callable[[str], None]) -> Iterator[StopRequest]:
    """Turn the first SIGINT/SIGTERM into a stop request; a second one aborts (``KeyboardInterrupt``).

    Handlers are installed only in the main thread (``signal`` allows no other) and the previous
    handlers are restored on exit. In other threads only the STOP files count.
    """
    if threading.current_thread() is not threading.main_thread():
        yield req
        return
    names: dict[int, str] = {int(signal.SIGINT): "SIGINT (Ctrl-C)", int(signal.SIGTERM): "SIGTERM"}

    def handler(signum: int, frame: Any) -> None:
        if req.reason is not None:
            raise KeyboardInterrupt(f"second stop signal ({names.get(signum, signum)}): aborting now")
        req.reason = names.get(signum, str(signum))
        say(
            f"stop requested ({req.reason}): stopping after this batch, keeping the last completed epoch "
            "(press Ctrl-C again to abort at once)"
        )

    previous = {s: signal.getsignal(s) for s in names}
    for s in names:
        signal.signal(s, handler)
    try:
        yield req
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------------------- progress


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


class ProgressFile:
    """``OUT/NAME.progress.json``: a small JSON document a user or a tool can watch.

    Keys (all present in every write; unknown values are ``null``):
    ``status`` (``preparing`` | ``training`` | ``evaluating`` | ``stopped`` | ``done`` | ``failed``),
    ``phase``, ``epoch`` (completed epochs, 0-based count), ``epochs`` (the maximum),
    ``step`` / ``steps`` (batches done / per epoch, in the running epoch), ``fraction`` and
    ``percent`` of the maximum epochs (1.0 / 100 when done, also after early stopping),
    ``best_val_loss``, ``best_epoch`` (1-based), ``last`` (the last completed epoch's metrics),
    ``slices_per_s``, ``elapsed_s`` (fitting time over every session of the run), ``eta_s`` (an
    upper bound: the remaining epochs at the measured speed, capped by the wall-clock budget;
    early stopping may end sooner), ``resumed_from_epoch``, ``stop_reason``, ``model``,
    ``checkpoint``, ``pid``, ``updated`` (UTC, ISO 8601).
    """

    KEYS = (
        "status",
        "phase",
        "epoch",
        "epochs",
        "step",
        "steps",
        "fraction",
        "percent",
        "best_val_loss",
        "best_epoch",
        "last",
        "slices_per_s",
        "elapsed_s",
        "eta_s",
        "resumed_from_epoch",
        "stop_reason",
        "model",
        "checkpoint",
        "pid",
        "updated",
    )

    def __init__(self, path: Path, min_interval_s: float = 2.0) -> None:
        self.path = Path(path)
        self.min_interval_s = min_interval_s
        self.state: dict[str, Any] = dict.fromkeys(self.KEYS)
        self.state["pid"] = os.getpid()
        self._last_write = -np.inf

    def update(self, *, force: bool = False, **fields: Any) -> None:
        """Merge ``fields`` and rewrite the file (throttled unless ``force``)."""
        unknown = set(fields) - set(self.KEYS)
        if unknown:
            raise KeyError(f"unknown progress keys {sorted(unknown)}")
        self.state.update(fields)
        now = time.perf_counter()
        if not force and now - self._last_write < self.min_interval_s:
            return
        self.state["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.path, json.dumps(self.state, indent=1, default=_jsonable) + "\n")
        self._last_write = now


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


# -------------------------------------------------------------------------------------- checkpoint


class Checkpoint:
    """The resume checkpoint of one run: ``DIR/state.json`` + ``DIR/epoch-NNNN.npz``.

    ``state.json`` is written last and atomically, and names its array file, so a run killed
    while saving leaves the previous epoch's checkpoint intact.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def state_path(self) -> Path:
        """``DIR/state.json``."""
        return self.folder / "state.json"

    def exists(self) -> bool:
        """Whether a checkpoint is there."""
        return self.state_path.is_file()

    def read_state(self) -> dict[str, Any]:
        """The JSON state (raises :class:`ResumeError` when unreadable)."""
        try:
            state: dict[str, Any] = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as exc:
            raise ResumeError(
                f"cannot read the checkpoint state: {exc}",
                source=str(self.state_path),
                hint="pass --fresh to discard it and start again",
            ) from exc
        return state

    def save(self, state: dict[str, Any], arrays: dict[str, list[NDArray[Any]]]) -> None:
        """Write ``arrays`` (groups of arrays, e.g. ``model``, ``optimizer``, ``best``) then ``state``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{int(state['epoch']):04d}.npz"
        flat = {f"{g}__{i:05d}": a for g, group in arrays.items() for i, a in enumerate(group)}
        tmp = self.folder / f".{name}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **flat)  # type: ignore[arg-type]
        tmp.replace(self.folder / name)
        state = {**state, "arrays": name, "groups": {g: len(v) for g, v in arrays.items()}}
        _atomic_write_text(self.state_path, json.dumps(state, indent=1, default=_jsonable) + "\n")
        for f in self.folder.glob("epoch-*.npz"):
            if f.name != name:
                f.unlink(missing_ok=True)

    def load(self) -> tuple[dict[str, Any], dict[str, list[NDArray[Any]]]]:
        """``(state, arrays by group)``; raises :class:`ResumeError` when incomplete."""
        state = self.read_state()
        f = self.folder / str(state.get("arrays", ""))
        try:
            with np.load(f) as z:
                arrays = {g: [z[f"{g}__{i:05d}"] for i in range(int(n))] for g, n in state["groups"].items()}
        except (OSError, KeyError, ValueError) as exc:
            raise ResumeError(
                f"the checkpoint's arrays are missing or damaged: {exc}",
                source=str(f),
                hint="pass --fresh to discard the checkpoint and start again",
            ) from exc
        return state, arrays

    def remove(self) -> None:
        """Delete the checkpoint folder."""
        shutil.rmtree(self.folder, ignore_errors=True)
