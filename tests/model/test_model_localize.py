"""LV localisation: synthetic discs and real Sunnybrook slices with manual contours."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from model_synth import make_image

from deepoxymap.cardiac.localize import find_lv, find_lv_center, lv_cavity_area_mm2


@pytest.mark.parametrize("spacing", [0.8, 1.4, 2.0])
def test_finds_disc_centre_in_mm_terms(spacing: float) -> None:
    """A 15 mm blood disc in a 9 mm ring, off-centre, next to a bright RV crescent."""
    rng = np.random.default_rng(1)
    shape = (int(160 / spacing), int(170 / spacing))
    centre = (shape[0] * 0.55, shape[1] * 0.58)
    img = make_image(shape, centre, 15.0, spacing, 0.3, rng)
    r, c = find_lv_center(img, (spacing, spacing))
    assert np.hypot((r - centre[0]) * spacing, (c - centre[1]) * spacing) < 2.0


def test_cavity_area_tracks_radius() -> None:
    """The blood-pool area grows with the disc radius (mm^2, ~pi r^2)."""
    rng = np.random.default_rng(2)
    areas = []
    for r_mm in (10.0, 14.0, 18.0):
        img = make_image((120, 120), (60, 62), r_mm, 1.25, 0.3, rng)
        areas.append(lv_cavity_area_mm2(img, (1.25, 1.25), (60, 62)))
        assert areas[-1] == pytest.approx(np.pi * r_mm**2, rel=0.2)
    assert areas[0] < areas[1] < areas[2]


def test_blank_image_falls_back_to_centre() -> None:
    loc = find_lv(np.zeros((50, 60)), (1.0, 1.0))
    assert not loc.found and (loc.row, loc.col) == (24.5, 29.5)


@pytest.mark.realdata
def test_sunnybrook_centre_inside_endocardial_contour(real_data_dir: Path) -> None:
    """On every Sunnybrook slice with a manual endocardial contour (ED and ES, base to apex),
    the automatically found LV centre lies inside the contour."""
    pydicom = pytest.importorskip("pydicom")
    from matplotlib.path import Path as Polygon

    sb = real_data_dir / "sunnybrook"
    contours = sorted(sb.glob("contours/*/i-contours/IM-0001-*-icontour-manual.txt"))
    if not contours:
        pytest.skip("no Sunnybrook contours")
    outside = []
    for f in contours:
        nn = int(re.search(r"IM-0001-(\d+)-", f.name).group(1))
        ds = pydicom.dcmread(sb / "SCD0000101" / f"{nn}.dcm")
        img = ds.pixel_array.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1) or 1)
        xy = np.loadtxt(f)  # "x y" = (col, row)
        r, c = find_lv_center(img, tuple(float(v) for v in ds.PixelSpacing))
        if not Polygon(xy).contains_point((c, r)):
            outside.append(nn)
    assert len(contours) >= 10
    assert outside == [], f"LV centre outside the manual endocardial contour on images {outside}"


def test_phantom_lv_centre_in_blood_pool_and_es_frame(demo_dir: Path) -> None:
    """On the demo phantoms, the crop centre of every slice lies in the true LV blood pool
    (label 1) and the chosen frame is within one frame of the phantom's end-systole."""
    import csv

    from deepoxymap.model.preprocess import PreprocessSpec, preprocess_case
    from deepoxymap.phantom import load_subject

    with (demo_dir / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        case = load_subject(demo_dir / row["path"])
        pre = preprocess_case(case, PreprocessSpec())
        mask = case.mask_for(pre.stack.series_uid)
        assert mask is not None
        for t in pre.transforms:
            lab = mask.data[t.slice_index, 0]
            assert lab[round(t.center[0]), round(t.center[1])] == 1, (row["subject"], t.slice_index)
        es = case.truth.es_frame
        if es is not None:
            assert all(abs(f - int(es)) <= 1 for f in pre.frames), (row["subject"], pre.frames, es)
