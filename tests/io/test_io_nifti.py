"""NIfTI loading: RAS->LPS geometry from the affine, 4D frames, label maps, per-file slice/frame assembly."""

from __future__ import annotations

import numpy as np
import pytest
from io_synth import nifti_bytes

from deepoxymap.case import Role
from deepoxymap.io import build_case, load


def _oblique_affine(spacing=(1.2, 1.4, 7.0), origin=(10.0, -5.0, 20.0)) -> np.ndarray:
    th = np.deg2rad(30)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1.0]])
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag(spacing)
    a[:3, 3] = origin
    return a


def test_geometry_from_affine_ras_to_lps(tmp_path, rng):
    """Every voxel's LPS position equals diag(-1,-1,1) @ (affine @ [i, j, k, 1]), whatever the slice order."""
    aff = _oblique_affine()
    vol = rng.normal(100, 20, size=(6, 7, 4)).astype(np.float32)
    (tmp_path / "cine.nii.gz").write_bytes(nifti_bytes(vol, aff))
    (s,) = load(tmp_path / "cine.nii.gz").series
    g = s.stack.geometry
    assert g.pixel_spacing == pytest.approx((1.2, 1.4)) and g.slice_spacing == pytest.approx(7.0)
    for k in range(4):
        # find which file slice this loaded slice is, by content, then check the mm positions
        src_k = int(np.argmin([np.abs(s.stack.data[k, 0] - vol[:, :, q]).max() for q in range(4)]))
        np.testing.assert_array_equal(s.stack.data[k, 0], vol[:, :, src_k])
        for r, c in [(0, 0), (5, 6), (2, 3)]:
            ras = aff @ np.array([r, c, src_k, 1.0])
            np.testing.assert_allclose(g.pixel_to_patient(k, r, c), [-ras[0], -ras[1], ras[2]], atol=1e-6)
    assert s.role == Role.CINE and s.role_reason.startswith("description-cine")  # file name as description


def test_4d_frames_and_trigger_times(tmp_path, rng):
    """The 4th axis is cine frames; pixdim[4] in ms gives trigger times."""
    vol = rng.normal(size=(5, 5, 3, 6)).astype(np.float32)
    (tmp_path / "c.nii").write_bytes(nifti_bytes(vol, _oblique_affine(), gz=False, pixdim4_ms=40.0))
    (s,) = load(tmp_path / "c.nii").series
    assert s.stack.data.shape[:2] == (3, 6)
    np.testing.assert_allclose(s.stack.trigger_times[0], 40.0 * np.arange(6))
    assert s.role == Role.CINE


def test_label_map_detected_and_paired(tmp_path, rng):
    """An integer volume with few labels is a mask and pairs with the image on the same grid."""
    aff = _oblique_affine()
    img = rng.normal(300, 50, size=(6, 6, 3)).astype(np.float32)
    lab = np.zeros((6, 6, 3), np.uint8)
    lab[2:4, 2:4] = 2
    (tmp_path / "img.nii.gz").write_bytes(nifti_bytes(img, aff))
    (tmp_path / "anything.nii.gz").write_bytes(nifti_bytes(lab, aff))
    res = load(tmp_path)
    roles = {s.uid.split("/")[-1]: s for s in res.series}
    m = roles["anything.nii.gz"]
    assert m.role == Role.MASK and m.stack.units == "label" and m.role_reason.startswith("label-map")
    assert roles["img.nii.gz"].role == Role.UNKNOWN
    case = build_case(res.series, "n1")
    assert list(case.masks) == [roles["img.nii.gz"].uid]
    np.testing.assert_array_equal(np.unique(case.masks[roles["img.nii.gz"].uid].data), [0.0, 2.0])


def test_per_file_frames_assembled_into_one_stack(tmp_path, rng):
    """<stem>_sNN_FFFF files -> one slices x frames stack; slices placed by their affines, frames by number."""
    n_s, n_f = 3, 4
    base = _oblique_affine(spacing=(1.0, 1.0, 9.0))
    uploads = []
    for s in range(n_s):
        aff = base.copy()
        aff[:3, 3] = base[:3, 3] + s * base[:3, 2]
        for f in range(n_f):
            img = np.full((5, 6, 1), 10 * s + f, np.float32) + rng.normal(0, 0.01, (5, 6, 1)).astype(np.float32)
            uploads.append((f"P01_s{s + 1:02d}_{f:04d}.nii.gz", nifti_bytes(img, aff)))
    rng.shuffle(uploads)
    res = load(uploads)
    (s_,) = res.series
    st = s_.stack
    assert st.data.shape == (3, 4, 5, 6)
    assert st.geometry.slice_spacing == pytest.approx(9.0)
    means = np.round(st.data.mean(axis=(2, 3)))
    assert sorted(means[:, 0].tolist()) == [0.0, 10.0, 20.0]
    for k in range(3):
        np.testing.assert_array_equal(np.diff(means[k]), [1.0, 1.0, 1.0])
    assert s_.role == Role.CINE


def test_pixdim_wins_over_unit_affine(tmp_path, rng):
    """A unit affine with pixdim 1.5 mm (EMIDEC style) loads with 1.5 mm and a warning."""
    import nibabel as nib

    img = nib.Nifti1Image(rng.normal(size=(4, 4, 2)).astype(np.float32), np.eye(4))
    img.header.set_zooms((1.5, 1.5, 8.0))
    img.set_sform(np.eye(4), code=1)
    img.set_qform(None, code=0)
    p = tmp_path / "u.nii"
    nib.save(img, p)
    res = load(p)
    assert res.series[0].stack.geometry.pixel_spacing == pytest.approx((1.5, 1.5))
    assert any(i.severity == "warning" and "pixdim used" in i.message for i in res.issues)
