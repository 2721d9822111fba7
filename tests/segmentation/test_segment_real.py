"""Automatic segmentation on the real labelled samples in ``../shared/data/real`` (skipped where absent).

The issue-13 targets are asserted as they stand for the default method (myocardium
Dice >= 0.80 on real cine at ES and ED, >= 0.75 on real LGE). Sunnybrook has no end-systolic
epicardium, so its ES row scores the blood pool only; the cine ES/ED
myocardium target is checked on Sunnybrook ED and on CineMyoPS. Targets not
yet met are marked ``xfail`` with the figure measured when they were written
(``docs/experiments/segmentation.md``); the floors below them guard against
regressions and must pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepoxymap.segmentation import DEFAULT_METHOD
from deepoxymap.segmentation.check import DatasetResult, check_cinemyops, check_emidec, check_sunnybrook

pytestmark = pytest.mark.realdata


def _rows(root: Path, method: str) -> dict[str, DatasetResult]:
    out: dict[str, DatasetResult] = {}
    if (root / "sunnybrook").is_dir():
        out.update({r.name: r for r in check_sunnybrook(root, method)})
    if (root / "cinemyops" / "Case0101").is_dir():
        out.update({r.name: r for r in check_cinemyops(root, method)})
    if (root / "emidec" / "sampleNegative").is_dir():
        out.update({r.name: r for r in check_emidec(root, method)})
    return out


@pytest.fixture(scope="module")
def rows(real_data_dir: Path) -> dict[str, DatasetResult]:
    """The default method's rows."""
    return _rows(real_data_dir, DEFAULT_METHOD)


@pytest.fixture(scope="module")
def polar_rows(real_data_dir: Path) -> dict[str, DatasetResult]:
    """The classical method's rows (still used without a segmenter file)."""
    return _rows(real_data_dir, "polar")


def _row(rows: dict[str, DatasetResult], name: str) -> DatasetResult:
    if name not in rows:
        pytest.skip(f"{name}: its case is not in the real data folder")
    return rows[name]


TARGET_CINE_MYO = 0.80
TARGET_LGE_MYO = 0.75

# floors of the default method (the shipped U-Net ensemble), a little under the figures of
# docs/experiments/segmentation.md: Sunnybrook ES / ED blood 0.83 / 0.90, ED myocardium 0.69
# (with the endocardial pass; 0.86 / 0.66 without it, so these two floors fail if it breaks),
# CineMyoPS blood 0.85 and myocardium 0.82, EMIDEC myocardium 0.78 and blood 0.89
FLOOR_SB_ES_BLOOD, FLOOR_SB_ED_BLOOD, FLOOR_SB_ED_MYO = 0.78, 0.88, 0.675
FLOOR_CM_BLOOD, FLOOR_CM_MYO = 0.82, 0.78
FLOOR_EM_MYO, FLOOR_EM_BLOOD = 0.75, 0.86


@pytest.mark.xfail(reason="issue-13 target not met: Sunnybrook ED myocardium Dice 0.69 when written", strict=False)
def test_target_sunnybrook_ed_myocardium(rows: dict[str, DatasetResult]) -> None:
    """Myocardium Dice >= 0.80 at end-diastole (the only Sunnybrook phase with an epicardium)."""
    assert _row(rows, "Sunnybrook ED").myo >= TARGET_CINE_MYO


def test_target_cinemyops_myocardium(rows: dict[str, DatasetResult]) -> None:
    """Myocardium Dice >= 0.80 on the CineMyoPS cine (frame 0)."""
    assert _row(rows, "CineMyoPS frame 0").myo >= TARGET_CINE_MYO


def test_target_emidec_lge_myocardium(rows: dict[str, DatasetResult]) -> None:
    """Myocardium Dice >= 0.75 on the EMIDEC LGE."""
    assert _row(rows, "EMIDEC LGE").myo >= TARGET_LGE_MYO


def test_floors_blood_pool_and_myocardium(rows: dict[str, DatasetResult]) -> None:
    """Regression floors of the default method under the figures of docs/experiments/segmentation.md."""
    es, ed = _row(rows, "Sunnybrook ES"), _row(rows, "Sunnybrook ED")
    assert es.n_images == 9 and ed.n_images == 9
    assert es.blood >= FLOOR_SB_ES_BLOOD and ed.blood >= FLOOR_SB_ED_BLOOD, (es.blood, ed.blood)
    assert ed.myo >= FLOOR_SB_ED_MYO, ed.myo
    my = _row(rows, "CineMyoPS frame 0")
    assert my.blood >= FLOOR_CM_BLOOD and my.myo >= FLOOR_CM_MYO, (my.blood, my.myo)
    em = _row(rows, "EMIDEC LGE")
    assert em.myo >= FLOOR_EM_MYO and em.blood >= FLOOR_EM_BLOOD, (em.myo, em.blood)


def test_floors_classical_method(polar_rows: dict[str, DatasetResult]) -> None:
    """Regression floors of the classical method (the figures of the seventh session)."""
    es, ed = _row(polar_rows, "Sunnybrook ES"), _row(polar_rows, "Sunnybrook ED")
    assert es.blood >= 0.80 and ed.blood >= 0.85, (es.blood, ed.blood)
    assert ed.myo >= 0.60, ed.myo
    my = _row(polar_rows, "CineMyoPS frame 0")
    assert my.blood >= 0.78 and my.myo >= 0.55, (my.blood, my.myo)
    em = _row(polar_rows, "EMIDEC LGE")
    assert em.myo >= 0.60 and em.blood >= 0.70, (em.myo, em.blood)


def test_insertion_points_where_the_rv_is_found(rows: dict[str, DatasetResult]) -> None:
    """On CineMyoPS the insertion-point error is measured on the slices where the automatic RV touches the LV."""
    my = _row(rows, "CineMyoPS frame 0")
    assert my.insertion_failed + len(my.insertion_err_deg) // 2 == my.n_images
    assert my.insertion_err_deg, "no slice with an automatic RV next to the LV"
    assert my.insertion <= 60.0, my.insertion_err_deg
