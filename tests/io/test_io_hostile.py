"""Hostile input (issue 15): each red-team finding, rebuilt from a generated input, with the good files beside it.

Every test mixes the hostile file with a good cine and loads it through the
folder path, the zip path and the upload API (:func:`io_hostile.three_ways`),
then checks that the hostile file is refused or flagged with a message naming it,
that the good cine still loads, and, for the memory findings, that the refusal
is fast and that the peak of tracked allocations stays far below what the file
declares (nothing here allocates gigabytes).
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from io_hostile import (
    GOOD_UID,
    accounted,
    deflate_bomb,
    deflated,
    dicomdir_bytes,
    encapsulated,
    float_pixels,
    good_files,
    good_loaded,
    gzip_stream,
    issues_for,
    measured,
    nifti_header,
    nifti_image,
    one_issue,
    rle,
    small_mr,
    three_ways,
    zip_bytes,
    zip_pairs,
)
from io_synth import cine_files, mr_dataset, to_bytes
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from deepoxymap.config import Settings
from deepoxymap.io import load, printable_name
from deepoxymap.io.limits import MIB
from deepoxymap.io.nifti import read_volume
from deepoxymap.io.sources import Entry

ROUTES = ("folder", "zip", "upload")

# ---------------------------------------------------------------------------
# memory and time
# ---------------------------------------------------------------------------


def _huge(transfer_syntax: str) -> bytes:
    """A small file whose header says 65535 x 65535 pixels, under ``transfer_syntax``."""
    if transfer_syntax == RLELossless:
        ds = rle(small_mr(64, 64))
    elif transfer_syntax == "float":
        ds = float_pixels(np.zeros((64, 64), np.float32))
    elif transfer_syntax == "deflated":
        ds = small_mr(64, 64)
        ds.Rows = ds.Columns = 65535
        return deflated(ds)
    elif transfer_syntax == ExplicitVRLittleEndian:
        ds = small_mr(64, 64)
    else:
        ds = encapsulated(small_mr(64, 64), transfer_syntax, [b"\xff\xd8" + b"\x00" * 60_000])
    ds.Rows = ds.Columns = 65535
    return to_bytes(ds)


@pytest.mark.parametrize(
    "ts", [RLELossless, JPEGBaseline8Bit, JPEG2000Lossless, JPEGLSLossless, ExplicitVRLittleEndian, "float", "deflated"]
)
def test_huge_rows_columns_refused_before_any_decoder(tmp_path, ts):
    """65535 x 65535 in a small file: refused from the header (decoded size vs max_image_bytes), for every syntax."""
    with measured() as cost:
        res = load(("huge.dcm", _huge(ts)))
    assert "image too large" in one_issue(res, "huge.dcm").message
    assert "65535 x 65535 pixels" in res.issues[0].message and "16 GiB" in res.issues[0].message
    assert cost.seconds < 2.0 and cost.peak < 32 * MIB  # 16 GiB declared as float32 (8 GiB stored)
    for route, r in three_ways(tmp_path, {"huge.dcm": _huge(ts)}).items():
        assert "image too large" in one_issue(r, "huge.dcm").message, route
        good_loaded(r)


def _many_frames(kind: str, n: int = 3_000_000) -> bytes:
    """NumberOfFrames = ``n`` in a file holding one 1 x 1 frame (so the decoded size alone stays small)."""
    if kind == "rle":
        ds = rle(small_mr(1, 1))
    else:
        ds = float_pixels(np.zeros((1, 1), np.float32))
    ds.NumberOfFrames = n
    return to_bytes(ds)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rle", "3000000 compressed frame(s) need at least 30000008 bytes of Pixel Data"),
        ("float", "need 12000000 bytes of Float Pixel Data but the file holds 4"),
    ],
)
def test_three_million_frames_refused_fast(tmp_path, kind, expected):
    """NumberOfFrames = 3,000,000 (RLE, Float Pixel Data): refused fast, by max_frames_per_file and by the bytes present.

    With the per-file limit raised out of the way, the frames are still checked against the bytes present.
    """
    with measured() as cost:
        res = load(("frames.dcm", _many_frames(kind)))
    assert "= 3000000 is more than the limit of 20000 frames per file" in one_issue(res, "frames.dcm").message
    assert cost.seconds < 2.0 and cost.peak < 16 * MIB
    cfg = Settings(max_frames_per_file=10**7, max_frames=10**7)
    with measured() as cost:
        res = load(("frames.dcm", _many_frames(kind)), settings=cfg)
    assert expected in one_issue(res, "frames.dcm").message
    assert cost.seconds < 2.0 and cost.peak < 16 * MIB
    for route, r in three_ways(tmp_path, {"frames.dcm": _many_frames(kind)}, settings=cfg).items():
        assert expected in one_issue(r, "frames.dcm").message, route
        good_loaded(r)


def test_frames_per_file_limit_before_functional_groups_are_read():
    """An enhanced file declaring more frames than max_frames_per_file is refused from its header, fast.

    Reading per-frame functional groups costs ~0.1 ms a frame: 100,000 of them took 20 s before this limit.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    n = 300
    ds = small_mr(1, 1)
    ds.set_pixel_data(np.zeros((n, 1, 1), np.uint16), "MONOCHROME2", 12)
    ds.NumberOfFrames = n
    items = []
    for i in range(n):
        pos = Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, float(i)]
        item = Dataset()
        item.PlanePositionSequence = Sequence([pos])
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    cfg = Settings(max_frames_per_file=100)
    with measured() as cost:
        res = load([("many.dcm", to_bytes(ds)), *good_files().items()], settings=cfg)
    assert "= 300 is more than the limit of 100 frames per file" in one_issue(res, "many.dcm").message
    good_loaded(res)
    assert cost.seconds < 1.0


def test_frame_budget_per_load():
    """The headers of one load declare at most max_frames images: the file that would exceed it is refused."""
    uploads = list(good_files().items())
    res = load(uploads, settings=Settings(max_frames=3))
    errs = [i for i in res.issues if "too many images" in i.message]
    assert len(errs) == 1 and "limit of 3 images" in errs[0].message and errs[0].file in errs[0].message
    assert not accounted(res, [n for n, _ in uploads])


def test_stack_grid_bounded_before_allocation():
    """Ragged slices (a 12-frame cine on the first of 13 one-frame slices) need a 13 x 13 grid: refused, all named."""
    uid = generate_uid()
    files = cine_files(None, n_slices=1, n_frames=12, series_uid=uid)
    files.update({f"s{k}.dcm": ds for k, ds in cine_files(None, n_slices=13, n_frames=1, series_uid=uid).items()})
    uploads = [(n, to_bytes(ds)) for n, ds in files.items()] + list(good_files().items())
    with measured() as cost:
        res = load(uploads, settings=Settings(max_frames=100))
    good_loaded(res)
    refused = [i for i in res.issues if i.severity == "error"]
    assert any("stack too large" in i.message and "169 images" in i.message for i in refused)
    assert not accounted(res, [n for n, _ in uploads])  # every file of the refused stack is in the report
    assert cost.peak < 16 * MIB


def _bomb_zip(n_members: int = 400) -> bytes:
    """``n_members`` members of exactly 1 MiB of zeros (the old guard skipped members <= 1 MiB), after good ones."""
    zeros = bytes(MIB)
    members = [(f"cine/{n.split('/')[-1]}", d) for n, d in good_files().items()]
    members += [(f"zz/zero{i:04d}.dcm", zeros) for i in range(n_members)]
    return zip_pairs(members)


def test_zip_of_many_small_zero_members_stops_at_the_archive_ratio(tmp_path):
    """400 x 1 MiB of zeros (~0.4 MB zipped): expansion is counted as it streams and stops at the archive's ratio."""
    bomb = _bomb_zip()
    with measured() as cost:
        res = load(("bomb.zip", bomb))
    good_loaded(res)  # the good members come first and load
    err = next(i for i in res.issues if "zip archive rejected as a possible zip bomb" in i.message)
    assert err.file.startswith("bomb.zip:zz/zero") and err.file in err.message
    assert any("more file(s) were not read" in i.message for i in res.issues)
    assert cost.peak < 100 * MIB  # 400 MiB declared; the cap is 64 MiB or 20 x the archive's size
    assert cost.seconds < 10
    # the same archive on disk beside good files, and as an upload beside good uploads
    (tmp_path / "bomb.zip").write_bytes(bomb)
    for r in (load(tmp_path / "bomb.zip"), load([("bomb.zip", bomb), *good_files().items()])):
        assert any("possible zip bomb" in i.message for i in r.issues)
        assert [s.uid for s in r.series].count(GOOD_UID) >= 1


def test_zip_member_that_lies_about_its_size_is_never_read_past_it():
    """A member of 64 MiB of zeros whose headers declare 1000 bytes: read up to 1000 bytes, refused, rest loads."""
    raw = bytearray(zip_bytes({"a.dcm": bytes(64 * MIB), **good_files()}))
    # patch the declared size (local header and central directory) of the first member down to 1000
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = raw.find(sig)
        raw[pos + off : pos + off + 4] = (1000).to_bytes(4, "little")
    with measured() as cost:
        res = load(("liar.zip", bytes(raw)))
    assert "zip member could not be read" in one_issue(res, "liar.zip:a.dcm").message  # its CRC fails at 1000 bytes
    good_loaded(res)
    assert cost.peak < 8 * MIB


def test_upload_bytes_counted_while_streaming(tmp_path):
    """max_upload_bytes stops a member mid-stream (it is never read whole) and names it."""
    members = {**good_files(), "zz/big.dcm": np.random.default_rng(0).bytes(8 * MIB)}  # incompressible
    total = sum(len(v) for k, v in members.items() if k.startswith("good/"))
    res = load(("u.zip", zip_bytes(members)), settings=Settings(max_upload_bytes=total + 4096))
    assert "upload too large" in one_issue(res, "u.zip:zz/big.dcm").message
    good_loaded(res)


def test_nii_gz_of_zeros_refused_from_its_header(tmp_path):
    """A .nii.gz whose header declares 2 GiB of voxels: refused from the header, before inflating the zeros."""
    gz = gzip_stream([nifti_header((1024, 1024, 2048)), (64 * MIB, 0)])
    assert len(gz) < MIB
    with measured() as cost:
        res = load(("zeros.nii.gz", gz))
    msg = one_issue(res, "zeros.nii.gz").message
    assert "image too large" in msg and "1024 x 1024 x 2048 voxels of uint8" in msg
    assert cost.seconds < 2 and cost.peak < 8 * MIB
    for route, r in three_ways(tmp_path, {"zeros.nii.gz": gz}).items():
        assert "image too large" in one_issue(r, "zeros.nii.gz").message, route
        good_loaded(r)


def test_gzip_inflates_only_what_the_header_declares(tmp_path):
    """A small image followed by 64 MiB of zeros in the gzip stream: loads, without inflating the zeros."""
    img = nifti_image(np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3), np.eye(4))
    gz = gzip_stream([img, (64 * MIB, 0)])
    with measured() as cost:
        res = load(("tail.nii.gz", gz))
    assert not res.errors and res.series[0].stack.data.shape == (3, 1, 4, 5)
    assert cost.peak < 8 * MIB
    for route, r in three_ways(tmp_path, {"tail.nii.gz": gz}).items():
        assert len(r.series) == 2 and not r.errors, route
        good_loaded(r)


def test_gzip_counted_against_the_upload_bytes():
    """A .nii.gz that would inflate past what the upload has left is refused before it is inflated."""
    gz = gzip_stream([nifti_header((512, 512, 16), "float32"), (16 * MIB, 0)])  # declares 16 MiB of voxels
    with measured() as cost:
        res = load([("big.nii.gz", gz), *good_files().items()], settings=Settings(max_upload_bytes=4 * MIB))
    assert "upload too large" in one_issue(res, "big.nii.gz").message
    good_loaded(res)
    assert cost.peak < 4 * MIB


def test_nifti_keeps_its_stored_dtype_until_the_stack():
    """uint8 and int16 volumes are read in their stored dtype (no float32 copy of the file); scaling is applied."""
    lab = np.zeros((6, 6, 2), np.uint8)
    lab[2:4, 2:4] = 3
    raw = nifti_image(lab, np.eye(4))
    vol, _ = read_volume(Entry("lab.nii", None, raw, len(raw)), Settings())
    assert vol.data.dtype == np.uint8 and vol.is_label
    img = np.arange(72, dtype=np.int16).reshape(6, 6, 2)
    raw = nifti_image(img, np.eye(4), scl_slope=0.5, scl_inter=10.0)
    vol, _ = read_volume(Entry("img.nii", None, raw, len(raw)), Settings())
    assert vol.data.dtype == np.int16 and vol.scale == (0.5, 10.0)
    (s,) = load(("img.nii", raw)).series
    want = [img[:, :, k] * 0.5 + 10.0 for k in range(2)]
    for k in range(2):  # slices may be reordered base -> apex
        assert any(np.allclose(s.stack.data[k, 0], w) for w in want)
    assert s.stack.data.dtype == np.float32


def test_deflate_bomb_inflates_under_the_limit(tmp_path):
    """A deflated DICOM whose data set inflates to 64 MiB is stopped at max_image_bytes (16 MiB here), streaming."""
    bomb = deflate_bomb(64 * MIB)
    assert len(bomb) < MIB
    cfg = Settings(max_image_bytes=16 * MIB)
    with measured() as cost:
        res = load(("bomb.dcm", bomb), settings=cfg)
    assert "deflated data set inflates to more than 16 MiB" in one_issue(res, "bomb.dcm").message
    assert cost.peak < 40 * MIB  # the 64 MiB are never all in memory
    for route, r in three_ways(tmp_path, {"bomb.dcm": bomb}, settings=cfg).items():
        assert "possible deflate bomb" in one_issue(r, "bomb.dcm").message, route
        good_loaded(r)


# ---------------------------------------------------------------------------
# silent loss or wrong data
# ---------------------------------------------------------------------------


def _twin(pixel_value: int) -> bytes:
    """A copy of the good ``IM0000.dcm`` (same SOPInstanceUID), with every pixel set to ``pixel_value``."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(good_files()["good/IM0000.dcm"]))
    ds.PixelData = np.full((8, 10), pixel_value, np.uint16).tobytes()
    return to_bytes(ds)


@pytest.mark.parametrize("twin_name", ["twin.dcm", "a/twin.dcm"])  # sorting after, and before, the original
def test_conflicting_duplicate_sop_kept_with_a_warning_naming_both(tmp_path, twin_name):
    """Same SOPInstanceUID, different pixels: a warning names both files and both images stay loaded."""
    for route, r in three_ways(tmp_path, {twin_name: _twin(999)}).items():
        warns = [i for i in r.issues if i.severity == "warning" and "same SOPInstanceUID" in i.message]
        assert len(warns) == 1, (route, r.issues)
        assert twin_name in warns[0].message and "IM0000.dcm" in warns[0].message
        assert "neither replaces the other" in warns[0].message
        main = next(s for s in r.series if s.uid == GOOD_UID)
        dup = [s for s in r.series if s.uid.startswith(f"{GOOD_UID}#dup")]
        assert len(dup) == 1 and main.stack.data.shape == (2, 2, 8, 10), route
        values = {float(v) for s in (main, *dup) for v in np.unique(s.stack.data)}
        assert 999.0 in values and {1.0, 2.0, 101.0, 102.0} <= values  # neither image dropped
        assert not accounted(r, [twin_name, "IM0000.dcm"])


def test_identical_duplicate_is_an_info_line(tmp_path):
    """An identical copy (same SOPInstanceUID and pixels) is dropped with an info line naming the original."""
    files = good_files()
    copy = files[min(files)]
    for route, r in three_ways(tmp_path, {"copy.dcm": copy}).items():
        (info,) = r.issues  # whichever of the two comes first stays; the other is named in an info line
        assert info.severity == "info" and "identical copy of" in info.message, route
        assert "copy.dcm" in info.message and "IM0000.dcm" in info.message and info.file in info.message
        good_loaded(r)
        assert len(r.series) == 1


@pytest.mark.parametrize("n", [-5, 0])
def test_nonpositive_number_of_frames_is_reported(tmp_path, n):
    """RLE with NumberOfFrames = -5 (or 0) is reported by name, never silently absent."""
    ds = rle(small_mr())
    ds.NumberOfFrames = n
    for route, r in three_ways(tmp_path, {"neg.dcm": to_bytes(ds)}).items():
        msg = one_issue(r, "neg.dcm").message
        assert f"NumberOfFrames (0028,0008) = '{n}' is not a positive whole number" in msg, route
        good_loaded(r)


@pytest.mark.parametrize(
    "fields",
    [
        {"sform_code": 1, "srow_x": [1.0, 0.0, 0.0, np.nan]},
        {"sform_code": 1, "srow_y": [0.0, np.inf, 0.0, 0.0]},
        {"sform_code": 0, "qform_code": 1, "quatern_b": np.nan},
        {"sform_code": 0, "qform_code": 1, "qoffset_z": -np.inf},
    ],
    ids=["sform-nan", "sform-inf", "qform-nan", "qform-inf"],
)
def test_nifti_non_finite_affine_degrades_to_no_geometry(tmp_path, fields):
    """An sform or qform holding NaN/inf: a warning, and a flagged no-geometry stack (no NaN origins or spacing)."""
    raw = nifti_image(np.ones((5, 6, 3), np.float32) * np.arange(3), np.eye(4), **fields)
    for route, r in three_ways(tmp_path, {"nan.nii": raw}).items():
        warn = one_issue(r, "nan.nii", severity="warning")
        assert "affine (sform/qform) holds NaN or infinity" in warn.message, route
        s = next(s for s in r.series if s.uid.startswith("nifti:"))
        g = s.stack.geometry
        assert not g.has_geometry and np.all(np.isfinite(g.slice_origins))
        assert s.stack.data.shape == (3, 1, 5, 6)
        good_loaded(r)


def test_float_pixel_data_nan_and_inf_flagged(tmp_path):
    """Float Pixel Data holding NaN and inf loads with a warning naming the file and the count."""
    vals = np.full((16, 16), 5.0, np.float32)
    vals[0, 0], vals[1, 1], vals[2, 2] = np.nan, np.inf, -np.inf
    for route, r in three_ways(tmp_path, {"nan.dcm": to_bytes(float_pixels(vals))}).items():
        warn = one_issue(r, "nan.dcm", severity="warning")
        assert "3 pixel value(s) are not finite" in warn.message, route
        assert any(s.stack.data.shape == (1, 1, 16, 16) for s in r.series)
        good_loaded(r)


def test_nifti_nan_voxels_flagged():
    """NaN voxels in a float NIfTI are a warning naming the file."""
    vol = np.ones((4, 4, 2), np.float32)
    vol[0, 0, 0] = np.nan
    res = load(("v.nii", nifti_image(vol, np.eye(4))))
    assert "1 voxel value(s) are not finite" in one_issue(res, "v.nii", severity="warning").message


# ---------------------------------------------------------------------------
# wrong messages
# ---------------------------------------------------------------------------


def test_valid_deflated_file_loads(tmp_path):
    """Deflated Explicit VR Little Endian: loads with its pixels (offsets checked against the inflated size)."""
    px = (np.arange(128 * 96, dtype=np.uint16).reshape(128, 96) // 96) * 7  # 24 KiB that deflate to ~1 KiB
    data = deflated(mr_dataset(px, series_uid="1.2.3.4.5.6"))
    for route, r in three_ways(tmp_path, {"defl.dcm": data}).items():
        assert not r.issues, (route, r.issues)
        s = next(s for s in r.series if s.uid == "1.2.3.4.5.6")
        np.testing.assert_array_equal(s.stack.data[0, 0], px)
        assert s.meta["TransferSyntax"] == "Deflated Explicit VR Little Endian"
        good_loaded(r)


def test_dicomdir_is_ignored_with_an_info_line(tmp_path):
    """A DICOMDIR (no SOPClassUID in its data set) is an info line, not an error."""
    for route, r in three_ways(tmp_path, {"DICOMDIR": dicomdir_bytes()}).items():
        info = one_issue(r, "DICOMDIR", severity="info")
        assert "is a DICOMDIR index" in info.message, route
        assert not r.errors
        good_loaded(r)


def test_dicomdir_written_by_pydicom_fileset(tmp_path):
    """A real File-set (pydicom FileSet: DICOMDIR + PT*/ST*/SE*/IM* files): images load, DICOMDIR is info."""
    from pydicom.fileset import FileSet

    fs = FileSet()
    for ds in cine_files(None, n_slices=2, n_frames=2, series_uid=GOOD_UID, rng=np.random.default_rng(1)).values():
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.SeriesNumber = "20260101", "101010", "1", 1
        fs.add(ds)
    fs.write(tmp_path / "fs")
    res = load(tmp_path / "fs")
    assert [(i.severity, i.file.rsplit("/", 1)[-1]) for i in res.issues] == [("info", "DICOMDIR")]
    good_loaded(res)


@pytest.mark.parametrize("spacing", [(0.0, 1.5), (-1.0, -1.0)])
def test_nonpositive_pixel_spacing_names_the_file(tmp_path, spacing):
    """Zero or negative PixelSpacing: a warning naming the file and the value; viewable as no-geometry."""
    ds = small_mr(spacing=spacing)
    for route, r in three_ways(tmp_path, {"sp.dcm": to_bytes(ds)}).items():
        warn = one_issue(r, "sp.dcm", severity="warning")
        assert f"PixelSpacing (0028,0030) = {list(spacing)} mm is not positive" in warn.message, route
        assert all(i.file in i.message for i in r.issues)
        good_loaded(r)


def test_zip_members_named_by_full_path_and_duplicates_told_apart():
    """Same base name in two folders, and the same path twice: every message names a distinct member."""
    bad = b"not dicom at all"
    members = [(f"cine/{n.split('/')[-1]}", d) for n, d in good_files().items()]
    members += [("a/IM.dcm", bad), ("b/IM.dcm", bad), ("c/IM.dcm", bad), ("c/IM.dcm", bad)]
    res = load(("s.zip", zip_pairs(members)))
    good_loaded(res)
    files = [i.file for i in res.issues]
    assert files == ["s.zip:a/IM.dcm", "s.zip:b/IM.dcm", "s.zip:c/IM.dcm", "s.zip:c/IM.dcm [2]"]
    assert all(i.message.startswith(f"{i.file}: ") for i in res.issues)


def test_uploads_with_the_same_name_told_apart():
    """Two uploads called ``a.dcm`` (different folders on the user's side): distinct names in the report."""
    res = load([("a.dcm", b"one"), ("a.dcm", b"two"), *good_files().items()])
    assert sorted(i.file for i in res.issues) == ["a.dcm", "a.dcm [2]"]
    good_loaded(res)


SPOOF = {
    "evil\nfake [info] all good.dcm": "evil\\nfake [info] all good.dcm",
    "red\x1b[31mALERT\x1b[0m.dcm": "red\\x1b[31mALERT\\x1b[0m.dcm",
    "invoice\u202egpj.dcm": "invoice\\u202egpj.dcm",
}


def test_cli_info_escapes_hostile_file_names(tmp_path, capsys):
    """Newlines, ANSI escapes and a right-to-left override in file names are escaped in `deepoxymap info`."""
    from deepoxymap.cli import main

    for n, d in good_files().items():
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / n).write_bytes(d)
    for name in SPOOF:
        (tmp_path / name).write_text("plain text, not DICOM")
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    for escaped in SPOOF.values():
        assert escaped in out
    assert not any(line.startswith("fake") for line in out.splitlines())
    assert sum(line.strip().startswith("[error]") for line in out.splitlines()) == 3
    assert main(["info", "--json", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert text.isascii() and "\x1b" not in text
    assert {i["file"].rsplit("/", 1)[-1] for i in json.loads(text)["issues"]} == set(SPOOF)


def test_printable_name():
    """Printable text is unchanged; control, format and separator characters are escaped."""
    assert printable_name("Ünïcode 名前 file.dcm") == "Ünïcode 名前 file.dcm"
    assert (
        printable_name("a\tb\r\n\x00\x7f\u200b\u2028\u2066\udcff")
        == "a\\tb\\r\\n\\x00\\x7f\\u200b\\u2028\\u2066\\udcff"
    )


def test_every_message_names_its_file_across_hostile_kinds(tmp_path):
    """All the hostile kinds above at once: every issue names its file, every file is accounted for."""
    hostile = {
        "huge.dcm": _huge(RLELossless),
        "frames.dcm": _many_frames("rle"),
        "junk_rle.dcm": to_bytes(encapsulated(small_mr(), RLELossless, [b"\x00" * 80])),
        "nan.dcm": to_bytes(float_pixels(np.full((4, 4), np.nan, np.float32))),
        "DICOMDIR": dicomdir_bytes(),
        "twin.dcm": _twin(5),
        "zeros.nii.gz": gzip_stream([nifti_header((1024, 1024, 2048))]),
    }
    for route, r in three_ways(tmp_path, hostile).items():
        assert all(i.file in i.message for i in r.issues), route
        assert not accounted(r, list(hostile)), route
        good_loaded(r)


def test_zip_in_zip_is_rejected_by_name_before_reading():
    """A nested archive is rejected from its name without reading it (its bytes may be a bomb too)."""
    inner = zip_bytes({"x.dcm": bytes(2 * MIB)}, compression=zipfile.ZIP_STORED)
    res = load(("outer.zip", zip_bytes({"inner.zip": inner, **{f"c/{k}": v for k, v in good_files().items()}})))
    assert "zip archives inside a zip are not opened" in one_issue(res, "outer.zip:inner.zip").message
    good_loaded(res)
    assert not issues_for(res, "x.dcm")


def test_decoder_that_aborts_the_process_is_isolated():
    """A JPEG Lossless frame on which GDCM aborts the process (found by the fuzz test): the file is refused, we live.

    GDCM throws a C++ exception through ``std::terminate`` on this stream (4 bytes of the Huffman table segment
    set to 0xFF); it runs in a worker process, so the load reports the file and the good files beside it load.
    """
    from pydicom.data import get_testdata_file

    from deepoxymap.io.dicom.isolated import ISOLATED_PLUGINS

    path = get_testdata_file("JPGLosslessP14SV1_1s_1f_8b.dcm")
    if path is None:
        pytest.skip("pydicom-data is not installed")
    seed = bytearray(open(path, "rb").read())  # noqa: SIM115
    clean = load(("clean.dcm", bytes(seed)))
    assert not clean.errors and "gdcm" in ISOLATED_PLUGINS  # the only JPEG Lossless decoder here, isolated
    at = seed.rfind(b"\xe0\x7f\x10\x00") + 72
    seed[at : at + 4] = b"\xff" * 4
    res = load([("abort.dcm", bytes(seed)), *good_files().items()])
    msg = one_issue(res, "abort.dcm").message
    assert "pixel data could not be decoded" in msg
    good_loaded(res)


def test_inflater_streams_bounded_reads():
    """Inflater: bounded reads of a gzip stream (concatenated members too), eof only at the real end."""
    import gzip
    import zlib

    from deepoxymap.io.sources import Inflater, read_capped

    data = gzip.compress(b"a" * 3000) + gzip.compress(b"b" * 5000)
    inf = Inflater(data, 16 + zlib.MAX_WBITS)
    assert inf.read(1000) == b"a" * 1000 and not inf.eof
    rest = inf.read(10**6)
    assert rest == b"a" * 2000 + b"b" * 5000 and inf.eof
    noise = np.random.default_rng(0).bytes(100_000)
    cut = Inflater(gzip.compress(noise)[:50_000], 16 + zlib.MAX_WBITS)
    got = cut.read(10**7)
    assert noise.startswith(got) and len(got) < len(noise) and not cut.eof  # truncated: no end of stream
    with pytest.raises(zlib.error):
        Inflater(b"\x1f\x8b\x08\x00" + b"\xff" * 64, 16 + zlib.MAX_WBITS).read(100)
    assert read_capped(io.BytesIO(b"x" * 10), 10) == (b"x" * 10, False)
    assert read_capped(io.BytesIO(b"x" * 11), 10) == (b"", True)
