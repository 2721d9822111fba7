"""The data model: Geometry, Stack, Case, slice matching and resampling."""

from __future__ import annotations

import numpy as np
import pytest

from deepoxymap.case import (
    Case,
    Geometry,
    Role,
    Series,
    Stack,
    match_slices,
    nearest_slice,
    resample_slice,
    sort_base_to_apex,
)
from deepoxymap.errors import CaseError, GeometryError

ROW = np.array([0.8, 0.6, 0.0])
COL = np.array([-0.36, 0.48, -0.8])


def _geom(n=4, spacing=(1.5, 1.25), step=8.0, shape=(10, 12), origin=(5.0, -3.0, 2.0), row=ROW, col=COL, **kw):
    normal = np.cross(row, col)
    origins = np.asarray(origin) + np.arange(n)[:, None] * step * normal
    return Geometry(origins, row, col, spacing, shape, **kw)


class TestGeometry:
    def test_pixel_patient_round_trip(self):
        """patient_to_pixel inverts pixel_to_patient; spacing order is (row, col)."""
        g = _geom()
        p = g.pixel_to_patient(2, np.array([0.0, 3.0]), np.array([0.0, 4.0]))
        np.testing.assert_allclose(p[0], g.slice_origins[2])
        np.testing.assert_allclose(p[1], g.slice_origins[2] + 4 * 1.25 * ROW + 3 * 1.5 * COL)
        back = g.patient_to_pixel(2, p)
        np.testing.assert_allclose(back[..., :2], [[0, 0], [3, 4]], atol=1e-9)
        np.testing.assert_allclose(back[..., 2], 0.0, atol=1e-9)

    def test_slice_positions_and_spacing(self):
        """Positions along the normal step by the slice spacing."""
        g = _geom(step=7.5)
        assert g.slice_spacing == pytest.approx(7.5)
        np.testing.assert_allclose(np.diff(g.slice_positions), 7.5)

    def test_affine_matches_pixel_to_patient(self):
        """affine(k) @ [r, c, 0, 1] equals pixel_to_patient."""
        g = _geom()
        np.testing.assert_allclose((g.affine(1) @ [3, 5, 0, 1])[:3], g.pixel_to_patient(1, 3, 5))

    def test_from_affine(self):
        """A (row, col, slice) affine gives spacing, cosines and slice origins."""
        a = np.eye(4)
        a[:3, 0] = COL * 2.0
        a[:3, 1] = ROW * 0.5
        a[:3, 2] = np.cross(ROW, COL) * 6.0
        a[:3, 3] = [1, 2, 3]
        g = Geometry.from_affine(a, (4, 5), 3)
        assert g.pixel_spacing == pytest.approx((2.0, 0.5))
        assert g.slice_spacing == pytest.approx(6.0)
        np.testing.assert_allclose(g.pixel_to_patient(2, 1, 1), (a @ [1, 1, 2, 1])[:3])

    def test_invalid_inputs(self):
        """Zero cosines and non-positive spacing are refused."""
        with pytest.raises(GeometryError):
            Geometry(np.zeros((1, 3)), [0, 0, 0], COL, (1, 1), (2, 2))
        with pytest.raises(GeometryError):
            Geometry(np.zeros((1, 3)), ROW, COL, (0, 1), (2, 2))

    def test_no_geometry_refuses(self):
        """A no-geometry placeholder views but refuses matching and resampling."""
        ng = Geometry.without_geometry(3, (4, 4))
        assert not ng.has_geometry and ng.n_slices == 3
        with pytest.raises(GeometryError, match="no geometry"):
            nearest_slice(_geom(), 0, ng)
        with pytest.raises(GeometryError):
            resample_slice(np.zeros((4, 4)), ng, 0, _geom(), 0)
        assert sort_base_to_apex(ng) == [0, 1, 2]


class TestStack:
    def test_shape_checks(self):
        """data must be 4D and match the geometry; trigger times broadcast per frame."""
        g = _geom(n=2, shape=(3, 4))
        st = Stack(np.zeros((2, 5, 3, 4), np.float64), g, np.arange(5.0))
        assert st.data.dtype == np.float32 and st.trigger_times.shape == (2, 5)
        np.testing.assert_allclose(st.trigger_times[1], np.arange(5.0))
        with pytest.raises(CaseError, match=r"\[slice, frame, row, col\]"):
            Stack(np.zeros((2, 3, 4)), g, np.zeros(1))
        with pytest.raises(CaseError, match="does not match geometry"):
            Stack(np.zeros((3, 1, 3, 4)), g, np.zeros(1))

    def test_subset_and_role(self):
        """subset keeps data, geometry and trigger times aligned; with_role copies."""
        g = _geom(n=3, shape=(2, 2))
        data = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 1, 2, 2), np.float32)
        st = Stack(data, g, np.zeros((3, 1)))
        sub = st.subset([2, 0])
        assert sub.data[0, 0, 0, 0] == 2 and sub.data[1, 0, 0, 0] == 0
        np.testing.assert_allclose(sub.geometry.slice_origins[0], g.slice_origins[2])
        assert st.with_role(Role.LGE).role == Role.LGE and st.role == Role.UNKNOWN


class TestMatching:
    def test_nearest_slice_distance(self):
        """Nearest slice along the normal and its distance in mm."""
        a = _geom(n=4, step=8.0)
        b = _geom(n=6, step=5.0, origin=(5.0, -3.0, 2.0) + np.cross(ROW, COL) * 2.0)
        m = nearest_slice(a, 2, b)  # a at 16 mm; b at 2, 7, 12, 17, 22, 27 -> index 3, 1 mm away
        assert m.other_index == 3 and m.distance_mm == pytest.approx(1.0)
        assert [x.other_index for x in match_slices(a, b)] == [0, 1, 3, 4]

    def test_not_parallel_refused(self):
        """Planes tilted beyond the tolerance are refused with a GeometryError."""
        a = _geom()
        th = np.deg2rad(30)
        rot = np.array([[1, 0, 0], [0, np.cos(th), -np.sin(th)], [0, np.sin(th), np.cos(th)]])
        b = _geom(row=rot @ ROW, col=rot @ COL)
        with pytest.raises(GeometryError, match="not parallel"):
            nearest_slice(a, 0, b, tol_deg=10)
        nearest_slice(a, 0, b, tol_deg=45)

    def test_frame_of_reference_mismatch_refused(self):
        """Different FrameOfReferenceUIDs cannot be compared."""
        with pytest.raises(GeometryError, match="frames of reference"):
            nearest_slice(_geom(frame_of_reference_uid="1.2"), 0, _geom(frame_of_reference_uid="1.3"))


class TestResample:
    def test_identity(self, rng):
        """Resampling onto the same grid returns the image."""
        g = _geom(shape=(6, 7))
        img = rng.normal(size=(6, 7)).astype(np.float32)
        np.testing.assert_allclose(resample_slice(img, g, 1, g, 1), img, atol=1e-5)

    def test_rotation_spacing_and_offset(self):
        """A destination grid rotated 90 deg in-plane, with half the spacing and an offset, maps exactly."""
        src = _geom(n=1, spacing=(2.0, 2.0), shape=(5, 5))
        img = np.arange(25, dtype=np.float32).reshape(5, 5)
        # dst: rows along src +col, cols along src -row; spacing 1 mm; origin at src pixel (r=4, c=0)
        dst = Geometry(
            src.pixel_to_patient(0, 4.0, 0.0)[None, :],
            -COL,  # dst column index grows along -src row direction
            ROW,  # dst row index grows along +src column direction
            (1.0, 1.0),
            (9, 9),
        )
        out = resample_slice(img, src, 0, dst, 0, order=1)
        # dst pixel (r, c) -> src (row = 4 - c/2, col = r/2)
        for r, c in [(0, 0), (2, 4), (8, 8), (4, 6)]:
            sr, sc = 4 - c / 2, r / 2
            # bilinear on a linear ramp (5*row + col) is exact
            assert out[r, c] == pytest.approx(5 * sr + sc, abs=1e-4)
        assert np.isclose(out[0, 0], img[4, 0])

    def test_nearest_for_labels(self):
        """order=0 keeps label values; outside the source is the fill value."""
        src = _geom(n=1, spacing=(1.0, 1.0), shape=(4, 4))
        lab = np.zeros((4, 4), np.float32)
        lab[1:3, 1:3] = 2
        shifted = Geometry(src.pixel_to_patient(0, -2.0, -2.0)[None, :], ROW, COL, (1.0, 1.0), (8, 8))
        out = resample_slice(lab, src, 0, shifted, 0, order=0, fill=-1)
        assert set(np.unique(out)) == {-1.0, 0.0, 2.0}
        assert out[3, 3] == 2 and out[0, 0] == -1


class TestCase:
    def test_roles_and_timepoints(self):
        """by_role orders OS-CMR by acquisition time; os_timepoints keys by time point; masks by uid."""
        g = _geom(n=1, shape=(2, 2))

        def series(uid, role, t, tp=None):
            st = Stack(np.zeros((1, 1, 2, 2)), g, np.zeros(1), role=role, acquisition_time_s=t, timepoint=tp)
            return Series(uid, st, role)

        c = Case(
            "c",
            (
                series("b", Role.OS_CMR, 20.0, "bh-end"),
                series("a", Role.OS_CMR, 10.0, "baseline"),
                series("l", Role.LGE, 5.0),
            ),
            masks={"a": Stack(np.ones((1, 1, 2, 2)), g, np.zeros(1), role=Role.MASK)},
        )
        assert [s.uid for s in c.by_role(Role.OS_CMR)] == ["a", "b"]
        assert list(c.os_timepoints()) == ["baseline", "bh-end"]
        assert c.first(Role.T1_MAP) is None and c.first(Role.LGE).uid == "l"
        assert c.mask_for("a") is not None and c.mask_for("b") is None
        s2 = c.series[2].with_role(Role.T2_MAP)
        assert s2.role == Role.T2_MAP and s2.stack.role == Role.T2_MAP and s2.role_reason == "set by user"


def test_sort_base_to_apex():
    """Slices order along the LV long-axis direction (LPS +x, -y, -z), whichever way they were stored."""
    row, col = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])  # normal +z; apex direction has -z
    g = Geometry(np.array([[0, 0, 0], [0, 0, 10.0], [0, 0, 20.0]]), row, col, (1, 1), (2, 2))
    assert sort_base_to_apex(g) == [2, 1, 0]
    g2 = Geometry(np.array([[0, 0, 20.0], [0, 0, 0], [0, 0, 10.0]]), row, col, (1, 1), (2, 2))
    assert sort_base_to_apex(g2) == [0, 2, 1]
