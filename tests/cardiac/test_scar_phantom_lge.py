"""The phantom LGE is as hard as real LGE (grey zone, heterogeneity, MVO, noise), and only the LGE depends on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from deepoxymap.cardiac.masks import PHANTOM, masks_from_labels
from deepoxymap.cardiac.scar import dice, quantify_scar
from deepoxymap.phantom.generate import simulate_subject
from deepoxymap.phantom.params import LgeRealismParams, PhantomParams


def _lge(sim):
    lg = next(s for s in sim.series if s.key == "lge")
    lab = next(v for k, v in lg.labels.items() if not k.endswith("__edema"))
    return lg.pixels[:, 0].astype(np.float64), lab


@pytest.fixture(scope="module")
def ischemic():
    """A transmural LAD infarct with MVO (mvo_prob 1), rendered in memory."""
    p = PhantomParams()
    p = dataclasses.replace(p, lesions=dataclasses.replace(p.lesions, mvo_prob=1.0))
    return simulate_subject("S", "ischemic", "LAD-transmural", "A", 0, 3, p, n_frames=4)


def test_grey_zone_and_heterogeneity(ischemic):
    """Scar border pixels are dimmer than the scar core (grey zone), the core is heterogeneous, and part
    of the scar lies below the FWHM level (intermediate SI): the scar is not one flat bright value."""
    img, lab = _lge(ischemic)
    m = masks_from_labels(lab, PHANTOM)
    scar = np.isin(lab, (4,))
    d = distance_transform_edt(~(m.myocardium & ~m.scar), sampling=(1e3, 1.0, 1.0))  # px to remote, per slice
    core = scar & (d >= 3.0)
    border = scar & (d <= 1.0)
    remote = np.median(img[m.myocardium & ~m.scar])
    assert core.sum() > 20 and border.sum() > 20
    assert np.median(img[border]) < np.median(img[core]) - 0.1 * (np.median(img[core]) - remote)
    cv = img[core].std() / (img[core].mean() - remote)
    assert cv > 0.15  # heterogeneous enhancement
    peak = np.percentile(img[m.myocardium], 99.5)
    half = remote + 0.5 * (peak - remote)
    assert 0.1 < (img[scar] < half).mean() < 0.9


def test_mvo_darker_than_scar(ischemic):
    """The MVO core reads darker than the scar around it, close to remote."""
    img, lab = _lge(ischemic)
    mvo, scar = lab == 6, lab == 4
    assert mvo.sum() >= 3
    remote = np.median(img[lab == 2])
    s_med = np.median(img[scar])
    assert np.median(img[mvo]) < s_med - 0.3 * (s_med - remote)


def test_noise_is_rician_and_contrast_realistic(ischemic):
    """Nulled remote myocardium is not black and carries real noise: scar-to-remote CNR in 3-30 (not ~100)."""
    img, lab = _lge(ischemic)
    rem = img[lab == 2]
    cnr = (np.median(img[lab == 4]) - np.median(rem)) / rem.std()
    assert 3.0 < cnr < 30.0
    assert np.median(rem) > 0.05 * np.median(img[lab == 1])


def test_default_scar_method_on_the_harder_phantom(ischemic):
    """The default finds the infarct (Dice > 0.6) on the harder LGE; the old default (n-SD 5, robust whole
    myocardium, no spatial tests) finds less of it."""
    img, lab = _lge(ischemic)
    m = masks_from_labels(lab, PHANTOM)
    r = quantify_scar(img, m.myocardium, pixel_spacing=(1.45, 1.45))
    old = quantify_scar(
        img, m.myocardium, pixel_spacing=(1.45, 1.45), n_sd=5.0, n_sd_extent=None, remote="robust",
        per_slice=False, core_erosion=0,
    )  # fmt: skip
    assert dice(r.mask, m.scar) > 0.6
    assert dice(r.mask, m.scar) > dice(old.mask, m.scar)


def test_lge_realism_does_not_touch_other_series():
    """Changing every LGE realism number changes the LGE pixels only: OS-CMR, T1 and T2 pixels, labels and
    the truth are byte-identical (the LGE draws from its own generator)."""
    base = simulate_subject("S", "ischemic", "RCA-subendocardial", "B", 0, 5, n_frames=4)
    lr = LgeRealismParams(
        null_offset=(0.3, 0.3), noise_factor=(1.0, 1.0), scar_het_sd=(0.0, 0.0), scar_het_mm=(3.0, 3.0),
        grey_zone_mm=(0.5, 0.5), grey_zone_floor=(1.0, 1.0), mvo_of_remote=(0.2, 0.2),
    )  # fmt: skip
    other = simulate_subject(
        "S", "ischemic", "RCA-subendocardial", "B", 0, 5, dataclasses.replace(PhantomParams(), lge=lr), n_frames=4
    )
    assert [s.key for s in base.series] == [s.key for s in other.series]
    for a, b in zip(base.series, other.series, strict=True):
        for k in a.labels:
            np.testing.assert_array_equal(a.labels[k], b.labels[k])
        if a.key == "lge":
            assert not np.array_equal(a.pixels, b.pixels)
        else:
            np.testing.assert_array_equal(a.pixels, b.pixels)
    assert repr(base.truth) == repr(other.truth)
