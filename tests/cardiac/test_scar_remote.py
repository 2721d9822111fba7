"""Remote myocardium and the default scar method when the infarct covers 15-30 % of the wall (generated inputs)."""

from __future__ import annotations

import numpy as np
import pytest
from sax_synth import sax_labels

from deepoxymap.cardiac.scar import (
    SCAR_METHODS,
    compare_methods,
    dice,
    kde_mode,
    lower_mode_stats,
    quantify_scar,
    remote_stats,
)
from deepoxymap.cardiac.scar_implant import implant_infarct

REMOTE, SD = 300.0, 40.0


def _stack(rng: np.random.Generator, arc_deg: float, contrast_sd: float, n: int = 4) -> tuple[np.ndarray, ...]:
    """``n`` slices with a subendocardial-to-transmural infarct of ``arc_deg`` (heterogeneous, grey-zone border).

    Remote ~ N(300, 40); blood 300 + 4 SD; infarct core remote + ``contrast_sd`` SD
    times a log-normal heterogeneity, with the outer 40 % of its depth at half
    the enhancement (grey zone). Returns (image, myocardium, reference scar).
    """
    imgs, myos, refs = [], [], []
    for k in range(n):
        lo = 60.0 + 7 * k
        lab = sax_labels(lesion=(lo, lo + arc_deg, 0.0, 0.8 + 0.05 * k))
        img = rng.normal(REMOTE, SD, lab.shape)
        img[lab == 1] += 4 * SD
        myo = np.isin(lab, (2, 4))
        sc = lab == 4
        het = np.exp(rng.normal(0, 0.15, lab.shape))
        rr, cc = np.mgrid[0 : lab.shape[0], 0 : lab.shape[1]]
        rad = np.hypot(rr - 48.0, cc - 50.0)
        depth = (rad - 14.0) / 8.0
        gz = np.where(depth > 0.45 * (0.8 + 0.05 * k), 0.5, 1.0)
        img[sc] += contrast_sd * SD * (het * gz)[sc]
        imgs.append(img)
        myos.append(myo)
        refs.append(sc)
    return np.stack(imgs).astype(np.float32), np.stack(myos), np.stack(refs)


def test_kde_mode_finds_the_larger_mode(rng):
    """70 % at 0 and 30 % at 10: the mode is the larger peak, not the median or mean."""
    x = np.concatenate([rng.normal(0, 1, 7000), rng.normal(10, 1, 3000)])
    assert abs(kde_mode(x)) < 0.3
    assert kde_mode(np.array([2.0])) == 2.0
    with pytest.raises(ValueError):
        kde_mode(np.array([]))


@pytest.mark.parametrize("scar_fraction", [0.15, 0.22, 0.30])
def test_lower_mode_is_robust_to_scar(rng, scar_fraction):
    """With 15-30 % bright scar, the lower-mode remote stays within 0.25 SD (mean) and 20 % (SD) of the truth.

    The median/MAD of the whole myocardium drifts more, its SD inflated by the scar.
    """
    n = 20000
    k = int(n * scar_fraction)
    v = np.concatenate([rng.normal(REMOTE, SD, n - k), rng.normal(REMOTE + 5 * SD, 2 * SD, k)])
    m, s = lower_mode_stats(v)
    assert abs(m - REMOTE) < 0.25 * SD and abs(s - SD) < 0.2 * SD
    med = float(np.median(v))
    mad_sd = 1.4826 * float(np.median(np.abs(v - med)))
    assert abs(mad_sd - SD) > abs(s - SD)  # the old robust remote is worse
    rs = remote_stats(v[None, :], np.ones((1, v.size), bool), "lower-mode")
    assert rs.how.startswith("lower mode") and rs.mean == pytest.approx(m)


@pytest.mark.parametrize("arc_deg", [70.0, 110.0])
def test_default_finds_a_realistic_infarct(rng, arc_deg):
    """An infarct of 15-30 % of the wall, 5 SD core with grey zone: the default finds it (Dice > 0.7);
    the old default (n-SD 5 over the whole-myocardium median/MAD) finds much less."""
    img, myo, ref = _stack(rng, arc_deg, 5.0)
    frac = ref.sum() / myo.sum()
    assert 0.15 <= frac <= 0.30
    r = quantify_scar(img, myo)
    assert dice(r.mask, ref) > 0.7
    assert r.method == "nsd" and r.n_sd == 3.0 and r.n_sd_extent == 1.5 and len(r.slice_thresholds) == 4
    old = quantify_scar(img, myo, n_sd=5.0, n_sd_extent=None, remote="robust", per_slice=False, core_erosion=0)
    assert old.scar_px < 0.6 * r.scar_px
    assert "lower mode" in r.describe() and "n-SD 3" in r.describe()


def test_negative_case_is_quiet_despite_bright_rims(rng):
    """No scar, but a 1-pixel bright epicardial rim (fat partial volume, +6 SD): the default finds nothing;
    without the thickness test the rim is called scar."""
    lab = np.stack([sax_labels() for _ in range(3)])
    img = rng.normal(REMOTE, SD, lab.shape)
    rr, cc = np.mgrid[0:96, 0:96]
    rad = np.hypot(rr - 48.0, cc - 50.0)
    rim = (rad > 21.0) & (rad <= 22.0) & (cc > 50)
    img[:, rim] += 6 * SD
    myo = lab == 2
    assert quantify_scar(img, myo).scar_px == 0
    assert quantify_scar(img, myo, core_erosion=0).percent_of_myocardium > 1.0


def test_compare_methods_rows(rng):
    """Every method gives a row; Dice is NaN without a reference and in [0, 1] with one."""
    img, myo, ref = _stack(rng, 90.0, 5.0, n=3)
    rows = compare_methods(img, myo, (1.4, 1.4), ref)
    assert [r.method for r in rows] == list(SCAR_METHODS)
    assert all(0.0 <= r.dice <= 1.0 and r.reference_percent > 10 for r in rows)
    assert all(np.isnan(r.dice) for r in compare_methods(img, myo, (1.4, 1.4)))
    with pytest.raises(ValueError, match="reference scar"):
        compare_methods(img, myo, (1.4, 1.4), ref[:2])


def test_implant_geometry_and_grey_zone(rng):
    """A generated scar-free volume: the implant covers 15-30 % of the myocardium, stays inside it,
    touches the endocardium, is brighter in its core than at its border (grey zone), and keeps the
    image untouched outside the myocardium."""
    lab = np.stack([sax_labels(r_endo=14 + k, r_epi=23 + k) for k in range(6)])
    img = rng.normal(REMOTE, SD, lab.shape).astype(np.float32)
    img[lab == 1] += 4 * SD
    myo, blood = lab == 2, lab == 1
    from scipy.ndimage import binary_dilation, binary_erosion

    for seed in (0, 1, 2):
        imp = implant_infarct(img, myo, blood, (1.4, 1.4), seed=seed)
        assert 0.13 <= imp.fraction <= 0.32
        assert not (imp.scar & ~myo).any() and not (imp.mvo & ~imp.scar).any()
        np.testing.assert_array_equal(imp.image[~myo], img[~myo])
        endo = myo & binary_dilation(blood, np.ones((1, 3, 3), bool))
        assert (imp.scar & endo).any()
        enh = imp.image - img
        inner = imp.scar & binary_erosion(imp.scar, np.ones((1, 5, 5), bool)) & ~imp.mvo
        border = imp.scar & ~binary_erosion(imp.scar, np.ones((1, 3, 3), bool)) & ~imp.mvo
        if inner.sum() > 20:
            assert np.median(enh[border]) < np.median(enh[inner])
    with pytest.raises(ValueError):
        implant_infarct(img[:2], myo[:2], blood[:2], (1.4, 1.4), seed=0)


def test_lowest_peak_when_scar_covers_most_of_a_slice(rng):
    """60 % of a slice enhanced (a compact bright peak): the lowest substantial KDE peak is still remote."""
    v = np.concatenate([rng.normal(REMOTE, SD, 4000), rng.normal(REMOTE + 6 * SD, SD, 6000)])
    m, s = lower_mode_stats(v)
    assert abs(m - REMOTE) < 0.3 * SD and s < 1.5 * SD
    assert kde_mode(v) > REMOTE + 4 * SD  # the plain (highest) mode is the scar


def test_threshold_ceiling_finds_a_separable_scar_and_bounds_an_overlapping_one():
    """oracle_threshold_dice: 1.0 when scar and remote do not overlap; below 1 and at the best z when they do."""
    from deepoxymap.cardiac.emidec_check import oracle_threshold_dice

    rng = np.random.default_rng(3)
    img = rng.normal(1000.0, 50.0, (3, 40, 40))
    myo = np.zeros(img.shape, bool)
    myo[:, 5:35, 5:35] = True
    ref = np.zeros(img.shape, bool)
    ref[:, 5:35, 5:13] = True  # about 27 % of the wall
    easy = img + np.where(ref, 20 * 50.0, 0.0)  # 20 SD: one threshold separates them
    d, z, thr, pct = oracle_threshold_dice(easy, myo, ref)
    assert d == 1.0
    assert 3.0 < z < 20.0
    assert 1000 + 3 * 50 < thr < 1000 + 20 * 50
    assert pct == pytest.approx(100 * ref.sum() / myo.sum())
    hard = img + np.where(ref, 1.0 * 50.0, 0.0)  # 1 SD: no threshold can separate them
    d_hard, z_hard, _, _ = oracle_threshold_dice(hard, myo, ref)
    assert 0.3 < d_hard < 0.7
    assert 0.0 <= z_hard <= 1.5
    assert np.isnan(oracle_threshold_dice(easy, myo, np.zeros_like(ref))[0])
