"""The shared preprocessing: frame choice, LV crop, invertible transform, channels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from model_synth import make_case

from deepoxymap.case import Role
from deepoxymap.errors import CaseError
from deepoxymap.model.preprocess import CropTransform, PreprocessSpec, crop_slice, preprocess_case


def test_output_tensor_and_es_frame(synth_case) -> None:
    spec = PreprocessSpec(input_size=64, crop_mm=90.0)
    pre = preprocess_case(synth_case, spec)
    assert pre.x.shape == (2, 64, 64, 3) and pre.x.dtype == np.float32
    assert pre.frames == [2, 2]  # smallest cavity
    assert pre.timepoint == "bh-end" and pre.stack.timepoint == "bh-end"
    assert np.array_equal(pre.x[..., 0], pre.x[..., 2])
    # LV centred: the crop centre is the disc centre (42 + slice, 47)
    for k, t in enumerate(pre.transforms):
        assert np.hypot(t.center[0] - (42 + k), t.center[1] - 47) < 1.0
    # robust normalisation, zscore: [0,1] -> [-2, 2]
    assert pre.x.min() >= -2.0 - 1e-6 and pre.x.max() <= 2.0 + 1e-6


def test_frame_offset_takes_neighbouring_frames_cyclically(synth_case) -> None:
    """Training-time temporal jitter: the same crop at ES + offset (mod n_frames); offset 0 is inference."""
    spec = PreprocessSpec(input_size=32, crop_mm=90.0)
    base = preprocess_case(synth_case, spec)
    assert base.frames == [2, 2]
    n = base.stack.n_frames
    for off in (-1, 1, -3, 4):
        pre = preprocess_case(synth_case, spec, frame_offset=off)
        assert pre.frames == [(2 + off) % n] * 2
        assert [t.center for t in pre.transforms] == [t.center for t in base.transforms]
        assert not np.array_equal(pre.x, base.x)
    np.testing.assert_array_equal(preprocess_case(synth_case, spec, frame_offset=0).x, base.x)


def test_trigger_fraction_rule(synth_case) -> None:
    # trigger times 0..200 ms step 40 -> RR 240 ms; 0.35 RR = 84 ms -> frame 2
    pre = preprocess_case(synth_case, PreprocessSpec(input_size=32, frame_rule="trigger-fraction"))
    assert pre.frames == [2, 2]
    pre = preprocess_case(synth_case, PreprocessSpec(input_size=32, frame_rule="trigger-fraction", es_fraction=0.6))
    assert pre.frames == [4, 4]  # 0.6 x 240 = 144 ms -> 160 ms


def test_crop_transform_round_trip_and_heatmap_mapping() -> None:
    t = CropTransform(center=(40.3, 51.7), scale=(0.7, 0.9), model_shape=(64, 64), source_shape=(100, 120))
    pts = np.array([[0.0, 0.0], [10.5, 33.25], [63.0, 63.0]])
    assert np.allclose(t.source_to_model(t.model_to_source(pts)), pts)
    assert np.allclose(t.model_to_source((31.5, 31.5)), (40.3, 51.7))
    # a blob in the model grid lands where model_to_source says
    hm = np.zeros((64, 64), np.float32)
    hm[10:13, 40:43] = 1.0
    src = t.to_source(hm)
    assert src.shape == (100, 120)
    peak = np.unravel_index(np.argmax(src), src.shape)
    expect = t.model_to_source((11, 41))
    assert np.hypot(peak[0] - expect[0], peak[1] - expect[1]) <= 1.0


def test_crop_samples_the_source_where_the_transform_says() -> None:
    img = np.zeros((90, 100), np.float32)
    img[30, 70] = 1000.0
    spec = PreprocessSpec(input_size=48, crop_mm=48.0)
    crop, t = crop_slice(img, (1.0, 1.0), (40.0, 55.0), spec)
    i, j = np.unravel_index(np.argmax(crop), crop.shape)
    assert np.allclose(t.model_to_source((i, j)), (30, 70), atol=1.0)


def _ring_psc(pre, spec, shift: tuple[float, float]) -> list[tuple[float, float]]:
    """Per slice: (median, mean absolute error against +8 %) of the percent-change channel over the ring.

    The ring is the true myocardium of ``make_case`` (1 mm inside each border), mapped
    onto the model grid through the crop transform.
    """
    out = []
    ps = 1.5  # make_case's default spacing, mm
    for k, t in enumerate(pre.transforms):
        ii, jj = np.mgrid[0 : spec.input_size, 0 : spec.input_size]
        src = np.stack([t.model_to_source((i, j)) for i, j in zip(ii.ravel(), jj.ravel(), strict=True)])
        f = pre.frames[k]
        r_blood = 16.0 - 6.0 * np.cos(np.pi * (f - 2) / 6) ** 2 + 0.5 * k
        c = (42.0 + k + shift[0], 47.0 + shift[1])
        d = np.hypot(src[:, 0] - c[0], src[:, 1] - c[1]).reshape(ii.shape) * ps
        ring = (d > r_blood + 1.0) & (d < r_blood + 9.0 - 1.0)
        psc = pre.x[k, ..., 2] / 255.0 * 2 * spec.psc_clip - spec.psc_clip
        out.append((float(np.median(psc[ring])), float(np.mean(np.abs(psc[ring] - 8.0)))))
    return out


def test_dynamics_channels_read_the_signal_change_despite_a_breathing_shift() -> None:
    """bh-start vs bh-end, the heart moved 2 px (3 mm) between them: the ring still reads its +8 % change.

    Each stack is cropped at its own LV centre (a rigid registration). Cropping the
    bh-start frame at the bh-end centre (the old behaviour) reads the moved wall as
    blood/lung edges instead: measured, its mean error over the ring is 16 % (8.5 % at a
    1 px shift) against 3 % here, shift or not.
    """
    shift = (2.0, -2.0)
    case = make_case("D001", timepoints=("bh-start", "bh-end"), shift_px={"bh-end": shift})
    spec = PreprocessSpec(input_size=48, crop_mm=90.0, channels="dynamics", scaling="raw255")
    pre = preprocess_case(case, spec)
    assert pre.x.shape == (2, 48, 48, 3)
    for med, err in _ring_psc(pre, spec, shift):
        assert 5.5 < med < 10.5 and err < 5.0, (med, err)
    x = pre.x / 255.0
    assert not np.allclose(x[..., 0], x[..., 1])
    # the same case without the shift reads the same change: registration, not luck
    still = preprocess_case(make_case("D002", timepoints=("bh-start", "bh-end")), spec)
    for med, err in _ring_psc(still, spec, (0.0, 0.0)):
        assert 5.5 < med < 10.5 and err < 5.0, (med, err)


def test_dynamics_needs_both_time_points(synth_case) -> None:
    """The default dynamics input is bh-start -> bh-end; a case without bh-start is refused with a reason."""
    with pytest.raises(CaseError, match="bh-start"):
        preprocess_case(synth_case, PreprocessSpec(input_size=32, channels="dynamics"))
    spec = PreprocessSpec(input_size=32, channels="dynamics", base_timepoint="baseline", scaling="raw255")
    assert preprocess_case(synth_case, spec).x[..., 2].mean() > 127.5  # bh-end ring 8 % above baseline
    with pytest.raises(ValueError, match="two time points"):
        PreprocessSpec(channels="dynamics", timepoint="bh-start", base_timepoint="bh-start")


def test_fallbacks_and_errors(synth_case) -> None:
    only_base = synth_case.with_series([s for s in synth_case.series if s.stack.timepoint == "baseline"])
    pre = preprocess_case(only_base, PreprocessSpec(input_size=32))
    assert pre.timepoint == "baseline" and pre.notes
    cine = only_base.with_series([s.with_role(Role.CINE) for s in only_base.series])
    assert preprocess_case(cine, PreprocessSpec(input_size=32)).timepoint is None
    with pytest.raises(CaseError):
        preprocess_case(cine.with_series([]), PreprocessSpec(input_size=32))
    with pytest.raises(CaseError):
        preprocess_case(cine, PreprocessSpec(input_size=32, channels="dynamics"))


def test_spec_round_trip_and_validation() -> None:
    spec = PreprocessSpec(input_size=64, crop_mm=100, channels="dynamics")
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    grey = PreprocessSpec(input_size=64)
    assert "base_timepoint" not in grey.to_dict()  # grey digests (and caches) do not move
    assert PreprocessSpec.from_dict(grey.to_dict()) == grey
    assert spec.digest() != dataclasses.replace(spec, crop_mm=90.0).digest()
    with pytest.raises(ValueError):
        PreprocessSpec(timepoint="lunch")
    with pytest.raises(ValueError):
        PreprocessSpec.from_dict({**spec.to_dict(), "bogus": 1})


def test_same_case_same_tensor_regardless_of_spacing_units() -> None:
    """A case at 1.0 mm and the same anatomy at 2.0 mm give a similar crop (mm-based sizes)."""
    a = preprocess_case(make_case("A", shape=(120, 120), spacing=1.0, center=(60, 60)), PreprocessSpec(input_size=32))
    b = preprocess_case(make_case("B", shape=(60, 60), spacing=2.0, center=(30, 30)), PreprocessSpec(input_size=32))
    # same blood-pool fraction of the crop (within noise)
    fa = (a.x[0, ..., 0] > 1.0).mean()
    fb = (b.x[0, ..., 0] > 1.0).mean()
    assert abs(fa - fb) < 0.05


def test_offsets_equal_single_calls_and_localise_once(synth_case, monkeypatch) -> None:
    """``preprocess_case_offsets`` gives each offset's ``preprocess_case`` tensor, with one LV localisation."""
    import deepoxymap.model.preprocess as pp

    spec = pp.PreprocessSpec(input_size=32, crop_mm=80.0)
    singles = {o: pp.preprocess_case(synth_case, spec, frame_offset=o) for o in (0, -1, 2)}
    calls = []
    real = pp.find_lv_centers
    monkeypatch.setattr(pp, "find_lv_centers", lambda st: calls.append(1) or real(st))
    many = pp.preprocess_case_offsets(synth_case, spec, (0, -1, 2))
    assert len(calls) == 1
    for o, pre in singles.items():
        np.testing.assert_array_equal(many[o].x, pre.x)
        assert many[o].frames == pre.frames
