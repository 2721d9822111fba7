"""One function over many items: in this process, in spawned worker processes, or on a Dask cluster.

The cohort commands (``predict``, ``evaluate``, ``audit``) and the training
cache fill (:func:`deepoxymap.model.data.build_slices`) all run their
per-subject work through :class:`Pool`:

* ``jobs == 1`` and no scheduler: in this process, in order (today's path);
* ``jobs > 1``: ``jobs`` worker processes started with the **spawn** method
  (a forked TensorFlow runtime is unsafe); each worker's TensorFlow gets
  ``cpu_count // jobs`` intra-op threads, so the workers do not oversubscribe
  the cores;
* ``scheduler="tcp://host:port"``: the tasks of a ``dask.distributed`` cluster
  (``Client(address)``; dask is imported only then).

A task is a picklable top-level function and one picklable argument. State
that is costly to build (a loaded model) is kept once per process with
:func:`process_local`, so every worker loads its model once for the whole run,
and the pool's workers live as long as the :class:`Pool` (several phases of
one run share them).

Failures: an exception raised by a task (a bad manifest row) becomes a
:class:`TaskFailed` in that task's result slot, so the other tasks still run; a
worker that dies (killed for memory) stops the run.

Resuming: with a :class:`ResultCache`, every successful result is written as
soon as it arrives, under a key the caller derives from everything the result
depends on (:func:`fingerprint`); an interrupted run computes only what is
missing when it is run again. Results are normalised through the cache's own
encoding (numpy scalars to Python numbers, tuples to lists, arrays kept), so a
result read back from the cache equals a freshly computed one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

__all__ = [
    "EXIT_SOME_FAILED",
    "MAX_DEFAULT_JOBS",
    "ModelRef",
    "Pool",
    "ResultCache",
    "RunStats",
    "TaskFailed",
    "add_parallel_arguments",
    "default_jobs",
    "file_sha256",
    "fingerprint",
    "jobs_from_args",
    "model_fingerprint",
    "name_row",
    "normalise",
    "process_local",
]

log = logging.getLogger(__name__)

EXIT_SOME_FAILED = 3
"""Exit code of ``predict``/``evaluate``/``audit`` when some manifest rows failed and the others ran."""

MAX_DEFAULT_JOBS = 4
"""Upper bound of :func:`default_jobs` (each worker holds a TensorFlow runtime and a model, ~1 GB)."""

_CACHE_FORMAT = 1


def default_jobs() -> int:
    """Worker processes used when ``--jobs`` is not given: the CPU count, at most :data:`MAX_DEFAULT_JOBS`.

    ``os.sched_getaffinity`` (the cores this process may use) where available, else ``os.cpu_count()``.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_DEFAULT_JOBS))


# ---------------------------------------------------------------------------
# per-process state
# ---------------------------------------------------------------------------

_LOCAL: dict[Any, Any] = {}
_LOCAL_LOCK = threading.Lock()


def process_local(key: Any, factory: Callable[[], Any]) -> Any:
    """The value kept under ``key`` in this process, built by ``factory()`` on first use (thread-safe).

    Workers use it to load their model once; the parent seeds it (:meth:`Pool.provide`) so that
    in-process tasks use the caller's objects.
    """
    with _LOCAL_LOCK:
        if key not in _LOCAL:
            _LOCAL[key] = factory()
        return _LOCAL[key]


def _init_worker(threads: int) -> None:
    """Spawned worker start-up: bound the numeric libraries' threads before TensorFlow is imported."""
    for var in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskFailed:
    """The result slot of a task that raised.

    Attributes:
        error: ``message`` of a :class:`deepoxymap.errors.DeepOxyMapError` (it names its source),
            else ``"ExceptionType: message"``.
        traceback: the formatted traceback (for logs, not for users).
    """

    error: str
    traceback: str = ""


def _call(fn: Callable[[Any], Any], arg: Any) -> Any:
    """Run one task; an exception becomes a :class:`TaskFailed` (runs in the worker)."""
    from deepoxymap.errors import DeepOxyMapError

    try:
        return fn(arg)
    except Exception as exc:  # noqa: BLE001 - one bad row must not stop the others; reported per row
        text = str(exc) if isinstance(exc, DeepOxyMapError) else f"{type(exc).__name__}: {exc}"
        return TaskFailed(text, traceback.format_exc())


def row_failures(errors: Sequence[Any], **extra: Any) -> list[dict[str, Any]]:
    """The :class:`deepoxymap.cohort.RowError` s of ``read_manifest_rows`` as failed rows
    (``subject``, ``line``, ``error`` and ``extra``), like the rows that failed while running."""
    return [
        {"subject": e.subject, "line": e.line, **extra, "error": name_row(e.line, e.subject or "?", e.message)}
        for e in errors
    ]


def name_row(line: int, subject: str, error: str) -> str:
    """``error`` led by the manifest row it belongs to: ``"line N, subject S: ..."`` (once, whatever the source said).

    ``line`` 0 (an in-memory case, no manifest): ``"subject S: ..."``.
    """
    where = f"line {line}, subject {subject}" if line else f"subject {subject}"
    for lead in (f"{where}: ", f"{subject}: "):
        if error.startswith(lead):
            error = error[len(lead) :]
            break
    return f"{where}: {error}"


@dataclass
class RunStats:
    """What one :meth:`Pool.run` did: indices of the tasks computed, read from the cache, and failed."""

    computed: list[int] = field(default_factory=list)
    cached: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


# ---------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------


def fingerprint(*parts: Any) -> str:
    """sha256 (hex) of the JSON of ``parts`` (keys sorted; paths, numpy values and other objects as text)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=default).encode()).hexdigest()


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of a file's bytes, remembered per (path, size, mtime) in this process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON-ready data, its numpy arrays moved into ``arrays`` (referenced by name)."""
    if isinstance(value, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"__array__": name}
    if isinstance(value, dict):
        return {str(k): _encode(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _decode(value: Any, arrays: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return np.asarray(arrays[value["__array__"]])
        return {k: _decode(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    return value


def normalise(value: Any) -> Any:
    """``value`` as it reads back from a :class:`ResultCache` (numpy scalars to Python, tuples to lists)."""
    arrays: dict[str, np.ndarray] = {}
    text = json.dumps(_encode(value, arrays))
    return _decode(json.loads(text), arrays)


class ResultCache:
    """Per-task results on disk: ``<root>/<name>-<key[:16]>.json`` (or ``.npz`` when they hold arrays).

    A ``.npz`` entry holds the arrays plus the JSON of the rest (``__json__``; no pickles).
    Writes are atomic (temporary file, then rename), so an interrupted run leaves no half entry.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @staticmethod
    def _safe(name: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "item"

    def paths(self, name: str, key: str) -> tuple[Path, Path]:
        """The ``.json`` and ``.npz`` paths of an entry."""
        stem = f"{self._safe(name)}-{key[:16]}"
        return self.root / f"{stem}.json", self.root / f"{stem}.npz"

    def get(self, name: str, key: str) -> tuple[bool, Any]:
        """``(True, value)`` for a stored entry whose full key matches, else ``(False, None)``."""
        pj, pz = self.paths(name, key)
        try:
            if pj.is_file():
                doc = json.loads(pj.read_text())
                if doc.get("key") == key and doc.get("format") == _CACHE_FORMAT:
                    return True, doc["value"]
            if pz.is_file():
                with np.load(pz, allow_pickle=False) as z:
                    doc = json.loads(str(z["__json__"]))
                    if doc.get("key") == key and doc.get("format") == _CACHE_FORMAT:
                        return True, _decode(doc["value"], {k: z[k] for k in z.files if k != "__json__"})
        except (OSError, ValueError, KeyError) as exc:  # a damaged entry is recomputed
            log.warning("cache entry %s unreadable (%s): recomputing", pj.stem, exc)
        return False, None

    def put(self, name: str, key: str, value: Any) -> Path:
        """Store ``value`` (JSON-ready data and numpy arrays) under ``name``/``key``; returns the file."""
        self.root.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        doc = json.dumps({"format": _CACHE_FORMAT, "key": key, "value": _encode(value, arrays)})
        pj, pz = self.paths(name, key)
        target = pz if arrays else pj
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        if arrays:
            buf = io.BytesIO()
            payload: dict[str, Any] = {"__json__": np.array(doc), **arrays}
            np.savez(buf, **payload)
            tmp.write_bytes(buf.getvalue())
        else:
            tmp.write_text(doc)
        tmp.replace(target)
        return target


@dataclass(frozen=True)
class ModelRef:
    """A picklable handle on a loaded model: tasks call :meth:`get` to have it in their process.

    In the parent (in-process tasks) it is the caller's own object (:meth:`Pool.provide_model`);
    a worker loads it from ``path`` once (``model.loading.load_model``, hash verified) and keeps
    it for every later task: one model per worker.

    Attributes:
        key: :func:`model_fingerprint` of the model.
        path: its ``.keras`` file (``None``: in-process only).
        spec: the preprocessing spec the tasks use (the caller's, which may differ from the card's).
    """

    key: str
    path: str | None
    spec: Any

    def get(self) -> Any:
        """The ``LoadedModel`` in this process."""
        return process_local(("model", self.key), self._load)

    def _load(self) -> Any:
        import dataclasses

        from deepoxymap.model.loading import load_model

        if self.path is None:
            raise RuntimeError("a worker needs the model's file: this model was not loaded from one")
        return dataclasses.replace(load_model(self.path), spec=self.spec)


def model_fingerprint(loaded: Any) -> str:
    """sha256 of a loaded model's file (else of its weights and layer names), with its preprocessing spec."""
    spec = loaded.spec.to_dict() if hasattr(loaded.spec, "to_dict") else repr(loaded.spec)
    path = getattr(loaded, "path", None)
    if path is not None and Path(path).is_file():
        return fingerprint("model-file", file_sha256(path), spec)
    h = hashlib.sha256()
    for w in loaded.model.weights:
        h.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return fingerprint("model-weights", h.hexdigest(), spec, [lyr.name for lyr in loaded.model.layers])


# ---------------------------------------------------------------------------
# the pool
# ---------------------------------------------------------------------------


class Pool:
    """Where tasks run: in process (``jobs=1``), in ``jobs`` spawned workers, or on a Dask scheduler.

    Use as a context manager; workers start on the first :meth:`run` and stop on exit.

    Args:
        jobs: worker processes (1: in this process). Ignored with ``scheduler``.
        scheduler: a ``dask.distributed`` scheduler address (e.g. ``tcp://10.0.0.5:8786``).
    """

    def __init__(self, jobs: int = 1, scheduler: str | None = None) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.jobs = int(jobs)
        self.scheduler = scheduler or None
        self._executor: Any = None
        self._client: Any = None
        self._provided: list[Any] = []

    @property
    def in_process(self) -> bool:
        """Whether tasks run in this process."""
        return self.jobs == 1 and self.scheduler is None

    @property
    def where(self) -> str:
        """Words for logs: ``"in process"``, ``"2 worker processes"`` or ``"Dask scheduler ADDRESS"``."""
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}"
        return "in process" if self.in_process else f"{self.jobs} worker processes"

    def provide(self, key: Any, value: Any) -> None:
        """Make ``value`` this process's :func:`process_local` ``key`` while the pool is open (in-process tasks)."""
        with _LOCAL_LOCK:
            _LOCAL[key] = value
        self._provided.append(key)

    def provide_model(self, loaded: Any) -> ModelRef:
        """A :class:`ModelRef` of ``loaded`` for this pool's tasks (in process: ``loaded`` itself).

        Raises:
            DeepOxyMapError: workers are used and the model has no file to load from.
        """
        ref = ModelRef(model_fingerprint(loaded), None, loaded.spec)
        path = getattr(loaded, "path", None)
        if path is not None:
            ref = ModelRef(ref.key, str(path), loaded.spec)
        elif not self.in_process:
            from deepoxymap.errors import DeepOxyMapError

            raise DeepOxyMapError("workers load the model from its file, and this model has none: use jobs=1")
        self.provide(("model", ref.key), loaded)
        return ref

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (or the Dask client; the cluster itself keeps running)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._client is not None:
            self._client.close()
            self._client = None
        with _LOCAL_LOCK:
            for k in self._provided:
                _LOCAL.pop(k, None)
        self._provided.clear()

    def _ensure(self) -> None:
        if self.scheduler and self._client is None:
            from dask.distributed import Client  # lazy: only a cluster run needs dask

            self._client = Client(self.scheduler, set_as_default=False)
        elif not self.scheduler and not self.in_process and self._executor is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            threads = max(1, (os.cpu_count() or 1) // self.jobs)
            self._executor = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=(threads,),
            )

    def _submit_all(self, fn: Callable[[Any], Any], args: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``(index, result)`` of every task as it completes."""
        if not args:
            return
        if self.in_process:
            for i, a in enumerate(args):
                yield i, _call(fn, a)
            return
        self._ensure()
        if self._client is not None:
            from dask.distributed import as_completed as dask_completed

            futs = [self._client.submit(_call, fn, a, pure=False) for a in args]
            index = {f.key: i for i, f in enumerate(futs)}
            try:
                for f in dask_completed(futs, loop=self._client.loop):
                    yield index[f.key], f.result()
            finally:
                for f in futs:
                    f.cancel()
            return
        from concurrent.futures import as_completed

        pending = {self._executor.submit(_call, fn, a): i for i, a in enumerate(args)}
        try:
            for f in as_completed(pending):
                yield pending[f], f.result()
        finally:
            for f in pending:
                f.cancel()

    def run(
        self,
        fn: Callable[[Any], Any],
        args: Sequence[Any],
        *,
        names: Sequence[str] | None = None,
        keys: Sequence[str | None] | None = None,
        cache: ResultCache | None = None,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> tuple[list[Any], RunStats]:
        """``fn(arg)`` for every arg; results in the order of ``args``.

        Args:
            fn: a picklable top-level function of one argument.
            args: picklable arguments, one per task.
            names, keys: with ``cache``: each task's entry name (e.g. the subject) and key
                (:func:`fingerprint` of everything its result depends on; ``None``: not cached).
            cache: where results are read from and written to as they arrive.
            on_result: ``on_result(index, result)`` as each task finishes (any order; cached ones first).

        Returns:
            ``(results, stats)``: a result or a :class:`TaskFailed` per task, and what was
            computed, read from the cache and failed.
        """
        n = len(args)
        names = list(names) if names is not None else [str(i) for i in range(n)]
        keys = list(keys) if keys is not None else [None] * n
        if len(names) != n or len(keys) != n:
            raise ValueError("names and keys must have one entry per task")
        results: list[Any] = [None] * n
        stats = RunStats()
        todo: list[int] = []
        for i in range(n):
            k = keys[i]
            hit, value = cache.get(names[i], k) if cache is not None and k is not None else (False, None)
            if hit:
                results[i] = value
                stats.cached.append(i)
                if on_result is not None:
                    on_result(i, value)
            else:
                todo.append(i)
        if todo:
            log.debug("%d tasks (%d cached) %s", len(todo), len(stats.cached), self.where)
        for j, res in self._submit_all(fn, [args[i] for i in todo]):
            i = todo[j]
            if isinstance(res, TaskFailed):
                stats.failed.append(i)
                log.debug("task %s failed: %s", names[i], res.traceback)
            else:
                res = normalise(res)
                k = keys[i]
                if cache is not None and k is not None:
                    cache.put(names[i], k, res)
                stats.computed.append(i)
            results[i] = res
            if on_result is not None:
                on_result(i, res)
        stats.computed.sort()
        stats.failed.sort()
        return results, stats


def _jobs(value: str) -> int:
    import argparse

    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def add_parallel_arguments(parser: Any) -> None:
    """``--jobs N``, ``--scheduler ADDRESS`` and ``--no-cache`` of the cohort commands (a parser or group)."""
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=None,
        help=f"worker processes, one model each (default: the CPU count, at most {MAX_DEFAULT_JOBS}; 1: in this process)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on this dask.distributed scheduler (e.g. tcp://host:8786) instead of local workers",
    )

    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute every subject (default: reuse the per-subject results under OUT/.cache)",
    )


def jobs_from_args(args: Any) -> int:
    """Parsed ``--jobs`` (unset: :func:`default_jobs`)."""
    return int(args.jobs) if getattr(args, "jobs", None) is not None else default_jobs()
