"""Insertion points and AHA segments: anatomy-anchored, rotation- and flip-proof."""

from __future__ import annotations

import numpy as np
import pytest
from sax_synth import sax_labels

from deepoxymap.cardiac.masks import myocardium_from_contours
from deepoxymap.cardiac.segments import (
    find_insertion_points,
    handedness,
    segment_energy_fraction,
    segment_map,
    segment_mean,
    slice_levels,
)
from deepoxymap.case import Geometry
from deepoxymap.errors import CaseError


def _seg_at(seg: np.ndarray, theta_deg: float, centre=(48.0, 50.0), r=18.0) -> int:
    t = np.radians(theta_deg)
    return int(seg[round(centre[0] - r * np.sin(t)), round(centre[1] + r * np.cos(t))])


class TestInsertionPoints:
    def test_standard_view(self):
        """RV on the left spanning 120-240 deg: anterior IP at ~120, inferior at ~240, septum at 180."""
        ip = find_insertion_points(sax_labels())
        assert abs(ip.anterior_deg - 120) < 8 and abs(ip.inferior_deg - 240) < 8
        assert abs(ip.septal_deg - 180) < 3 and ip.sense == 1
        assert ip.anterior[0] < ip.centre[0] < ip.inferior[0]  # anterior IP above the centre on screen

    def test_no_rv_raises(self):
        """Without an RV the segments cannot be anchored."""
        lab = sax_labels()
        lab[lab == 3] = 0
        with pytest.raises(CaseError):
            find_insertion_points(lab)


class TestSegmentMap:
    @pytest.mark.parametrize(
        ("theta", "basal", "apical"),
        [(90, 1, 13), (150, 2, 14), (210, 3, 14), (270, 4, 15), (330, 5, 16), (30, 6, 16), (100, 1, 13)],
    )
    def test_layout(self, theta, basal, apical):
        """Standard view: 1 anterior (up), 2-3 septal (left), 4 inferior (down), 5-6 lateral (right)."""
        lab = sax_labels()
        assert _seg_at(segment_map(lab, "basal"), theta) == basal
        assert _seg_at(segment_map(lab, "mid"), theta) == basal + 6
        assert _seg_at(segment_map(lab, "apical"), theta) == apical

    def test_only_myocardium_labelled(self):
        """Segments live in the myocardium; 'all' covers every pixel; 'apex' is 17."""
        lab = sax_labels()
        seg = segment_map(lab, "basal")
        assert np.array_equal(seg > 0, np.isin(lab, (2, 4)))
        assert (segment_map(lab, "basal", region="all") > 0).all()
        assert set(np.unique(segment_map(lab, "apex"))) == {0, 17}

    @pytest.mark.parametrize("k", [1, 2, 3])
    def test_rot90_gives_rotated_segments(self, k):
        """Rotating the anatomy rotates the segment map with it."""
        lab = sax_labels(centre=(47.5, 47.5))
        seg = segment_map(lab, "basal")
        seg_rot = segment_map(np.rot90(lab, k), "basal")
        assert np.mean(seg_rot != np.rot90(seg, k)) < 0.002

    @pytest.mark.parametrize("angle", [37.0, -100.0, 170.0])
    def test_arbitrary_rotation_keeps_lesion_segments(self, angle):
        """A lesion in segment 4 (inferior) stays in segment 4 after any in-plane rotation."""
        from scipy.ndimage import rotate

        lab = sax_labels(lesion=(250, 290, 0.0, 1.0))
        rot = rotate(lab, angle, order=0, reshape=False)
        for labels in (lab, rot):
            seg = segment_map(labels, "mid")
            hit = np.bincount(seg[labels == 4], minlength=18)
            assert int(np.argmax(hit)) == 10
            assert hit[10] / hit.sum() > 0.95

    def test_flip_with_sense_or_geometry(self):
        """A mirrored image keeps its segments when the sense is given or read from the geometry."""
        lab = sax_labels(lesion=(60, 100, 0.0, 0.5))  # basal anterior (1) lesion
        flipped = np.fliplr(lab)
        seg = segment_map(lab, "basal")
        g_std = Geometry(np.zeros((1, 3)), np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), (1.0, 1.0), lab.shape)
        g_mir = Geometry(np.zeros((1, 3)), np.array([-1.0, 0, 0]), np.array([0, 0, -1.0]), (1.0, 1.0), lab.shape)
        assert handedness(g_std) == -handedness(g_mir)
        sense_mir = -1 if handedness(g_std) == 1 else 1
        by_sense = segment_map(flipped, "basal", sense=sense_mir * handedness(g_std))
        assert np.mean(by_sense != np.fliplr(seg)) < 0.002
        g_first, g_second = (g_std, g_mir) if handedness(g_std) == 1 else (g_mir, g_std)
        assert np.mean(segment_map(lab, "basal", geometry=g_first) != seg) < 0.002
        assert np.mean(segment_map(flipped, "basal", geometry=g_second) != np.fliplr(seg)) < 0.002
        naive = segment_map(flipped, "basal")  # no sense: the mirror swaps anterior and inferior
        assert np.bincount(naive[flipped == 4]).argmax() != 1

    def test_insertion_convention_puts_ips_on_boundaries(self):
        """With a narrow RV the 'insertion' convention rescales the septal arc."""
        lab = sax_labels(rv_half_deg=45)
        seg = segment_map(lab, "basal", convention="insertion")
        ip = find_insertion_points(lab)
        assert abs(ip.septal_arc_deg - 90) < 10
        assert _seg_at(seg, 128) == 1 and _seg_at(seg, 155) == 2 and _seg_at(seg, 205) == 3
        assert _seg_at(seg, 232) == 4


def test_rotated_heatmap_same_segment_energy():
    """A heatmap rotated with the anatomy gives the same per-segment energy (and means)."""
    lab = sax_labels(centre=(47.5, 47.5))
    rng = np.random.default_rng(0)
    hm = rng.random(lab.shape)
    seg, seg_r = segment_map(lab, "mid"), segment_map(np.rot90(lab), "mid")
    np.testing.assert_allclose(
        segment_energy_fraction(hm, seg), segment_energy_fraction(np.rot90(hm), seg_r), atol=0.01
    )
    np.testing.assert_allclose(segment_mean(hm, seg)[6:12], segment_mean(np.rot90(hm), seg_r)[6:12], atol=0.02)
    assert np.isnan(segment_mean(hm, seg)[0])


def test_slice_levels_thirds():
    """Valid slices split in thirds base to apex; a cavity-free cap after them is the apex."""
    assert slice_levels(9) == ["basal"] * 3 + ["mid"] * 3 + ["apical"] * 3
    assert slice_levels(7, valid=[False] + [True] * 5 + [False], apex_cap=[False] * 6 + [True]) == [
        "none",
        "basal",
        "basal",
        "mid",
        "mid",
        "apical",
        "apex",
    ]


def test_contours_to_myocardium():
    """Endo/epi contours (x, y) fill the ring between them."""
    t = np.linspace(0, 2 * np.pi, 100, endpoint=False)
    endo = np.stack([50 + 10 * np.cos(t), 40 + 10 * np.sin(t)], axis=1)
    epi = np.stack([50 + 16 * np.cos(t), 40 + 16 * np.sin(t)], axis=1)
    myo, blood = myocardium_from_contours(endo, epi, (80, 100))
    assert blood[40, 50] and not myo[40, 50] and myo[40, 63] and not myo[40, 70]
    assert abs(myo.sum() - np.pi * (16**2 - 10**2)) < 40
