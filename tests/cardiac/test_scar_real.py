"""Scar on real LGE: the EMIDEC negative case stays quiet, and semi-synthetic infarcts implanted into it are found.

No real infarcted LGE with expert scar is available locally; the implants
(:mod:`deepoxymap.cardiac.scar_implant`) are the stand-in. The held-out seeds
(``TEST_SEEDS``) were never used to choose the defaults (``TUNING_SEEDS`` were).
"""

from __future__ import annotations

import numpy as np
import pytest

from deepoxymap.cardiac.masks import EMIDEC, masks_from_labels
from deepoxymap.cardiac.scar import dice, quantify_scar

pytestmark = pytest.mark.realdata


@pytest.fixture
def negative(real_data_dir):
    """The EMIDEC negative LGE case (image, labels, spacing); skips with a reason where it is absent."""
    case = real_data_dir / "emidec" / "sampleNegative"
    if not case.is_dir():
        pytest.skip(f"EMIDEC negative sample not found at {case} (it lives in ../shared/data/real, never in the repo)")
    from deepoxymap.cardiac.emidec_check import load_emidec_case

    return load_emidec_case(case)


def test_negative_case_false_scar_at_most_one_percent(negative):
    """Issue 13 target: <= 1 % false scar on the negative EMIDEC case (default method and its FWHM)."""
    img, lab, ps = negative
    myo = masks_from_labels(lab, EMIDEC).myocardium
    assert quantify_scar(img, myo, pixel_spacing=ps).percent_of_myocardium <= 1.0
    assert quantify_scar(img, myo, pixel_spacing=ps, method="fwhm").percent_of_myocardium <= 1.0


def _implant_dice(negative, seeds):
    from deepoxymap.cardiac.scar_implant import implant_infarct

    img, lab, ps = negative
    m = masks_from_labels(lab, EMIDEC)
    d, old = [], []
    for seed in seeds:
        imp = implant_infarct(img, m.myocardium, m.lv_blood, ps, seed=seed)
        assert 0.13 <= imp.fraction <= 0.32
        d.append(dice(quantify_scar(imp.image, m.myocardium, pixel_spacing=ps).mask, imp.scar))
        o = quantify_scar(
            imp.image, m.myocardium, pixel_spacing=ps, n_sd=5.0, n_sd_extent=None, remote="robust",
            per_slice=False, core_erosion=0,
        )  # fmt: skip
        old.append(dice(o.mask, imp.scar))
    return float(np.mean(d)), float(np.mean(old))


def test_semi_synthetic_infarcts_beat_the_old_default(negative):
    """Held-out implants (first 8 test seeds; measured mean Dice 0.44): the default finds them far better
    than the old default (n-SD 5, whole-myocardium median/MAD, which finds almost nothing)."""
    from deepoxymap.cardiac.emidec_check import TEST_SEEDS, TUNING_SEEDS

    assert not set(TEST_SEEDS) & set(TUNING_SEEDS)
    new, old = _implant_dice(negative, TEST_SEEDS[:8])
    assert old < 0.1
    assert new > old + 0.3


@pytest.mark.xfail(
    reason="issue 13 target not met: held-out implant mean Dice 0.47 over 20 seeds (0.44 over these 8), where "
    "even the best single threshold per implant (emidec_check.oracle_threshold_dice) reaches only 0.56; "
    "docs/experiments/scar.md",
    strict=False,
)
def test_semi_synthetic_infarcts_dice_target(negative):
    """Issue 13 target: Dice >= 0.6 against the implanted reference (mean over the first 8 held-out seeds)."""
    from deepoxymap.cardiac.emidec_check import TEST_SEEDS

    new, _ = _implant_dice(negative, TEST_SEEDS[:8])
    assert new >= 0.6
