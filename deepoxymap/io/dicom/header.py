"""Step 1: parse and validate one DICOM file without reading its Pixel Data.

:func:`read_header` parses with ``defer_size`` so that large values (the Pixel
Data) are *not* read yet: the header is parsed once and the pixels are fetched
later only for files that are used. The header is validated (image SOP class,
Rows/Columns consistent with the Pixel Data length, file not truncated, a
decoder exists for the transfer syntax).
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import UID, ImplicitVRLittleEndian

from deepoxymap.errors import DicomReadError
from deepoxymap.io.dicom.values import tag_number, tag_text
from deepoxymap.io.sources import Entry

__all__ = ["DicomHeader", "quiet_pydicom", "read_header"]

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


def _expected_pixel_bytes(ds: Dataset, n_frames: int) -> int | None:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    n = rows * cols * spp * n_frames
    return (n + 7) // 8 if bits == 1 else n * (bits // 8)


def _parse(entry: Entry) -> Dataset:
    """The dataset of ``entry`` with its Pixel Data deferred (and a TransferSyntaxUID, implicit VR if absent).

    Raises:
        DicomReadError: the entry cannot be read or is not DICOM.
    """
    name = entry.name
    try:
        head = entry.head(512)
    except OSError as exc:
        raise DicomReadError(f"could not be read ({exc})", source=name) from exc
    why = _sniff(entry.size, head)
    if why:
        raise DicomReadError(why, source=name)
    force = head[128:132] != b"DICM"
    # files on disk are parsed from their path: the deferred Pixel Data is read from the file
    # only when decoded; in-memory entries (zip members, uploads) from their bytes
    src: str | BinaryIO = str(entry.path) if entry.path is not None else io.BytesIO(entry.data or b"")
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
    return ds


def _check_image(ds: Dataset, name: str) -> int:
    """The Pixel Data tag of a single-channel image dataset.

    Raises:
        DicomReadError: a DICOMDIR, a non-image object, a SEG object, Pixel
            Data without Rows/Columns, or a colour image.
    """
    sop = tag_text(ds, "SOPClassUID") or ""
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
    return pix


def _check_pixel_data(ds: Dataset, name: str, pix: int, size: int, n_frames: int) -> None:
    """Pixel Data of ``n_frames`` frames fits the file (``size`` bytes) and can be decoded.

    Raises:
        DicomReadError: the file is truncated, no decoder exists for its
            transfer syntax, or the Pixel Data length does not fit
            Rows x Columns x BitsAllocated x frames.
    """
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    raw: DataElement | RawDataElement | None = ds.get_item(pix, keep_deferred=True)
    length: int | None = getattr(raw, "length", None)
    value = getattr(raw, "value", None)
    if length is None and isinstance(value, (bytes, bytearray)):
        length = len(value)
    tell: int | None = getattr(raw, "value_tell", None)
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


def read_header(entry: Entry) -> DicomHeader:
    """Parse and validate one DICOM file without reading its Pixel Data.

    Raises:
        DicomReadError: the file is not DICOM, not a single-channel image, is
            truncated, its Rows/Columns do not fit the Pixel Data, or its
            transfer syntax cannot be decoded. The message names the file.
    """
    name = entry.name
    ds = _parse(entry)
    pix = _check_image(ds, name)
    n_frames = int(tag_number(ds, "NumberOfFrames") or 1)
    _check_pixel_data(ds, name, pix, entry.size, n_frames)
    enhanced = n_frames > 1 and "PerFrameFunctionalGroupsSequence" in ds
    return DicomHeader(name, ds, n_frames, enhanced)
