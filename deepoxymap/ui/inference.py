"""Model work shared by every session of one app server: a result cache per case content, one inference worker.

Three process-wide pieces keep the app usable when several people use it at once
on a small CPU server (issue 15, "the app under load"):

* :class:`SharedResults`: per-case results (preprocessed input, prediction, CAMs,
  matched panels, ...) keyed by a **content hash** of the case
  (:func:`case_key`) and the result's own key. A second session that asks for a
  result another session is computing waits for that computation instead of
  repeating it (single flight). Only a session that holds a case with exactly the
  same content (every pixel, geometry, label map and header field that the
  :class:`~deepoxymap.case.Case` carries) can reach its entries: the hash is
  blake2b-256, so holding the key means holding the case. Bounded: the
  :data:`MAX_CASES` most recently used cases are kept.
* :func:`run_model`: every TensorFlow call of the pages goes through one worker
  thread, so concurrent sessions take turns on the cores instead of thrashing
  them with parallel graphs (each call already uses every core).
* :func:`warm` / :func:`prefetch`: the shipped model is loaded and traced in the
  background when the server starts, and a newly opened case's Feature-maps work
  starts as soon as it is loaded.

No Streamlit session state is read here (background threads have none): callers
pass the case, the model path and the keys.
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import hashlib
import logging
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "MAX_CASES",
    "SharedResults",
    "case_key",
    "content_hash",
    "keep_keras_session",
    "prefetch",
    "results",
    "run_model",
    "settle_heap",
    "shared",
    "wait_idle",
    "warm",
]

T = TypeVar("T")
_LOG = logging.getLogger("deepoxymap.ui")

MAX_CASES = 8
"""Cases whose results the process keeps (least recently used dropped first)."""
MAX_ENTRIES_PER_CASE = 512
"""Results kept per case (oldest dropped first)."""


# ---------------------------------------------------------------------------
# content hash
# ---------------------------------------------------------------------------


def _feed(h: Any, obj: Any, depth: int = 0) -> None:
    """Feed ``obj``'s content into the hash ``h`` (type-tagged, so ``1`` and ``"1"`` differ)."""
    if depth > 40:
        raise ValueError("content_hash: nesting deeper than 40 levels")
    if obj is None or isinstance(obj, (bool, int, float, complex, str, enum.Enum)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        h.update(f"bytes:{len(b)};".encode())
        h.update(b)
    elif isinstance(obj, np.ndarray):
        h.update(f"nd:{obj.dtype.str}:{obj.shape};".encode())
        if obj.dtype.hasobject:
            for item in obj.reshape(-1):
                _feed(h, item, depth + 1)
        else:
            h.update(np.ascontiguousarray(obj).view(np.uint8).reshape(-1).data)
    elif isinstance(obj, np.generic):
        _feed(h, obj.item(), depth + 1)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"dc:{type(obj).__qualname__};".encode())
        for f in dataclasses.fields(obj):
            h.update(f"{f.name}=".encode())
            _feed(h, getattr(obj, f.name), depth + 1)
    elif isinstance(obj, Mapping):
        items = sorted(obj.items(), key=lambda kv: repr(kv[0]))
        h.update(f"map:{len(items)};".encode())
        for k, v in items:
            _feed(h, k, depth + 1)
            _feed(h, v, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        seq = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        h.update(f"{type(obj).__name__}:{len(seq)};".encode())
        for v in seq:
            _feed(h, v, depth + 1)
    elif isinstance(obj, Path):
        h.update(f"path:{obj};".encode())
    else:  # anything else a header may hold (pydicom values, ...): its type and repr
        h.update(f"obj:{type(obj).__qualname__}:{obj!r};".encode())


def content_hash(obj: Any) -> str:
    """blake2b-256 hex digest of ``obj``'s content: arrays by dtype, shape and bytes; dataclasses by field."""
    h = hashlib.blake2b(digest_size=32)
    _feed(h, obj)
    return h.hexdigest()


_KEYS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_KEYS_LOCK = threading.Lock()


def case_key(case: Any) -> str:
    """:func:`content_hash` of a case, computed once per case object (cases are immutable)."""
    with _KEYS_LOCK:
        got = _KEYS.get(case)
    if got is None:
        got = content_hash(case)
        with _KEYS_LOCK:
            _KEYS[case] = got
    return got


# ---------------------------------------------------------------------------
# shared results with single flight
# ---------------------------------------------------------------------------


class SharedResults:
    """A bounded, thread-safe ``(case key, result key) -> value`` store whose misses compute once.

    Values are shared between sessions: they must be treated as read-only.
    """

    def __init__(self, max_cases: int = MAX_CASES, max_entries: int = MAX_ENTRIES_PER_CASE) -> None:
        self.max_cases = int(max_cases)
        self.max_entries = int(max_entries)
        self._lock = threading.Lock()
        self._cases: OrderedDict[str, OrderedDict[Hashable, Any]] = OrderedDict()
        self._inflight: dict[tuple[str, Hashable], Future[Any]] = {}
        self.computed = 0
        """How many values were computed (misses that ran ``compute``)."""

    def get_or_compute(self, case: str, key: Hashable, compute: Callable[[], T]) -> T:
        """The stored value, else the one another thread is computing, else ``compute()`` (stored).

        An exception from ``compute`` is raised to every waiting caller and nothing is stored.
        A Streamlit control-flow interruption of the computing thread (a rerun, a stop) is not an
        error of the computation: the waiting callers then compute it themselves.
        """
        while True:
            with self._lock:
                entries = self._cases.get(case)
                if entries is not None and key in entries:
                    self._cases.move_to_end(case)
                    return entries[key]
                fut = self._inflight.get((case, key))
                owner = fut is None
                if fut is None:
                    fut = Future()
                    self._inflight[(case, key)] = fut
            if owner:
                return self._compute(case, key, compute, fut)
            try:
                return fut.result()
            except _Interrupted:
                continue  # the computing thread was interrupted: try again (maybe as the owner)

    def _compute(self, case: str, key: Hashable, compute: Callable[[], T], fut: Future[Any]) -> T:
        try:
            value = compute()
        except Exception as exc:
            with self._lock:
                self._inflight.pop((case, key), None)
            fut.set_exception(exc)
            raise
        except BaseException:
            with self._lock:
                self._inflight.pop((case, key), None)
            fut.set_exception(_Interrupted())
            raise
        with self._lock:
            entries = self._cases.setdefault(case, OrderedDict())
            self._cases.move_to_end(case)
            entries[key] = value
            while len(entries) > self.max_entries:
                entries.popitem(last=False)
            while len(self._cases) > self.max_cases:
                self._cases.popitem(last=False)
            self._inflight.pop((case, key), None)
            self.computed += 1
        fut.set_result(value)
        return value

    def peek(self, case: str, key: Hashable) -> Any:
        """A stored value or ``None`` (never computes, never waits)."""
        with self._lock:
            entries = self._cases.get(case)
            return None if entries is None else entries.get(key)

    def clear(self) -> None:
        """Forget every stored value (computations in flight finish for their callers)."""
        with self._lock:
            self._cases.clear()
            self.computed = 0

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._cases.values())


class _Interrupted(Exception):
    """Set on a future whose computing thread was interrupted by a non-error (BaseException)."""


_RESULTS = SharedResults()


def results() -> SharedResults:
    """The process's shared result store."""
    return _RESULTS


def shared(case: str, key: Hashable, compute: Callable[[], T]) -> T:
    """``results().get_or_compute(case, key, compute)``."""
    return _RESULTS.get_or_compute(case, key, compute)


# ---------------------------------------------------------------------------
# one inference worker
# ---------------------------------------------------------------------------

_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dox-inference")
_WORKER_THREAD: list[threading.Thread] = []


def _mark_worker() -> None:
    _WORKER_THREAD[:] = [threading.current_thread()]


_WORKER.submit(_mark_worker).result()


def run_model(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a model call (``fn(*args, **kwargs)``) on the inference worker and wait for its result.

    Calls from every session queue on one thread, in order; a call made on the worker itself
    runs at once. Exceptions are raised to the caller.
    """
    keep_keras_session()
    if _WORKER_THREAD and threading.current_thread() is _WORKER_THREAD[0]:
        return fn(*args, **kwargs)
    return _WORKER.submit(fn, *args, **kwargs).result()


def keep_keras_session() -> None:
    """Stop Streamlit from resetting Keras after every script run (once Keras is imported; idempotent).

    Streamlit's script runner calls ``keras.backend.clear_session()`` at the end of every
    run and fragment run (``_clean_problem_modules`` in
    ``streamlit/runtime/scriptrunner/script_runner.py``). In this app that costs a full
    garbage collection (~0.25 s with TensorFlow loaded) and TensorFlow's eager kernel cache
    on every slice change, and it resets Keras' global state while the shared model may be
    running another session's call. Only that caller is skipped; any other call of
    ``clear_session`` behaves as before.
    """
    keras = sys.modules.get("keras")
    if keras is None:
        return
    backend = getattr(keras, "backend", None)
    original = getattr(backend, "clear_session", None)
    if original is None or getattr(original, "_dox_keeps_session", False):
        return

    def clear_session(*args: Any, **kwargs: Any) -> Any:
        if sys._getframe(1).f_code.co_name == "_clean_problem_modules":
            return None
        return original(*args, **kwargs)

    clear_session._dox_keeps_session = True  # type: ignore[attr-defined]
    clear_session.__doc__ = original.__doc__
    backend.clear_session = clear_session


def settle_heap() -> None:
    """Collect, then freeze what is left (``gc.freeze``): the loaded libraries and model are never rescanned.

    With TensorFlow and the model loaded the heap holds ~450 000 objects and a full collection
    takes ~0.2 s; Streamlit runs one after every script run (``runner.postScriptGC``). Frozen
    objects stay alive (they are the process's modules and the shared model); objects made
    afterwards are collected as usual.
    """
    gc.collect()
    gc.freeze()


# ---------------------------------------------------------------------------
# background warm-up and prefetch
# ---------------------------------------------------------------------------


class _QuietBackground(logging.Filter):
    """Drops Streamlit's "missing ScriptRunContext" warning for this module's own threads.

    They call the pages' ``st.cache_resource`` model loader on purpose, outside any script run.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            threading.current_thread().name.startswith("dox-") and "missing ScriptRunContext" in record.getMessage()
        )


logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_QuietBackground())

_BACKGROUND = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dox-prefetch")
_WARMED: set[str] = set()
_PENDING: set[Future[Any]] = set()
_BG_LOCK = threading.Lock()


def _track(fut: Future[Any]) -> Future[Any]:
    with _BG_LOCK:
        _PENDING.add(fut)

    def done(f: Future[Any]) -> None:
        with _BG_LOCK:
            _PENDING.discard(f)
        if not f.cancelled() and (exc := f.exception()) is not None:
            _LOG.info("background model work failed: %s", exc)

    fut.add_done_callback(done)
    return fut


def warm(model_path: Path, job: Callable[[Path], Any]) -> Future[Any] | None:
    """Start ``job(model_path)`` (load and trace the model) in the background, once per path per process.

    Returns the job's future the first time, ``None`` after (or when there is no such file).
    """
    key = str(Path(model_path).resolve())
    with _BG_LOCK:
        if key in _WARMED or not Path(key).is_file():
            return None
        _WARMED.add(key)
    return _track(_BACKGROUND.submit(job, Path(key)))


def prefetch(job: Callable[[], Any]) -> Future[Any]:
    """Run ``job()`` (a case's Feature-maps work through :func:`shared`) in the background."""
    return _track(_BACKGROUND.submit(job))


def wait_idle(timeout: float | None = None) -> bool:
    """Wait until no background job is pending (tests and benchmarks); ``True`` if none is left."""
    import concurrent.futures as cf

    with _BG_LOCK:
        pending = list(_PENDING)
    if not pending:
        return True
    _, not_done = cf.wait(pending, timeout=timeout)
    return not not_done
