"""A subject rendered in memory is the subject the app's loader reads back from its DICOM.

``case_of(simulate_subject(...))`` against ``load_subject`` of the written folder: every
series (OS-CMR, LGE, T1 and T2 maps, so both the identity and the RescaleSlope LUT),
every mask and the truth; and ``simulate_subject(series=...)`` renders a subset without
changing one pixel of what it renders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepoxymap.case import Case, Stack
from deepoxymap.errors import PhantomError
from deepoxymap.phantom.exam import MAP_KEYS, OS_KEYS, os_series_keys
from deepoxymap.phantom.generate import generate_subject, simulate_subject
from deepoxymap.phantom.load import case_of, load_subject
from deepoxymap.phantom.params import PhantomParams

SUBJECT = ("S1", "ischemic", "LAD-transmural", "B", (1 << 40) + 9, 2)  # id, class, sub-type, site, seed, index


def _assert_same_stack(a: Stack, b: Stack, what: str) -> None:
    assert a.data.dtype == b.data.dtype == np.float32, what
    np.testing.assert_array_equal(a.data, b.data, err_msg=what)
    ga, gb = a.geometry, b.geometry
    np.testing.assert_array_equal(ga.slice_origins, gb.slice_origins, err_msg=what)
    np.testing.assert_array_equal(ga.row_cosine, gb.row_cosine, err_msg=what)
    np.testing.assert_array_equal(ga.col_cosine, gb.col_cosine, err_msg=what)
    assert (ga.pixel_spacing, ga.shape, ga.slice_thickness, ga.frame_of_reference_uid, ga.has_geometry) == (
        gb.pixel_spacing,
        gb.shape,
        gb.slice_thickness,
        gb.frame_of_reference_uid,
        gb.has_geometry,
    ), what
    np.testing.assert_array_equal(a.trigger_times, b.trigger_times, err_msg=what)
    assert (a.role, a.units, a.timepoint, a.acquisition_time_s, a.series_uid, a.description, a.window) == (
        b.role,
        b.units,
        b.timepoint,
        b.acquisition_time_s,
        b.series_uid,
        b.description,
        b.window,
    ), what


def _assert_same_case(mem: Case, ref: Case) -> None:
    assert mem.case_id == ref.case_id and mem.label == ref.label
    assert [s.uid for s in mem.series] == [s.uid for s in ref.series]
    for s, r in zip(mem.series, ref.series, strict=True):
        assert (s.role, s.role_reason) == (r.role, r.role_reason), s.description
        _assert_same_stack(s.stack, r.stack, s.description)
    assert sorted(mem.masks) == sorted(ref.masks)
    for uid, m in mem.masks.items():
        _assert_same_stack(m, ref.masks[uid], f"mask {uid}")
    t, u = mem.truth, ref.truth
    assert (t.subtype, t.levels, t.es_frame) == (u.subtype, u.levels, u.es_frame)
    assert json.dumps(t.record, sort_keys=True) == json.dumps(u.record, sort_keys=True)
    assert sorted(t.edema_masks) == sorted(u.edema_masks)
    for uid, e in t.edema_masks.items():
        np.testing.assert_array_equal(e, u.edema_masks[uid])


def test_in_memory_case_is_the_dicom_round_trip(tmp_path: Path) -> None:
    sid, cls, sub, site, seed, index = SUBJECT
    generate_subject(tmp_path, sid, cls, sub, site, seed, index)
    ref = load_subject(tmp_path / sid)
    mem = case_of(simulate_subject(sid, cls, sub, site, seed, index))
    assert len(mem.series) == len(OS_KEYS) + len(MAP_KEYS)
    assert any(s.stack.units == "ms" for s in mem.series)  # the maps' RescaleSlope path is compared too
    _assert_same_case(mem, ref)


def test_rendering_a_subset_keeps_every_random_draw() -> None:
    """Series left out still draw what they would have drawn: the rendered ones keep their pixels."""
    sid, cls, sub, site, seed, index = SUBJECT
    whole = simulate_subject(sid, cls, sub, site, seed, index, n_frames=4)
    full = {s.key: s for s in whole.series}
    for keys in (("os_bh-end",), ("os_baseline", "os_bh-start"), ("os_hv-end", "t2map"), ("t1map",)):
        part = simulate_subject(sid, cls, sub, site, seed, index, n_frames=4, series=keys)
        assert [s.key for s in part.series] == [k for k in (*OS_KEYS, *MAP_KEYS) if k in keys]
        for s in part.series:
            assert s.pixels is not None and full[s.key].pixels is not None
            np.testing.assert_array_equal(s.pixels, full[s.key].pixels, err_msg=f"{keys}: {s.key}")
            for name, lab in s.labels.items():
                np.testing.assert_array_equal(lab, full[s.key].labels[name])
        assert set(part.truth["series"]) == set(keys)
        assert part.truth["scanner"] == whole.truth["scanner"]  # the cine's notes whatever is rendered


def test_unknown_series_and_timepoints_are_refused() -> None:
    sid, cls, sub, site, seed, index = SUBJECT
    with pytest.raises(PhantomError, match="unknown series"):
        simulate_subject(sid, cls, sub, site, seed, index, series=("os_bh_end",))
    with pytest.raises(PhantomError, match="time point"):
        os_series_keys(("breath-hold",), PhantomParams())
    assert os_series_keys(("bh-end", "baseline"), PhantomParams()) == ("os_baseline", "os_bh-end")
