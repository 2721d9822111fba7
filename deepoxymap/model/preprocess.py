"""Preprocessing shared by training and inference: ONE code path.

``preprocess_case(case, spec)`` turns a :class:`~deepoxymap.case.Case` into the
model's input tensor. Training (:mod:`deepoxymap.model.data`), evaluation,
``deepoxymap predict`` and the app all call this very function with the
:class:`PreprocessSpec` stored in the model card, so inference reproduces
training exactly. It imports no TensorFlow.

Steps, per slice of the chosen OS-CMR stack:

1. **Stack**: the OS-CMR series of the manoeuvre time point ``spec.timepoint``
   (default ``"bh-end"``, the end of the breath-hold that follows
   hyperventilation). If the case has OS-CMR series but none is tagged with
   that time point, the last acquired one is used (the breath-hold end is the
   last point of the manoeuvre); with no OS-CMR series at all, the first cine
   series is used. Either fallback is recorded in :attr:`Preprocessed.notes`.
2. **Frame** (``spec.frame_rule``):
   ``"min-cavity"`` (default): end-systole = the frame with the smallest LV
   blood-pool area (:func:`~deepoxymap.cardiac.localize.lv_cavity_area_mm2`
   around each slice's LV centre; each slice's curve normalised by its
   maximum, averaged over slices: one frame for the whole case); ``"trigger-fraction"``: the frame whose
   TriggerTime is nearest ``spec.es_fraction`` x RR (RR estimated as the last
   trigger time plus one frame interval); falls back to ``"min-cavity"`` when
   trigger times are missing. Single-frame stacks use frame 0.
3. **Channels** (``spec.channels``): ``"grey"``: the frame copied into 3
   channels (the study fed single OS-CMR images); ``"dynamics"`` (the OS-dynamics
   input, beyond the study): the ``spec.base_timepoint`` frame (default
   breath-hold start), the ``spec.timepoint`` frame (breath-hold end), both scaled
   with the base frame's percentiles so the signal change is kept, and their
   registered percent signal change ``100 (end - start) / start`` (1 mm Gaussian
   smoothing, clipped to +-``spec.psc_clip`` %, mapped to [0, 1]). Each of the two
   stacks is localised and cropped at **its own** LV centre, at its own
   end-systolic frame: a rigid in-plane registration of the heart, so a breathing
   shift between the two acquisitions does not turn into a false signal change
   (cropping both at one centre reads healthy myocardium at ~0 % instead of its
   breath-hold response when the heart moved by 2-3 mm).
4. **LV-centred crop** of ``spec.crop_mm`` x ``spec.crop_mm`` millimetres
   around the LV centre found automatically
   (:func:`~deepoxymap.cardiac.localize.find_lv_center_cine`), resampled
   (bilinear, Gaussian pre-filter when shrinking) to ``input_size`` pixels.
   The affine :class:`CropTransform` maps model pixels back to source pixels.
5. **Robust normalisation**: percentiles ``spec.percentiles`` of the crop map
   to [0, 1] (clipped), then ``spec.scaling``: ``"zscore"`` ``(v - 0.5) / 0.25``
   (from-scratch models), ``"caffe"`` ``255 v - ImageNet BGR means`` (VGG19 and
   ResNet50 ImageNet weights), ``"raw255"`` ``255 v`` (EfficientNet, which
   rescales inside the network).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from deepoxymap.cardiac.localize import find_lv_centers
from deepoxymap.cardiac.phase import FRAME_RULES, end_systolic_frames
from deepoxymap.case import Case, Role, Stack
from deepoxymap.errors import CaseError

__all__ = [
    "CropTransform",
    "PreprocessSpec",
    "Preprocessed",
    "crop_slice",
    "preprocess_case",
    "preprocess_case_offsets",
    "scale_unit",
    "select_frames",
    "select_stack",
]

TIMEPOINTS = ("baseline", "hv-end", "bh-start", "bh-end")

CHANNELS = ("grey", "dynamics")
SCALINGS = ("zscore", "caffe", "raw255")
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything that defines the model input; stored verbatim in the model card.

    Attributes:
        input_size: model input height = width, pixels.
        crop_mm: side of the square LV-centred crop, mm (so ``crop_mm / input_size``
            mm per model pixel).
        timepoint: OS-CMR manoeuvre time point of the input frame.
        frame_rule: ``"min-cavity"`` or ``"trigger-fraction"`` (see module doc).
        channels: ``"grey"`` or ``"dynamics"``.
        scaling: ``"zscore"``, ``"caffe"`` or ``"raw255"``.
        es_fraction: end-systole as a fraction of RR for ``"trigger-fraction"``.
        percentiles: (low, high) intensity percentiles mapped to 0 and 1.
        psc_clip: percent-signal-change clip for the dynamics channel, %.
        base_timepoint: the reference time point of ``"dynamics"`` (the signal
            change is ``timepoint`` against it); ignored for ``"grey"`` and then
            left out of :meth:`to_dict` (so grey specs keep their digests).
    """

    input_size: int = 96
    crop_mm: float = 120.0
    timepoint: str = "bh-end"
    frame_rule: str = "min-cavity"
    channels: str = "grey"
    scaling: str = "zscore"
    es_fraction: float = 0.35
    percentiles: tuple[float, float] = (1.0, 99.0)
    psc_clip: float = 40.0
    base_timepoint: str = "bh-start"

    def __post_init__(self) -> None:
        if self.timepoint not in TIMEPOINTS:
            raise ValueError(f"timepoint must be one of {TIMEPOINTS}, got {self.timepoint!r}")
        if self.base_timepoint not in TIMEPOINTS:
            raise ValueError(f"base_timepoint must be one of {TIMEPOINTS}, got {self.base_timepoint!r}")
        if self.channels == "dynamics" and self.base_timepoint == self.timepoint:
            raise ValueError(f"'dynamics' needs two time points; both are {self.timepoint!r}")
        if self.frame_rule not in FRAME_RULES:
            raise ValueError(f"frame_rule must be one of {FRAME_RULES}, got {self.frame_rule!r}")
        if self.channels not in CHANNELS:
            raise ValueError(f"channels must be one of {CHANNELS}, got {self.channels!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if int(self.input_size) < 8 or float(self.crop_mm) <= 0:
            raise ValueError("input_size must be >= 8 px and crop_mm > 0")
        object.__setattr__(self, "input_size", int(self.input_size))
        object.__setattr__(self, "crop_mm", float(self.crop_mm))
        object.__setattr__(self, "percentiles", (float(self.percentiles[0]), float(self.percentiles[1])))

    @property
    def mm_per_pixel(self) -> float:
        """Model-grid pixel size, mm."""
        return self.crop_mm / self.input_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for the model card)."""
        d = dataclasses.asdict(self)
        d["percentiles"] = list(self.percentiles)
        if self.channels != "dynamics":
            d.pop("base_timepoint")
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PreprocessSpec:
        """Inverse of :meth:`to_dict`; unknown keys are rejected."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown preprocessing keys {sorted(unknown)}")
        kw = dict(d)
        if "percentiles" in kw:
            kw["percentiles"] = tuple(kw["percentiles"])
        return cls(**kw)

    def digest(self) -> str:
        """Short stable hash of the spec (cache keys)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CropTransform:
    """Affine map between the model grid and one source slice's pixel grid.

    Model pixel ``(i, j)`` (row, col) sits at source pixel
    ``(center[0] + (i - (H - 1) / 2) * scale[0], center[1] + (j - (W - 1) / 2) * scale[1])``.

    Attributes:
        center: ``(row, col)`` LV centre in source pixels.
        scale: source pixels per model pixel ``(rows, cols)`` (= mm per model
            pixel / source pixel spacing).
        model_shape: ``(H, W)``.
        source_shape: ``(rows, cols)`` of the source image.
        slice_index: the source slice (index into the stack).
        frame: the source frame.
    """

    center: tuple[float, float]
    scale: tuple[float, float]
    model_shape: tuple[int, int]
    source_shape: tuple[int, int]
    slice_index: int = 0
    frame: int = 0

    def model_to_source(self, rc: NDArray[Any] | tuple[float, float]) -> NDArray[np.float64]:
        """Model ``(..., 2)`` (row, col) -> source ``(..., 2)`` (row, col), pixels (float)."""
        a = np.asarray(rc, dtype=np.float64)
        h, w = self.model_shape
        r = self.center[0] + (a[..., 0] - (h - 1) / 2.0) * self.scale[0]
        c = self.center[1] + (a[..., 1] - (w - 1) / 2.0) * self.scale[1]
        return np.stack([r, c], axis=-1)

    def source_to_model(self, rc: NDArray[Any] | tuple[float, float]) -> NDArray[np.float64]:
        """Source ``(..., 2)`` (row, col) -> model ``(..., 2)`` (row, col), pixels (float)."""
        a = np.asarray(rc, dtype=np.float64)
        h, w = self.model_shape
        i = (a[..., 0] - self.center[0]) / self.scale[0] + (h - 1) / 2.0
        j = (a[..., 1] - self.center[1]) / self.scale[1] + (w - 1) / 2.0
        return np.stack([i, j], axis=-1)

    def source_grid(self) -> NDArray[np.float64]:
        """Source coordinates of every model pixel: ``(2, H, W)`` (rows, cols)."""
        ii, jj = np.mgrid[0 : self.model_shape[0], 0 : self.model_shape[1]].astype(np.float64)
        rc = self.model_to_source(np.stack([ii, jj], axis=-1))
        return np.moveaxis(rc, -1, 0)

    def to_source(self, heatmap: NDArray[Any], *, fill: float = 0.0, order: int = 1) -> NDArray[np.float32]:
        """Resample a model-grid map ``[H, W]`` onto the source grid ``[rows, cols]`` (float32).

        Source pixels outside the crop get ``fill``.
        """
        hm = np.asarray(heatmap, dtype=np.float32)
        if hm.shape != tuple(self.model_shape):
            raise ValueError(f"heatmap shape {hm.shape} does not match the model grid {self.model_shape}")
        rr, cc = np.mgrid[0 : self.source_shape[0], 0 : self.source_shape[1]].astype(np.float64)
        ij = self.source_to_model(np.stack([rr, cc], axis=-1))
        out = ndi.map_coordinates(hm, [ij[..., 0], ij[..., 1]], order=order, mode="constant", cval=fill)
        return out.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True, eq=False)
class Preprocessed:
    """Model input of one case.

    Attributes:
        x: float32 ``[n, H, W, 3]`` model input (already scaled per ``spec.scaling``).
        transforms: one :class:`CropTransform` per row of ``x``.
        slice_indices: source slice index (into :attr:`stack`) per row of ``x``.
        stack: the OS-CMR (or fallback cine) stack the input came from.
        frames: chosen frame per row of ``x``.
        spec: the spec used.
        timepoint: time point actually used (``None`` for a cine fallback).
        notes: human-readable notes on fallbacks taken.
    """

    x: NDArray[np.float32]
    transforms: list[CropTransform]
    slice_indices: list[int]
    stack: Stack
    frames: list[int]
    spec: PreprocessSpec
    timepoint: str | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------


def select_stack(case: Case, timepoint: str) -> tuple[Stack, str | None, list[str]]:
    """The OS-CMR stack of ``timepoint`` (see module doc for the fallbacks).

    Returns:
        ``(stack, timepoint_used, notes)``.

    Raises:
        CaseError: the case has neither OS-CMR nor cine series.
    """
    tps = case.os_timepoints()
    if timepoint in tps:
        return tps[timepoint], timepoint, []
    if tps:
        key = list(tps)[-1]
        return (
            tps[key],
            tps[key].timepoint,
            [f"no OS-CMR series tagged {timepoint!r} (found {list(tps)}); used the last acquired one ({key})"],
        )
    cine = case.first(Role.CINE)
    if cine is not None:
        return cine.stack, None, [f"no OS-CMR series; used the cine series {cine.uid or '?'} instead"]
    raise CaseError(
        "the case has no OS-CMR (or cine) series to classify",
        source=case.case_id,
        hint="load the OS-CMR short-axis series (one per manoeuvre time point)",
    )


def select_frames(stack: Stack, spec: PreprocessSpec, centers: Sequence[tuple[float, float]]) -> list[int]:
    """The end-systolic frame of every slice per ``spec.frame_rule`` (:func:`deepoxymap.cardiac.phase.end_systolic_frames`)."""
    return end_systolic_frames(stack, centers, rule=spec.frame_rule, es_fraction=spec.es_fraction)


def crop_slice(
    image: NDArray[Any],
    pixel_spacing: tuple[float, float],
    center: tuple[float, float],
    spec: PreprocessSpec,
    *,
    slice_index: int = 0,
    frame: int = 0,
) -> tuple[NDArray[np.float32], CropTransform]:
    """LV-centred crop of ``spec.crop_mm`` resampled to ``spec.input_size`` (no normalisation).

    Args:
        image: ``[rows, cols]`` source image.
        pixel_spacing: ``(row_spacing, col_spacing)`` mm.
        center: ``(row, col)`` crop centre, source pixels.

    Returns:
        ``(crop [H, W] float32, transform)``; outside the image the nearest edge value is used.
    """
    img = np.asarray(image, dtype=np.float32)
    h = w = spec.input_size
    scale = (spec.mm_per_pixel / pixel_spacing[0], spec.mm_per_pixel / pixel_spacing[1])
    t = CropTransform(
        center=(float(center[0]), float(center[1])),
        scale=(float(scale[0]), float(scale[1])),
        model_shape=(h, w),
        source_shape=(int(img.shape[0]), int(img.shape[1])),
        slice_index=int(slice_index),
        frame=int(frame),
    )
    sigma = [max((s - 1.0) * 0.5, 0.0) for s in scale]  # anti-alias only when shrinking
    src = ndi.gaussian_filter(img, sigma=sigma) if max(sigma) > 0 else img
    grid = t.source_grid()
    out = ndi.map_coordinates(src, [grid[0], grid[1]], order=1, mode="nearest")
    return out.astype(np.float32), t


def _percentile_range(a: NDArray[Any], spec: PreprocessSpec) -> tuple[float, float]:
    lo, hi = np.percentile(a, spec.percentiles)
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def scale_unit(x01: NDArray[Any], scaling: str) -> NDArray[np.float32]:
    """Map a [0, 1] tensor ``[..., 3]`` to the network's input convention (see module doc)."""
    x = np.asarray(x01, dtype=np.float32)
    if scaling == "zscore":
        return ((x - 0.5) / 0.25).astype(np.float32)
    if scaling == "caffe":
        return (255.0 * x - _CAFFE_MEAN_BGR).astype(np.float32)
    if scaling == "raw255":
        return (255.0 * x).astype(np.float32)
    raise ValueError(f"unknown scaling {scaling!r}")


def preprocess_case(case: Case, spec: PreprocessSpec, *, frame_offset: int = 0) -> Preprocessed:
    """The model input of every slice of a case (THE shared training/inference path).

    Args:
        case: a loaded case (OS-CMR series, or a cine series as fallback).
        spec: the preprocessing spec (from the model card at inference).
        frame_offset: training-time temporal jitter only: use the frame this many
            frames after the chosen end-systolic frame (cyclically; the cine covers
            one R-R interval). Inference, validation and test always use 0.

    Returns:
        :class:`Preprocessed` with ``x`` float32 ``[n_slices, H, W, 3]``.

    Raises:
        CaseError: no usable series, or ``"dynamics"`` without a matching baseline.
    """
    return preprocess_case_offsets(case, spec, (int(frame_offset),))[int(frame_offset)]


def preprocess_case_offsets(case: Case, spec: PreprocessSpec, frame_offsets: Sequence[int]) -> dict[int, Preprocessed]:
    """:func:`preprocess_case` at several frame offsets, localising the LV and choosing end-systole once.

    Returns:
        ``{offset: Preprocessed}``, each equal to ``preprocess_case(case, spec, frame_offset=offset)``.
    """
    stack, tp_used, notes = select_stack(case, spec.timepoint)
    base: _Base | None = None
    if spec.channels == "dynamics":
        bstack = case.os_timepoints().get(spec.base_timepoint)
        if (
            bstack is None
            or tp_used in (None, spec.base_timepoint)
            or bstack.data.shape[0] != stack.data.shape[0]
            or bstack.data.shape[2:] != stack.data.shape[2:]
        ):
            raise CaseError(
                f"the 'dynamics' input needs a {spec.base_timepoint} and a {spec.timepoint} OS-CMR series on one grid",
                source=case.case_id,
            )
        bcenters = find_lv_centers(bstack)  # its own LV centre: the heart may have moved between breath-holds
        base = _Base(bstack, bcenters, select_frames(bstack, spec, bcenters))
    centers = find_lv_centers(stack)
    chosen = select_frames(stack, spec, centers)
    return {int(o): _assemble(case, spec, stack, base, centers, chosen, int(o), tp_used, notes) for o in frame_offsets}


@dataclass(frozen=True)
class _Base:
    """The reference stack of the ``"dynamics"`` input, with its own LV centres and end-systolic frames."""

    stack: Stack
    centers: Sequence[tuple[float, float]]
    chosen: Sequence[int]


def _assemble(
    case: Case,
    spec: PreprocessSpec,
    stack: Stack,
    base: _Base | None,
    centers: Sequence[tuple[float, float]],
    chosen: Sequence[int],
    frame_offset: int,
    tp_used: str | None,
    notes: list[str],
) -> Preprocessed:
    """Crop, normalise and scale every slice at ``chosen[k] + frame_offset`` around ``centers[k]``."""
    ps = stack.geometry.pixel_spacing
    xs: list[NDArray[np.float32]] = []
    transforms: list[CropTransform] = []
    frames: list[int] = []
    for k in range(stack.n_slices):
        center, f = centers[k], (chosen[k] + int(frame_offset)) % stack.n_frames
        crop, t = crop_slice(stack.data[k, f], ps, center, spec, slice_index=k, frame=f)
        if spec.channels == "grey":
            lo, hi = _percentile_range(crop, spec)
            g = np.clip((crop - lo) / (hi - lo), 0.0, 1.0)
            x01 = np.repeat(g[..., None], 3, axis=-1)
        else:
            if base is None:  # checked by the caller for "dynamics"; kept explicit for the type checker
                raise CaseError(f"the 'dynamics' input needs a {spec.base_timepoint} series", source=case.case_id)
            fb = (base.chosen[k] + int(frame_offset)) % base.stack.n_frames
            bps = base.stack.geometry.pixel_spacing
            bcrop, _ = crop_slice(base.stack.data[k, fb], bps, base.centers[k], spec, slice_index=k, frame=fb)
            lo, hi = _percentile_range(bcrop, spec)
            c0 = np.clip((bcrop - lo) / (hi - lo), 0.0, 1.0)
            c1 = np.clip((crop - lo) / (hi - lo), 0.0, 1.0)
            sig = 1.0 / spec.mm_per_pixel
            bs = ndi.gaussian_filter(bcrop, sig)
            cs = ndi.gaussian_filter(crop, sig)
            floor = max(0.05 * hi, 1e-6)
            psc = 100.0 * (cs - bs) / np.maximum(bs, floor)
            c2 = (np.clip(psc, -spec.psc_clip, spec.psc_clip) + spec.psc_clip) / (2 * spec.psc_clip)
            x01 = np.stack([c0, c1, c2], axis=-1)
        xs.append(scale_unit(x01, spec.scaling))
        transforms.append(t)
        frames.append(f)
    x = np.stack(xs).astype(np.float32) if xs else np.zeros((0, spec.input_size, spec.input_size, 3), np.float32)
    return Preprocessed(
        x=x,
        transforms=transforms,
        slice_indices=list(range(stack.n_slices)),
        stack=stack,
        frames=frames,
        spec=spec,
        timepoint=tp_used,
        notes=list(notes),
    )
