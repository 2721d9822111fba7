"""deepoxymap.io on synthetic and pydicom-bundled DICOM: ordering, pixels, roles, uploads, CLI."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import pytest
from io_synth import NORMAL, cine_files, mr_dataset, to_bytes, write
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import EnhancedMRImageStorage, generate_uid

from deepoxymap.case import Role, sort_base_to_apex
from deepoxymap.errors import CaseError
from deepoxymap.io import build_case, format_report, load, override_role, series_table


def _expected_slice_order(n: int) -> list[int]:
    """True slice index (along +NORMAL) of each loaded slice, base -> apex."""
    sign = np.sign(NORMAL @ np.array([1.0, -1.0, -1.0]))
    return list(range(n)) if sign > 0 else list(range(n))[::-1]


class TestOrdering:
    def test_slices_by_position_frames_by_trigger(self, tmp_path, rng):
        """Shuffled names/InstanceNumbers: slices come from IPP on the normal, frames from TriggerTime."""
        cine_files(tmp_path, n_slices=3, n_frames=4, rng=rng)
        res = load(tmp_path)
        assert [i for i in res.issues if i.severity == "error"] == []
        (s,) = res.series
        st = s.stack
        assert st.data.shape == (3, 4, 8, 10)
        for k, true_k in enumerate(_expected_slice_order(3)):
            for j in range(4):
                assert np.all(st.data[k, j] == 100 * true_k + j + 1)
        np.testing.assert_allclose(st.trigger_times, np.tile(25.0 + 40.0 * np.arange(4), (3, 1)))
        assert st.geometry.slice_spacing == pytest.approx(8.0, abs=1e-3)
        assert st.geometry.pixel_spacing == (1.5, 1.5)
        assert sort_base_to_apex(st.geometry) == [0, 1, 2]  # already base -> apex
        assert s.meta["source_grid"][0][0].endswith(".dcm")

    def test_two_acquisitions_in_one_series_split(self, tmp_path, rng):
        """Same positions and trigger times at two AcquisitionTimes -> two stacks in time order."""
        uid = generate_uid()
        late = cine_files(None, n_slices=2, n_frames=3, series_uid=uid, rng=rng, acq_base="1120")
        early = cine_files(None, n_slices=2, n_frames=3, series_uid=uid, rng=rng, acq_base="1010")
        for n, ds in late.items():
            ds.PixelData = (np.asarray(ds.pixel_array) + 1000).astype(np.uint16).tobytes()
            write(ds, tmp_path / f"late_{n}")
        for n, ds in early.items():
            write(ds, tmp_path / f"early_{n}")
        res = load(tmp_path)
        assert len(res.series) == 2
        a, b = sorted(res.series, key=lambda s: s.stack.acquisition_time_s)
        assert a.uid == f"{uid}#t1" and b.uid == f"{uid}#t2"
        assert a.stack.data.shape == b.stack.data.shape == (2, 3, 8, 10)
        assert a.stack.data.max() < 1000 <= b.stack.data.min()
        assert b.stack.acquisition_time_s - a.stack.acquisition_time_s == pytest.approx(70 * 60, abs=2)

    def test_upload_bytes_and_nested_zip_match_folder(self, tmp_path, rng):
        """(name, bytes) uploads and a zip with nested folders give the same stack as the folder."""
        files = cine_files(tmp_path / "f", n_slices=2, n_frames=2, rng=rng)
        ref = load(tmp_path / "f").series[0].stack.data
        uploads = [(n, to_bytes(ds)) for n, ds in files.items()]
        up = load(uploads)
        np.testing.assert_array_equal(up.series[0].stack.data, ref)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for i, (n, data) in enumerate(uploads):
                zf.writestr(f"study/series{i % 2}/deeper/{n}", data)
        (tmp_path / "s.zip").write_bytes(buf.getvalue())
        for res in (load(tmp_path / "s.zip"), load(("s.zip", buf.getvalue()))):
            assert len(res.series) == 1 and not res.errors
            np.testing.assert_array_equal(res.series[0].stack.data, ref)


class TestPixels:
    def test_rescale_slope_intercept(self, tmp_path):
        """Values are after the modality LUT (RescaleSlope/Intercept)."""
        px = np.arange(12, dtype=np.uint16).reshape(3, 4) * 10
        write(mr_dataset(px, series_uid=generate_uid(), rescale=(2.5, -100.0)), tmp_path / "a.dcm")
        st = load(tmp_path).series[0].stack
        np.testing.assert_allclose(st.data[0, 0], px * 2.5 - 100.0)
        assert st.data.dtype == np.float32

    def test_monochrome1_inverted_and_window_follows(self, tmp_path):
        """MONOCHROME1: higher stored value -> darker; the window centre is mirrored too."""
        px = np.array([[0, 100], [1000, 4095]], dtype=np.uint16)
        ds = mr_dataset(px, series_uid=generate_uid(), photometric="MONOCHROME1", window=(1000.0, 500.0))
        write(ds, tmp_path / "m1.dcm")
        st = load(tmp_path).series[0].stack
        np.testing.assert_allclose(st.data[0, 0], 4095 - px)
        assert st.window == pytest.approx((4095 - 1000.0, 500.0))

    def test_default_window_is_robust_percentile(self, tmp_path, rng):
        """No WindowCenter/Width: 1-99 percentile window, not min/max (one hot pixel ignored)."""
        px = rng.integers(100, 200, size=(64, 64)).astype(np.uint16)
        px[0, 0] = 4000
        write(mr_dataset(px, series_uid=generate_uid()), tmp_path / "w.dcm")
        c, w = load(tmp_path).series[0].stack.window
        assert 140 < c < 160 and 80 < w < 110

    def test_enhanced_multiframe_functional_groups(self, tmp_path):
        """Enhanced MR: per-frame positions, trigger times and rescale from the functional groups."""
        n_s, n_f = 2, 3
        base = mr_dataset(np.zeros((4, 5), np.uint16), series_uid=generate_uid())
        ds = Dataset()
        ds.file_meta = base.file_meta
        ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
        ds.SOPClassUID = EnhancedMRImageStorage
        ds.SOPInstanceUID = base.file_meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID = base.SeriesInstanceUID
        ds.Modality = "MR"
        ds.SeriesDescription = "cine_enhanced"
        order = [(k, j) for j in range(n_f) for k in range(n_s)][::-1]  # scrambled storage order
        frames = []
        per_frame = []
        for k, j in order:
            frames.append(np.full((4, 5), 10 * k + j, np.uint16))
            item = Dataset()
            pos = Dataset()
            pos.ImagePositionPatient = list(map(float, k * 6.0 * NORMAL))
            item.PlanePositionSequence = DicomSequence([pos])
            card = Dataset()
            card.NominalCardiacTriggerDelayTime = 30.0 * j
            item.CardiacSynchronizationSequence = DicomSequence([card])
            pvt = Dataset()
            pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 2.0, 1.0, "US"
            item.PixelValueTransformationSequence = DicomSequence([pvt])
            per_frame.append(item)
        shared = Dataset()
        ori = Dataset()
        ori.ImageOrientationPatient = list(base.ImageOrientationPatient)
        shared.PlaneOrientationSequence = DicomSequence([ori])
        meas = Dataset()
        meas.PixelSpacing = [1.25, 1.25]
        meas.SliceThickness = 6.0
        shared.PixelMeasuresSequence = DicomSequence([meas])
        ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
        ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
        ds.set_pixel_data(np.stack(frames), "MONOCHROME2", 12)
        write(ds, tmp_path / "enh.dcm")
        res = load(tmp_path)
        (s,) = res.series
        st = s.stack
        assert st.data.shape == (2, 3, 4, 5)
        for k, true_k in enumerate(_expected_slice_order(2)):
            for j in range(3):
                assert np.all(st.data[k, j] == 2.0 * (10 * true_k + j) + 1.0)
        np.testing.assert_allclose(st.trigger_times[0], [0.0, 30.0, 60.0])
        assert st.geometry.slice_spacing == pytest.approx(6.0, abs=1e-3)
        assert s.role == Role.CINE


_BUNDLED = [
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_expb.dcm",
    "MR_small_padded.dcm",
    "MR2_UNCR.dcm",
    "MR2_J2KR.dcm",
    "emri_small.dcm",
    "emri_small_RLE.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_big_endian.dcm",
]


@pytest.mark.parametrize("name", _BUNDLED)
def test_pydicom_bundled_mr_files_match_pydicom_decode(name):
    """Bundled MR test files (compressed too) load with pydicom's own pixel values after the modality LUT."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not available (pydicom-data not installed)")
    res = load(path)
    assert not res.errors, res.issues
    (s,) = res.series
    ds = pydicom.dcmread(path)
    ref = np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float32)
    ref = ref.reshape(-1, *ref.shape[-2:])
    got = s.stack.data.reshape(-1, *s.stack.data.shape[-2:])
    assert got.shape == ref.shape
    if s.stack.geometry.has_geometry:
        np.testing.assert_array_equal(got, ref)
    else:  # no geometry (emri): frames kept in file order
        np.testing.assert_array_equal(got, ref)
        assert any("no-geometry" in i.message for i in res.issues)


def test_series_table_report_and_no_identifiers(tmp_path, rng):
    """The table has the documented columns; neither table nor report shows patient identifiers."""
    cine_files(tmp_path, n_slices=2, n_frames=3, rng=rng, description="OS_SAX_BH_END")
    (tmp_path / "junk.txt").write_text("hello")
    res = load(tmp_path)
    (row,) = series_table(res.series)
    assert row["role"] == "OS-CMR" and row["slices_x_frames"] == "2 x 3" and row["size"] == "8 x 10"
    assert row["spacing"].startswith("1.50 x 1.50 x 8.00") and row["timepoint"] == "bh-end"
    assert row["reason"].startswith("description-os-cmr")
    text = format_report(res) + repr(series_table(res.series)) + repr(res.series[0].meta)
    assert "Doe" not in text and "SECRET-ID-42" not in text
    assert "junk.txt: is a text file" in text


def test_roles_timepoints_and_build_case(tmp_path, rng):
    """Generator-style descriptions -> roles, OS time points ordered, maps in ms, override works."""
    for i, tp in enumerate(["BASELINE", "HV_END", "BH_START", "BH_END"]):
        cine_files(tmp_path / tp, n_slices=2, n_frames=2, rng=rng, description=f"OS_SAX_{tp}", acq_base=f"1{i}10")
    px = np.full((8, 10), 1200, np.uint16)
    write(
        mr_dataset(
            px, series_uid=generate_uid(), description="T1MAP_MOLLI", image_type="DERIVED\\PRIMARY\\T1 MAP\\NONE"
        ),
        tmp_path / "t1" / "a.dcm",
    )
    write(
        mr_dataset(px, series_uid=generate_uid(), description="LGE_PSIR_SAX", inversion_time=300.0),
        tmp_path / "lge" / "a.dcm",
    )
    res = load(tmp_path)
    roles = sorted(s.role.value for s in res.series)
    assert roles == ["lge", "os-cmr", "os-cmr", "os-cmr", "os-cmr", "t1-map"]
    case = build_case(res.series, "c1")
    assert list(case.os_timepoints()) == ["baseline", "hv-end", "bh-start", "bh-end"]
    t1 = case.first(Role.T1_MAP)
    assert t1 is not None and t1.stack.units == "ms" and t1.role_reason.startswith("imagetype-t1-map")
    lge = case.first(Role.LGE)
    assert lge is not None
    changed = override_role(res.series, lge.uid, "t2-map")
    new = next(s for s in changed if s.uid == lge.uid)
    assert new.role == Role.T2_MAP and new.stack.role == Role.T2_MAP and new.stack.units == "ms"
    assert new.role_reason == "set by user"
    with pytest.raises(CaseError, match="no series"):
        override_role(res.series, "nope", Role.CINE)


def test_cli_info_prints_table_and_report(tmp_path, rng, capsys):
    """`deepoxymap info` prints role, size, slices x frames and the report; exit 0."""
    from deepoxymap.cli import main

    cine_files(tmp_path, n_slices=2, n_frames=3, rng=rng)
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Cine" in out and "8 x 10" in out and "2 x 3" in out
    assert "empty.dcm: file is empty (0 bytes)" in out
    assert "Doe" not in out
    assert main(["info", str(tmp_path / "empty.dcm")]) == 1


@pytest.mark.parametrize(
    "name", ["JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "JPEGLSNearLossless_16.dcm", "JPEG2000.dcm"]
)
def test_more_compressed_syntaxes_decode(name):
    """JPEG lossless (process 14), JPEG-LS near-lossless and JPEG 2000 decode to pydicom's values."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not available")
    res = load(path)
    assert not res.errors, res.issues
    ref = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(res.series[0].stack.data[0, 0], ref)


def test_jpeg_baseline_greyscale(tmp_path):
    """A JPEG baseline (8-bit, lossy) greyscale image decodes close to the original."""
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    img = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    ds = mr_dataset(np.zeros((48, 64), np.uint16), series_uid=generate_uid())
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    write(ds, tmp_path / "jpeg.dcm")
    res = load(tmp_path)
    assert not res.errors, res.issues
    got = res.series[0].stack.data[0, 0]
    assert np.abs(got - img).mean() < 2.0


def test_unsupported_12bit_jpeg_extended_reported():
    """12-bit JPEG Extended has no installed (non-GPL) decoder: a clear issue, no crash."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPEG-lossy.dcm")
    if path is None:
        pytest.skip("JPEG-lossy.dcm not available")
    res = load(path)
    assert res.series == []
    (issue,) = res.issues
    assert "JPEG-lossy.dcm: pixel data could not be decoded" in issue.message and "JPEG Extended" in issue.message


def test_one_series_uid_with_three_orientations_splits(tmp_path):
    """A tri-plane localizer (one SeriesInstanceUID, three orientations) gives three stacks, none lost."""
    uid = generate_uid()
    planes = [((1, 0, 0), (0, 1, 0)), ((1, 0, 0), (0, 0, -1)), ((0, 1, 0), (0, 0, -1))]
    for p, (r, c) in enumerate(planes):
        for k in range(2):
            ipp = np.array([0.0, 0.0, 0.0]) + k * 5.0 * np.cross(r, c)
            ds = mr_dataset(np.full((8, 10), 10 * p + k, np.uint16), series_uid=uid, ipp=ipp, iop=(*r, *c))
            write(ds, tmp_path / f"loc_{p}_{k}.dcm")
    res = load(tmp_path)
    assert not res.issues
    assert sorted(s.uid for s in res.series) == [f"{uid}#1", f"{uid}#2", f"{uid}#3"]
    assert all(s.stack.data.shape == (2, 1, 8, 10) for s in res.series)
    assert sorted(float(s.stack.data.min()) for s in res.series) == [0.0, 10.0, 20.0]


def test_constant_trigger_time_cine_not_split(tmp_path, rng):
    """A cine whose TriggerTime is 0 everywhere stays one stack (frames by AcquisitionTime/Instance), with a warning."""
    files = cine_files(None, n_slices=2, n_frames=4, rng=rng)
    for ds in files.values():
        j = int(np.asarray(ds.pixel_array).flat[0]) % 100 - 1  # frame index encoded in the pixels
        ds.TriggerTime = 0.0
        ds.InstanceNumber = 1 + j
    for n, ds in files.items():
        write(ds, tmp_path / n)
    res = load(tmp_path)
    (s,) = res.series
    assert s.stack.data.shape == (2, 4, 8, 10)
    np.testing.assert_array_equal(s.stack.data[:, :, 0, 0] % 100, np.tile(np.arange(1, 5), (2, 1)))
    assert any(
        i.severity == "warning" and "TriggerTime (0018,1060) missing or repeated" in i.message for i in res.issues
    )


def test_orientation_jitter_does_not_split(tmp_path, rng):
    """ImageOrientationPatient differing in the 4th decimal (scanner jitter) stays one stack."""
    files = cine_files(None, n_slices=3, n_frames=2, rng=rng)
    for i, (n, ds) in enumerate(sorted(files.items())):
        iop = np.array(ds.ImageOrientationPatient, float)
        iop[0] = 0.8005 + (-1) ** i * 1e-4  # 0.8006 / 0.8004: straddles a 3-decimal rounding boundary
        ds.ImageOrientationPatient = [f"{x:.6f}" for x in iop]
        write(ds, tmp_path / n)
    res = load(tmp_path)
    assert len(res.series) == 1 and res.series[0].stack.data.shape == (3, 2, 8, 10)
