"""Builders of hostile inputs for the io tests, and the three ways every test feeds them to the loader.

Every hostile file is generated here (pydicom, zipfile, gzip, nibabel): nothing
binary is committed. :func:`three_ways` mixes the hostile files with a small good
cine (:data:`GOOD_UID`, 2 slices x 2 frames) and loads them through the folder
path, the zip path and the upload API (``(name, bytes)`` pairs).
"""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from io_synth import cine_files, mr_dataset, to_bytes
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from deepoxymap.config import Settings
from deepoxymap.io import LoadIssue, LoadResult, load

GOOD_UID = "1.2.826.0.1.3680043.8.498.77"
GOOD_SHAPE = (2, 2, 8, 10)


def good_files() -> dict[str, bytes]:
    """The good cine as ``{name: bytes}`` (4 files, names under ``good/``)."""
    files = cine_files(None, n_slices=2, n_frames=2, series_uid=GOOD_UID, rng=np.random.default_rng(1))
    for i, n in enumerate(sorted(files)):  # the same SOPInstanceUIDs on every call (duplicate tests need them)
        files[n].SOPInstanceUID = files[n].file_meta.MediaStorageSOPInstanceUID = f"{GOOD_UID}.{i + 1}"
    return {f"good/{n}": to_bytes(ds) for n, ds in files.items()}


def good_loaded(res: LoadResult) -> None:
    """The good cine is one complete stack with geometry and its known values (``100 * slice + frame + 1``)."""
    good = [s for s in res.series if s.uid == GOOD_UID]
    assert len(good) == 1, ([s.uid for s in res.series], res.issues)
    st = good[0].stack
    assert st.data.shape == GOOD_SHAPE
    assert st.geometry.has_geometry
    assert sorted(np.unique(st.data).tolist()) == [1.0, 2.0, 101.0, 102.0]


def zip_bytes(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of ``members`` (duplicate names allowed through a list of pairs, see :func:`zip_pairs`)."""
    return zip_pairs(list(members.items()), compression=compression)


def zip_pairs(members: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of ``(name, bytes)`` members in order; a name may repeat."""
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is the point of some tests
        with zipfile.ZipFile(buf, "w", compression=compression) as zf:
            for n, d in members:
                zf.writestr(n, d)
    return buf.getvalue()


def three_ways(tmp_path: Path, hostile: dict[str, bytes], settings: Settings | None = None) -> dict[str, LoadResult]:
    """Load the good cine plus ``hostile`` through a folder, a zip on disk and ``(name, bytes)`` uploads.

    Returns:
        ``{"folder": ..., "zip": ..., "upload": ...}``. File names end in the
        names given (``folder/<name>``, ``study.zip:<name>``, ``<name>``).
    """
    members = {**good_files(), **hostile}
    folder = tmp_path / "folder"
    for n, d in members.items():
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(d)
    zpath = tmp_path / "study.zip"
    zpath.write_bytes(zip_bytes(members))
    return {
        "folder": load(folder, settings=settings),
        "zip": load(zpath, settings=settings),
        "upload": load(list(members.items()), settings=settings),
    }


def issues_for(res: LoadResult, name: str) -> list[LoadIssue]:
    """Issues whose file is ``name`` (by its ending, whatever the path prefix of the route)."""
    return [i for i in res.issues if i.file.endswith(name)]


def one_issue(res: LoadResult, name: str, severity: str = "error") -> LoadIssue:
    """The one issue about ``name``, of ``severity``, whose message names the file."""
    hits = issues_for(res, name)
    assert len(hits) == 1, res.issues
    assert hits[0].severity == severity, hits[0]
    assert hits[0].file in hits[0].message  # the message names the file, as the route names it
    return hits[0]


def accounted(res: LoadResult, names: list[str]) -> list[str]:
    """Names (by ending) in no series and in no issue: must be empty."""
    seen = [f for s in res.series for f in s.files] + [i.file for i in res.issues]
    return [n for n in names if not any(s.endswith(n) for s in seen)]


@dataclass
class Cost:
    """What one call cost: seconds and the peak of Python-tracked allocations (numpy included), bytes."""

    seconds: float = 0.0
    peak: int = 0


@contextmanager
def measured() -> Iterator[Cost]:
    """Time and tracemalloc peak of the block (numpy reports its buffers to tracemalloc)."""
    cost = Cost()
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - t0
        cost.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# ---------------------------------------------------------------------------
# hostile DICOM
# ---------------------------------------------------------------------------


def small_mr(rows: int = 16, cols: int = 16, value: int = 7, **kw: object) -> Dataset:
    """A single-frame 16-bit MR image of its own series."""
    return mr_dataset(np.full((rows, cols), value, np.uint16), series_uid=generate_uid(), **kw)  # type: ignore[arg-type]


def rle(ds: Dataset) -> Dataset:
    """``ds`` RLE Lossless compressed (pydicom's own encoder)."""
    from pydicom.uid import RLELossless

    ds.compress(RLELossless)
    return ds


def encapsulated(ds: Dataset, transfer_syntax: str, frames: list[bytes]) -> Dataset:
    """``ds`` with ``frames`` encapsulated under ``transfer_syntax`` (no real encoding: the header is the point)."""
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    return ds


def float_pixels(values: np.ndarray) -> Dataset:
    """An image of Float Pixel Data (7FE0,0008) ``values`` ``[rows, cols]`` float32."""
    ds = small_mr()
    del ds.PixelData
    for k in ("BitsStored", "HighBit", "PixelRepresentation"):
        if k in ds:
            delattr(ds, k)
    ds.BitsAllocated = 32
    ds.FloatPixelData = np.ascontiguousarray(values, dtype="<f4").tobytes()
    ds.Rows, ds.Columns = values.shape
    return ds


def deflated(ds: Dataset) -> bytes:
    """``ds`` written as Deflated Explicit VR Little Endian (pydicom deflates the data set)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return to_bytes(ds)


def deflate_bomb(n_zero_bytes: int) -> bytes:
    """A deflated DICOM whose data set inflates to ``n_zero_bytes`` (a private OB element of zeros) plus an image."""
    ds = small_mr()
    ds.add_new(0x00091010, "OB", bytes(n_zero_bytes))
    return deflated(ds)


def dicomdir_bytes() -> bytes:
    """A minimal DICOMDIR (Media Storage Directory; no SOPClassUID in the data set, no Pixel Data)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.sequence import Sequence

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.FileSetID = "STUDY"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = Sequence([])
    return to_bytes(ds)


# ---------------------------------------------------------------------------
# hostile archives and NIfTI
# ---------------------------------------------------------------------------


def gzip_stream(parts: list[bytes | tuple[int, int]]) -> bytes:
    """Gzip of the concatenated parts, streamed: ``bytes`` as they are, ``(n, byte)`` as ``n`` copies of ``byte``.

    The uncompressed stream is never held in memory (1 MiB at a time).
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [b""]
    for part in parts:
        if isinstance(part, bytes):
            out.append(comp.compress(part))
            continue
        n, byte = part
        block = bytes([byte]) * (1 << 20)
        while n > 0:
            out.append(comp.compress(block[: min(n, len(block))]))
            n -= len(block)
    out.append(comp.flush())
    return b"".join(out)


def nifti_header(shape: tuple[int, ...], dtype: str = "uint8", affine: np.ndarray | None = None) -> bytes:
    """The 352 header bytes (348 + the 4 extension bytes) of a NIfTI-1 file of ``shape`` x ``dtype``."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.dtype(dtype))
    hdr.set_sform(np.eye(4) if affine is None else affine, code=1)
    hdr["vox_offset"] = 352
    return hdr.binaryblock + b"\x00" * 4


def nifti_image(data: np.ndarray, affine: np.ndarray, **fields: object) -> bytes:
    """Uncompressed NIfTI-1 bytes of ``data``, with header ``fields`` set afterwards (``scl_slope=0.5``, ...).

    The fields are written into the header bytes directly: nibabel would reset
    scaling or the sform from the data and the affine when saving.
    """
    import nibabel as nib

    raw = nib.Nifti1Image(data, affine).to_bytes()
    if not fields:
        return raw
    hdr = nib.Nifti1Header(raw[:348], check=False)
    for k, v in fields.items():
        hdr[k] = v
    return hdr.binaryblock + raw[348:]
