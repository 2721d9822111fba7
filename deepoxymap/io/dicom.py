"""DICOM files -> geometry-carrying series.

Pipeline (all pure functions over in-memory datasets):

1. :func:`read_header` parses one file with ``defer_size`` so that large
   values (the Pixel Data) are *not* read yet: the header is parsed once and
   the pixels are fetched later only for files that are used. The header is
   validated (image SOP class, Rows/Columns consistent with the Pixel Data
   length, file not truncated, a decoder exists for the transfer syntax).
2. :func:`frames_of` turns a header into per-frame records (single-frame
   files give one; multi-frame files one per frame, with per-frame functional
   groups where present).
3. :func:`assemble` groups frames by SeriesInstanceUID and in-plane geometry,
   clusters slices by ImagePositionPatient projected on the slice normal
   (``ImageOrientationPatient`` row x column cosine), orders frames by
   TriggerTime, splits repeated acquisitions (same position and trigger time,
   different AcquisitionTime) into separate stacks, sorts slices base to apex,
   and only then decodes the pixels (``pydicom.pixels`` decoders, modality
   LUT, MONOCHROME1) straight into the float32 stack, releasing each file's
   raw Pixel Data once its stack is built. A file that fails to decode is
   reported and the stack is rebuilt without it.

File names and InstanceNumber are only ever tie-breakers.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID, ImplicitVRLittleEndian

from deepoxymap.case import Geometry, Role, Series, Stack, sort_base_to_apex
from deepoxymap.errors import CaseError, DeepOxyMapError, DicomReadError
from deepoxymap.io.roles import RoleEvidence, infer_role, parse_timepoint
from deepoxymap.io.sources import Entry

__all__ = ["SLICE_TOL_MM", "DicomHeader", "Frame", "assemble", "frames_of", "read_header"]

SLICE_TOL_MM = 0.1
"""Images whose positions along the slice normal differ by less than this (mm) are one slice."""

_DEFER = 2048  # bytes: larger values (the Pixel Data) are read only when decoded
_SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float
_UNDEFINED = 0xFFFFFFFF


@dataclass
class DicomHeader:
    """One parsed file.

    Attributes:
        name: display name of the file.
        ds: the dataset (Pixel Data deferred, read on first access).
        n_frames: NumberOfFrames (1 for single-frame files).
        enhanced: per-frame functional groups are used for this file.
    """

    name: str
    ds: Dataset
    n_frames: int
    enhanced: bool


@dataclass
class Frame:
    """One 2D image of a file, with the attributes that place it.

    Attributes:
        file: index of the :class:`DicomHeader`.
        frame: frame index inside the file.
        series_uid: SeriesInstanceUID.
        ipp: ImagePositionPatient (3 floats) mm or ``None``.
        iop: ImageOrientationPatient (6 floats) or ``None``.
        spacing: PixelSpacing ``(row, col)`` mm or ``None``.
        thickness: SliceThickness mm or ``None``.
        rows, cols: image size.
        trigger: TriggerTime ms (NaN if absent).
        acq_time: AcquisitionTime, seconds after midnight, or ``None``.
        instance: InstanceNumber (tie-breaker only).
        slice_location: SliceLocation mm or ``None``.
        rescale: per-frame ``(slope, intercept)`` from functional groups, or ``None``.
        window: ``(centre, width)`` or ``None``.
        acq_number: AcquisitionNumber or 0.
        cardiac_images: CardiacNumberOfImages or 0.
    """

    file: int
    frame: int
    series_uid: str
    ipp: tuple[float, ...] | None
    iop: tuple[float, ...] | None
    spacing: tuple[float, float] | None
    thickness: float | None
    rows: int
    cols: int
    trigger: float
    acq_time: float | None
    instance: int
    slice_location: float | None
    rescale: tuple[float, float] | None = None
    window: tuple[float, float] | None = None
    acq_number: int = 0
    cardiac_images: int = 0


_local = threading.local()
_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_mode: int | None = None


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Switch pydicom's reading validation off while loading (re-entrant, thread-aware).

    Real files break VR rules (Sunnybrook UIDs with leading-zero components);
    validating and warning about every such value costs a third of the load
    time and floods logs. Values are still read as written. The setting is
    process-global in pydicom: the first thread in saves it, the last one out
    restores it.
    """
    global _quiet_depth, _saved_mode
    if getattr(_local, "quiet", 0):
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _saved_mode = pydicom_config.settings.reading_validation_mode
            pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        _quiet_depth += 1
    _local.quiet = 1
    try:
        yield
    finally:
        _local.quiet = 0
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_mode is not None:
                pydicom_config.settings.reading_validation_mode = _saved_mode


# ---------------------------------------------------------------------------
# small parsers
# ---------------------------------------------------------------------------


_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UT"}


@functools.lru_cache(maxsize=256)
def _tag_vr(keyword: str) -> tuple[int, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:  # pragma: no cover - programming error
        raise KeyError(keyword)
    return int(tag), dictionary_VR(tag)


def _text(ds: Dataset, keyword: str) -> str | None:
    """Fast string value of a text-VR element (raw bytes decoded, no validation), ``None`` if absent.

    Multi-valued elements keep DICOM's ``\\`` separator. Reading raw values
    avoids pydicom's per-value conversion and validation, which otherwise
    dominates the load time of large series.
    """
    tag, vr = _tag_vr(keyword)
    elem = ds.get_item(tag)
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes) and vr in _STRING_VRS:
        return value.decode("latin-1").strip("\x00 ")
    if value is None:
        return None
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return "\\".join(str(x) for x in value)
    return str(value).strip()


def _nums(ds: Dataset, keyword: str) -> list[float] | None:
    """Numbers of a DS/IS element (fast path of :func:`_text`), ``None`` if absent or unreadable."""
    t = _text(ds, keyword)
    if not t:
        return None
    try:
        return [float(x) for x in t.split("\\") if x.strip()]
    except ValueError:
        return None


def _num(ds: Dataset, keyword: str) -> float | None:
    v = _nums(ds, keyword)
    return _f(v[0]) if v else None


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _first(v: Any) -> Any:
    if isinstance(v, str | bytes) or not hasattr(v, "__len__"):
        return v
    return v[0] if len(v) else None


def _vec(v: Any, n: int) -> tuple[float, ...] | None:
    """``n`` finite floats, or ``None`` (plain tuples: per-frame numpy arrays cost more than they save)."""
    if v is None:
        return None
    try:
        a = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        return None
    if len(a) != n or not all(math.isfinite(x) for x in a):
        return None
    return a


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def parse_tm(value: Any) -> float | None:
    """DICOM TM (``HHMMSS.FFFFFF``, also ``HH:MM:SS``) -> seconds after midnight, or ``None``."""
    if value is None:
        return None
    s = str(value).strip().replace(":", "")
    if not s:
        return None
    try:
        hh = int(s[0:2])
        mm = int(s[2:4]) if len(s) >= 4 else 0
        ss = float(s[4:]) if len(s) > 4 else 0.0
    except ValueError:
        return None
    return hh * 3600.0 + mm * 60.0 + ss


def _dt_time(value: Any) -> float | None:
    s = str(value or "").strip()
    return parse_tm(s[8:]) if len(s) > 8 else None


def _iop_ok(iop: Sequence[float] | None) -> bool:
    """Row and column cosines present, of sensible length and roughly orthogonal."""
    if iop is None:
        return False
    r, c = iop[:3], iop[3:]
    nr, nc = math.sqrt(_dot(r, r)), math.sqrt(_dot(c, c))
    if nr < 0.5 or nc < 0.5:
        return False
    return abs(_dot(r, c) / (nr * nc)) < 0.05


# ---------------------------------------------------------------------------
# 1. header
# ---------------------------------------------------------------------------


def _sniff(size: int, head: bytes) -> str | None:
    """A precise reason why ``head`` is not DICOM, or ``None`` if it may be."""
    if size == 0:
        return "file is empty (0 bytes)"
    if head[128:132] == b"DICM":
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "is a PNG image, not a DICOM file"
    if head.startswith(b"\xff\xd8\xff"):
        return "is a JPEG image, not a DICOM file"
    if head.startswith(b"%PDF"):
        return "is a PDF document, not a DICOM file"
    if head.startswith(b"\x1f\x8b"):
        return "is a gzip file, not a DICOM file (NIfTI files must end in .nii.gz)"
    if head[:2] in (b"\x02\x00", b"\x08\x00"):
        return None  # DICOM without preamble: try a forced read
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "is a text file, not a DICOM file"
        except UnicodeDecodeError:
            pass
    return "is not a DICOM file (no 'DICM' marker at byte 128 and no DICOM header)"


@functools.lru_cache(maxsize=256)
def _uid_name(uid: str) -> str:
    return UID(uid).name


def _expected_pixel_bytes(ds: Dataset, n_frames: int) -> int | None:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    n = rows * cols * spp * n_frames
    return (n + 7) // 8 if bits == 1 else n * (bits // 8)


def read_header(entry: Entry) -> DicomHeader:
    """Parse and validate one DICOM file without reading its Pixel Data.

    Raises:
        DicomReadError: the file is not DICOM, not a single-channel image, is
            truncated, its Rows/Columns do not fit the Pixel Data, or its
            transfer syntax cannot be decoded. The message names the file.
    """
    name = entry.name
    try:
        head = entry.head(512)
    except OSError as exc:
        raise DicomReadError(f"could not be read ({exc})", source=name) from exc
    size = entry.size
    why = _sniff(size, head)
    if why:
        raise DicomReadError(why, source=name)
    force = head[128:132] != b"DICM"
    # files on disk are parsed from their path: the deferred Pixel Data is read from the file
    # only when decoded; in-memory entries (zip members, uploads) from their bytes
    src: Any = str(entry.path) if entry.path is not None else io.BytesIO(entry.data or b"")
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(src, defer_size=_DEFER, force=force)
    except InvalidDicomError as exc:
        raise DicomReadError(f"is not a DICOM file ({exc})", source=name) from exc
    except Exception as exc:  # pydicom raises many kinds on corrupt input
        raise DicomReadError(f"DICOM header could not be read ({type(exc).__name__}: {exc})", source=name) from exc
    if force and "SOPClassUID" not in ds and "Rows" not in ds:
        raise DicomReadError("is not a DICOM file (no 'DICM' marker and no recognisable DICOM header)", source=name)
    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = getattr(ds, "file_meta", None) or pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    sop = _text(ds, "SOPClassUID") or ""
    sop_name = _uid_name(sop) if sop else "unknown SOP class"
    if sop == _DICOMDIR_SOP:
        raise DicomReadError(
            "is a DICOMDIR index, not an image (ignored: image files are found by walking the folder)", source=name
        )
    pix = next((t for t in _PIXEL_TAGS if t in ds), None)
    if pix is None:
        if sop and "Image" not in sop_name:
            raise DicomReadError(f"is a {sop_name} object ({sop}), not an image", source=name)
        raise DicomReadError(
            f"has no Pixel Data (7FE0,0010) element ({sop_name}); the file may be truncated or hold no image",
            source=name,
        )
    if sop == _SEG_SOP:
        raise DicomReadError(
            "is a DICOM Segmentation (SEG) object; SEG label maps are not supported yet",
            source=name,
            hint="export the labels as NIfTI",
        )
    if "Rows" not in ds or "Columns" not in ds:
        raise DicomReadError("has Pixel Data but no Rows (0028,0010) / Columns (0028,0011)", source=name)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if spp != 1:
        raise DicomReadError(
            f"is a colour image (SamplesPerPixel (0028,0002) = {spp}, {ds.get('PhotometricInterpretation', '')}); "
            "only greyscale MR images are supported",
            source=name,
        )
    n_frames = int(_num(ds, "NumberOfFrames") or 1)
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    raw = ds.get_item(pix, keep_deferred=True)
    length = getattr(raw, "length", None)
    if length is None and raw is not None and getattr(raw, "value", None) is not None:
        length = len(raw.value)
    tell = getattr(raw, "value_tell", None)
    if length is not None and length != _UNDEFINED and tell is not None and tell + length > size:
        raise DicomReadError(
            f"file is truncated: Pixel Data (7FE0,0010) declares {length} bytes but only "
            f"{max(size - tell, 0)} remain in the file",
            source=name,
        )
    if ts.is_compressed:
        try:
            decoder = get_decoder(ts)
        except NotImplementedError as exc:
            raise DicomReadError(
                f"transfer syntax '{ts.name}' ({ts}) is not supported for images", source=name
            ) from exc
        if not decoder.is_available:
            raise DicomReadError(
                f"no decoder is installed for transfer syntax '{ts.name}' ({ts})",
                source=name,
                hint="install pylibjpeg-openjpeg, pylibjpeg-rle, pyjpegls or python-gdcm",
            )
    elif pix == 0x7FE00010 and length is not None and length != _UNDEFINED:
        expected = _expected_pixel_bytes(ds, n_frames)
        # trailing padding (pydicom ignores it) is tolerated; a shortfall or a gross excess is not
        if expected is not None and (length < expected or length > expected + max(expected // 10, 1)):
            raise DicomReadError(
                f"Rows x Columns ({int(ds.Rows)} x {int(ds.Columns)}, {int(ds.get('BitsAllocated', 0))} bits, "
                f"{n_frames} frame(s)) need {expected} bytes of Pixel Data but the file holds {length}",
                source=name,
            )
    enhanced = n_frames > 1 and "PerFrameFunctionalGroupsSequence" in ds
    return DicomHeader(name, ds, n_frames, enhanced)


# ---------------------------------------------------------------------------
# 2. frames
# ---------------------------------------------------------------------------


def _fg_item(ds: Dataset, index: int, seq: str) -> Dataset | None:
    """Functional-group macro ``seq`` for frame ``index`` (per-frame first, then shared)."""
    for groups, idx in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        g = ds.get(groups)
        if g is not None and len(g) > idx:
            item = g[idx].get(seq)
            if item is not None and len(item):
                return item[0]
    return None


def frames_of(header: DicomHeader, file_index: int) -> list[Frame]:
    """Per-frame placement records of one file (see :class:`Frame`)."""
    ds = header.ds
    uid = _text(ds, "SeriesInstanceUID") or ""
    if not uid:
        uid = f"no-series-uid:{_text(ds, 'SeriesNumber') or ''}:{_text(ds, 'SeriesDescription') or ''}"
    rows, cols = int(ds.Rows), int(ds.Columns)
    ipp = _vec(_nums(ds, "ImagePositionPatient"), 3)
    iop = _vec(_nums(ds, "ImageOrientationPatient"), 6)
    sp = _vec(_nums(ds, "PixelSpacing") or _nums(ds, "ImagerPixelSpacing"), 2)
    thick = _num(ds, "SliceThickness")
    trig = _num(ds, "TriggerTime")
    if trig is None:
        trig = _f(ds.get("NominalCardiacTriggerDelayTime"))
    acq = (
        parse_tm(_text(ds, "AcquisitionTime"))
        or _dt_time(_text(ds, "AcquisitionDateTime"))
        or parse_tm(_text(ds, "ContentTime"))
    )
    inst = int(_num(ds, "InstanceNumber") or 0)
    sloc = _num(ds, "SliceLocation")
    win = None
    wc, ww = _num(ds, "WindowCenter"), _num(ds, "WindowWidth")
    if wc is not None and ww is not None and ww > 0:
        win = (wc, ww)
    acq_no = int(_num(ds, "AcquisitionNumber") or 0)
    n_card = int(_num(ds, "CardiacNumberOfImages") or 0)
    out: list[Frame] = []
    if header.n_frames == 1:
        out.append(
            Frame(
                file_index,
                0,
                uid,
                ipp,
                iop,
                None if sp is None else (float(sp[0]), float(sp[1])),
                thick,
                rows,
                cols,
                math.nan if trig is None else trig,
                acq,
                inst,
                sloc,
                None,
                win,
                acq_no,
                n_card,
            )
        )
        return out
    # multi-frame
    frame_times: list[float] | None = None
    if not header.enhanced:
        ftv = ds.get("FrameTimeVector")
        ft = _f(ds.get("FrameTime"))
        if ftv is not None and len(ftv) == header.n_frames:
            frame_times = list(np.cumsum([float(x) for x in ftv]))
        elif ft is not None:
            frame_times = [i * ft for i in range(header.n_frames)]
    for i in range(header.n_frames):
        f_ipp, f_iop, f_sp, f_thick, f_trig, f_acq, f_resc, f_win = ipp, iop, sp, thick, trig, acq, None, win
        if header.enhanced:
            pos = _fg_item(ds, i, "PlanePositionSequence")
            if pos is not None:
                f_ipp = _vec(pos.get("ImagePositionPatient"), 3)
            ori = _fg_item(ds, i, "PlaneOrientationSequence")
            if ori is not None:
                f_iop = _vec(ori.get("ImageOrientationPatient"), 6)
            meas = _fg_item(ds, i, "PixelMeasuresSequence")
            if meas is not None:
                f_sp = _vec(meas.get("PixelSpacing"), 2)
                f_thick = _f(meas.get("SliceThickness")) or thick
            card = _fg_item(ds, i, "CardiacSynchronizationSequence")
            if card is not None:
                f_trig = _f(card.get("NominalCardiacTriggerDelayTime"))
            content = _fg_item(ds, i, "FrameContentSequence")
            if content is not None:
                f_acq = _dt_time(content.get("FrameAcquisitionDateTime")) or acq
            pvt = _fg_item(ds, i, "PixelValueTransformationSequence")
            if pvt is not None and "RescaleSlope" in pvt:
                f_resc = (float(pvt.RescaleSlope), float(pvt.get("RescaleIntercept", 0.0)))
            voi = _fg_item(ds, i, "FrameVOILUTSequence")
            if voi is not None:
                c, w = _f(_first(voi.get("WindowCenter"))), _f(_first(voi.get("WindowWidth")))
                f_win = (c, w) if c is not None and w is not None and w > 0 else win
        elif frame_times is not None:
            f_trig = frame_times[i]
        out.append(
            Frame(
                file_index,
                i,
                uid,
                f_ipp,
                f_iop,
                None if f_sp is None else (float(f_sp[0]), float(f_sp[1])),
                f_thick,
                rows,
                cols,
                math.nan if f_trig is None else f_trig,
                f_acq,
                inst * 100000 + i,
                sloc,
                f_resc,
                f_win,
                acq_no,
                n_card,
            )
        )
    return out


# ---------------------------------------------------------------------------
# 3. pixels
# ---------------------------------------------------------------------------


def decode(header: DicomHeader) -> NDArray[Any]:
    """Decoded pixels ``[frame, row, col]`` after the modality LUT (integer or float dtype).

    RescaleSlope/Intercept (or a Modality LUT) are applied with
    :func:`pydicom.pixels.apply_modality_lut` (per frame from the Pixel Value
    Transformation functional group in enhanced files). MONOCHROME1 images
    are inverted within their output range so that larger values are always
    brighter.

    Raises:
        DicomReadError: the pixel data cannot be decoded.
    """
    ds = header.ds
    try:
        with quiet_pydicom():
            # the decoder directly: Dataset.pixel_array would also cache the array on the dataset
            arr, _ = get_decoder(UID(str(ds.file_meta.TransferSyntaxUID))).as_array(ds)
    except Exception as exc:  # decoders raise many kinds on corrupt data
        raise DicomReadError(
            f"pixel data could not be decoded ({type(exc).__name__}: {exc})", source=header.name
        ) from exc
    if header.n_frames == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DicomReadError(f"unexpected pixel array shape {arr.shape}", source=header.name)
    frames_resc = None
    if header.enhanced and "RescaleSlope" not in ds:
        frames_resc = [_fg_item(ds, i, "PixelValueTransformationSequence") for i in range(arr.shape[0])]
    if frames_resc is not None and any(p is not None and "RescaleSlope" in p for p in frames_resc):
        out = np.empty(arr.shape, dtype=np.float32)
        for i, p in enumerate(frames_resc):
            out[i] = apply_modality_lut(arr[i], p) if p is not None else arr[i]
    else:
        out = apply_modality_lut(arr, ds)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        ends = np.asarray(apply_modality_lut(np.array([lo, hi], dtype=np.int64 if signed else np.uint64), ds), float)
        out = (float(ends.min()) + float(ends.max()) - out).astype(np.float32)
    return out


def _monochrome1_window(ds: Dataset, win: tuple[float, float] | None) -> tuple[float, float] | None:
    if win is None or str(ds.get("PhotometricInterpretation", "")).strip() != "MONOCHROME1":
        return win
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    ends = np.asarray(apply_modality_lut(np.array([lo, hi], dtype=np.int64 if signed else np.uint64), ds), float)
    return (float(ends.min()) + float(ends.max()) - win[0], win[1])


def robust_window(data: NDArray[Any]) -> tuple[float, float]:
    """Default display window from the 1st-99th percentile (on at most ~250k samples).

    Returns:
        ``(centre, width)`` with width >= 1e-3.
    """
    flat = np.asarray(data).reshape(-1)
    step = max(1, flat.size // 250_000)
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(sample, [1.0, 99.0])
    return (float(lo + hi) / 2.0, max(float(hi - lo), 1e-3))


# ---------------------------------------------------------------------------
# 4. assembly
# ---------------------------------------------------------------------------


@dataclass
class _Problem:
    source: str
    error: DeepOxyMapError
    severity: str


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


_IOP_TOL = 0.01  # direction-cosine difference (~0.6 deg) still counted as the same orientation


def _has_geometry(fr: Frame) -> bool:
    return fr.ipp is not None and _iop_ok(fr.iop) and fr.spacing is not None


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
            if has:
                assert rep.iop is not None and fr.iop is not None and rep.spacing and fr.spacing
                if max(abs(a - b) for a, b in zip(rep.iop, fr.iop, strict=True)) > _IOP_TOL:
                    continue
                if any(abs(a - b) > 1e-3 * abs(b) for a, b in zip(rep.spacing, fr.spacing, strict=True)):
                    continue
            gid = i
            break
        if gid < 0:
            cands.append(fr)
            gid = len(cands) - 1
        out[(fr.series_uid, has, gid)].append(fr)
    return out


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
        v = ds.get(k)
        if v is None or v == "":
            continue
        if isinstance(v, pydicom.multival.MultiValue):
            v = [str(x) for x in v]
        elif isinstance(v, int | float):
            v = float(v) if isinstance(v, float) else int(v)
        else:
            v = str(v)
        out[k] = v
    out["ImageType"] = "\\".join(str(x) for x in (ds.get("ImageType") or []))
    sop = str(ds.get("SOPClassUID", "") or "")
    out["SOPClass"] = UID(sop).name if sop else ""
    out["TransferSyntax"] = UID(str(ds.file_meta.TransferSyntaxUID)).name
    return out


def _units_of(ds: Dataset) -> str:
    u = str(ds.get("Units", "") or "")
    rwvm = ds.get("RealWorldValueMappingSequence")
    if not u and rwvm:
        mu = rwvm[0].get("MeasurementUnitsCodeSequence")
        if mu:
            u = str(mu[0].get("CodeValue", "") or "")
    return "ms" if u.strip().lower() in ("ms", "msec", "millisecond", "milliseconds") else u


def _build_stack_series(
    uid: str,
    frames: list[Frame],
    headers: list[DicomHeader],
    has_geometry: bool,
    problems: list[_Problem],
) -> Series:
    """One stack from the frames of one acquisition (pixels decoded straight into the stack).

    Raises:
        _DecodeFailed: some files' pixel data could not be decoded (the caller
            retries without them).
    """
    first = headers[frames[0].file]
    ds = first.ds
    # -- positions
    if has_geometry:
        iop = frames[0].iop
        assert iop is not None
        normal = np.cross(iop[:3], iop[3:])
        normal /= np.linalg.norm(normal)
        nrm = normal.tolist()
        pos = [_dot(fr.ipp, nrm) for fr in frames]  # type: ignore[arg-type]
        cids = _cluster(pos, SLICE_TOL_MM)
    else:
        if all(fr.slice_location is not None for fr in frames):
            cids = _cluster([fr.slice_location for fr in frames], SLICE_TOL_MM)  # type: ignore[misc]
        else:
            order = sorted(range(len(frames)), key=lambda i: (frames[i].instance, frames[i].file))
            file_rank: dict[int, int] = {}
            for i in order:
                file_rank.setdefault(frames[i].file, len(file_rank))
            cids = [file_rank[fr.file] for fr in frames]
    n_clusters = max(cids) + 1
    by_slice: list[list[Frame]] = [[] for _ in range(n_clusters)]
    for fr, c in zip(frames, cids, strict=True):
        by_slice[c].append(fr)
    by_slice = [sorted(s, key=_frame_sort_key) for s in by_slice if s]
    n_frames = max(len(s) for s in by_slice)
    if n_frames > 1 and any(
        len(s) > 1 and len({round(fr.trigger, 2) for fr in s if not math.isnan(fr.trigger)}) < len(s) for s in by_slice
    ):
        first_name = headers[by_slice[0][0].file].name
        problems.append(
            _Problem(
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
        problems.append(
            _Problem(
                headers[by_slice[0][0].file].name,
                CaseError(
                    f"series '{ds.get('SeriesDescription', '') or uid}': slices have different frame counts {counts}; "
                    "missing frames repeat the slice's last frame (trigger time unknown)",
                    source=headers[by_slice[0][0].file].name,
                ),
                "warning",
            )
        )
    rows, cols = frames[0].rows, frames[0].cols
    # -- geometry (in position order), then base -> apex
    if has_geometry:
        sp = frames[0].spacing
        assert sp is not None and iop is not None
        geom = Geometry(
            np.array([s[0].ipp for s in by_slice], dtype=np.float64),
            iop[:3],
            iop[3:],
            sp,
            (rows, cols),
            frames[0].thickness,
            _text(ds, "FrameOfReferenceUID") or None,
        )
        order = sort_base_to_apex(geom)
        geom = geom.subset(order)
        by_slice = [by_slice[i] for i in order]
    else:
        sp = frames[0].spacing or (1.0, 1.0)
        geom = Geometry.without_geometry(len(by_slice), (rows, cols), sp)
        names = [headers[fr.file].name for fr in frames]
        more = f" and {len(set(names)) - 1} more file(s)" if len(set(names)) > 1 else ""
        problems.append(
            _Problem(
                names[0],
                DicomReadError(
                    f"no usable ImagePositionPatient (0020,0032) / ImageOrientationPatient (0020,0037) / "
                    f"PixelSpacing (0028,0030){more}: loaded as a flagged no-geometry stack "
                    "(viewable, cannot be slice-matched or resampled)",
                    source=names[0],
                ),
                "warning",
            )
        )
    data = np.empty((len(by_slice), n_frames, rows, cols), dtype=np.float32)
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
                win = _monochrome1_window(h.ds, fr.window)
    failed: dict[int, DeepOxyMapError] = {}
    for f, where in targets.items():
        try:
            arr = decode(headers[f])
        except DeepOxyMapError as exc:
            failed[f] = exc
            continue
        for k, j, i in where:
            data[k, j] = arr[i]
    if failed:
        raise _DecodeFailed(failed)
    if win is None:
        win = robust_window(data)
    description = str(ds.get("SeriesDescription", "") or "")
    protocol = str(ds.get("ProtocolName", "") or "")
    units = _units_of(ds)
    median = None
    if units == "ms":
        pos_vals = data[data > 0]
        median = float(np.median(pos_vals[:: max(1, pos_vals.size // 100_000)])) if pos_vals.size else None
    ev = RoleEvidence(
        description=description,
        protocol=protocol,
        image_type=tuple(str(x).upper() for x in (ds.get("ImageType") or [])),
        inversion_time_ms=_f(ds.get("InversionTime")),
        cardiac_number_of_images=int(_f(ds.get("CardiacNumberOfImages")) or 0) or None,
        n_slices=len(by_slice),
        n_frames=n_frames,
        units=units,
        median_value=median,
    )
    role, reason = infer_role(ev)
    acq_times = [fr.acq_time for fr in frames if fr.acq_time is not None]
    stack = Stack(
        data=data,
        geometry=geom,
        trigger_times=trig,
        role=role,
        units="ms" if role in (Role.T1_MAP, Role.T2_MAP) else ("" if units == "ms" else units),
        timepoint=parse_timepoint(description),
        acquisition_time_s=min(acq_times) if acq_times else None,
        series_uid=uid,
        description=description,
        window=win,
    )
    meta = _meta(ds)
    meta["source_grid"] = tuple(tuple(r) for r in grid)
    meta["instance_grid"] = tuple(tuple(r) for r in inst)
    files = tuple(dict.fromkeys(headers[fr.file].name for s in by_slice for fr in s))
    return Series(uid, stack, role, reason, files, meta)


class _DecodeFailed(Exception):
    """Pixel data of some files of a stack could not be decoded."""

    def __init__(self, failed: dict[int, DeepOxyMapError]) -> None:
        super().__init__(f"{len(failed)} file(s) failed to decode")
        self.failed = failed


def _build_with_retries(
    uid: str, frames: list[Frame], headers: list[DicomHeader], has_geometry: bool, problems: list[_Problem]
) -> Series | None:
    """Build a stack; files whose pixels fail to decode are reported and left out."""
    while frames:
        local: list[_Problem] = []
        try:
            series = _build_stack_series(uid, frames, headers, has_geometry, local)
        except _DecodeFailed as exc:
            for f, err in exc.failed.items():
                problems.append(_Problem(headers[f].name, err, "error"))
            frames = [fr for fr in frames if fr.file not in exc.failed]
            continue
        problems.extend(local)
        for f in {fr.file for fr in frames}:
            h = headers[f]
            if h.n_frames == 1 and "PixelData" in h.ds:
                del h.ds.PixelData  # decoded: free the raw bytes early
        return series
    return None


def assemble(headers: list[DicomHeader]) -> tuple[list[Series], list[_Problem]]:
    """Group, order, decode and stack DICOM files (see the module docstring).

    Returns:
        ``(series, problems)``; every file that could not be used appears in
        problems with its reason.
    """
    problems: list[_Problem] = []
    frames: list[Frame] = []
    seen_sop: dict[str, str] = {}
    for i, h in enumerate(headers):
        sop_uid = _text(h.ds, "SOPInstanceUID") or ""
        if sop_uid and sop_uid in seen_sop:
            problems.append(
                _Problem(
                    h.name,
                    DicomReadError(f"duplicate of {seen_sop[sop_uid]} (same SOPInstanceUID); ignored", source=h.name),
                    "info",
                )
            )
            continue
        if sop_uid:
            seen_sop[sop_uid] = h.name
        try:
            frames.extend(frames_of(h, i))
        except Exception as exc:  # noqa: BLE001 - malformed attribute values of any kind
            problems.append(
                _Problem(h.name, DicomReadError(f"image attributes could not be read ({exc})", source=h.name), "error")
            )
    # group by series, then geometry
    groups = _geometry_groups(frames)
    per_series: dict[str, list[tuple[str, bool, int]]] = defaultdict(list)
    for key in groups:
        per_series[key[0]].append(key)
    out: list[Series] = []
    for series_uid, keys in per_series.items():
        keys.sort(key=lambda k: -len(groups[k]))
        for g, key in enumerate(keys):
            group = groups[key]
            has_geometry = bool(key[1])
            if has_geometry:
                iop = group[0].iop
                assert iop is not None
                normal = np.cross(iop[:3], iop[3:])
                normal /= np.linalg.norm(normal)
                nrm = normal.tolist()
                cids = _cluster([_dot(fr.ipp, nrm) for fr in group], SLICE_TOL_MM)  # type: ignore[arg-type]
                ranks = _split_acquisitions(group, cids)
            else:
                ranks = [0] * len(group)
            n_acq = max(ranks) + 1
            for a in range(n_acq):
                sub = [fr for fr, r in zip(group, ranks, strict=True) if r == a]
                uid = series_uid
                if len(keys) > 1:
                    uid += f"#{g + 1}"
                if n_acq > 1:
                    uid += f"#t{a + 1}"
                try:
                    built = _build_with_retries(uid, sub, headers, has_geometry, problems)
                    if built is not None:
                        out.append(built)
                except DeepOxyMapError as exc:
                    problems.append(_Problem(headers[sub[0].file].name, exc, "error"))
                except Exception as exc:  # noqa: BLE001 - one odd series must not stop the others
                    name = headers[sub[0].file].name
                    problems.append(
                        _Problem(
                            name,
                            CaseError(
                                f"series {uid} could not be assembled ({type(exc).__name__}: {exc})", source=name
                            ),
                            "error",
                        )
                    )
    return out, problems
