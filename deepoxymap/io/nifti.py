"""NIfTI (``.nii``, ``.nii.gz``) -> geometry-carrying series, via nibabel.

Geometry comes from the affine. NIfTI's world space is RAS; DICOM's (and
:class:`~deepoxymap.case.Geometry`'s) is LPS, so the affine is premultiplied by
``diag(-1, -1, 1, 1)``. Voxel ``(i, j, k, t)`` becomes pixel ``(row=i, col=j)``
of slice ``k``, frame ``t``: ``Stack.data = vol.transpose(2, 3, 0, 1)``. When the
affine's voxel sizes disagree with the header's ``pixdim`` (EMIDEC ships a unit
affine with 1.458 mm pixels), ``pixdim`` wins and a warning is recorded. An
affine (sform or qform) holding NaN or infinity, or singular, degrades to a
flagged no-geometry stack with a warning.

Bounded before expanded: the header (the first 540 bytes, decompressed alone)
gives the data shape and type; the decoded size is checked against
``max_image_bytes`` (and the upload's bytes) before the rest is read, and a
``.nii.gz`` is then inflated only up to the bytes the header needs, 1 MiB at a
time. Voxels are kept in their stored dtype (``Volume.data``) until they are
written, slice by slice and scaled by ``scl_slope``/``scl_inter``, into the
float32 stack. Non-finite voxel values are a warning.

2D, 3D and 4D images are read (4th axis = cine frames; trigger times from
``pixdim[4]`` when the time unit is set). Files named ``<stem>_sNN_FFFF.nii.gz``
(one 2D frame per file, the CineMyoPS layout) are assembled into one stack of
slices x frames; files named ``<stem>_sNN.nii.gz`` (one slice per file) into one
stack of slices. Slices are then ordered base to apex from their positions.

Label maps (role ``MASK``, units ``"label"``) are recognised by integer values
with few (<= 16) distinct non-negative labels, or by a file/folder name with
label/seg/mask/contour/gt in it *and* integer values.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Geometry, Role, Series, Stack, robust_window, sort_base_to_apex
from deepoxymap.config import Settings
from deepoxymap.errors import DeepOxyMapError, NiftiReadError
from deepoxymap.io.limits import Budget, image_too_large
from deepoxymap.io.roles import RoleEvidence, infer_role
from deepoxymap.io.sources import Entry, Inflater

__all__ = ["MAX_LABELS", "RAS_TO_LPS", "load_entries", "read_volume"]

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Premultiply a NIfTI (RAS) affine by this to get DICOM patient coordinates (LPS)."""

MAX_LABELS = 16
"""An integer image with at most this many distinct values (>= 0) is taken as a label map."""

_FRAME_FILE = re.compile(r"^(?P<stem>.+)_s(?P<slice>\d+)_(?P<frame>\d+)\.nii(?:\.gz)?$", re.IGNORECASE)
_SLICE_FILE = re.compile(r"^(?P<stem>.+)_s(?P<slice>\d+)\.nii(?:\.gz)?$", re.IGNORECASE)
_LABEL_NAME = re.compile(r"(?<![a-z])(labels?|segs?|segmentations?|masks?|contours?|gt|manual)(?![a-z])", re.IGNORECASE)

Problem = tuple[str, DeepOxyMapError, str]


_HEADER_BYTES = 540  # a NIfTI-2 header; NIfTI-1 needs 348
_SAMPLE = 100_003  # values looked at first by the label heuristics (a prime stride)


@dataclass
class Volume:
    """One NIfTI file.

    Attributes:
        name: display name.
        data: ``(X, Y, Z, T)`` array in the file's stored dtype (unscaled).
        affine: 4x4 voxel ``(i, j, k)`` -> LPS mm (meaningless when not ``has_geometry``).
        frame_ms: time between frames in ms, or ``None``.
        is_label: label-map heuristics matched.
        label_reason: why.
        scale: ``(scl_slope, scl_inter)`` to apply to ``data``, or ``None`` (identity).
        has_geometry: the affine is finite and invertible.
        spacing: ``(row, col)`` mm from ``pixdim`` (1 mm where not positive), for no-geometry stacks.
    """

    name: str
    data: NDArray[Any]
    affine: NDArray[np.float64]
    frame_ms: float | None
    is_label: bool
    label_reason: str
    scale: tuple[float, float] | None = None
    has_geometry: bool = True
    spacing: tuple[float, float] = (1.0, 1.0)


def _header(head: bytes, name: str) -> Any:
    """The nibabel header (NIfTI-1 or NIfTI-2) of the first bytes of a file.

    Raises:
        NiftiReadError: too short, or not a readable NIfTI header.
    """
    import nibabel as nib

    if len(head) < 348:
        raise NiftiReadError(f"too short for a NIfTI header ({len(head)} bytes)", source=name)
    n2 = 540 in (int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big"))
    klass = nib.Nifti2Header if n2 else nib.Nifti1Header
    size = klass.template_dtype.itemsize
    if len(head) < size:
        raise NiftiReadError(f"too short for a NIfTI-2 header ({len(head)} bytes)", source=name)
    try:
        return klass(head[:size], check=True)
    except Exception as exc:  # nibabel raises many kinds on bad headers
        raise NiftiReadError(f"not a readable NIfTI image ({type(exc).__name__}: {exc})", source=name) from exc


def _declared(hdr: Any, name: str, settings: Settings) -> int:
    """Bytes the file must hold (data offset + voxels), checked against ``max_image_bytes`` from the header alone.

    Raises:
        NiftiReadError: not 2D-4D, an empty dimension, an unsupported voxel
            type, or a decoded size over the limit.
    """
    try:
        shape = tuple(int(d) for d in hdr.get_data_shape())
        dtype = np.dtype(hdr.get_data_dtype())
        offset = int(hdr.get_data_offset())
    except Exception as exc:
        raise NiftiReadError(f"not a readable NIfTI image ({type(exc).__name__}: {exc})", source=name) from exc
    if len(shape) < 2 or len(shape) > 4:
        raise NiftiReadError(f"has {len(shape)} dimensions {shape}; 2D, 3D or 4D expected", source=name)
    if min(shape) < 1:
        raise NiftiReadError(f"has an empty dimension {shape}", source=name)
    if dtype.kind not in "iufb" or dtype.fields is not None:
        raise NiftiReadError(f"has unsupported voxel type {dtype}", source=name)
    n_values = math.prod(shape)
    what = f"{' x '.join(map(str, shape))} voxels of {dtype.name}"
    refused = image_too_large(n_values, dtype.itemsize, settings, name=name, what=what, error=NiftiReadError)
    if refused is not None:
        raise refused
    return max(offset, 0) + n_values * dtype.itemsize


def _file_bytes(entry: Entry, settings: Settings, budget: Budget | None) -> tuple[bytes, Any]:
    """``(bytes up to the end of the voxel data, header)``, decompressing only what the header declares.

    Raises:
        NiftiReadError: unreadable, corrupt or truncated gzip, an invalid
            header, an image over ``max_image_bytes``, more bytes than the
            upload has left, or a file shorter than its header declares.
    """
    name = entry.name
    try:
        if entry.head(2) != b"\x1f\x8b":
            if name.lower().endswith(".gz"):
                raise NiftiReadError("named .nii.gz but is not gzip-compressed", source=name)
            hdr = _header(entry.head(_HEADER_BYTES), name)
            need = _declared(hdr, name, settings)
            if entry.size < need:
                raise NiftiReadError(
                    f"file is truncated: its header declares {need} bytes, the file holds {entry.size}", source=name
                )
            return entry.read(), hdr
        packed = entry.read()
    except OSError as exc:
        raise NiftiReadError(f"could not be read ({exc})", source=name) from exc
    try:
        inflater = Inflater(packed, 16 + zlib.MAX_WBITS)
        head = inflater.read(_HEADER_BYTES)
        if len(head) < 348 and not inflater.eof:
            raise NiftiReadError("gzip data is truncated (the file ends early)", source=name)
        hdr = _header(head, name)
        need = _declared(hdr, name, settings)
        extra = need - len(packed)
        if budget is not None and extra > budget.bytes_left:
            raise budget.too_many_bytes(name, need)
        raw = head[:need] + inflater.read(max(need - len(head), 0))
    except zlib.error as exc:
        raise NiftiReadError(f"corrupt gzip data ({exc})", source=name) from exc
    except DeepOxyMapError as exc:
        raise NiftiReadError(exc.message, source=name, hint=exc.hint) from exc
    if len(raw) < need:
        raise NiftiReadError("gzip data is truncated (the file ends early)", source=name)
    if budget is not None:
        budget.bytes += max(len(raw) - len(packed), 0)
    return raw, hdr


def _affine_ok(affine: NDArray[np.float64]) -> str:
    """Why an affine cannot place voxels (``""`` when it can)."""
    if not np.all(np.isfinite(affine)):
        return "holds NaN or infinity"
    m = affine[:3, :3]
    if np.any(np.linalg.norm(m, axis=0) < 1e-6) or abs(float(np.linalg.det(m))) < 1e-12:
        return "is singular (a zero voxel axis)"
    return ""


_nib_lock = threading.Lock()
_nib_depth = 0
_nib_level = 0


@contextlib.contextmanager
def _quiet_nibabel() -> Iterator[None]:
    """Mute nibabel's global logger while reading (re-entrant; process-global, like ``quiet_pydicom``).

    nibabel prints the fixes it makes to odd headers ("pixdim[1,2,3] should be
    positive") on stderr, without the file's name; what matters to the user is
    in the load report instead.
    """
    global _nib_depth, _nib_level
    logger = logging.getLogger("nibabel.global")
    with _nib_lock:
        if _nib_depth == 0:
            _nib_level = logger.level
            logger.setLevel(logging.CRITICAL + 1)
        _nib_depth += 1
    try:
        yield
    finally:
        with _nib_lock:
            _nib_depth -= 1
            if _nib_depth == 0:
                logger.setLevel(_nib_level)


def read_volume(entry: Entry, settings: Settings, budget: Budget | None = None) -> tuple[Volume, list[Problem]]:
    """Read one NIfTI entry (see the module docstring for the bounds).

    Args:
        entry: the file.
        settings: the limits (``max_image_bytes``).
        budget: the load's running totals (bytes after decompression), if any.

    Raises:
        NiftiReadError: unreadable, truncated, corrupt, too large, or not 2D-4D.
    """
    with _quiet_nibabel():
        return _read_volume(entry, settings, budget)


def _read_volume(entry: Entry, settings: Settings, budget: Budget | None) -> tuple[Volume, list[Problem]]:
    import nibabel as nib

    name = entry.name
    warnings_: list[Problem] = []
    if entry.size == 0:
        raise NiftiReadError("file is empty (0 bytes)", source=name)
    raw, hdr = _file_bytes(entry, settings, budget)
    klass = nib.Nifti2Image if isinstance(hdr, nib.Nifti2Header) else nib.Nifti1Image
    try:
        img = klass.from_bytes(raw)
        proxy: Any = img.dataobj  # an ArrayProxy: the stored values, unscaled
        arr = np.asanyarray(proxy.get_unscaled())
        zooms = tuple(float(z) for z in img.header.get_zooms())
        t_unit = img.header.get_xyzt_units()[1]
        slope, inter = hdr.get_slope_inter()  # from the file's header: nibabel clears the loaded image's
    except Exception as exc:  # nibabel raises many kinds on bad input
        raise NiftiReadError(f"not a readable NIfTI image ({type(exc).__name__}: {exc})", source=name) from exc
    try:
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception:  # noqa: BLE001 - a qform that cannot be computed: no geometry
        affine = np.full((4, 4), np.nan)
    del raw, img
    if arr.ndim < 2 or arr.ndim > 4:
        raise NiftiReadError(f"has {arr.ndim} dimensions {arr.shape}; 2D, 3D or 4D expected", source=name)
    if arr.dtype.kind not in "iufb":
        raise NiftiReadError(f"has unsupported voxel type {arr.dtype}", source=name)
    while arr.ndim < 4:
        arr = arr[..., None]
    scale = None if slope is None or (slope == 1.0 and not inter) else (float(slope), float(inter or 0.0))
    z3 = np.array([(zooms + (1.0, 1.0, 1.0))[i] for i in range(3)])
    spacing = (float(z3[0]), float(z3[1])) if np.all(np.isfinite(z3[:2])) and np.all(z3[:2] > 0) else (1.0, 1.0)
    with np.errstate(invalid="ignore", over="ignore"):  # a non-finite affine is reported below, not warned about
        aff = RAS_TO_LPS @ affine
    bad = _affine_ok(aff)
    if bad:
        warnings_.append((name, NiftiReadError(_no_geometry_message(bad), source=name), "warning"))
    else:
        _trust_pixdim(name, aff, z3, warnings_)
    frame_ms = None
    if arr.shape[3] > 1 and len(zooms) > 3 and zooms[3] > 0:
        frame_ms = {"sec": 1000.0, "msec": 1.0, "usec": 1e-3}.get(t_unit or "", None)
        frame_ms = None if frame_ms is None else zooms[3] * frame_ms
    is_label, reason = _label_heuristics(name, arr) if scale is None else (False, "")
    return Volume(name, arr, aff, frame_ms, is_label, reason, scale, not bad, spacing), warnings_


def _no_geometry_message(why: str) -> str:
    return (
        f"affine (sform/qform) {why}: loaded as a flagged no-geometry stack "
        "(viewable, cannot be slice-matched or resampled)"
    )


def _trust_pixdim(name: str, aff: NDArray[np.float64], z3: NDArray[np.float64], warnings_: list[Problem]) -> None:
    """Voxel sizes: where the affine's disagree with ``pixdim``, rescale ``aff``'s axes (in place) and warn."""
    norms = np.linalg.norm(aff[:3, :3], axis=0)
    if np.all(np.isfinite(z3)) and np.all(z3 > 0) and np.any(np.abs(norms - z3) > 0.01 * z3):
        aff[:3, :3] = aff[:3, :3] / np.where(norms > 0, norms, 1.0) * z3
        warnings_.append(
            (
                name,
                NiftiReadError(
                    f"affine voxel sizes {np.round(norms, 3).tolist()} disagree with pixdim "
                    f"{np.round(z3, 3).tolist()} mm; pixdim used",
                    source=name,
                ),
                "warning",
            )
        )


def _label_heuristics(name: str, arr: NDArray[Any]) -> tuple[bool, str]:
    """Whether ``arr`` (stored values) is a label map, and why; a sample is looked at before the whole."""
    if arr.dtype.kind == "b":
        return True, "boolean image"
    flat = arr.ravel(order="K")
    sample = flat[:: max(1, flat.size // _SAMPLE)]
    hint = _LABEL_NAME.search(name)
    for part in (sample, flat):
        if arr.dtype.kind == "f" and (not np.all(np.isfinite(part)) or not np.array_equal(part, np.round(part))):
            return False, ""
        if part is sample and not hint and np.unique(part).size > MAX_LABELS:
            return False, ""
    vals = np.unique(flat)
    if vals.size == 0 or vals.min() < 0:
        return False, ""
    if vals.size <= MAX_LABELS:
        return True, f"integer label map with {vals.size} values {vals.astype(int).tolist()}"
    if hint:
        return True, f"integer values and '{hint.group(0)}' in the name"
    return False, ""


def _scaled(v: Volume, a: NDArray[Any]) -> NDArray[Any]:
    """``a`` (stored values of ``v``) after ``scl_slope``/``scl_inter`` (float32; unchanged without scaling)."""
    if v.scale is None:
        return a
    out = a.astype(np.float32)
    out *= v.scale[0]
    out += v.scale[1]
    return out


def _stack_from(
    vol_slices: list[tuple[NDArray[np.float64], NDArray[Any]]],
    frame_ms: float | None,
    *,
    has_geometry: bool = True,
    spacing: tuple[float, float] = (1.0, 1.0),
    scale: tuple[float, float] | None = None,
) -> tuple[Geometry, NDArray[np.float32], NDArray[np.float64]]:
    """Geometry and float32 ``[slice, frame, row, col]`` data from per-slice ``(affine, [frame, X, Y])`` pairs.

    The slices (any dtype, views are fine) are written one at a time, in base
    -> apex order, into the float32 stack and scaled there by ``scale``
    (``(slope, intercept)``); no other full-size copy is made. Without
    geometry, slices keep their order and the stack is flagged.

    Raises:
        GeometryError: the affines cannot place the slices.
    """
    shape = vol_slices[0][1].shape[1:]
    n = len(vol_slices)
    if has_geometry:
        aff0 = vol_slices[0][0]
        origins = np.stack([a[:3, 3] for a, _ in vol_slices])
        g = Geometry.from_affine(aff0, shape, 1)
        thick = float(np.linalg.norm(aff0[:3, 2]))
        geom = Geometry(origins, g.row_cosine, g.col_cosine, g.pixel_spacing, shape, thick)
        order = sort_base_to_apex(geom)
        geom = geom.subset(order)
    else:
        geom = Geometry.without_geometry(n, shape, spacing)
        order = list(range(n))
    n_f = vol_slices[0][1].shape[0]
    data = np.empty((n, n_f, *shape), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported by _non_finite
        for dst, src in enumerate(order):
            data[dst] = vol_slices[src][1]
            if scale is not None:
                data[dst] *= scale[0]
                data[dst] += scale[1]
    trig = np.broadcast_to(np.arange(n_f) * frame_ms if frame_ms else np.full(n_f, np.nan), (n, n_f))
    return geom, data, np.array(trig, dtype=np.float64)


def _series(
    uid: str,
    description: str,
    files: tuple[str, ...],
    geom: Geometry,
    data: NDArray[np.float32],
    trig: NDArray[np.float64],
    is_label: bool,
    label_reason: str,
) -> Series:
    ev = RoleEvidence(
        description=description,
        n_slices=data.shape[0],
        n_frames=data.shape[1],
        is_label_map=is_label,
        label_reason=label_reason,
    )
    role, reason = infer_role(ev)
    fdata = np.asarray(data, dtype=np.float32)
    if role == Role.MASK:
        hi = float(np.nanmax(fdata)) if fdata.size else 1.0
        window = (hi / 2.0, max(hi, 1.0))
        units = "label"
    else:
        window = robust_window(fdata)
        units = ""
    stack = Stack(fdata, geom, trig, role=role, units=units, series_uid=uid, description=description, window=window)
    meta = {"format": "NIfTI", "source_grid": tuple((f,) for f in files) if len(files) == data.shape[0] else ()}
    return Series(uid, stack, role, reason, files, meta)


def _non_finite(data: NDArray[np.float32], name: str, more: str = "") -> list[Problem]:
    """A warning when the stack holds NaN or infinity (stored, or from scl_slope/scl_inter), else nothing."""
    n_bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if not n_bad:
        return []
    message = (
        f"{n_bad} voxel value(s){more} are not finite (NaN or infinity): kept as they are, so "
        "measurements over them are undefined"
    )
    return [(name, NiftiReadError(message, source=name), "warning")]


def _group_of(v: Volume) -> tuple[tuple[str, str, str], int, int] | None:
    """``((folder, stem, kind), slice, frame)`` of a one-image-per-file name, or ``None``."""
    p = PurePosixPath(v.name.replace("\\", "/"))
    flat = v.data.shape[2] == 1 and v.data.shape[3] == 1
    m = _FRAME_FILE.match(p.name) if flat else None
    if m:
        return (str(p.parent), m["stem"], "frames"), int(m["slice"]), int(m["frame"])
    m = _SLICE_FILE.match(p.name) if v.data.shape[2] == 1 else None
    if m:
        return (str(p.parent), m["stem"], "slices"), int(m["slice"]), 0
    return None


def _each_file(files: list[str], gname: str, message: str) -> list[Problem]:
    """One error per file of a group that could not be assembled (none vanishes)."""
    return [(f, NiftiReadError(f"{message} (stack {gname})", source=f), "error") for f in files]


def _single(v: Volume, budget: Budget | None, problems: list[Problem]) -> Series | None:
    """The stack of one 2D-4D file (no-geometry with a warning if its affine cannot place the slices)."""
    n_x, n_y, n_z, n_t = v.data.shape
    if budget is not None:
        refused = budget.take_stack(v.name, n_z, n_t, n_x, n_y)
        if refused is not None:
            problems.append((v.name, refused, "error"))
            return None
    per_slice = []
    for k in range(n_z):
        a = v.affine.copy()
        a[:3, 3] = v.affine[:3, 3] + k * v.affine[:3, 2]
        per_slice.append((a, np.moveaxis(v.data[:, :, k, :], 2, 0)))
    kw = {"spacing": v.spacing, "scale": v.scale}
    try:
        geom, data, trig = _stack_from(per_slice, v.frame_ms, has_geometry=v.has_geometry, **kw)  # type: ignore[arg-type]
    except DeepOxyMapError as exc:
        problems.append(
            (
                v.name,
                NiftiReadError(_no_geometry_message(f"cannot place the slices ({exc.message})"), source=v.name),
                "warning",
            )
        )
        geom, data, trig = _stack_from(per_slice, v.frame_ms, has_geometry=False, **kw)  # type: ignore[arg-type]
    problems.extend(_non_finite(data, v.name))
    stem = re.sub(r"\.nii(\.gz)?$", "", PurePosixPath(v.name).name, flags=re.IGNORECASE)
    return _series(f"nifti:{v.name}", stem, (v.name,), geom, data, trig, v.is_label, v.label_reason)


def _grouped(
    key: tuple[str, str, str], members: list[tuple[int, int, Volume]], budget: Budget | None, problems: list[Problem]
) -> Series | None:
    """One stack of ``<stem>_sNN[_FFFF]`` files (slices by number, placed by their affines)."""
    parent, stem, kind = key
    gname = f"{parent}/{stem}_s*" + ("_*" if kind == "frames" else "")
    names = [m[2].name for m in members]
    shapes = {m[2].data.shape for m in members}
    if len(shapes) != 1:
        problems.extend(
            _each_file(names, gname, f"files of one stack have different shapes {sorted(shapes)}; not assembled")
        )
        return None
    by_slice: dict[int, list[tuple[int, Volume]]] = defaultdict(list)
    for s, f, v in members:
        by_slice[s].append((f, v))
    counts = {len(x) for x in by_slice.values()}
    if len(counts) != 1:
        problems.extend(_each_file(names, gname, f"slices have different frame counts {sorted(counts)}; not assembled"))
        return None
    n_x, n_y = next(iter(shapes))[:2]
    if budget is not None:
        refused = budget.take_stack(names[0], len(by_slice), counts.pop(), n_x, n_y)
        if refused is not None:
            problems.extend(_each_file(names, gname, refused.message))
            return None
    per_slice = []
    files: list[str] = []
    for s in sorted(by_slice):
        fr = sorted(by_slice[s], key=lambda x: x[0])
        per_slice.append((fr[0][1].affine, np.stack([_scaled(v, v.data[:, :, 0, 0]) for _, v in fr])))
        files.extend(v.name for _, v in fr)
    is_label = all(m[2].is_label for m in members)
    reason = members[0][2].label_reason if is_label else ""
    geometry = all(m[2].has_geometry for m in members)
    spacing = members[0][2].spacing
    try:
        geom, data, trig = _stack_from(per_slice, None, has_geometry=geometry, spacing=spacing)
    except DeepOxyMapError as exc:
        message = _no_geometry_message(f"cannot place the slices ({exc.message})")
        problems.append((names[0], NiftiReadError(message, source=names[0]), "warning"))
        geom, data, trig = _stack_from(per_slice, None, has_geometry=False, spacing=spacing)
    problems.extend(_non_finite(data, names[0], f" of stack {gname}"))
    desc = stem + (" labels" if is_label else "")
    return _series(f"nifti:{gname}", desc, tuple(files), geom, data, trig, is_label, reason)


def load_entries(
    entries: list[Entry], settings: Settings, *, budget: Budget | None = None
) -> tuple[list[Series], list[Problem]]:
    """Read NIfTI entries into series (see the module docstring).

    Args:
        entries: the NIfTI files.
        settings: the limits.
        budget: the load's running totals (decompressed bytes, stack bytes), if any.

    Returns:
        ``(series, problems)``: one problem per unreadable file (the others still load).
    """
    problems: list[Problem] = []
    vols: list[Volume] = []
    for e in entries:
        try:
            v, w = read_volume(e, settings, budget)
        except NiftiReadError as exc:
            problems.append((e.name, exc, "error"))
            continue
        except Exception as exc:  # noqa: BLE001 - nothing may escape for one bad file
            err = NiftiReadError(f"could not be read ({type(exc).__name__}: {exc})", source=e.name)
            problems.append((e.name, err, "error"))
            continue
        vols.append(v)
        problems.extend(w)
    groups: dict[tuple[str, str, str], list[tuple[int, int, Volume]]] = defaultdict(list)
    singles: list[Volume] = []
    for v in vols:
        where = _group_of(v)
        if where is None:
            singles.append(v)
        else:
            groups[where[0]].append((where[1], where[2], v))
    out: list[Series] = []
    for v in singles:
        try:
            built = _single(v, budget, problems)
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop the others
            problems.append(
                (
                    v.name,
                    NiftiReadError(f"could not be assembled ({type(exc).__name__}: {exc})", source=v.name),
                    "error",
                )
            )
            continue
        if built is not None:
            out.append(built)
    for key, members in sorted(groups.items(), key=lambda kv: kv[0]):
        try:
            built = _grouped(key, members, budget, problems)
        except Exception as exc:  # noqa: BLE001 - one odd group must not stop the others
            names = [m[2].name for m in members]
            problems.extend(_each_file(names, key[1], f"could not be assembled ({type(exc).__name__}: {exc})"))
            continue
        if built is not None:
            out.append(built)
    return out, problems
