"""Generated training rows rendered in memory give the tensors of the DICOM round trip, exactly.

Training renders a ``generate:<seed>:<index>`` row with only the OS-CMR time points the
spec reads (``load_case(record, os_timepoints=...)``); the reference is the whole subject
written to DICOM and read back with the app's loader (``load_case(record)``). Equality is
exact (``assert_array_equal``), so a different random draw, a missed quantisation of the
stored pixels or of a DICOM text attribute, or another slice or frame order fails it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from deepoxymap.case import Case
from deepoxymap.cohort import SubjectRecord, load_case, read_manifest
from deepoxymap.model.data import build_slices, input_timepoints
from deepoxymap.model.preprocess import PreprocessSpec, preprocess_case_offsets
from deepoxymap.model.synthetic import synthetic_manifest

OFFSETS = (0, -2, -1, 1, 2)  # --frame-jitter 2
GREY = PreprocessSpec(input_size=64, crop_mm=120.0)
DYNAMICS = PreprocessSpec(input_size=64, crop_mm=120.0, channels="dynamics", scaling="caffe")
PICK = (("healthy", "B"), ("ischemic", "A"), ("edema", "A"))  # classes and both sites


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[SubjectRecord]:
    m = synthetic_manifest(tmp_path_factory.mktemp("gen") / "m.csv", 12, 4, seed=0)
    recs = read_manifest(m)
    return [next(r for r in recs if (r.label, r.site) == want) for want in PICK]


@pytest.fixture(scope="module")
def via_dicom(rows: list[SubjectRecord]) -> dict[str, Case]:
    """The reference: each row's whole subject written to DICOM and read back by the app's loader."""
    return {r.subject: load_case(r) for r in rows}


def _tensors(case: Case, spec: PreprocessSpec) -> dict[int, np.ndarray]:
    return {o: p.x for o, p in preprocess_case_offsets(case, spec, OFFSETS).items()}


@pytest.fixture(scope="module")
def grey_ref(via_dicom: dict[str, Case]) -> dict[str, dict[int, np.ndarray]]:
    """The reference training tensors (grey spec) of each row at every offset."""
    return {sid: _tensors(case, GREY) for sid, case in via_dicom.items()}


@pytest.mark.parametrize("i", range(len(PICK)), ids=[f"{c}-{s}" for c, s in PICK])
def test_training_tensors_equal_the_dicom_round_trip(
    i: int, rows: list[SubjectRecord], via_dicom: dict[str, Case], grey_ref: dict[str, dict[int, np.ndarray]]
) -> None:
    rec = rows[i]
    ref = via_dicom[rec.subject]
    specs = (GREY, DYNAMICS) if i == 0 else (GREY,)  # dynamics: two time points (bh-start, bh-end)
    for spec in specs:
        mem = load_case(rec, os_timepoints=input_timepoints(spec))
        assert [s.stack.timepoint for s in mem.series] == [
            tp for tp in ("baseline", "hv-end", "bh-start", "bh-end") if tp in input_timepoints(spec)
        ]
        assert mem.label == ref.label == rec.label
        want = grey_ref[rec.subject] if spec is GREY else _tensors(ref, spec)
        got = _tensors(mem, spec)
        for o in OFFSETS:
            np.testing.assert_array_equal(got[o], want[o], err_msg=f"{rec.subject} offset {o} {spec.channels}")
        a = preprocess_case_offsets(mem, spec, [0])[0]
        b = preprocess_case_offsets(ref, spec, [0])[0]
        assert a.frames == b.frames and a.slice_indices == b.slice_indices
        assert [t.to_dict() for t in a.transforms] == [t.to_dict() for t in b.transforms]


def test_build_slices_renders_generated_rows_in_memory(
    rows: list[SubjectRecord], grey_ref: dict[str, dict[int, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``build_slices`` (the training path) never writes DICOM for a generated row, and gets the reference tensors."""
    from deepoxymap import cohort

    def no_dicom(record: SubjectRecord, where: str) -> Case:
        raise AssertionError(f"{where}: training wrote a generated row to DICOM")

    monkeypatch.setattr(cohort, "_render", no_dicom)
    got = build_slices(rows, GREY, cache_dir=None, verbose=False, frame_offsets=OFFSETS)
    assert got.x_frames is not None
    for j, o in enumerate(OFFSETS):
        want = np.concatenate([grey_ref[r.subject][o] for r in rows])
        np.testing.assert_array_equal(got.x_frames[:, j], want)
    np.testing.assert_array_equal(got.x, got.x_frames[:, 0])


def _controls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], None]]:
    """Ways the in-memory path could go wrong, each one a monkeypatch."""
    import deepoxymap.phantom.load as load_mod
    import deepoxymap.phantom.seq_oscine as seq
    from deepoxymap.phantom import dicom

    def skip_noise_draw() -> None:  # a time point left out without drawing its noise
        monkeypatch.setattr(seq, "white_kspace", lambda shape, rng: None)

    def unquantised_geometry() -> None:  # full-precision numbers instead of the DS strings the writer writes
        real = dicom.stored_text

        def precise(meta: dicom.SeriesMeta) -> dicom.StoredText:
            return dataclasses.replace(
                real(meta),
                ipps=tuple(tuple(repr(float(v)) for v in ipp) for ipp in meta.ipps),
                pixel_spacing=(repr(float(meta.pixel_spacing[0])), repr(float(meta.pixel_spacing[1]))),
            )

        monkeypatch.setattr(load_mod, "stored_text", precise)

    return {"skip_noise_draw": skip_noise_draw, "unquantised_geometry": unquantised_geometry}


@pytest.mark.parametrize("control", ["skip_noise_draw", "unquantised_geometry"])
def test_the_comparison_catches_a_wrong_in_memory_path(
    control: str,
    rows: list[SubjectRecord],
    grey_ref: dict[str, dict[int, np.ndarray]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Negative controls: with the noise draw of a skipped time point left out, or the DICOM text
    quantisation left out, the in-memory tensors are no longer the round trip's."""
    rec = rows[1]
    ref = grey_ref[rec.subject]
    _controls(monkeypatch)[control]()
    got = _tensors(load_case(rec, os_timepoints=input_timepoints(GREY)), GREY)
    assert any(not np.array_equal(got[o], ref[o]) for o in OFFSETS)
