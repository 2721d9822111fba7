"""Step 1: parse and validate one DICOM file without reading its Pixel Data.

:func:`read_header` parses with ``defer_size`` so that large values (the Pixel
Data) are *not* read yet: the header is parsed once and the pixels are fetched
later only for files that are used. The header is validated before anything is
decoded or expanded:

* image SOP class (a DICOMDIR is :class:`IgnoredFile`, reported as info);
* NumberOfFrames a positive whole number, at most ``max_frames_per_file``;
* the decoded size (rows x columns x samples x frames x bytes, at least float32)
  within ``max_image_bytes``, for every transfer syntax;
* the frames fit the bytes present (native: Rows x Columns x BitsAllocated x
  frames; encapsulated: one item of at least 10 bytes per frame);
* the file is not truncated, and a decoder exists for the transfer syntax.

Deflated files (Deflated Explicit VR Little Endian) are inflated here, in 1 MiB
steps and at most ``max_image_bytes``, never by pydicom's unbounded inflate;
offsets are then checked against the inflated size.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_preamble
from pydicom.pixels import get_decoder
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from deepoxymap.config import Settings
from deepoxymap.config import settings as current_settings
from deepoxymap.errors import DicomReadError
from deepoxymap.io.dicom.values import tag_text
from deepoxymap.io.limits import fmt_bytes, image_too_large
from deepoxymap.io.sources import Entry, Inflater

__all__ = ["DicomHeader", "IgnoredFile", "quiet_pydicom", "read_header"]

_DEFER = 2048  # bytes: larger values (the Pixel Data) are read only when decoded
_SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float
_PIXEL_NAMES = {
    0x7FE00010: "Pixel Data (7FE0,0010)",
    0x7FE00008: "Float Pixel Data (7FE0,0008)",
    0x7FE00009: "Double Float Pixel Data (7FE0,0009)",
}
_FLOAT_BYTES = {0x7FE00008: 4, 0x7FE00009: 8}
_UNDEFINED = 0xFFFFFFFF
_HEAD = 1024  # bytes read first: sniffing, and the transfer syntax in the file meta
_DEFLATED_BYTES = str(DeflatedExplicitVRLittleEndian).encode()
_ITEM_BYTES = 8  # an encapsulated item's tag and length
_MIN_FRAME_BYTES = 2  # the least a compressed frame can hold (bad frames of a few bytes fail in the decoder)


class IgnoredFile(DicomReadError):
    """A DICOM file that is deliberately not loaded (a DICOMDIR index): reported as ``"info"``, not an error."""


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


def _meta_head(entry: Entry) -> bytes:
    """The first bytes of ``entry``: at least :data:`_HEAD`, and the whole file meta group where it says it is longer."""
    head = entry.head(_HEAD)
    if head[128:132] == b"DICM" and head[132:140] == b"\x02\x00\x00\x00UL\x04\x00":
        meta_end = 144 + int.from_bytes(head[140:144], "little")
        if len(head) < meta_end <= 1024 * 1024:
            head = entry.head(meta_end + 16)
    return head


def _parse_deflated(entry: Entry, force: bool, settings: Settings) -> tuple[Dataset, int] | None:
    """A Deflated Explicit VR Little Endian file inflated under ``max_image_bytes``: ``(dataset, inflated size)``.

    Returns ``None`` when the file meta does not name the deflated transfer
    syntax after all. Nothing is deferred: the inflated bytes are in memory.

    Raises:
        DicomReadError: the deflated data is corrupt, truncated or inflates
            past the limit.
    """
    name = entry.name
    data = entry.read()
    fp = io.BytesIO(data)
    read_preamble(fp, force)
    meta = read_dataset(
        fp, is_implicit_VR=False, is_little_endian=True, stop_when=lambda tag, vr, length: tag >> 16 != 2
    )
    if str(meta.get("TransferSyntaxUID", "")) != DeflatedExplicitVRLittleEndian:
        return None
    limit = settings.max_image_bytes
    try:
        inflater = Inflater(memoryview(data)[fp.tell() :], -zlib.MAX_WBITS)
        body = inflater.read(limit + 1)
    except zlib.error as exc:
        raise DicomReadError(f"deflated data set is corrupt ({exc})", source=name) from exc
    if len(body) > limit:
        raise DicomReadError(
            f"deflated data set inflates to more than {fmt_bytes(limit)} (the limit per file; possible "
            "deflate bomb); not read",
            source=name,
            hint="raise max_image_bytes (DEEPOXYMAP_MAX_IMAGE_BYTES) if the file is genuine",
        )
    if not inflater.eof:
        raise DicomReadError("file is truncated: its deflated data set ends early", source=name)
    ds = read_dataset(io.BytesIO(body), is_implicit_VR=False, is_little_endian=True)
    ds.file_meta = FileMetaDataset(meta)
    return ds, len(body)


def _parse(entry: Entry, settings: Settings) -> tuple[Dataset, int]:
    """``(dataset, size)``: the dataset of ``entry`` with its Pixel Data deferred (and a TransferSyntaxUID,
    implicit VR if absent), and the size in bytes that its element offsets refer to (the inflated size
    of a deflated file).

    Raises:
        DicomReadError: the entry cannot be read or is not DICOM.
    """
    name = entry.name
    try:
        head = _meta_head(entry)
    except OSError as exc:
        raise DicomReadError(f"could not be read ({exc})", source=name) from exc
    why = _sniff(entry.size, head)
    if why:
        raise DicomReadError(why, source=name)
    force = head[128:132] != b"DICM"
    # files on disk are parsed from their path: the deferred Pixel Data is read from the file
    # only when decoded; in-memory entries (zip members, uploads) from their bytes
    src: str | BinaryIO = str(entry.path) if entry.path is not None else io.BytesIO(entry.data or b"")
    size = entry.size
    try:
        with quiet_pydicom():
            parsed = _parse_deflated(entry, force, settings) if _DEFLATED_BYTES in head else None
            if parsed is not None:
                ds, size = parsed
            else:
                ds = pydicom.dcmread(src, defer_size=_DEFER, force=force)
    except DicomReadError:
        raise
    except InvalidDicomError as exc:
        raise DicomReadError(f"is not a DICOM file ({exc})", source=name) from exc
    except Exception as exc:  # pydicom raises many kinds on corrupt input
        raise DicomReadError(f"DICOM header could not be read ({type(exc).__name__}: {exc})", source=name) from exc
    if force and "SOPClassUID" not in ds and "Rows" not in ds:
        raise DicomReadError("is not a DICOM file (no 'DICM' marker and no recognisable DICOM header)", source=name)
    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = getattr(ds, "file_meta", None) or pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds, size


def _check_image(ds: Dataset, name: str) -> int:
    """The Pixel Data tag of a single-channel image dataset.

    Raises:
        IgnoredFile: a DICOMDIR.
        DicomReadError: a non-image object, a SEG object, Pixel Data without
            Rows/Columns, or a colour image.
    """
    sop = tag_text(ds, "SOPClassUID") or ""
    sop_name = _uid_name(sop) if sop else "unknown SOP class"
    media_sop = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", "") or "")
    if _DICOMDIR_SOP in (sop, media_sop) or 0x00041220 in ds:  # (0004,1220) Directory Record Sequence
        raise IgnoredFile(
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
    if sop == _SEG_SOP:  # not an image: handed to deepoxymap.io.seg, which maps it onto its series
        from deepoxymap.io.seg import segmentation_file

        raise segmentation_file(ds, name)
    if "Rows" not in ds or "Columns" not in ds:
        raise DicomReadError("has Pixel Data but no Rows (0028,0010) / Columns (0028,0011)", source=name)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if spp != 1:
        raise DicomReadError(
            f"is a colour image (SamplesPerPixel (0028,0002) = {spp}, {ds.get('PhotometricInterpretation', '')}); "
            "only greyscale MR images are supported",
            source=name,
        )
    return pix


def _frame_count(ds: Dataset, name: str) -> int:
    """NumberOfFrames (1 when absent or empty).

    Raises:
        DicomReadError: NumberOfFrames is not a positive whole number.
    """
    text = tag_text(ds, "NumberOfFrames")
    if not text:
        return 1
    first = text.split("\\")[0].strip()
    try:
        v = float(first)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or v != int(v) or v < 1:
        raise DicomReadError(
            f"NumberOfFrames (0028,0008) = '{first[:40]}' is not a positive whole number of frames; not read",
            source=name,
        )
    return int(v)


def _int_attr(ds: Dataset, keyword: str, tag: str, name: str) -> int:
    """An integer attribute of the image pixel module.

    Raises:
        DicomReadError: absent or not a whole number.
    """
    value = ds.get(keyword)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DicomReadError(f"{keyword} {tag} = '{str(value)[:40]}' is not a whole number", source=name) from exc


def _value_layout(ds: Dataset, name: str, pix: int) -> tuple[int, int, int, float, str]:
    """``(rows, cols, samples, bytes per stored value, bits in words)`` of the image.

    Raises:
        DicomReadError: Rows or Columns is 0, or BitsAllocated is not 1 or a
            multiple of 8 up to 64.
    """
    rows = _int_attr(ds, "Rows", "(0028,0010)", name)
    cols = _int_attr(ds, "Columns", "(0028,0011)", name)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if rows < 1 or cols < 1 or spp < 1:
        raise DicomReadError(f"Rows x Columns ({rows} x {cols}) holds no pixel", source=name)
    if pix in _FLOAT_BYTES:
        nbytes = _FLOAT_BYTES[pix]
        return rows, cols, spp, float(nbytes), f"{8 * nbytes}-bit float"
    bits = _int_attr(ds, "BitsAllocated", "(0028,0100)", name)
    if bits != 1 and (bits % 8 or not 8 <= bits <= 64):
        raise DicomReadError(
            f"BitsAllocated (0028,0100) = {bits} is not supported (1 or a multiple of 8 up to 64)", source=name
        )
    return rows, cols, spp, bits / 8, f"{bits} bits"


def _check_pixel_data(ds: Dataset, name: str, pix: int, size: int, n_frames: int, settings: Settings) -> None:
    """Pixel Data of ``n_frames`` frames fits the limits and the file (``size`` bytes) and can be decoded.

    Checked in this order, from the header alone: the decoded size against
    ``max_image_bytes`` (every transfer syntax), truncation, the frames against
    the bytes present, and a decoder for the transfer syntax.

    Raises:
        DicomReadError: the image would decode past the limit, the file is
            truncated, the Pixel Data cannot hold the declared frames
            (Rows x Columns x BitsAllocated x frames for native data, one item
            per frame for compressed data), or no decoder exists for the
            transfer syntax.
    """
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    if not ts.is_transfer_syntax:
        raise DicomReadError(
            f"TransferSyntaxUID (0002,0010) '{str(ts)[:64]}' is not a known transfer syntax", source=name
        )
    rows, cols, spp, nbytes, bits_text = _value_layout(ds, name, pix)
    n_values = rows * cols * spp * n_frames
    what = f"{rows} x {cols} pixels x {spp} sample(s) x {n_frames} frame(s) of {bits_text}"
    refused = image_too_large(n_values, nbytes, settings, name=name, what=what)
    if refused is not None:
        raise refused
    raw: DataElement | RawDataElement | None = ds.get_item(pix, keep_deferred=True)
    length: int | None = getattr(raw, "length", None)
    value = getattr(raw, "value", None)
    if length is None and isinstance(value, (bytes, bytearray)):
        length = len(value)
    tell: int | None = getattr(raw, "value_tell", None)
    label = _PIXEL_NAMES[pix]
    if length is not None and length != _UNDEFINED and tell is not None and tell + length > size:
        raise DicomReadError(
            f"file is truncated: {label} declares {length} bytes but only {max(size - tell, 0)} remain in the file",
            source=name,
        )
    if ts.is_compressed:
        _check_encapsulated(ds, name, ts, length, value, tell, size, n_frames)
        return
    if length == _UNDEFINED:
        raise DicomReadError(
            f"{label} has an undefined length, which only compressed transfer syntaxes allow ({ts.name})", source=name
        )
    expected = (n_values + 7) // 8 if nbytes < 1 else int(n_values * nbytes)
    # trailing padding (pydicom ignores it) is tolerated; a shortfall or a gross excess is not
    if length is not None and (length < expected or length > expected + max(expected // 10, 1)):
        raise DicomReadError(
            f"Rows x Columns ({rows} x {cols}, {bits_text}, {n_frames} frame(s)) need {expected} bytes of "
            f"{label.split(' (')[0]} but the file holds {length}",
            source=name,
        )


def _check_encapsulated(
    ds: Dataset,
    name: str,
    ts: UID,
    length: int | None,
    value: object,
    tell: int | None,
    size: int,
    n_frames: int,
) -> None:
    """Compressed Pixel Data: enough bytes for one item per declared frame, and a decoder.

    Raises:
        DicomReadError: fewer bytes than ``n_frames`` items need, or no
            (installed) decoder for ``ts``.
    """
    if isinstance(value, (bytes, bytearray)):
        present = len(value)
    elif length is not None and length != _UNDEFINED:
        present = length
    else:
        present = max(size - (tell or 0), 0)
    per_frame = _ITEM_BYTES + _MIN_FRAME_BYTES
    need = _ITEM_BYTES + n_frames * per_frame  # the basic offset table item, then one item per frame
    if need > present:
        raise DicomReadError(
            f"NumberOfFrames (0028,0008) = {n_frames} cannot fit: {n_frames} compressed frame(s) need at least "
            f"{need} bytes of Pixel Data but at most {present} are present; not read",
            source=name,
        )
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise DicomReadError(f"transfer syntax '{ts.name}' ({ts}) is not supported for images", source=name) from exc
    if not decoder.is_available:
        raise DicomReadError(
            f"no decoder is installed for transfer syntax '{ts.name}' ({ts})",
            source=name,
            hint="install pylibjpeg-openjpeg, pylibjpeg-rle, pyjpegls or python-gdcm",
        )


def read_header(entry: Entry, settings: Settings | None = None) -> DicomHeader:
    """Parse and validate one DICOM file without reading its Pixel Data (see the module docstring).

    Args:
        entry: the file.
        settings: the limits (``max_image_bytes``); defaults to
            :func:`deepoxymap.config.settings`.

    Raises:
        IgnoredFile: a DICOMDIR (report it as info).
        DicomReadError: the file is not DICOM, not a single-channel image, is
            truncated, declares an impossible or too large image, its
            Rows/Columns do not fit the Pixel Data, or its transfer syntax
            cannot be decoded. The message names the file.
    """
    cfg = settings or current_settings()
    name = entry.name
    ds, size = _parse(entry, cfg)
    pix = _check_image(ds, name)
    n_frames = _frame_count(ds, name)
    if n_frames > cfg.max_frames_per_file:
        raise DicomReadError(
            f"NumberOfFrames (0028,0008) = {n_frames} is more than the limit of {cfg.max_frames_per_file} "
            "frames per file; not read",
            source=name,
            hint="raise max_frames_per_file if the file is genuine",
        )
    _check_pixel_data(ds, name, pix, size, n_frames, cfg)
    enhanced = n_frames > 1 and "PerFrameFunctionalGroupsSequence" in ds
    return DicomHeader(name, ds, n_frames, enhanced)
