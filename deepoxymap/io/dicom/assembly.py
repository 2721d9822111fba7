"""Step 3 (assembly): frames of many files -> one :class:`~deepoxymap.case.Series` per stack.

Frames are grouped by SeriesInstanceUID and in-plane geometry, clustered into
slices by ImagePositionPatient projected on the slice normal
(``ImageOrientationPatient`` row x column cosine), ordered by TriggerTime;
repeated acquisitions (same position and trigger time, different
AcquisitionTime) are split into separate stacks, slices sorted base to apex,
and only then are the pixels decoded straight into the float32 stack, each
file's raw Pixel Data released once its stack is built. A file that fails to
decode is reported and the stack is rebuilt without it.

Nothing is lost silently: every file ends in a series or in the problems.
Files sharing a SOPInstanceUID are compared (pixel data and placement): an
identical copy is an info line; a conflicting one is a warning naming both
files, and the later file is loaded as its own series (uid ``...#dupN``), never
dropped. Each stack is counted against ``max_frames`` / ``max_stack_bytes`` /
``max_load_bytes`` (:class:`~deepoxymap.io.limits.Budget`) before it is
allocated, and non-finite pixel values (NaN, infinity) are a warning naming
the file.

File names and InstanceNumber are only ever tie-breakers.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import UID

from deepoxymap.case import Geometry, Role, Series, Stack, robust_window, sort_base_to_apex
from deepoxymap.config import settings as current_settings
from deepoxymap.errors import CaseError, DeepOxyMapError, DicomReadError, GeometryError
from deepoxymap.io.dicom.frames import Frame
from deepoxymap.io.dicom.header import DicomHeader
from deepoxymap.io.dicom.inventory import DicomProblem, all_frames
from deepoxymap.io.dicom.pixels import FrameValues, decode_stored, monochrome1_window
from deepoxymap.io.dicom.values import dot, finite_float, iop_ok, tag_text
from deepoxymap.io.limits import Budget
from deepoxymap.io.roles import RoleEvidence, infer_role, parse_timepoint

__all__ = ["SLICE_TOL_MM", "DicomProblem", "assemble"]

log = logging.getLogger(__name__)

SLICE_TOL_MM = 0.1
"""Images whose positions along the slice normal differ by less than this (mm) are one slice."""

_IOP_TOL = 0.01  # direction-cosine difference (~0.6 deg) still counted as the same orientation


class _DecodeFailed(Exception):
    """Pixel data of some files of a stack could not be decoded."""

    def __init__(self, failed: dict[int, DeepOxyMapError]) -> None:
        super().__init__(f"{len(failed)} file(s) failed to decode")
        self.failed = failed


# ---------------------------------------------------------------------------
# grouping and clustering
# ---------------------------------------------------------------------------


def _get(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword, default)``, or ``default`` when the element cannot be converted (a corrupt VR or value)."""
    try:
        return ds.get(keyword, default)
    except Exception:  # noqa: BLE001 - pydicom converts raw elements lazily and raises many kinds
        return default


def _cluster(values: Sequence[float], tol: float) -> list[int]:
    """Cluster ids (in increasing value order) for 1D values, single linkage with ``tol``."""
    order = np.argsort(np.asarray(values, dtype=np.float64), kind="stable")
    ids = [0] * len(values)
    cid = -1
    prev = None
    for i in order:
        v = values[int(i)]
        if prev is None or v - prev > tol:
            cid += 1
        ids[int(i)] = cid
        prev = v
    return ids


def _has_geometry(fr: Frame) -> bool:
    return fr.ipp is not None and iop_ok(fr.iop) and fr.spacing is not None


def _same_plane(a: Frame, b: Frame) -> bool:
    """Orientations agree within :data:`_IOP_TOL` and pixel spacings within 0.1% (frames with geometry).

    Raises:
        GeometryError: either frame lacks orientation or pixel spacing.
    """
    if a.iop is None or b.iop is None or not a.spacing or not b.spacing:
        raise GeometryError("a frame without orientation or pixel spacing was grouped with geometry")
    if max(abs(x - y) for x, y in zip(a.iop, b.iop, strict=True)) > _IOP_TOL:
        return False
    return not any(abs(x - y) > 1e-3 * abs(y) for x, y in zip(a.spacing, b.spacing, strict=True))


def _geometry_groups(frames: list[Frame]) -> dict[tuple[str, bool, int], list[Frame]]:
    """Frames grouped by (SeriesInstanceUID, has geometry, in-plane geometry id).

    Frames share an in-plane geometry when their orientations agree within
    :data:`_IOP_TOL`, and rows, columns and pixel spacing (within 0.1%) are equal;
    a tolerance, not rounding, so that scanner jitter in the last digits of
    ImageOrientationPatient never splits a stack.
    """
    reps: dict[tuple[str, bool], list[Frame]] = defaultdict(list)
    out: dict[tuple[str, bool, int], list[Frame]] = defaultdict(list)
    for fr in frames:
        has = _has_geometry(fr)
        cands = reps[(fr.series_uid, has)]
        gid = -1
        for i, rep in enumerate(cands):
            if rep.rows != fr.rows or rep.cols != fr.cols:
                continue
            if has and not _same_plane(rep, fr):
                continue
            gid = i
            break
        if gid < 0:
            cands.append(fr)
            gid = len(cands) - 1
        out[(fr.series_uid, has, gid)].append(fr)
    return out


def _positions_on_normal(frames: Sequence[Frame]) -> list[float]:
    """ImagePositionPatient of each frame projected on the first frame's slice normal (mm).

    Raises:
        GeometryError: the first frame has no ImageOrientationPatient.
    """
    iop = frames[0].iop
    if iop is None:
        raise GeometryError("frames without ImageOrientationPatient cannot be placed along a slice normal")
    normal = np.cross(iop[:3], iop[3:])
    normal /= np.linalg.norm(normal)
    nrm = normal.tolist()
    return [dot(fr.ipp, nrm) for fr in frames]  # type: ignore[arg-type]


def _frame_sort_key(fr: Frame) -> tuple[Any, ...]:
    return (
        math.isnan(fr.trigger),
        0.0 if math.isnan(fr.trigger) else fr.trigger,
        fr.acq_time or 0.0,
        fr.instance,
        fr.file,
        fr.frame,
    )


def _split_acquisitions(frames: list[Frame], cluster_ids: list[int]) -> list[int]:
    """Acquisition rank of every frame.

    Within one slice position, images repeating a TriggerTime are later
    acquisitions when their AcquisitionTime (or AcquisitionNumber) tells them
    apart: the k-th earliest image of each (position, trigger time) pair goes
    to acquisition k. A slice whose TriggerTime is missing or constant while
    CardiacNumberOfImages > 1 is one cine (no split); repeats that no
    acquisition attribute separates stay frames of one stack.
    """
    by_cluster: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(cluster_ids):
        by_cluster[c].append(i)
    rank = [0] * len(frames)
    for idxs in by_cluster.values():
        finite = {round(frames[i].trigger, 2) for i in idxs if not math.isnan(frames[i].trigger)}
        if len(idxs) > 1 and len(finite) <= 1 and max(frames[i].cardiac_images for i in idxs) > 1:
            continue
        groups: dict[float, list[int]] = defaultdict(list)
        for i in idxs:
            if not math.isnan(frames[i].trigger):
                groups[round(frames[i].trigger, 2)].append(i)
        for g in groups.values():
            if len(g) < 2:
                continue
            distinct_time = len({frames[i].acq_time for i in g}) == len(g)
            distinct_number = len({frames[i].acq_number for i in g}) == len(g)
            if not (distinct_time or distinct_number):
                continue
            g.sort(
                key=lambda i: (
                    frames[i].acq_time or 0.0,
                    frames[i].acq_number,
                    frames[i].instance,
                    frames[i].file,
                    frames[i].frame,
                )
            )
            for r, i in enumerate(g):
                rank[i] = r
    return rank


# ---------------------------------------------------------------------------
# one stack
# ---------------------------------------------------------------------------


def _slice_ids(frames: list[Frame], has_geometry: bool) -> list[int]:
    """Slice cluster of every frame: position on the normal, else SliceLocation, else one slice per file.

    Without geometry and SliceLocation, files are ranked by (InstanceNumber, file index).
    """
    if has_geometry:
        return _cluster(_positions_on_normal(frames), SLICE_TOL_MM)
    if all(fr.slice_location is not None for fr in frames):
        return _cluster([fr.slice_location for fr in frames], SLICE_TOL_MM)  # type: ignore[misc]
    order = sorted(range(len(frames)), key=lambda i: (frames[i].instance, frames[i].file))
    file_rank: dict[int, int] = {}
    for i in order:
        file_rank.setdefault(frames[i].file, len(file_rank))
    return [file_rank[fr.file] for fr in frames]


def _group_slices(frames: list[Frame], cids: list[int]) -> list[list[Frame]]:
    """Frames per slice (in cluster order), each slice's frames sorted by trigger time."""
    by_slice: list[list[Frame]] = [[] for _ in range(max(cids) + 1)]
    for fr, c in zip(frames, cids, strict=True):
        by_slice[c].append(fr)
    return [sorted(s, key=_frame_sort_key) for s in by_slice if s]


def _warn_frame_order(
    uid: str, ds: Dataset, by_slice: list[list[Frame]], n_frames: int, headers: list[DicomHeader]
) -> list[DicomProblem]:
    """Warnings for trigger times missing or repeated within a slice and for ragged frame counts."""
    out: list[DicomProblem] = []
    first_name = headers[by_slice[0][0].file].name
    if n_frames > 1 and any(
        len(s) > 1 and len({round(fr.trigger, 2) for fr in s if not math.isnan(fr.trigger)}) < len(s) for s in by_slice
    ):
        out.append(
            DicomProblem(
                first_name,
                CaseError(
                    "TriggerTime (0018,1060) missing or repeated within a slice: those frames are ordered by "
                    "AcquisitionTime, then InstanceNumber",
                    source=first_name,
                ),
                "warning",
            )
        )
    if any(len(s) != n_frames for s in by_slice):
        counts = sorted({len(s) for s in by_slice})
        out.append(
            DicomProblem(
                first_name,
                CaseError(
                    f"series '{_get(ds, 'SeriesDescription', '') or uid}': slices have different frame counts {counts}; "
                    "missing frames repeat the slice's last frame (trigger time unknown)",
                    source=first_name,
                ),
                "warning",
            )
        )
    return out


def _stack_geometry(
    frames: list[Frame],
    by_slice: list[list[Frame]],
    ds: Dataset,
    has_geometry: bool,
    headers: list[DicomHeader],
    problems: list[DicomProblem],
) -> tuple[Geometry, list[list[Frame]]]:
    """Geometry of the slices and the slices reordered base -> apex.

    Without geometry the slice order is kept, the stack is flagged
    (:meth:`Geometry.without_geometry`, PixelSpacing or 1 mm) and a warning is
    appended to ``problems``.

    Raises:
        GeometryError: ``has_geometry`` but the first frame lacks orientation or spacing.
    """
    rows, cols = frames[0].rows, frames[0].cols
    if has_geometry:
        iop, sp = frames[0].iop, frames[0].spacing
        if sp is None or iop is None:
            raise GeometryError("frames grouped with geometry lack ImageOrientationPatient or PixelSpacing")
        geom = Geometry(
            np.array([s[0].ipp for s in by_slice], dtype=np.float64),
            np.asarray(iop[:3], dtype=np.float64),
            np.asarray(iop[3:], dtype=np.float64),
            sp,
            (rows, cols),
            frames[0].thickness,
            tag_text(ds, "FrameOfReferenceUID") or None,
        )
        order = sort_base_to_apex(geom)
        return geom.subset(order), [by_slice[i] for i in order]
    geom = Geometry.without_geometry(len(by_slice), (rows, cols), frames[0].spacing or (1.0, 1.0))
    names = [headers[fr.file].name for fr in frames]
    more = f" and {len(set(names)) - 1} more file(s)" if len(set(names)) > 1 else ""
    notes = sorted({fr.note for fr in frames if fr.note})
    why = f" ({'; '.join(notes[:3])})" if notes else ""
    problems.append(
        DicomProblem(
            names[0],
            DicomReadError(
                f"no usable ImagePositionPatient (0020,0032) / ImageOrientationPatient (0020,0037) / "
                f"PixelSpacing (0028,0030){more}{why}: loaded as a flagged no-geometry stack "
                "(viewable, cannot be slice-matched or resampled)",
                source=names[0],
            ),
            "warning",
        )
    )
    return geom, by_slice


@dataclass
class _Layout:
    """Where every frame of a stack goes.

    Attributes:
        trigger: ``[slice, frame]`` trigger times ms (NaN for repeated last frames or unknown).
        grid: ``[slice][frame]`` source names (``name#frame`` for multi-frame files).
        instance: ``[slice][frame]`` InstanceNumbers.
        window: the first file window ``(centre, width)`` found (MONOCHROME1 mirrored), or ``None``.
        targets: file index -> ``(slice, frame, frame in file)`` of each use of its frames.
    """

    trigger: NDArray[np.float64]
    grid: list[list[str]]
    instance: list[list[int]]
    window: tuple[float, float] | None
    targets: dict[int, list[tuple[int, int, int]]]


def _layout(by_slice: list[list[Frame]], n_frames: int, headers: list[DicomHeader]) -> _Layout:
    """Place frames on the ``[slice, frame]`` grid; a short slice repeats its last frame."""
    trig = np.full((len(by_slice), n_frames), np.nan)
    grid: list[list[str]] = []
    inst: list[list[int]] = []
    win = None
    targets: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for k, s in enumerate(by_slice):
        grid.append([])
        inst.append([])
        for j in range(n_frames):
            fr = s[min(j, len(s) - 1)]
            targets[fr.file].append((k, j, fr.frame))
            if j < len(s):
                trig[k, j] = fr.trigger
            h = headers[fr.file]
            grid[k].append(h.name if h.n_frames == 1 else f"{h.name}#{fr.frame}")
            inst[k].append(fr.instance if h.n_frames == 1 else fr.instance // 100000)
            if win is None and fr.window is not None:
                try:
                    win = monochrome1_window(h.ds, fr.window)
                except Exception:  # noqa: BLE001 - unreadable photometric attributes: no file window
                    win = None
    return _Layout(trig, grid, inst, win, targets)


def _decode_into(
    data: NDArray[np.float32], targets: dict[int, list[tuple[int, int, int]]], headers: list[DicomHeader]
) -> None:
    """Decode each target file once and write its frames' values into ``data`` ``[slice, frame, row, col]``.

    Values are converted frame by frame (:class:`~deepoxymap.io.dicom.pixels.FrameValues`),
    so a file's float64 temporaries stay one frame large.

    Raises:
        _DecodeFailed: some files could not be decoded (all files are tried first).
    """
    failed: dict[int, DeepOxyMapError] = {}
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 become inf: see _non_finite
        _decode_each(data, targets, headers, failed)
    if failed:
        raise _DecodeFailed(failed)


def _decode_each(
    data: NDArray[np.float32],
    targets: dict[int, list[tuple[int, int, int]]],
    headers: list[DicomHeader],
    failed: dict[int, DeepOxyMapError],
) -> None:
    """The loop of :func:`_decode_into`; files that fail go to ``failed``."""
    for f, where in targets.items():
        try:
            arr = decode_stored(headers[f])
            values = FrameValues(headers[f])
            done: dict[int, tuple[int, int]] = {}
            for k, j, i in where:
                if i in done:  # a short slice repeating its last frame
                    data[k, j] = data[done[i]]
                    continue
                data[k, j] = values(arr[i], i)
                done[i] = (k, j)
        except DeepOxyMapError as exc:
            failed[f] = exc
        except Exception as exc:  # noqa: BLE001 - one odd file must not take its stack down
            failed[f] = DicomReadError(
                f"pixel values could not be read ({type(exc).__name__}: {exc})", source=headers[f].name
            )


def _non_finite(
    data: NDArray[np.float32], targets: dict[int, list[tuple[int, int, int]]], headers: list[DicomHeader]
) -> list[DicomProblem]:
    """One warning per file whose values hold NaN or infinity (kept as they are; windows ignore them)."""
    if bool(np.isfinite(data).all()):
        return []
    out = []
    for f, where in targets.items():
        bad = sum(int(np.count_nonzero(~np.isfinite(data[k, j]))) for k, j, i in {(k, j, i) for k, j, i in where})
        if bad:
            name = headers[f].name
            out.append(
                DicomProblem(
                    name,
                    DicomReadError(
                        f"{bad} pixel value(s) are not finite (NaN or infinity): kept as they are, so "
                        "measurements over them are undefined",
                        source=name,
                    ),
                    "warning",
                )
            )
    return out


def _units_of(ds: Dataset) -> str:
    u = str(_get(ds, "Units", "") or "")
    rwvm = _get(ds, "RealWorldValueMappingSequence")
    if not u and rwvm:
        mu = _get(rwvm[0], "MeasurementUnitsCodeSequence")
        if mu:
            u = str(_get(mu[0], "CodeValue", "") or "")
    return "ms" if u.strip().lower() in ("ms", "msec", "millisecond", "milliseconds") else u


def _infer_stack_role(ds: Dataset, description: str, data: NDArray[np.float32]) -> tuple[Role, str, str]:
    """``(role, reason, stack units)`` from the header and, for values in ms, the median positive value."""
    protocol = str(_get(ds, "ProtocolName", "") or "")
    units = _units_of(ds)
    median = None
    if units == "ms":
        pos_vals = data[data > 0]
        median = float(np.median(pos_vals[:: max(1, pos_vals.size // 100_000)])) if pos_vals.size else None
    ev = RoleEvidence(
        description=description,
        protocol=protocol,
        image_type=tuple(str(x).upper() for x in (_get(ds, "ImageType") or [])),
        inversion_time_ms=finite_float(_get(ds, "InversionTime")),
        cardiac_number_of_images=int(finite_float(_get(ds, "CardiacNumberOfImages")) or 0) or None,
        n_slices=data.shape[0],
        n_frames=data.shape[1],
        units=units,
        median_value=median,
    )
    role, reason = infer_role(ev)
    stack_units = "ms" if role in (Role.T1_MAP, Role.T2_MAP) else ("" if units == "ms" else units)
    return role, reason, stack_units


_META_KEYS = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "SeriesNumber",
    "SeriesDescription",
    "ProtocolName",
    "SequenceName",
    "ScanningSequence",
    "CardiacNumberOfImages",
    "SliceThickness",
    "SpacingBetweenSlices",
)


def _meta(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in _META_KEYS:
        v = _get(ds, k)
        if v is None or v == "":
            continue
        if isinstance(v, pydicom.multival.MultiValue):
            v = [str(x) for x in v]
        elif isinstance(v, int | float):
            v = float(v) if isinstance(v, float) else int(v)
        else:
            v = str(v)
        out[k] = v
    out["ImageType"] = "\\".join(str(x) for x in (_get(ds, "ImageType") or []))
    sop = str(_get(ds, "SOPClassUID", "") or "")
    out["SOPClass"] = UID(sop).name if sop else ""
    out["TransferSyntax"] = UID(str(ds.file_meta.TransferSyntaxUID)).name
    return out


class _StackRefused(Exception):
    """A stack exceeds a limit (:meth:`~deepoxymap.io.limits.Budget.take_stack`): every file of it is reported."""

    def __init__(self, error: DeepOxyMapError) -> None:
        super().__init__(str(error))
        self.error = error


def _build_stack_series(
    uid: str,
    frames: list[Frame],
    headers: list[DicomHeader],
    has_geometry: bool,
    problems: list[DicomProblem],
    budget: Budget,
) -> Series:
    """One stack from the frames of one acquisition (pixels decoded straight into the stack).

    Raises:
        _DecodeFailed: some files' pixel data could not be decoded (the caller
            retries without them).
        _StackRefused: the stack exceeds a limit (nothing was allocated).
    """
    by_slice = _group_slices(frames, _slice_ids(frames, has_geometry))
    n_frames = max(len(s) for s in by_slice)
    rows, cols = frames[0].rows, frames[0].cols
    refused = budget.take_stack(headers[frames[0].file].name, len(by_slice), n_frames, rows, cols)
    if refused is not None:
        raise _StackRefused(refused)
    try:
        return _stack_series(uid, frames, by_slice, n_frames, headers, has_geometry, problems)
    except BaseException:
        budget.stack_bytes -= len(by_slice) * n_frames * rows * cols * 4  # not built: give the bytes back
        raise


def _stack_series(
    uid: str,
    frames: list[Frame],
    by_slice: list[list[Frame]],
    n_frames: int,
    headers: list[DicomHeader],
    has_geometry: bool,
    problems: list[DicomProblem],
) -> Series:
    """The body of :func:`_build_stack_series` once the stack's bytes are counted."""
    ds = headers[frames[0].file].ds
    problems.extend(_warn_frame_order(uid, ds, by_slice, n_frames, headers))
    geom, by_slice = _stack_geometry(frames, by_slice, ds, has_geometry, headers, problems)
    layout = _layout(by_slice, n_frames, headers)
    data = np.empty((len(by_slice), n_frames, frames[0].rows, frames[0].cols), dtype=np.float32)
    _decode_into(data, layout.targets, headers)
    problems.extend(_non_finite(data, layout.targets, headers))
    description = str(_get(ds, "SeriesDescription", "") or "")
    role, reason, units = _infer_stack_role(ds, description, data)
    acq_times = [fr.acq_time for fr in frames if fr.acq_time is not None]
    stack = Stack(
        data=data,
        geometry=geom,
        trigger_times=layout.trigger,
        role=role,
        units=units,
        timepoint=parse_timepoint(description),
        acquisition_time_s=min(acq_times) if acq_times else None,
        series_uid=uid,
        description=description,
        window=layout.window if layout.window is not None else robust_window(data),
    )
    meta = _meta(ds)
    meta["source_grid"] = tuple(tuple(r) for r in layout.grid)
    meta["instance_grid"] = tuple(tuple(r) for r in layout.instance)
    files = tuple(dict.fromkeys(headers[fr.file].name for s in by_slice for fr in s))
    return Series(uid, stack, role, reason, files, meta)


def _build_with_retries(
    uid: str,
    frames: list[Frame],
    headers: list[DicomHeader],
    has_geometry: bool,
    problems: list[DicomProblem],
    budget: Budget,
) -> Series | None:
    """Build a stack; files whose pixels fail to decode are reported and left out."""
    while frames:
        local: list[DicomProblem] = []
        try:
            series = _build_stack_series(uid, frames, headers, has_geometry, local, budget)
        except _DecodeFailed as exc:
            for f, err in exc.failed.items():
                problems.append(DicomProblem(headers[f].name, err, "error"))
            frames = [fr for fr in frames if fr.file not in exc.failed]
            continue
        problems.extend(local)
        for f in {fr.file for fr in frames}:
            h = headers[f]
            if h.n_frames == 1 and "PixelData" in h.ds:
                del h.ds.PixelData  # decoded: free the raw bytes early
        return series
    return None


# ---------------------------------------------------------------------------
# all files
# ---------------------------------------------------------------------------


def _named(err: DeepOxyMapError, name: str) -> DeepOxyMapError:
    """``err`` naming ``name`` when it names nothing (e.g. a GeometryError raised by the data model)."""
    if err.source:
        return err
    return type(err)(err.message, source=name, hint=err.hint)


def _report_stack(uid: str, sub: list[Frame], headers: list[DicomHeader], err: DeepOxyMapError) -> list[DicomProblem]:
    """The stack's error on its first file, and a line for every other file of it (none vanishes)."""
    names = list(dict.fromkeys(headers[fr.file].name for fr in sub))
    out = [DicomProblem(names[0], _named(err, names[0]), "error")]
    for n in names[1:]:
        out.append(
            DicomProblem(
                n,
                DicomReadError(f"not loaded: its stack '{uid}' was refused (see {names[0]})", source=n),
                "error",
            )
        )
    return out


def _build_or_report(
    uid: str,
    sub: list[Frame],
    headers: list[DicomHeader],
    has_geometry: bool,
    problems: list[DicomProblem],
    budget: Budget,
) -> Series | None:
    """:func:`_build_with_retries`; any failure of the stack is reported in ``problems``, never raised."""
    try:
        return _build_with_retries(uid, sub, headers, has_geometry, problems, budget)
    except _StackRefused as exc:
        problems.extend(_report_stack(uid, sub, headers, exc.error))
    except DeepOxyMapError as exc:
        problems.extend(_report_stack(uid, sub, headers, exc))
    except Exception as exc:  # one odd series must not stop the others (logged with its traceback)
        log.debug("series %s could not be assembled", uid, exc_info=True)
        err = CaseError(f"series {uid} could not be assembled ({type(exc).__name__}: {exc})")
        problems.extend(_report_stack(uid, sub, headers, err))
    return None


def assemble(headers: list[DicomHeader], *, budget: Budget | None = None) -> tuple[list[Series], list[DicomProblem]]:
    """Group, order, decode and stack DICOM files (see the module docstring).

    Stack uids are the SeriesInstanceUID, with ``#g`` (1-based) appended when a
    series holds several in-plane geometries (largest first) and ``#tA`` when
    it holds several acquisitions.

    Args:
        headers: the parsed files.
        budget: the load's running totals (stack limits); a new one from
            :func:`deepoxymap.config.settings` by default.

    Returns:
        ``(series, problems)``; every file that could not be used appears in
        problems with its reason.
    """
    budget = budget or Budget(current_settings())
    problems: list[DicomProblem] = []
    groups = _geometry_groups(all_frames(headers, problems))
    per_series: dict[str, list[tuple[str, bool, int]]] = defaultdict(list)
    for key in groups:
        per_series[key[0]].append(key)
    out: list[Series] = []
    for series_uid, keys in per_series.items():
        keys.sort(key=lambda k: -len(groups[k]))
        for g, key in enumerate(keys):
            group = groups[key]
            uid = series_uid + (f"#{g + 1}" if len(keys) > 1 else "")
            try:
                ranks = _acquisition_ranks(group, bool(key[1]))
            except Exception as exc:  # noqa: BLE001 - odd positions must not stop the other series
                problems.extend(
                    _report_stack(uid, group, headers, CaseError(f"series {uid} could not be ordered ({exc})"))
                )
                continue
            n_acq = max(ranks) + 1
            for a in range(n_acq):
                sub = [fr for fr, r in zip(group, ranks, strict=True) if r == a]
                built = _build_or_report(
                    uid + (f"#t{a + 1}" if n_acq > 1 else ""), sub, headers, bool(key[1]), problems, budget
                )
                if built is not None:
                    out.append(built)
    return out, problems


def _acquisition_ranks(group: list[Frame], has_geometry: bool) -> list[int]:
    """Acquisition rank of every frame of one geometry group (all 0 without geometry)."""
    if not has_geometry:
        return [0] * len(group)
    return _split_acquisitions(group, _cluster(_positions_on_normal(group), SLICE_TOL_MM))
