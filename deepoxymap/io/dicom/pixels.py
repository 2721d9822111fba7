"""Step 3 (pixels): decode, modality LUT, MONOCHROME1.

Pixels are decoded with the ``pydicom.pixels`` decoders, RescaleSlope /
Intercept (or a Modality LUT) are applied, and MONOCHROME1 images are inverted
within their output range so that larger values are always brighter; a
MONOCHROME1 display window is mirrored the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID

from deepoxymap.errors import DicomReadError
from deepoxymap.io.dicom.frames import functional_group
from deepoxymap.io.dicom.header import DicomHeader, quiet_pydicom

__all__ = ["decode", "monochrome1_range", "monochrome1_window"]


def monochrome1_range(ds: Dataset) -> tuple[float, float] | None:
    """``(lo, hi)``: the range of stored values after the modality LUT, or ``None`` unless MONOCHROME1.

    The stored range comes from BitsStored (else BitsAllocated, else 16) and
    PixelRepresentation; MONOCHROME1 values ``v`` display as ``lo + hi - v``.
    """
    if str(ds.get("PhotometricInterpretation", "")).strip() != "MONOCHROME1":
        return None
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    ends = np.asarray(apply_modality_lut(np.array([lo, hi], dtype=np.int64 if signed else np.uint64), ds), float)
    return float(ends.min()), float(ends.max())


def monochrome1_window(ds: Dataset, win: tuple[float, float] | None) -> tuple[float, float] | None:
    """A file's ``(centre, width)`` window in the inverted values of :func:`decode` (unchanged unless MONOCHROME1)."""
    if win is None:
        return win
    rng = monochrome1_range(ds)
    if rng is None:
        return win
    return (rng[0] + rng[1] - win[0], win[1])


def decode(header: DicomHeader) -> NDArray[Any]:
    """Decoded pixels ``[frame, row, col]`` after the modality LUT (integer or float dtype).

    RescaleSlope/Intercept (or a Modality LUT) are applied with
    :func:`pydicom.pixels.apply_modality_lut` (per frame from the Pixel Value
    Transformation functional group in enhanced files). MONOCHROME1 images
    are inverted within their output range (:func:`monochrome1_range`, then
    float32) so that larger values are always brighter.

    Raises:
        DicomReadError: the pixel data cannot be decoded.
    """
    ds = header.ds
    try:
        with quiet_pydicom():
            # the decoder directly: Dataset.pixel_array would also cache the array on the dataset
            arr, _ = get_decoder(UID(str(ds.file_meta.TransferSyntaxUID))).as_array(ds)
    except Exception as exc:  # decoders raise many kinds on corrupt data
        raise DicomReadError(
            f"pixel data could not be decoded ({type(exc).__name__}: {exc})", source=header.name
        ) from exc
    if header.n_frames == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DicomReadError(f"unexpected pixel array shape {arr.shape}", source=header.name)
    frames_resc = None
    if header.enhanced and "RescaleSlope" not in ds:
        frames_resc = [functional_group(ds, i, "PixelValueTransformationSequence") for i in range(arr.shape[0])]
    if frames_resc is not None and any(p is not None and "RescaleSlope" in p for p in frames_resc):
        out = np.empty(arr.shape, dtype=np.float32)
        for i, p in enumerate(frames_resc):
            out[i] = apply_modality_lut(arr[i], p) if p is not None else arr[i]
    else:
        out = apply_modality_lut(arr, ds)
    rng = monochrome1_range(ds)
    if rng is not None:
        out = (rng[0] + rng[1] - out).astype(np.float32)
    return out
