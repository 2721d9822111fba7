"""Bad input never crashes: each bad file gives one clear issue, and the good files beside it load.

Every case builds a folder (or upload list) holding a small good cine (2 slices x 2
frames) plus the broken input, then checks (1) the message names the file and says
what is wrong, (2) its error is a DeepOxyMapError subclass, and (3) the good cine loaded.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from io_synth import cine_files, mr_dataset, nifti_bytes, to_bytes, write
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

from deepoxymap.config import Settings
from deepoxymap.errors import ArchiveError, DeepOxyMapError, DicomReadError, NiftiReadError
from deepoxymap.io import LoadResult, load

GOOD_UID = "1.2.826.0.1.3680043.8.498.77"


def _good(folder: Path) -> None:
    cine_files(folder, n_slices=2, n_frames=2, series_uid=GOOD_UID, rng=np.random.default_rng(1))


def _good_loaded(res: LoadResult) -> None:
    good = [s for s in res.series if s.uid == GOOD_UID]
    assert len(good) == 1, [s.uid for s in res.series]
    assert good[0].stack.data.shape == (2, 2, 8, 10)
    assert good[0].stack.geometry.has_geometry


def _one_issue(res: LoadResult, name: str, severity: str = "error") -> DeepOxyMapError:
    hits = [i for i in res.issues if name in i.file]
    assert len(hits) == 1, res.issues
    assert hits[0].severity == severity
    assert name in hits[0].message  # the message names the file
    assert isinstance(hits[0].error, DeepOxyMapError)
    return hits[0].error


def _px() -> np.ndarray:
    return np.full((8, 10), 7, np.uint16)


def _truncated(p: Path) -> None:
    data = to_bytes(mr_dataset(np.ones((32, 32), np.uint16), series_uid=generate_uid()))
    p.write_bytes(data[: len(data) - 500])


def _no_pixels(p: Path) -> None:
    ds = mr_dataset(_px(), series_uid=generate_uid())
    del ds.PixelData
    write(ds, p)


def _rows_cols(p: Path) -> None:
    ds = mr_dataset(_px(), series_uid=generate_uid())
    ds.Rows = 64  # 64 x 10 needs 1280 bytes, the file holds 160
    write(ds, p)


def _unsupported_ts(p: Path) -> None:
    ds = mr_dataset(_px(), series_uid=generate_uid())
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x01" * 50])
    ds["PixelData"].VR = "OB"
    write(ds, p)


def _sr(p: Path) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    write(ds, p)


def _png(p: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(p, format="PNG")


CASES: dict[str, tuple[str, Callable[[Path], None], str, type[DeepOxyMapError]]] = {
    "empty": ("empty.dcm", lambda p: p.write_bytes(b""), "file is empty (0 bytes)", DicomReadError),
    "text": ("notes.dcm", lambda p: p.write_text("patient notes\nline 2\n"), "is a text file", DicomReadError),
    "png": ("image.dcm", _png, "is a PNG image, not a DICOM file", DicomReadError),
    "truncated": (
        "cut.dcm",
        _truncated,
        "file is truncated: Pixel Data (7FE0,0010) declares 2048 bytes",
        DicomReadError,
    ),
    "no-pixels": ("nopix.dcm", _no_pixels, "has no Pixel Data (7FE0,0010)", DicomReadError),
    "rows-cols": (
        "rc.dcm",
        _rows_cols,
        "Rows x Columns (64 x 10, 16 bits, 1 frame(s)) need 1280 bytes",
        DicomReadError,
    ),
    "transfer-syntax": (
        "mpeg.dcm",
        _unsupported_ts,
        "transfer syntax 'MPEG2 Main Profile / Main Level'",
        DicomReadError,
    ),
    "sr": ("report.dcm", _sr, "is a Basic Text SR Storage object", DicomReadError),
    "corrupt-nifti": (
        "vol.nii.gz",
        lambda p: p.write_bytes(nifti_bytes(np.zeros((4, 4, 2), np.float32), np.eye(4))[:-40]),
        "gzip data is truncated",
        NiftiReadError,
    ),
    "garbage-nifti": ("junk.nii", lambda p: p.write_bytes(b"\x01" * 400), "not a readable NIfTI image", NiftiReadError),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_reported_good_files_load(case, tmp_path):
    """One issue naming the bad file and what is wrong; the good cine beside it still loads."""
    fname, make, expected, err_type = CASES[case]
    _good(tmp_path)
    make(tmp_path / fname)
    res = load(tmp_path)
    err = _one_issue(res, fname)
    assert expected in str(err)
    assert isinstance(err, err_type)
    _good_loaded(res)


def test_bad_uploads_as_bytes(tmp_path):
    """The same corpus as (name, bytes) uploads: every bad file reported, the cine loads."""
    _good(tmp_path / "good")
    (tmp_path / "bad").mkdir()
    for fname, make, _, _ in CASES.values():
        make(tmp_path / "bad" / fname)
    uploads = [(p.name, p.read_bytes()) for p in sorted((tmp_path / "good").iterdir())]
    uploads += [(p.name, p.read_bytes()) for p in sorted((tmp_path / "bad").iterdir())]
    res = load(uploads)
    _good_loaded(res)
    for fname, _, expected, _ in CASES.values():
        assert expected in str(_one_issue(res, fname))


def test_missing_geometry_is_flagged_viewable_not_matchable(tmp_path):
    """No IPP/IOP: a warning naming the file, a no-geometry stack that views but refuses matching."""
    from deepoxymap.case import nearest_slice
    from deepoxymap.errors import GeometryError

    _good(tmp_path)
    write(mr_dataset(_px(), series_uid="1.2.3.999", ipp=None, iop=None), tmp_path / "nogeo.dcm")
    res = load(tmp_path)
    err = _one_issue(res, "nogeo.dcm", severity="warning")
    assert "no usable ImagePositionPatient (0020,0032) / ImageOrientationPatient (0020,0037)" in str(err)
    ng = next(s for s in res.series if s.uid == "1.2.3.999")
    assert not ng.stack.geometry.has_geometry
    assert np.all(ng.stack.image(0) == 7)
    _good_loaded(res)
    good = next(s for s in res.series if s.uid == GOOD_UID)
    with pytest.raises(GeometryError, match="no geometry"):
        nearest_slice(good.stack.geometry, 0, ng.stack.geometry)


def test_two_series_mixed_in_one_upload(tmp_path):
    """Files of two series interleaved in one folder load as two separate series."""
    _good(tmp_path)
    other = "1.2.826.0.1.3680043.8.498.88"
    cine_files(tmp_path / "x", n_slices=3, n_frames=1, series_uid=other, rng=np.random.default_rng(5))
    for p in (tmp_path / "x").iterdir():
        p.rename(tmp_path / f"zz_{p.name}")
    res = load(tmp_path)
    assert not res.issues
    assert sorted(s.uid for s in res.series) == sorted([GOOD_UID, other])
    assert next(s for s in res.series if s.uid == other).stack.data.shape == (3, 1, 8, 10)
    _good_loaded(res)


def _zip(members: dict[str, bytes], *, level: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=level) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return buf.getvalue()


def _good_members() -> dict[str, bytes]:
    files = cine_files(None, n_slices=2, n_frames=2, series_uid=GOOD_UID, rng=np.random.default_rng(1))
    return {f"cine/{n}": to_bytes(ds) for n, ds in files.items()}


def test_zip_with_parent_paths_rejects_member_loads_rest():
    """A '../' member is rejected (named in the report); the rest of the zip loads."""
    members = _good_members()
    members["../../etc/evil.dcm"] = b"x" * 10
    members["/abs/evil2.dcm"] = b"x" * 10
    res = load(("upload.zip", _zip(members)))
    err = _one_issue(res, "../../etc/evil.dcm")
    assert isinstance(err, ArchiveError) and "'../' path" in str(err)
    assert "absolute path" in str(_one_issue(res, "/abs/evil2.dcm"))
    _good_loaded(res)


def test_zip_bomb_ratio_limit():
    """A highly compressed member beyond max_zip_ratio is rejected; good members load."""
    members = _good_members()
    members["bomb.dcm"] = b"\x00" * (4 * 1024 * 1024)
    res = load(("u.zip", _zip(members)), settings=Settings(max_zip_ratio=50.0))
    err = _one_issue(res, "bomb.dcm")
    assert isinstance(err, ArchiveError) and "possible zip bomb" in str(err) and "exceeds the limit of 50:1" in str(err)
    _good_loaded(res)


def test_zip_total_bytes_limit():
    """Total uncompressed bytes are capped (max_upload_bytes): later members are refused with one message."""
    members = _good_members()
    total = sum(len(v) for v in members.values())
    members["zzz/big.bin"] = b"\x01" * 5000
    res = load(("u.zip", _zip(members)), settings=Settings(max_upload_bytes=total + 1000))
    err = _one_issue(res, "zzz/big.bin")
    assert isinstance(err, ArchiveError) and "upload too large" in str(err)
    assert f"limit of {total + 1000} bytes" in str(err)
    _good_loaded(res)


def test_file_count_limit(tmp_path):
    """max_upload_files caps the number of files read; one message says so."""
    _good(tmp_path / "a")
    (tmp_path / "b").mkdir()
    for i in range(5):
        (tmp_path / "b" / f"extra{i}.txt").write_text("x")
    res = load([tmp_path / "a", tmp_path / "b"], settings=Settings(max_upload_files=6))
    errs = [i for i in res.issues if "too many files" in i.message]
    assert len(errs) == 1 and "extra2.txt" in errs[0].message and "limit is 6 files" in errs[0].message
    _good_loaded(res)


def test_missing_path_reported(tmp_path):
    """A path that does not exist is an issue, not an exception."""
    _good(tmp_path)
    res = load([tmp_path, tmp_path / "nope"])
    assert "no such file or folder" in str(_one_issue(res, "nope"))
    _good_loaded(res)


def test_undecodable_frame_dropped_rest_of_stack_loads(tmp_path):
    """A file whose compressed pixels are corrupt is reported; its stack is rebuilt without it."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    files = cine_files(None, n_slices=2, n_frames=3, series_uid=GOOD_UID, rng=np.random.default_rng(3))
    names = sorted(files)
    for n in names:
        write(files[n], tmp_path / n)
    bad = files[names[0]]
    bad.file_meta.TransferSyntaxUID = RLELossless
    bad.PixelData = encapsulate([b"\x00\x00\x00\x00" * 4 + b"\xff" * 40])  # RLE header with nonsense
    bad["PixelData"].VR = "OB"
    write(bad, tmp_path / names[0])
    res = load(tmp_path)
    err = _one_issue(res, names[0])
    assert "pixel data could not be decoded" in str(err)
    (s,) = res.series
    assert s.stack.data.shape == (2, 3, 8, 10)  # the short slice repeats its last frame
    assert len(s.files) == 5
    assert any(i.severity == "warning" and "different frame counts" in i.message for i in res.issues)


def test_zip_auxiliary_and_nested_archives():
    """__MACOSX/.DS_Store are ignored (info); a zip inside the zip is reported; the cine loads."""
    members = _good_members()
    members["__MACOSX/cine/._IM0000.dcm"] = b"\x00\x05\x16\x07"
    members["cine/.DS_Store"] = b"junk"
    members["inner.zip"] = _zip({"a.dcm": b"x"})
    res = load(("u.zip", _zip(members)))
    assert "zip archives inside a zip are not opened" in str(_one_issue(res, "inner.zip"))
    infos = [i for i in res.issues if i.severity == "info"]
    assert {i.file for i in infos} == {"u.zip:__MACOSX/cine/._IM0000.dcm", "u.zip:cine/.DS_Store"}
    _good_loaded(res)
