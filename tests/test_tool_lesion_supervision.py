"""The lesion-supervision experiment's own glue: the pooled targets and the localisation figures it reports."""

from __future__ import annotations

import numpy as np

from tools.lesion_supervision import localisation, pool_to


def test_pool_to_gives_the_lesion_fraction_of_each_cell() -> None:
    les = np.zeros((2, 8, 8), np.float32)
    les[0, :4, :4] = 1.0
    les[1, 0, 0] = 1.0
    out = pool_to(les, 2)
    assert out.shape == (2, 2, 2, 1)
    assert out[0, 0, 0, 0] == 1.0 and out[0, 1, 1, 0] == 0.0
    assert np.isclose(out[1, 0, 0, 0], 1 / 16)


def _ring() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:32, :32]
    r = np.hypot(yy - 16, xx - 16)
    myo = ((r > 8) & (r < 12)).astype(np.float32)
    les = (myo * (xx > 20)).astype(np.float32)
    return les[None], myo[None]


def test_a_map_on_the_lesion_points_at_it_and_a_flat_map_scores_chance() -> None:
    les, myo = _ring()
    chance = float(les.sum() / myo.sum())
    hit = localisation(les + 0.01, les, myo)
    assert hit["pointing"] == 1.0
    assert np.isclose(hit["pointing_chance"], chance)
    assert hit["energy"] > 0.95
    flat = localisation(np.ones_like(les), les, myo)
    assert np.isclose(flat["energy"], chance)
    away = localisation(myo - les, les, myo)
    assert away["pointing"] == 0.0 and away["energy"] == 0.0


def test_no_lesion_gives_no_figures() -> None:
    les, myo = _ring()
    assert localisation(np.ones_like(les), np.zeros_like(les), myo) == {}
