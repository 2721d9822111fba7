"""Real public CMR samples in ../shared/data/real (skipped with a reason where absent)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from deepoxymap.case import Role
from deepoxymap.io import build_case, load

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def sunnybrook(real_data_dir: Path):
    folder = real_data_dir / "sunnybrook" / "SCD0000101"
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    return folder, load(folder)


def _independent_order(folder: Path) -> dict[str, tuple[int, int]]:
    """(slice, frame) of every file from IPP . normal and TriggerTime, computed without deepoxymap."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in folder.glob("*.dcm"):
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            iop = np.array(ds.ImageOrientationPatient, float)
            n = np.cross(iop[:3], iop[3:])
            rows.append((p.name, float(np.array(ds.ImagePositionPatient, float) @ n), float(ds.TriggerTime), n))
    n = rows[0][3]
    sign = np.sign(n @ np.array([1.0, -1.0, -1.0]))  # the documented base -> apex direction
    positions = sorted({round(r[1], 2) for r in rows}, key=lambda x: sign * x)
    out = {}
    for pos in positions:
        members = sorted((r for r in rows if round(r[1], 2) == pos), key=lambda r: r[2])
        for j, r in enumerate(members):
            out[r[0]] = (positions.index(pos), j)
    return out


def test_sunnybrook_one_stack_12_by_20(sunnybrook):
    """240 files, one series, empty description, placeholder dates: one stack of 12 slices x 20 frames."""
    _, res = sunnybrook
    assert not res.errors, res.issues
    (s,) = res.series
    assert s.stack.data.shape == (12, 20, 256, 256)
    assert s.role == Role.CINE and s.description == ""
    assert s.stack.geometry.has_geometry
    assert s.stack.geometry.pixel_spacing == pytest.approx((1.367188, 1.367188))


def test_sunnybrook_spacing_and_trigger_times(sunnybrook):
    """Slices 10 mm apart along the normal (SliceLocation steps are 6.72 mm: a different axis); sane triggers."""
    folder, res = sunnybrook
    st = res.series[0].stack
    pos = st.geometry.slice_positions
    steps = np.diff(pos)
    assert np.all(np.sign(steps) == np.sign(steps[0]))  # monotonic
    np.testing.assert_allclose(np.abs(steps), 10.0, atol=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        locs = sorted({float(pydicom.dcmread(p, stop_before_pixels=True).SliceLocation) for p in folder.glob("*.dcm")})
    np.testing.assert_allclose(np.diff(locs), 6.72, atol=0.01)  # what README calls "~6.7 mm"
    tt = st.trigger_times
    assert np.all(np.diff(tt, axis=1) > 30) and np.all(np.diff(tt, axis=1) < 45)
    assert np.all(tt[:, 0] < 25) and np.all(tt[:, -1] < 800)  # RR 800 ms (NominalInterval)


def test_sunnybrook_order_matches_independent_ipp_trigger_order(sunnybrook):
    """Every file's pixels sit at the (slice, frame) computed independently from IPP and TriggerTime."""
    folder, res = sunnybrook
    st = res.series[0].stack
    expected = _independent_order(folder)
    grid = res.series[0].meta["source_grid"]
    got = {Path(name).name: (k, j) for k, row in enumerate(grid) for j, name in enumerate(row)}
    assert got == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (k, j) in list(expected.items())[::7]:
            ref = pydicom.dcmread(folder / name).pixel_array
            np.testing.assert_array_equal(st.data[k, j], ref)
    # file-name order is not the answer: lexicographic names would misplace frames
    lexi = sorted(expected)
    assert [expected[n] for n in lexi[:20]] != [(0, j) for j in range(20)]


def test_sunnybrook_contours_as_masks(real_data_dir):
    """Manual contours rasterise onto the right (slice, frame): blood pool bright, myocardium dark."""
    from deepoxymap.io.contours import annotated_frames, sunnybrook_case

    if not (real_data_dir / "sunnybrook" / "contours").is_dir():
        pytest.skip("Sunnybrook contours absent")
    case = sunnybrook_case(real_data_dir)
    cine = case.series[0]
    mask = case.masks[cine.uid]
    assert mask.role == Role.MASK and mask.data.shape == cine.stack.data.shape
    assert set(np.unique(mask.data)) == {0.0, 1.0, 2.0}
    ann = annotated_frames(mask)
    myo = annotated_frames(mask, 2)
    assert len(ann) == 18 and len(myo) == 9  # i-contours at ES + ED, o-contours at ED, 9 slices
    assert case.truth.myocardium_frames == tuple(myo)
    for k, j in myo:
        img, lab = cine.stack.data[k, j], mask.data[k, j]
        blood, wall = img[lab == 1].mean(), img[lab == 2].mean()
        assert blood > 1.6 * wall, (k, j, blood, wall)
        rr, cc = np.nonzero(lab == 1)
        assert cine.stack.geometry.has_geometry and 60 < rr.mean() < 200 and 60 < cc.mean() < 200
    # mis-placed contours (x/y swapped) would not separate blood from wall as well
    from deepoxymap.io.contours import polygon_mask, read_contour

    cdir = real_data_dir / "sunnybrook" / "contours" / "SC-HF-I-1" / "i-contours"
    pts = read_contour(cdir / "IM-0001-0059-icontour-manual.txt")
    k, j = next(
        (k, j) for k, row in enumerate(cine.meta["source_grid"]) for j, n in enumerate(row) if n.endswith("/59.dcm")
    )
    img = cine.stack.data[k, j]
    good = img[polygon_mask(pts, img.shape)].mean()
    swapped = img[polygon_mask(pts[:, ::-1], img.shape)].mean()
    assert good > swapped


def test_emidec_lge_and_labels(real_data_dir):
    """EMIDEC sample: 148x246x9 at 1.458 x 1.458 x 10 mm, label map 0..4 paired with the image."""
    d = real_data_dir / "emidec" / "sampleNegative"
    if not d.is_dir():
        pytest.skip(f"{d} absent")
    res = load(d)
    assert not res.errors
    img = next(s for s in res.series if s.role != Role.MASK)
    lab = next(s for s in res.series if s.role == Role.MASK)
    for s in (img, lab):
        assert s.stack.data.shape == (9, 1, 148, 246)
        assert s.stack.geometry.pixel_spacing == pytest.approx((1.4583, 1.4583), abs=1e-3)
        assert s.stack.geometry.slice_spacing == pytest.approx(10.0)
    assert set(np.unique(lab.stack.data)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    assert "Contours" in lab.uid
    case = build_case(res.series, "emidec")
    assert list(case.masks) == [img.uid]
    # on LGE the blood pool (label 1) is brighter than nulled normal myocardium (label 2): labels sit on the image
    assert img.stack.data[lab.stack.data == 1].mean() > img.stack.data[lab.stack.data == 2].mean()


def test_cinemyops_per_file_frames(real_data_dir):
    """CineMyoPS Case0101: 5 slices x 17 frames assembled from 85 2D files, 1 mm pixels, 12 mm slices, labels 0-5."""
    d = real_data_dir / "cinemyops" / "Case0101"
    if not d.is_dir():
        pytest.skip(f"{d} absent")
    res = load(d)
    assert not res.errors
    cine = next(s for s in res.series if s.role == Role.CINE)
    lab = next(s for s in res.series if s.role == Role.MASK)
    assert cine.stack.data.shape == (5, 17, 86, 90)
    assert lab.stack.data.shape == (5, 1, 86, 90)
    assert cine.stack.geometry.pixel_spacing == pytest.approx((1.0, 1.0), abs=1e-4)
    assert cine.stack.geometry.slice_spacing == pytest.approx(12.0, abs=0.01)
    assert set(np.unique(lab.stack.data)) == {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    np.testing.assert_allclose(cine.stack.geometry.slice_origins, lab.stack.geometry.slice_origins)
    case = build_case(res.series, "myops")
    assert list(case.masks) == [cine.uid]
