"""Cohort manifests -> slice tensors (via the shared preprocessing) -> ``tf.data`` pipelines.

A manifest is read by :func:`deepoxymap.cohort.read_manifest` (see docs/CONTRACTS.md). Each subject's
case is loaded (:func:`deepoxymap.cohort.load_case` by default) and turned into
slices by :func:`deepoxymap.model.preprocess.preprocess_case`, the same
function inference uses. Generated rows (``generate:<seed>:<index>``) are rendered
in memory with only the OS-CMR time points the spec reads (:func:`input_timepoints`;
``load_case(record, os_timepoints=...)``): no LGE/T1/T2 and no DICOM written and read
back, and the very tensors the DICOM round trip gives (tests/model/test_generated_in_memory.py). Results are cached per subject under
``<cache_dir>/<spec digest>/<subject>.npz`` so repeated runs (folds,
architectures) skip the DICOM decoding and LV localisation; an entry is used
only while the subject folder's files (paths, sizes, mtimes) are unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap import CLASSES
from deepoxymap.case import Case
from deepoxymap.cohort import GENERATED_PREFIX, SubjectRecord, load_case
from deepoxymap.model.augment import AugmentSpec, augment_batch
from deepoxymap.model.preprocess import PreprocessSpec, preprocess_case_offsets

log = logging.getLogger(__name__)

__all__ = [
    "SliceData",
    "build_slices",
    "input_timepoints",
    "make_dataset",
    "record_fingerprint",
    "subject_signature",
]


@dataclass(frozen=True, eq=False)
class SliceData:
    """Slice tensors of a cohort.

    Attributes:
        x: float32 ``[n, H, W, 3]`` model input.
        y: int64 ``[n]`` class index (the subject's label).
        subjects: subject id per slice.
        slice_index: source slice index per slice.
        x_frames: optional float32 ``[n, J, H, W, 3]``: the same slices at the
            frame offsets given to :func:`build_slices` (training-time temporal
            jitter); ``None`` when only the end-systolic frame was prepared.
    """

    x: NDArray[np.float32]
    y: NDArray[np.int64]
    subjects: list[str]
    slice_index: NDArray[np.int64]
    x_frames: NDArray[np.float32] | None = None

    def select(self, subject_ids: Sequence[str]) -> SliceData:
        """Slices of the given subjects only."""
        keep = set(subject_ids)
        m = np.array([s in keep for s in self.subjects], dtype=bool)
        return SliceData(
            self.x[m],
            self.y[m],
            [s for s, k in zip(self.subjects, m, strict=True) if k],
            self.slice_index[m],
            None if self.x_frames is None else self.x_frames[m],
        )

    def __len__(self) -> int:
        return int(self.x.shape[0])


def subject_signature(path: str | os.PathLike[str]) -> str:
    """Cache validity of a subject: sha1 of every file's relative path, size and mtime under its folder.

    A generated row (``generate:<seed>:<index>``) has no files: its signature is the
    path plus the phantom generator's version, so a changed generator re-renders it.
    """
    h = hashlib.sha1()
    if str(path).startswith(GENERATED_PREFIX):
        from deepoxymap.phantom.truth import GENERATOR

        h.update(f"{path}|{GENERATOR}".encode())
        return h.hexdigest()
    root = Path(path)
    if root.is_dir():
        for f in sorted(root.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def record_fingerprint(record: SubjectRecord) -> str:
    """What a subject's results depend on besides the model and the settings: its manifest row and files.

    sha256 of the record's fields (not its line number nor the extra columns), the
    :func:`subject_signature` of its path and the (path, size, mtime) of every mask file, so a
    per-subject result cache (``deepoxymap.parallel.ResultCache``) is invalidated when any of them changes.
    """
    import dataclasses

    from deepoxymap.parallel import fingerprint

    def sig(p: Path) -> str:
        if p.is_file():
            st = p.stat()
            return f"{p}|{st.st_size}|{st.st_mtime_ns}"
        return subject_signature(p)

    row = {k: v for k, v in dataclasses.asdict(record).items() if k not in ("line", "extra")}
    return fingerprint(row, sig(record.path), {k: sig(Path(v)) for k, v in sorted(record.masks.items())})


def input_timepoints(spec: PreprocessSpec) -> tuple[str, ...]:
    """The OS-CMR time points :func:`~deepoxymap.model.preprocess.preprocess_case` reads under ``spec``.

    ``spec.timepoint``, and for ``channels="dynamics"`` also ``spec.base_timepoint``
    (:func:`~deepoxymap.model.preprocess.select_stack`); what a generated row renders.
    """
    if spec.channels == "dynamics":
        return (spec.base_timepoint, spec.timepoint)
    return (spec.timepoint,)


def _cache_dirs(root: Path | None, spec: PreprocessSpec, offsets: Sequence[int]) -> dict[int, Path | None]:
    cdirs = {
        o: (root / (spec.digest() if o == 0 else f"{spec.digest()}_frame{o:+d}")) if root is not None else None
        for o in offsets
    }
    for d in cdirs.values():
        if d is not None:
            d.mkdir(parents=True, exist_ok=True)
    return cdirs


def _cached(cf: Path | None, sig: str) -> tuple[NDArray[np.float32], NDArray[np.int64]] | None:
    if cf is None or not cf.is_file():
        return None
    with np.load(cf) as z:
        if "signature" in z and str(z["signature"]) == sig:
            return z["x"], z["slice_index"]
    return None


def _prepare(
    rec: SubjectRecord,
    spec: PreprocessSpec,
    offsets: Sequence[int],
    cdirs: dict[int, Path | None],
    sig: str,
    loader: Callable[[Path], Case] | None,
) -> tuple[dict[int, NDArray[np.float32]], NDArray[np.int64]]:
    """One subject's tensors at every frame offset, from the cache or by loading and preprocessing (then cached)."""
    si = np.zeros(0, np.int64)
    xs: dict[int, NDArray[np.float32]] = {}
    files: dict[int, Path | None] = {}
    for o in offsets:
        d = cdirs[o]
        files[o] = d / f"{rec.subject}.npz" if d is not None else None
    missing = []
    for o in offsets:
        hit = _cached(files[o], sig)
        if hit is None:
            missing.append(o)
        else:
            xs[o], si = hit[0].astype(np.float32), hit[1]
    if missing:  # one load, one LV localisation for every missing offset
        case = loader(rec.path) if loader else load_case(rec, os_timepoints=input_timepoints(spec))
        for o, pre in preprocess_case_offsets(case, spec, missing).items():
            x, si = pre.x, np.asarray(pre.slice_indices, dtype=np.int64)
            cf = files[o]
            if cf is not None:
                tmp = cf.with_name(f"{cf.stem}.{os.getpid()}.tmp.npz")
                np.savez(tmp, x=x, slice_index=si, signature=np.array(sig))
                tmp.replace(cf)
            xs[o] = x.astype(np.float32)
    return xs, si.astype(np.int64)


def _fill_one(args: tuple[SubjectRecord, PreprocessSpec, list[int], dict[int, Path | None]]) -> str:
    """Worker: render or load one subject and write its cache entries (nothing returned but its id)."""
    rec, spec, offsets, cdirs = args
    _prepare(rec, spec, offsets, cdirs, subject_signature(rec.path), None)
    return rec.subject


def _fill_cache_parallel(
    records: Sequence[SubjectRecord],
    spec: PreprocessSpec,
    offsets: list[int],
    cdirs: dict[int, Path | None],
    jobs: int,
    verbose: bool,
) -> None:
    """Fill the cache of every record that misses it in ``jobs`` spawned worker processes (:class:`~deepoxymap.parallel.Pool`)."""
    from deepoxymap.parallel import Pool, TaskFailed

    todo = []
    for rec in records:
        sig = subject_signature(rec.path)
        if any(_cached(d / f"{rec.subject}.npz" if d else None, sig) is None for d in cdirs.values()):
            todo.append((rec, spec, offsets, cdirs))
    if not todo:
        return
    t0 = time.perf_counter()
    done = 0
    failed: list[str] = []

    def tick(i: int, res: object) -> None:
        nonlocal done
        done += 1
        if isinstance(res, TaskFailed):
            failed.append(f"{todo[i][0].subject}: {res.error}")
        if verbose and (done % 50 == 0 or done == len(todo)):
            log.info(
                "  prepared %d/%d subjects in %d workers (%.0f s)", done, len(todo), jobs, time.perf_counter() - t0
            )

    with Pool(jobs) as pool:
        pool.run(_fill_one, todo, on_result=tick)
    if failed:  # the serial pass below raises the first one with its full message
        log.warning("  %d subjects could not be prepared, e.g. %s", len(failed), failed[0])


def build_slices(
    records: Sequence[SubjectRecord],
    spec: PreprocessSpec,
    *,
    loader: Callable[[Path], Case] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    verbose: bool = True,
    frame_offsets: Sequence[int] = (0,),
    jobs: int = 1,
) -> SliceData:
    """Preprocess every subject's slices with :func:`preprocess_case` (cached).

    Args:
        records: manifest rows (generated rows are rendered on demand, in memory and only
            the OS-CMR time points the spec reads, see :mod:`deepoxymap.model.synthetic`).
        spec: the preprocessing spec.
        loader: ``path -> Case`` (default: :func:`deepoxymap.cohort.load_case` of the record,
            ``os_timepoints=input_timepoints(spec)``).
        cache_dir: cache root; ``None`` disables caching.
        frame_offsets: frame offsets from the end-systolic frame to prepare as
            well (``preprocess_case(..., frame_offset=o)``); when it holds more
            than ``0``, :attr:`SliceData.x_frames` stacks them in this order.
            ``x`` is always offset 0 (what inference sees).
        jobs: worker processes that fill the cache first (spawned; needs
            ``cache_dir`` and the default loader). The tensors are the same for any ``jobs``.
    """
    offsets = [int(o) for o in frame_offsets]
    if 0 not in offsets:
        offsets = [0, *offsets]
    root = Path(cache_dir) if cache_dir is not None else None
    cdirs = _cache_dirs(root, spec, offsets)
    if jobs > 1 and root is not None and loader is None and len(records) > 1:
        _fill_cache_parallel(records, spec, offsets, cdirs, jobs, verbose)
    per_offset: dict[int, list[NDArray[np.float32]]] = {o: [] for o in offsets}
    ys: list[NDArray[np.int64]] = []
    subs: list[str] = []
    idx: list[NDArray[np.int64]] = []
    t0 = time.perf_counter()
    for i, rec in enumerate(records):
        sig = subject_signature(rec.path) if root is not None else ""
        xs, si = _prepare(rec, spec, offsets, cdirs, sig, loader)
        for o in offsets:
            per_offset[o].append(xs[o])
        n = len(xs[0])
        ys.append(np.full(n, rec.y, dtype=np.int64))
        subs += [rec.subject] * n
        idx.append(si)
        if verbose and ((i + 1) % 20 == 0 or i + 1 == len(records)):
            log.info("  preprocessed %d/%d subjects (%.0f s)", i + 1, len(records), time.perf_counter() - t0)
    s = spec.input_size
    empty = np.zeros((0, s, s, 3), np.float32)
    x0 = np.concatenate(per_offset[0]) if records else empty
    x_frames = None
    if len(offsets) > 1:
        x_frames = np.stack([np.concatenate(per_offset[o]) if records else empty for o in offsets], axis=1)
    return SliceData(
        x0,
        np.concatenate(ys) if ys else np.zeros(0, np.int64),
        subs,
        np.concatenate(idx) if idx else np.zeros(0, np.int64),
        x_frames,
    )


def make_dataset(
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    batch_size: int,
    augment: AugmentSpec | None = None,
    shuffle: bool = False,
    seed: int = 0,
    n_classes: int = len(CLASSES),
    sample_weight: NDArray[np.float32] | None = None,
    x_frames: NDArray[np.float32] | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(x, one_hot(y)[, w])`` batches.

    Augmentation (training only) runs on whole batches after batching, so its
    cost is one vectorised op per batch; the pipeline prefetches one batch.
    With ``x_frames`` (``[n, J, H, W, 3]``, training only), every element draws
    one of its J frames at random each epoch instead of ``x`` (temporal jitter:
    the epoch keeps its size and cost).

    Every random draw (frame pick, rotation, flip) is a stateless op keyed by a
    per-element seed from ``tf.data.Dataset.random(seed)``, which yields a new
    stream each epoch. The parallel maps therefore give the same batches for
    the same ``seed`` in every run, whatever order their threads run in.
    """
    import tensorflow as tf

    onehot = np.eye(n_classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]
    first = x if x_frames is None else x_frames
    parts: tuple[Any, ...] = (first, onehot) if sample_weight is None else (first, onehot, sample_weight)
    ds = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle:
        ds = ds.shuffle(len(first), seed=seed, reshuffle_each_iteration=True)
    randomised = x_frames is not None or (augment is not None and augment.active)
    if not randomised:
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    # One int64 [2] key per element, a fresh stream per epoch.
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2, drop_remainder=True)
    ds = tf.data.Dataset.zip((ds, keys)).map(lambda t, k: (*t, k))
    if x_frames is not None:
        n_j = int(x_frames.shape[1])

        def _pick(*t: Any) -> Any:
            j = tf.random.stateless_uniform([], t[-1], 0, n_j, dtype=tf.int32)
            return (tf.gather(t[0], j), *t[1:])

        ds = ds.map(_pick, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size)
    aug = augment if augment is not None and augment.active else None

    def _aug(*t: Any) -> Any:
        # The batch's first key, offset so that it differs from the pick's key.
        images = t[0] if aug is None else augment_batch(t[0], aug, seed=t[-1][0] + 2)
        return (images, *t[1:-1])

    ds = ds.map(_aug, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
