"""NIfTI (``.nii``, ``.nii.gz``) -> geometry-carrying series, via nibabel.

Geometry comes from the affine. NIfTI's world space is RAS; DICOM's (and
:class:`~deepoxymap.case.Geometry`'s) is LPS, so the affine is premultiplied by
``diag(-1, -1, 1, 1)``. Voxel ``(i, j, k, t)`` becomes pixel ``(row=i, col=j)``
of slice ``k``, frame ``t``: ``Stack.data = vol.transpose(2, 3, 0, 1)``. When the
affine's voxel sizes disagree with the header's ``pixdim`` (EMIDEC ships a unit
affine with 1.458 mm pixels), ``pixdim`` wins and a warning is recorded.

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

import re
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Geometry, Role, Series, Stack, robust_window, sort_base_to_apex
from deepoxymap.config import Settings
from deepoxymap.errors import DeepOxyMapError, NiftiReadError
from deepoxymap.io.roles import RoleEvidence, infer_role
from deepoxymap.io.sources import Entry

__all__ = ["MAX_LABELS", "RAS_TO_LPS", "load_entries", "read_volume"]

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Premultiply a NIfTI (RAS) affine by this to get DICOM patient coordinates (LPS)."""

MAX_LABELS = 16
"""An integer image with at most this many distinct values (>= 0) is taken as a label map."""

_FRAME_FILE = re.compile(r"^(?P<stem>.+)_s(?P<slice>\d+)_(?P<frame>\d+)\.nii(?:\.gz)?$", re.IGNORECASE)
_SLICE_FILE = re.compile(r"^(?P<stem>.+)_s(?P<slice>\d+)\.nii(?:\.gz)?$", re.IGNORECASE)
_LABEL_NAME = re.compile(r"(?<![a-z])(labels?|segs?|segmentations?|masks?|contours?|gt|manual)(?![a-z])", re.IGNORECASE)

Problem = tuple[str, DeepOxyMapError, str]


@dataclass
class Volume:
    """One NIfTI file.

    Attributes:
        name: display name.
        data: ``(X, Y, Z, T)`` array (float32, or the file's integer dtype for labels).
        affine: 4x4 voxel ``(i, j, k)`` -> LPS mm.
        frame_ms: time between frames in ms, or ``None``.
        is_label: label-map heuristics matched.
        label_reason: why.
    """

    name: str
    data: NDArray[Any]
    affine: NDArray[np.float64]
    frame_ms: float | None
    is_label: bool
    label_reason: str


def _gunzip(data: bytes, limit: int, name: str) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise NiftiReadError(f"corrupt gzip data ({exc})", source=name) from exc
    if len(out) > limit or d.unconsumed_tail:
        raise NiftiReadError(
            f"decompresses to more than the upload limit of {limit} bytes (possible gzip bomb)", source=name
        )
    if not d.eof:
        raise NiftiReadError("gzip data is truncated (the file ends early)", source=name)
    return out


def read_volume(entry: Entry, settings: Settings) -> tuple[Volume, list[Problem]]:
    """Read one NIfTI entry.

    Raises:
        NiftiReadError: unreadable, truncated, corrupt, or not 2D-4D.
    """
    import nibabel as nib

    name = entry.name
    warnings_: list[Problem] = []
    try:
        raw = entry.read()
    except OSError as exc:
        raise NiftiReadError(f"could not be read ({exc})", source=name) from exc
    if not raw:
        raise NiftiReadError("file is empty (0 bytes)", source=name)
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, settings.max_upload_bytes, name)
    elif name.lower().endswith(".gz"):
        raise NiftiReadError("named .nii.gz but is not gzip-compressed", source=name)
    if len(raw) < 348:
        raise NiftiReadError(f"too short for a NIfTI header ({len(raw)} bytes)", source=name)
    sizeof_hdr_le = int.from_bytes(raw[:4], "little")
    sizeof_hdr_be = int.from_bytes(raw[:4], "big")
    klass = nib.Nifti2Image if 540 in (sizeof_hdr_le, sizeof_hdr_be) else nib.Nifti1Image
    try:
        img = klass.from_bytes(raw)
        arr = np.asanyarray(img.dataobj)
        zooms = tuple(float(z) for z in img.header.get_zooms())
        affine = np.asarray(img.affine, dtype=np.float64)
        t_unit = img.header.get_xyzt_units()[1]
    except Exception as exc:  # nibabel raises many kinds on bad input
        raise NiftiReadError(f"not a readable NIfTI image ({type(exc).__name__}: {exc})", source=name) from exc
    if arr.ndim < 2 or arr.ndim > 4:
        raise NiftiReadError(f"has {arr.ndim} dimensions {arr.shape}; 2D, 3D or 4D expected", source=name)
    if arr.dtype.kind not in "iufb":
        raise NiftiReadError(f"has unsupported voxel type {arr.dtype}", source=name)
    while arr.ndim < 4:
        arr = arr[..., None]
    # voxel sizes: trust pixdim where the affine disagrees
    aff = RAS_TO_LPS @ affine
    norms = np.linalg.norm(aff[:3, :3], axis=0)
    z3 = np.array([(zooms + (1.0, 1.0, 1.0))[i] for i in range(3)])
    if np.all(z3 > 0) and np.any(np.abs(norms - z3) > 0.01 * z3):
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
    frame_ms = None
    if arr.shape[3] > 1 and len(zooms) > 3 and zooms[3] > 0:
        frame_ms = {"sec": 1000.0, "msec": 1.0, "usec": 1e-3}.get(t_unit or "", None)
        frame_ms = None if frame_ms is None else zooms[3] * frame_ms
    is_label, reason = _label_heuristics(name, arr)
    data = arr if is_label else np.asarray(arr, dtype=np.float32)
    return Volume(name, data, aff, frame_ms, is_label, reason), warnings_


def _label_heuristics(name: str, arr: NDArray[Any]) -> tuple[bool, str]:
    if arr.dtype.kind == "b":
        return True, "boolean image"
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr))):
        return False, ""
    vals = np.unique(arr)
    if vals.size == 0 or vals.min() < 0:
        return False, ""
    hint = _LABEL_NAME.search(name)
    if vals.size <= MAX_LABELS:
        return True, f"integer label map with {vals.size} values {vals.astype(int).tolist()}"
    if hint:
        return True, f"integer values and '{hint.group(0)}' in the name"
    return False, ""


def _stack_from(
    vol_slices: list[tuple[NDArray[np.float64], NDArray[Any]]], frame_ms: float | None
) -> tuple[Geometry, NDArray[Any], NDArray[np.float64]]:
    """Geometry and ``[slice, frame, row, col]`` data from per-slice ``(affine, [frame, X, Y])`` pairs."""
    aff0 = vol_slices[0][0]
    shape = vol_slices[0][1].shape[1:]
    origins = np.stack([a[:3, 3] for a, _ in vol_slices])
    g = Geometry.from_affine(aff0, shape, 1)
    geom = Geometry(origins, g.row_cosine, g.col_cosine, g.pixel_spacing, shape, float(np.linalg.norm(aff0[:3, 2])))
    data = np.stack([d for _, d in vol_slices])
    order = sort_base_to_apex(geom)
    n_f = data.shape[1]
    trig = np.broadcast_to(np.arange(n_f) * frame_ms if frame_ms else np.full(n_f, np.nan), (len(order), n_f))
    return geom.subset(order), data[order], np.array(trig, dtype=np.float64)


def _series(
    uid: str,
    description: str,
    files: tuple[str, ...],
    geom: Geometry,
    data: NDArray[Any],
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
        hi = float(fdata.max()) if fdata.size else 1.0
        window = (hi / 2.0, max(hi, 1.0))
        units = "label"
    else:
        window = robust_window(fdata)
        units = ""
    stack = Stack(fdata, geom, trig, role=role, units=units, series_uid=uid, description=description, window=window)
    meta = {"format": "NIfTI", "source_grid": tuple((f,) for f in files) if len(files) == data.shape[0] else ()}
    return Series(uid, stack, role, reason, files, meta)


def load_entries(entries: list[Entry], settings: Settings) -> tuple[list[Series], list[Problem]]:
    """Read NIfTI entries into series (see the module docstring).

    Returns:
        ``(series, problems)``: one problem per unreadable file (the others still load).
    """
    problems: list[Problem] = []
    vols: list[Volume] = []
    for e in entries:
        try:
            v, w = read_volume(e, settings)
        except NiftiReadError as exc:
            problems.append((e.name, exc, "error"))
            continue
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - defensive
            problems.append((e.name, NiftiReadError(f"could not be read ({exc})", source=e.name), "error"))
            continue
        vols.append(v)
        problems.extend(w)
    # group one-image-per-file layouts
    groups: dict[tuple[str, str, str], list[tuple[int, int, Volume]]] = defaultdict(list)
    singles: list[Volume] = []
    for v in vols:
        p = PurePosixPath(v.name.replace("\\", "/"))
        base = p.name
        flat = v.data.shape[2] == 1 and v.data.shape[3] == 1
        m = _FRAME_FILE.match(base) if flat else None
        if m:
            groups[(str(p.parent), m["stem"], "frames")].append((int(m["slice"]), int(m["frame"]), v))
            continue
        m = _SLICE_FILE.match(base) if v.data.shape[2] == 1 else None
        if m:
            groups[(str(p.parent), m["stem"], "slices")].append((int(m["slice"]), 0, v))
            continue
        singles.append(v)
    out: list[Series] = []
    for v in singles:
        n_z = v.data.shape[2]
        per_slice = []
        for k in range(n_z):
            a = v.affine.copy()
            a[:3, 3] = v.affine[:3, 3] + k * v.affine[:3, 2]
            per_slice.append((a, np.moveaxis(v.data[:, :, k, :], 2, 0)))
        geom, data, trig = _stack_from(per_slice, v.frame_ms)
        stem = re.sub(r"\.nii(\.gz)?$", "", PurePosixPath(v.name).name, flags=re.IGNORECASE)
        try:
            out.append(_series(f"nifti:{v.name}", stem, (v.name,), geom, data, trig, v.is_label, v.label_reason))
        except DeepOxyMapError as exc:
            problems.append((v.name, exc, "error"))
    for (parent, stem, kind), members in sorted(groups.items()):
        shapes = {m[2].data.shape for m in members}
        gname = f"{parent}/{stem}_s*" + ("_*" if kind == "frames" else "")
        if len(shapes) != 1:
            problems.append(
                (
                    gname,
                    NiftiReadError(
                        f"files of one stack have different shapes {sorted(shapes)}; not assembled", source=gname
                    ),
                    "error",
                )
            )
            continue
        by_slice: dict[int, list[tuple[int, Volume]]] = defaultdict(list)
        for s, f, v in members:
            by_slice[s].append((f, v))
        counts = {len(x) for x in by_slice.values()}
        if len(counts) != 1:
            problems.append(
                (
                    gname,
                    NiftiReadError(f"slices have different frame counts {sorted(counts)}; not assembled", source=gname),
                    "error",
                )
            )
            continue
        per_slice = []
        files: list[str] = []
        for s in sorted(by_slice):
            fr = sorted(by_slice[s], key=lambda x: x[0])
            per_slice.append((fr[0][1].affine, np.stack([v.data[:, :, 0, 0] for _, v in fr])))
            files.extend(v.name for _, v in fr)
        is_label = all(m[2].is_label for m in members)
        reason = members[0][2].label_reason if is_label else ""
        try:
            geom, data, trig = _stack_from(per_slice, None)
            desc = stem + (" labels" if is_label else "")
            out.append(_series(f"nifti:{gname}", desc, tuple(files), geom, data, trig, is_label, reason))
        except DeepOxyMapError as exc:
            problems.append((gname, exc, "error"))
    return out, problems
