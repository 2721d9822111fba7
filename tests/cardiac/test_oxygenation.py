"""The OS response: percent signal change between manoeuvre time points."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deepoxymap.cardiac.oxygenation import os_response
from deepoxymap.case import Case, Geometry, Role, Series, Stack
from deepoxymap.errors import CaseError


def _ring_case(gain: dict[str, float], seg_gain: float = 0.0) -> Case:
    """Two-slice synthetic case: blood disc, myocardial ring, RV crescent; myocardium scaled per time point."""
    n = 64
    rr, cc = np.mgrid[0:n, 0:n]
    r = np.hypot(rr - 32, cc - 34)
    lab = np.zeros((n, n), np.uint8)
    lab[r < 9] = 1
    lab[(r >= 9) & (r < 13)] = 2
    rv = (np.hypot(rr - 32, cc - 17) < 10) & (lab == 0)
    lab[rv] = 3
    geo = Geometry(np.array([[0, 0, 0], [0, 0, 10.0]]), [1, 0, 0], [0, 1, 0], (1.5, 1.5), (n, n))
    labels = np.repeat(lab[None, None], 2, axis=0).repeat(3, axis=1)  # [slice, frame, r, c]
    series, masks = [], {}
    for i, (tp, g) in enumerate(gain.items()):
        img = np.where(lab == 1, 300.0, np.where(lab == 3, 280.0, 20.0))
        myo = 100.0 * (1 + g / 100.0) * np.ones((n, n))
        if seg_gain and tp != "baseline":  # one half of the ring responds more
            myo = np.where(cc > 34, myo * (1 + seg_gain / 100.0), myo)
        img = np.where(lab == 2, myo, img)
        data = np.repeat(img[None, None], 2, axis=0).repeat(3, axis=1).astype(np.float32)
        uid = f"1.2.{i}"
        st = Stack(
            data, geo, np.arange(3) * 50.0, Role.OS_CMR, timepoint=tp, acquisition_time_s=float(i), series_uid=uid
        )
        series.append(Series(uid, st, Role.OS_CMR))
        masks[uid] = dataclasses.replace(st, data=labels.astype(np.float32), role=Role.MASK, units="label")
    return Case("T", tuple(series), masks=masks)


def test_global_change_is_the_myocardial_percent_change() -> None:
    """A 12 % brighter myocardium at bh-end gives +12 % globally, per pixel and in every segment."""
    case = _ring_case({"baseline": 0.0, "bh-end": 12.0})
    o = os_response(case, "baseline", "bh-end", slice_index=0, frame=1)
    assert o.global_percent == pytest.approx(12.0, abs=1e-6)
    assert np.nanmax(np.abs(o.percent - 12.0)) < 1e-4
    assert np.isnan(o.percent[0, 0])  # outside the myocardium
    assert set(o.per_segment) == set(range(1, 7))  # basal level of a 2-slice stack
    assert all(v == pytest.approx(12.0, abs=1e-6) for v in o.per_segment.values())
    assert (o.reference, o.target) == ("baseline", "bh-end")


def test_regional_deficit_shows_in_segments() -> None:
    """Half of the ring responding 10 % more shows as larger values in those segments only."""
    case = _ring_case({"baseline": 0.0, "bh-end": 0.0}, seg_gain=10.0)
    o = os_response(case, "baseline", "bh-end", slice_index=1, frame=0)
    vals = np.array(list(o.per_segment.values()))
    assert vals.max() > 7.0 and vals.min() < 3.0


def test_missing_timepoint_is_a_clear_error() -> None:
    """Asking for a time point the case lacks names it and what exists."""
    case = _ring_case({"baseline": 0.0, "bh-end": 5.0})
    with pytest.raises(CaseError, match="hv-end.*baseline, bh-end"):
        os_response(case, "hv-end", "bh-end")


def test_without_label_map_no_segments() -> None:
    """No mask: a per-pixel map over bright pixels, flagged, without segment values."""
    case = _ring_case({"baseline": 0.0, "bh-end": 5.0})
    case = dataclasses.replace(case, masks={})
    o = os_response(case, "baseline", "bh-end", frame=0)
    assert o.mask_source == "none" and o.per_segment == {} and np.isnan(o.global_percent)


def test_demo_cases(demo_dir) -> None:
    """On every demo case the response is finite and within a physiological range."""
    import pandas as pd

    from deepoxymap.phantom import load_subject

    for _, row in pd.read_csv(demo_dir / "manifest.csv").iterrows():
        case = load_subject(demo_dir / row["path"])
        o = os_response(case, "baseline", "bh-end", slice_index=1)
        assert np.isfinite(o.global_percent) and abs(o.global_percent) < 40
        assert len(o.per_segment) == 6
