"""Step 3 (pixels): decode, modality LUT, MONOCHROME1.

Pixels are decoded with the ``pydicom.pixels`` decoders (:func:`decode_stored`),
RescaleSlope / Intercept (or a Modality LUT) are applied frame by frame
(:class:`FrameValues`), and MONOCHROME1 images are inverted within their output
range so that larger values are always brighter; a MONOCHROME1 display window is
mirrored the same way.
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
from deepoxymap.io.dicom.isolated import ISOLATED_PLUGINS, decode_isolated

__all__ = ["FrameValues", "decode", "decode_stored", "monochrome1_range", "monochrome1_window"]

_PLUGIN_ORDER = ("pydicom", "pylibjpeg", "pyjpegls", "pillow", "gdcm")
"""Decoding plugins in the order tried. pydicom's own RLE decoder comes first: as fast as pylibjpeg-rle on
MR frames (1.7 vs 1.4 ms for 512 x 512 x 16 bits), and it raises where pylibjpeg-rle panics (a Rust
panic, a ``BaseException``, caught too, with a backtrace on stderr) on corrupt segment offsets. GDCM comes last and is used only where it is the one plugin
installed for a syntax (JPEG Lossless): on some corrupt JPEG streams it aborts the whole process
(an uncaught C++ exception), which no ``except`` can stop, so it runs in a worker process
(:mod:`~deepoxymap.io.dicom.isolated`)."""


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


def decode_stored(header: DicomHeader) -> NDArray[Any]:
    """The decoder's output ``[frame, row, col]``: stored values, before the modality LUT.

    Its size was bounded by :func:`~deepoxymap.io.dicom.header.read_header`
    (``max_image_bytes``) before this runs.

    Raises:
        DicomReadError: the pixel data cannot be decoded, or decodes to an
            unexpected shape.
    """
    ds = header.ds
    decoder = get_decoder(UID(str(ds.file_meta.TransferSyntaxUID)))
    plugins = [p for p in _PLUGIN_ORDER if p in decoder.available_plugins]
    if len(plugins) > 1:
        plugins = [p for p in plugins if p != "gdcm"]
    failure: BaseException | None = None
    for plugin in plugins or [""]:
        try:
            if plugin in ISOLATED_PLUGINS:
                arr = decode_isolated(ds, plugin, header.name)
            else:
                with quiet_pydicom():
                    # the decoder directly: Dataset.pixel_array would also cache the array on the dataset
                    arr, _ = decoder.as_array(ds, decoding_plugin=plugin)
            break
        except BaseException as exc:  # decoders raise many kinds on corrupt data, Rust ones a BaseException panic
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            failure = exc
    else:
        if isinstance(failure, DicomReadError):
            raise failure
        raise DicomReadError(
            f"pixel data could not be decoded ({type(failure).__name__}: {failure})", source=header.name
        ) from failure
    if header.n_frames == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != header.n_frames:
        raise DicomReadError(
            f"unexpected pixel array shape {arr.shape} for {header.n_frames} frame(s)", source=header.name
        )
    return arr


class FrameValues:
    """Stored values of one frame -> values: the modality LUT, then MONOCHROME1 inverted.

    One frame at a time, so that the float64 temporaries of the rescale are
    one frame large, never the whole file. RescaleSlope/Intercept (or a
    Modality LUT) come from the file, or per frame from the Pixel Value
    Transformation functional group of enhanced files.

    Raises:
        DicomReadError: (on construction) the rescale attributes are not numbers.
    """

    def __init__(self, header: DicomHeader) -> None:
        ds = header.ds
        self._ds = ds
        self._per_frame: list[Dataset | None] | None = None
        self._linear: tuple[float, float] | None = None
        try:
            if header.enhanced and "RescaleSlope" not in ds:
                groups = [functional_group(ds, i, "PixelValueTransformationSequence") for i in range(header.n_frames)]
                if any(p is not None and "RescaleSlope" in p for p in groups):
                    self._per_frame = groups
            self._identity = False
            if self._per_frame is None and not ds.get("ModalityLUTSequence"):
                if "RescaleSlope" in ds and "RescaleIntercept" in ds:
                    self._linear = (float(ds.RescaleSlope), float(ds.RescaleIntercept))
                else:
                    self._identity = True
            self._mono1 = monochrome1_range(ds)
        except Exception as exc:  # invalid DS/IS values of any kind
            raise DicomReadError(
                f"rescale or photometric attributes could not be read ({type(exc).__name__}: {exc})",
                source=header.name,
            ) from exc
        self._name = header.name

    def __call__(self, frame: NDArray[Any], index: int) -> NDArray[Any]:
        """Values of ``frame`` ``[row, col]`` (frame ``index`` of the file): integer or float dtype.

        Raises:
            DicomReadError: the modality LUT cannot be applied.
        """
        try:
            if self._identity:
                out = frame
            elif self._per_frame is not None:
                p = self._per_frame[index]
                out = apply_modality_lut(frame, p) if p is not None else frame
            elif self._linear is not None:
                out = frame.astype(np.float64) * self._linear[0]
                out += self._linear[1]
            else:
                out = apply_modality_lut(frame, self._ds)
        except Exception as exc:  # a malformed Modality LUT Sequence
            raise DicomReadError(
                f"modality LUT could not be applied ({type(exc).__name__}: {exc})", source=self._name
            ) from exc
        if self._mono1 is not None:
            out = self._mono1[0] + self._mono1[1] - np.asarray(out, dtype=np.float64)
        return out


def decode(header: DicomHeader) -> NDArray[Any]:
    """Decoded pixels ``[frame, row, col]`` after the modality LUT (integer or float dtype; float32 when rescaled).

    RescaleSlope/Intercept (or a Modality LUT) are applied as in
    :func:`pydicom.pixels.apply_modality_lut` (per frame from the Pixel Value
    Transformation functional group in enhanced files). MONOCHROME1 images
    are inverted within their output range (:func:`monochrome1_range`) so that
    larger values are always brighter. The loader itself converts frame by
    frame (:class:`FrameValues`) straight into the float32 stack.

    Raises:
        DicomReadError: the pixel data cannot be decoded.
    """
    arr = decode_stored(header)
    values = FrameValues(header)
    first = values(arr[0], 0)
    if len(arr) == 1:
        return first[None]
    out = np.empty(arr.shape, dtype=first.dtype if first.dtype == arr.dtype else np.float32)
    out[0] = first
    for i in range(1, len(arr)):
        out[i] = values(arr[i], i)
    return out
