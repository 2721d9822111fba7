"""A seeded mutator of real DICOM (and NIfTI, zip) files, and the invariants every mutant must keep.

No new dependency: :class:`random.Random` drives everything, so a seed gives the
same cases on every machine. Seeds are generated here (pydicom, nibabel,
zipfile), one of each kind in :data:`SEED_KINDS`: native single-frame (explicit
and implicit VR), RLE single- and multi-frame, JPEG baseline, JPEG-LS and
JPEG 2000 (when an encoder is installed), JPEG Lossless (pydicom-data's
``JPGLosslessP14SV1_1s_1f_8b.dcm``, where installed), enhanced multi-frame, deflated,
Float Pixel Data, ``.nii``, ``.nii.gz`` and a zip of two seeds.

Mutations (:data:`MUTATIONS`), one to three per case:

* ``flip``: random bytes changed, mostly in the header (first 1 KiB), else anywhere;
* ``truncate``: the file cut at a random length;
* ``splice``: a random run of bytes inserted or deleted;
* ``tag``: one header value rewritten in place (Rows, Columns, BitsAllocated,
  BitsStored, SamplesPerPixel, PixelRepresentation as raw 16-bit values) or
  re-encoded (NumberOfFrames, TransferSyntaxUID, PixelSpacing,
  ImagePositionPatient, ImageOrientationPatient, RescaleSlope, Photometric
  Interpretation, SOPInstanceUID of a good file, ...);
* ``frame``: the compressed frames edited (RLE header segment count and
  offsets, item lengths, bytes inside a fragment);
* ``nifti``: header fields of NIfTI seeds (dims, datatype, vox_offset, pixdim,
  sform with NaN, scl_slope).

:func:`run_case` loads each mutant with the good cine of :mod:`io_hostile`
through the upload API and checks the invariants (:func:`check`): no exception
escapes ``load``, the case finishes within the time bound, the good files are
all kept (the good stack intact), every input ends in a series or in the
report, every issue names its file, and the loader's safety net never fires.
"""

from __future__ import annotations

import io
import random
import struct
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from io_hostile import GOOD_SHAPE, GOOD_UID, good_files
from io_synth import mr_dataset, to_bytes
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    JPEG2000,
    MPEG2MPML,
    DeflatedExplicitVRLittleEndian,
    EnhancedMRImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from deepoxymap.config import Settings
from deepoxymap.errors import DeepOxyMapError
from deepoxymap.io import LoadResult, load
from deepoxymap.io.loader import UNACCOUNTED

__all__ = ["MUTATIONS", "SEED_KINDS", "Case", "Outcome", "check", "make_cases", "run_case", "seeds"]

TIME_BOUND_S = 10.0
"""No case may take longer (the issue's bound for refusing any file)."""

FUZZ_SETTINGS = Settings(max_image_bytes=64 * 1024**2, max_stack_bytes=256 * 1024**2, max_frames=20_000)
"""Limits of the fuzz loads: the defaults' shape, smaller so that a case stays cheap."""

_TS_CHOICES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEG2000,
    MPEG2MPML,
    "1.2.3.4",
    "",
]
_US_TAGS = {  # (group, element) of the US elements rewritten as raw 16-bit values
    "Rows": (0x0028, 0x0010),
    "Columns": (0x0028, 0x0011),
    "BitsAllocated": (0x0028, 0x0100),
    "BitsStored": (0x0028, 0x0101),
    "HighBit": (0x0028, 0x0102),
    "PixelRepresentation": (0x0028, 0x0103),
    "SamplesPerPixel": (0x0028, 0x0002),
}
_US_VALUES = [0, 1, 2, 3, 7, 8, 12, 15, 16, 17, 24, 32, 64, 255, 256, 4095, 32768, 65535]
_TEXT_EDITS: dict[str, list[str]] = {
    "NumberOfFrames": ["-5", "0", "1", "2", "3", "7", "1000", "3000000", "2.5", "abc", "1e9", ""],
    "PixelSpacing": ["0\\0", "-1\\1.5", "nan\\1", "inf\\inf", "1e308\\1", "1", "0.5\\0.5\\0.5", "x\\y"],
    "ImagePositionPatient": ["nan\\0\\0", "1e308\\0\\0", "0\\0", "a\\b\\c", "-inf\\0\\1"],
    "ImageOrientationPatient": ["0\\0\\0\\0\\0\\0", "1\\0\\0\\1\\0\\0", "nan\\0\\0\\0\\1\\0", "1\\0\\0"],
    "RescaleSlope": ["nan", "1e308", "0", "-1", "inf", "x"],
    "RescaleIntercept": ["nan", "-1e308", "x"],
    "PhotometricInterpretation": ["MONOCHROME1", "RGB", "YBR_FULL_422", "PALETTE COLOR", "", "XYZ"],
    "TriggerTime": ["nan", "-1", "1e300", "x"],
    "SliceThickness": ["-8", "0", "nan"],
    "WindowWidth": ["0", "-1", "nan"],
    "FrameTime": ["0", "-40", "nan", "1e308"],
    "SOPClassUID": ["1.2.840.10008.1.3.10", "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.11", ""],
}


@dataclass
class Case:
    """One mutant: its upload name, bytes, seed kind and the mutations applied (in order)."""

    name: str
    data: bytes
    kind: str
    mutations: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """What :func:`run_case` saw.

    Attributes:
        case: the mutant.
        seconds: wall time of ``load``.
        status: ``"loaded"`` (in a series), ``"warned"`` (in a series, with a
            warning), ``"refused"`` (an error), ``"ignored"`` (an info line) or
            ``"violation"``.
        problems: invariants broken (empty when all hold).
        message: the first issue about the mutant, if any.
    """

    case: Case
    seconds: float
    status: str
    problems: list[str]
    message: str = ""


# ---------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------


def _mr(rows: int = 16, cols: int = 16, **kw: object) -> Dataset:
    px = (np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) * 37) % 4000
    return mr_dataset(px, series_uid=generate_uid(), trigger=40.0, **kw)  # type: ignore[arg-type]


def _multi(n: int = 3) -> Dataset:
    ds = _mr(12, 12)
    frames = np.stack([(np.arange(144, dtype=np.uint16).reshape(12, 12) + 100 * i) for i in range(n)])
    ds.set_pixel_data(frames, "MONOCHROME2", 12)
    ds.NumberOfFrames = n
    ds.FrameTime = 40.0
    return ds


def _enhanced() -> Dataset:
    base = _mr(8, 8)
    ds = Dataset()
    ds.file_meta = base.file_meta
    ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    ds.SOPClassUID = EnhancedMRImageStorage
    ds.SOPInstanceUID = base.file_meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = base.SeriesInstanceUID
    ds.Modality = "MR"
    ds.SeriesDescription = "cine_enhanced"
    per_frame = []
    for k in range(2):
        for j in range(2):
            item = Dataset()
            pos = Dataset()
            pos.ImagePositionPatient = [0.0, 0.0, 6.0 * k]
            item.PlanePositionSequence = DicomSequence([pos])
            card = Dataset()
            card.NominalCardiacTriggerDelayTime = 30.0 * j
            item.CardiacSynchronizationSequence = DicomSequence([card])
            per_frame.append(item)
    shared = Dataset()
    ori = Dataset()
    ori.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    shared.PlaneOrientationSequence = DicomSequence([ori])
    meas = Dataset()
    meas.PixelSpacing = [1.25, 1.25]
    meas.SliceThickness = 6.0
    shared.PixelMeasuresSequence = DicomSequence([meas])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.set_pixel_data(np.stack([np.full((8, 8), 10 * i, np.uint16) for i in range(4)]), "MONOCHROME2", 12)
    return ds


def _float() -> Dataset:
    from io_hostile import float_pixels

    return float_pixels(np.linspace(0, 1000, 64, dtype=np.float32).reshape(8, 8))


def _jpeg() -> Dataset:
    from PIL import Image
    from pydicom.encaps import encapsulate

    img = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    ds = _mr()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    return ds


def _compressed(ds: Dataset, ts: str) -> Dataset | None:
    try:
        ds.compress(ts)
    except Exception:  # noqa: BLE001 - no encoder installed for this syntax: no seed of this kind
        return None
    return ds


def _nifti(gz: bool) -> bytes:
    from io_synth import nifti_bytes

    vol = (np.arange(6 * 5 * 3, dtype=np.int16).reshape(6, 5, 3) * 11) % 300
    aff = np.diag([1.5, 1.5, 8.0, 1.0])
    return nifti_bytes(vol, aff, gz=gz)


def _fixed_uids(ds: Dataset, i: int) -> Dataset:
    """``ds`` with SeriesInstanceUID and SOPInstanceUID fixed by ``i`` (so that a seed gives the same bytes)."""
    root = "1.2.826.0.1.3680043.8.498.15"
    ds.SeriesInstanceUID = f"{root}.{i}.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{root}.{i}.2"
    return ds


def _testdata(name: str) -> bytes | None:
    """A pydicom test file's bytes, or ``None`` where ``pydicom-data`` is not installed."""
    import warnings

    from pydicom.data import get_testdata_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file(name)
    return None if path is None else Path(path).read_bytes()


def seeds() -> dict[str, bytes]:
    """One valid file of each kind (``{kind: bytes}``), each of its own series, the same bytes on every call.

    Kinds without an encoder (or without pydicom-data, for ``jpeg_ll``) are left out.
    """
    out: dict[str, bytes] = {}
    builders: dict[str, Callable[[], Dataset | None]] = {
        "native": _mr,
        "implicit": lambda: _mr(),
        "rle": lambda: _compressed(_mr(), RLELossless),
        "rle_multi": lambda: _compressed(_multi(), RLELossless),
        "native_multi": _multi,
        "jpeg": _jpeg,
        "jpegls": lambda: _compressed(_mr(), JPEGLSLossless),
        "j2k": lambda: _compressed(_mr(32, 32), JPEG2000Lossless),  # openjpeg refuses 16 x 16
        "enhanced": _enhanced,
        "float": _float,
    }
    for i, (kind, build) in enumerate(builders.items()):
        ds = build()
        if ds is None:
            continue
        if kind == "implicit":
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        out[kind] = to_bytes(_fixed_uids(ds, i))
    ll = _testdata("JPGLosslessP14SV1_1s_1f_8b.dcm")  # JPEG Lossless: no encoder here, pydicom-data has one
    if ll is not None:
        out["jpeg_ll"] = ll
    dfl = _fixed_uids(_mr(), 99)
    dfl.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out["deflated"] = to_bytes(dfl)
    out["nii"] = _nifti(False)
    out["nii_gz"] = _nifti(True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, kind in (("a/x.dcm", "native"), ("b/y.dcm", "rle")):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), out[kind], zipfile.ZIP_DEFLATED)
    out["zip"] = buf.getvalue()
    return out


SEED_KINDS = (
    "native",
    "implicit",
    "rle",
    "rle_multi",
    "native_multi",
    "jpeg",
    "jpegls",
    "j2k",
    "jpeg_ll",
    "enhanced",
    "float",
    "deflated",
    "nii",
    "nii_gz",
    "zip",
)


# ---------------------------------------------------------------------------
# mutations
# ---------------------------------------------------------------------------


def _flip(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, str]:
    b = bytearray(data)
    if not b:
        return data, "flip:empty"
    n = rng.choice([1, 1, 2, 4, 8, 16])
    head = min(len(b), 1024)
    for _ in range(n):
        i = rng.randrange(head) if rng.random() < 0.6 else rng.randrange(len(b))
        b[i] = rng.randrange(256)
    return bytes(b), f"flip:{n}"


def _truncate(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, str]:
    n = rng.randrange(len(data) + 1) if rng.random() < 0.5 else max(len(data) - rng.randrange(1, 200), 0)
    return data[:n], f"truncate:{n}"


def _splice(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, str]:
    i = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        n = rng.choice([1, 2, 4, 8, 100])
        return data[:i] + bytes(rng.randrange(256) for _ in range(n)) + data[i:], f"insert:{n}"
    n = rng.choice([1, 2, 4, 8, 100])
    return data[:i] + data[i + n :], f"delete:{n}"


def _patch_us(data: bytes, tag: tuple[int, int], value: int) -> bytes | None:
    """Rewrite a US element's value in place (explicit or implicit VR little endian), or ``None`` if absent."""
    g, e = tag
    for marker in (struct.pack("<HH", g, e) + b"US\x02\x00", struct.pack("<HHI", g, e, 2)):
        pos = data.find(marker)
        if pos >= 0:
            at = pos + len(marker)
            return data[:at] + struct.pack("<H", value) + data[at + 2 :]
    return None


def _reencode(data: bytes, edit: Callable[[Dataset], None]) -> bytes | None:
    """Parse, edit and write again with pydicom's validation off; ``None`` when pydicom cannot."""
    saved = (pydicom_config.settings.reading_validation_mode, pydicom_config.settings.writing_validation_mode)
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        ts = ds.file_meta.get("TransferSyntaxUID")
        edit(ds)
        buf = io.BytesIO()
        if ds.file_meta.get("TransferSyntaxUID") != ts:  # relabel only: keep the original encoding of the data set
            new_ts = ds.file_meta.TransferSyntaxUID
            ds.file_meta.TransferSyntaxUID = ts
            ds.save_as(buf, enforce_file_format=False)
            return _relabel(buf.getvalue(), str(ts), str(new_ts))
        ds.save_as(buf, enforce_file_format=False)
        return buf.getvalue()
    except Exception:  # noqa: BLE001 - an edit pydicom refuses to write: the case uses another mutation
        return None
    finally:
        pydicom_config.settings.reading_validation_mode, pydicom_config.settings.writing_validation_mode = saved


def _relabel(data: bytes, old: str, new: str) -> bytes:
    """The file with the TransferSyntaxUID text of its meta replaced (length field and group length fixed)."""
    val_old = old.encode() + (b"\x00" if len(old) % 2 else b"")
    val_new = new.encode() + (b"\x00" if len(new) % 2 else b"")
    marker = b"\x02\x00\x10\x00UI"
    pos = data.find(marker + struct.pack("<H", len(val_old)) + val_old)
    if pos < 0:
        return data
    out = data[:pos] + marker + struct.pack("<H", len(val_new)) + val_new + data[pos + 8 + len(val_old) :]
    if out[132:140] == b"\x02\x00\x00\x00UL\x04\x00":
        glen = struct.unpack("<I", out[140:144])[0] + len(val_new) - len(val_old)
        out = out[:140] + struct.pack("<I", glen) + out[144:]
    return out


def _tag(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, str]:
    if rng.random() < 0.4:
        name = rng.choice(sorted(_US_TAGS))
        value = rng.choice(_US_VALUES)
        out = _patch_us(data, _US_TAGS[name], value)
        if out is not None:
            return out, f"tag:{name}={value}"
    if rng.random() < 0.25:
        ts = rng.choice(_TS_CHOICES)

        def set_ts(ds: Dataset) -> None:
            ds.file_meta.TransferSyntaxUID = ts

        out = _reencode(data, set_ts)
        return (out, f"tag:TransferSyntaxUID={ts or 'empty'}") if out is not None else _flip(rng, data, kind)
    if rng.random() < 0.1:
        good = min(good_files().items())[1]
        uid = pydicom.dcmread(io.BytesIO(good), stop_before_pixels=True).SOPInstanceUID

        def steal_sop(ds: Dataset) -> None:
            ds.SOPInstanceUID = uid

        out = _reencode(data, steal_sop)
        return (out, "tag:SOPInstanceUID=good") if out is not None else _flip(rng, data, kind)
    key = rng.choice(sorted(_TEXT_EDITS))
    value = rng.choice(_TEXT_EDITS[key])

    def set_text(ds: Dataset) -> None:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        tag = tag_for_keyword(key)
        assert tag is not None
        ds.add_new(tag, dictionary_VR(tag), value)
        ds[tag]._value = value  # raw text, no conversion

    out = _reencode(data, set_text)
    return (out, f"tag:{key}={value or 'empty'}") if out is not None else _flip(rng, data, kind)


def _frame(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, str]:
    """Edit the encapsulated frames: item lengths, RLE header fields, bytes inside a fragment."""
    pix = data.rfind(b"\xe0\x7f\x10\x00")
    items = []
    start = data.find(b"\xfe\xff\x00\xe0", max(pix, 0))
    while start >= 0:
        items.append(start)
        start = data.find(b"\xfe\xff\x00\xe0", start + 8)
    if pix < 0 or len(items) < 2:
        return _flip(rng, data, kind)
    b = bytearray(data)
    item = rng.choice(items[1:])  # a frame's fragment (items[0] is the basic offset table)
    what = rng.choice(["length", "rle_segments", "rle_offset", "bytes"])
    if what == "length":
        b[item + 4 : item + 8] = struct.pack("<I", rng.choice([0, 1, 7, 64, 0xFFFFFFFE, 0xFFFFFFFF, 2**31]))
    elif what == "rle_segments" and item + 12 <= len(b):
        b[item + 8 : item + 12] = struct.pack("<I", rng.choice([0, 1, 2, 3, 15, 16, 255, 2**31]))
    elif what == "rle_offset" and item + 16 <= len(b):
        k = rng.randrange(1, 16)
        b[item + 8 + 4 * k : item + 12 + 4 * k] = struct.pack("<I", rng.choice([0, 1, 63, 64, 2**20, 2**32 - 1]))
    else:
        end = min(len(b), item + 8 + 200)
        for _ in range(rng.choice([1, 4, 16])):
            if end > item + 8:
                b[rng.randrange(item + 8, end)] = rng.randrange(256)
    return bytes(b), f"frame:{what}"


def _nifti_edit(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, str]:
    """Rewrite one NIfTI header field (dims, datatype, vox_offset, pixdim, sform, scl_slope)."""
    import gzip

    import nibabel as nib

    gz = data[:2] == b"\x1f\x8b"
    try:
        raw = gzip.decompress(data) if gz else data
        hdr = nib.Nifti1Header(raw[:348], check=False)
    except Exception:  # noqa: BLE001 - an already broken stream: flip bytes instead
        return _flip(rng, data, kind)
    what = rng.choice(["dim", "datatype", "vox_offset", "pixdim", "sform", "slope", "bitpix"])
    if what == "dim":
        dims = [rng.choice([-1, 0, 1, 2, 3, 4, 5, 7, 8]), *(rng.choice([0, 1, 3, 6, 1024, 32767]) for _ in range(7))]
        hdr["dim"] = dims
    elif what == "datatype":
        hdr["datatype"] = rng.choice([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1792, 2304, 9999])
    elif what == "vox_offset":
        hdr["vox_offset"] = rng.choice([0.0, 1.0, 348.0, 351.0, 1e9, -5.0, float("nan")])
    elif what == "pixdim":
        hdr["pixdim"] = [rng.choice([1.0, -1.0]), *(rng.choice([0.0, -1.5, 1.5, float("nan"), 1e30]) for _ in range(7))]
    elif what == "sform":
        hdr["sform_code"] = rng.choice([0, 1, 2, 99])
        hdr["srow_x"] = [rng.choice([1.0, 0.0, float("nan"), float("inf")]), 0.0, 0.0, 0.0]
    elif what == "slope":
        hdr["scl_slope"] = rng.choice([0.0, float("nan"), float("inf"), -1.0, 1e38])
        hdr["scl_inter"] = rng.choice([0.0, float("nan"), float("inf")])
    else:
        hdr["bitpix"] = rng.choice([0, 1, 7, 64, 255])
    out = hdr.binaryblock + raw[348:]
    return (gzip.compress(out, compresslevel=1) if gz else out), f"nifti:{what}"


MUTATIONS: dict[str, Callable[[random.Random, bytes, str], tuple[bytes, str]]] = {
    "flip": _flip,
    "truncate": _truncate,
    "splice": _splice,
    "tag": _tag,
    "frame": _frame,
    "nifti": _nifti_edit,
}


def _choose(rng: random.Random, kind: str) -> str:
    if kind.startswith("nii"):
        return rng.choice(["nifti", "nifti", "flip", "truncate", "splice"])
    if kind == "zip":
        return rng.choice(["flip", "flip", "truncate", "splice"])
    compressed = kind in ("rle", "rle_multi", "jpeg", "jpegls", "j2k", "jpeg_ll")
    pool = ["tag", "tag", "tag", "flip", "flip", "truncate", "splice"] + (["frame", "frame"] if compressed else [])
    return rng.choice(pool)


_SUFFIX = {"nii": ".nii", "nii_gz": ".nii.gz", "zip": ".zip"}


def make_cases(n: int, seed: int = 0, kinds: dict[str, bytes] | None = None) -> list[Case]:
    """``n`` mutants, the same for a given ``seed``: seed kinds in turn, one to three mutations each."""
    rng = random.Random(seed)
    base = kinds if kinds is not None else seeds()
    names = sorted(base)
    out = []
    for i in range(n):
        kind = names[i % len(names)]
        data = base[kind]
        applied = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            data, what = MUTATIONS[_choose(rng, kind)](rng, data, kind)
            applied.append(what)
        out.append(Case(f"fuzz/{i:05d}_{kind}{_SUFFIX.get(kind, '.dcm')}", data, kind, applied))
    return out


# ---------------------------------------------------------------------------
# invariants
# ---------------------------------------------------------------------------


def check(res: LoadResult, case: Case, good_names: list[str], seconds: float) -> list[str]:
    """The invariants broken by one load of the good files plus ``case`` (empty list: all hold)."""
    problems = []
    if seconds > TIME_BOUND_S:
        problems.append(f"took {seconds:.1f} s (bound {TIME_BOUND_S:.0f} s)")
    good = [s for s in res.series if s.uid == GOOD_UID]
    if len(good) != 1 or good[0].stack.data.shape != GOOD_SHAPE:
        problems.append(f"good stack lost or changed: {[(s.uid, s.stack.data.shape) for s in res.series]}")
    elif sorted(np.unique(good[0].stack.data).tolist()) != [1.0, 2.0, 101.0, 102.0]:
        problems.append("good stack values changed")
    in_series = {f for s in res.series for f in s.files}
    for n in good_names:
        if n not in in_series:
            problems.append(f"good file {n} not in any series")
    seen = in_series | {i.file for i in res.issues}
    named = any(f == case.name or f.startswith((case.name + ":", case.name + " [")) for f in seen)
    empty_zip = case.kind == "zip" and res.n_files == len(good_names)  # an archive with no member left to name
    if not named and not empty_zip:
        problems.append("mutant in no series and no issue")
    for i in res.issues:
        if not isinstance(i.error, DeepOxyMapError):
            problems.append(f"issue error is {type(i.error).__name__}")
        if i.file not in i.message:
            problems.append(f"message does not name its file: {i.message[:120]!r}")
        if UNACCOUNTED in i.message:
            problems.append(f"safety net fired: {i.message[:120]!r}")
        if "could not be assembled" in i.message or "internal" in i.message:
            problems.append(f"unexpected failure: {i.message[:160]!r}")
    return problems


def run_case(case: Case, good: dict[str, bytes] | None = None, settings: Settings = FUZZ_SETTINGS) -> Outcome:
    """Load the good files plus the mutant as uploads and check the invariants."""
    good = good if good is not None else good_files()
    t0 = time.perf_counter()
    try:
        res = load([*good.items(), (case.name, case.data)], settings=settings)
    except BaseException as exc:  # noqa: BLE001 - the invariant under test: nothing escapes load
        return Outcome(case, time.perf_counter() - t0, "violation", [f"load raised {type(exc).__name__}: {exc}"])
    seconds = time.perf_counter() - t0
    problems = check(res, case, list(good), seconds)
    mine = [i for i in res.issues if i.file.startswith(case.name)]
    loaded = any(f.startswith(case.name) for s in res.series for f in s.files)
    if problems:
        status = "violation"
    elif loaded:
        status = "warned" if any(i.severity == "warning" for i in mine) else "loaded"
    elif any(i.severity == "error" for i in mine):
        status = "refused"
    else:
        status = "ignored"
    return Outcome(case, seconds, status, problems, mine[0].message if mine else "")
