"""The parts of deepoxymap.io.dicom on their own: MONOCHROME1 range, entry guard, public names."""

from __future__ import annotations

import numpy as np
import pytest
from io_synth import mr_dataset
from pydicom.uid import generate_uid

from deepoxymap.case import robust_window
from deepoxymap.errors import DeepOxyMapError
from deepoxymap.io import dicom
from deepoxymap.io.dicom.pixels import monochrome1_range, monochrome1_window
from deepoxymap.io.sources import Entry


def test_package_keeps_the_public_names():
    """The loader's names are re-exported by the package."""
    for name in ("DicomHeader", "DicomProblem", "Frame", "assemble", "frames_of", "read_header", "quiet_pydicom"):
        assert hasattr(dicom, name)
    assert dicom.SLICE_TOL_MM == pytest.approx(0.1)


def test_monochrome1_range_only_for_monochrome1():
    """12-bit unsigned with rescale 2x - 10: the range is the modality-LUT output of 0 and 4095."""
    px = np.zeros((2, 2), np.uint16)
    m2 = mr_dataset(px, series_uid=generate_uid())
    assert monochrome1_range(m2) is None
    assert monochrome1_window(m2, (100.0, 50.0)) == (100.0, 50.0)
    m1 = mr_dataset(px, series_uid=generate_uid(), photometric="MONOCHROME1", rescale=(2.0, -10.0))
    assert monochrome1_range(m1) == pytest.approx((-10.0, 2.0 * 4095 - 10.0))
    assert monochrome1_window(m1, (100.0, 50.0)) == pytest.approx((-20.0 + 2.0 * 4095 - 100.0, 50.0))
    assert monochrome1_window(m1, None) is None


def test_robust_window_lives_in_case():
    """1-99 percentile window; no finite value -> (0, 1)."""
    c, w = robust_window(np.arange(101, dtype=np.float32))
    assert (c, w) == pytest.approx((50.0, 98.0))
    assert robust_window(np.full((3, 3), np.nan)) == (0.0, 1.0)


def test_entry_without_bytes_or_path_raises_domain_error():
    """An entry with nothing to read raises DeepOxyMapError naming it (not AssertionError)."""
    with pytest.raises(DeepOxyMapError, match="ghost.dcm"):
        Entry("ghost.dcm", None, None, 0).head()
