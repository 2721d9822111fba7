"""The :class:`Heatmap` result type and array helpers (no TensorFlow import).

A heatmap is a float32 ``[H, W]`` array in ``[0, 1]`` on a named pixel grid:
``"model"`` (the preprocessed network input) or ``"source"`` (the original
OS-CMR image, after :meth:`Heatmap.to_source`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["FeatureMaps", "Heatmap", "SourceTransform", "fuse_maps", "normalize_map", "pool_to_grid", "upsample_map"]

FUSE_GAMMA = 2.0
"""Jiang et al. 2021's scale for the shallower layers' maps: ``tanh(FUSE_GAMMA * m)`` of a map ``m`` in ``[0, 1]``."""

_EPS = 1e-7


class SourceTransform(Protocol):
    """What :meth:`Heatmap.to_source` needs from ``model.preprocess.CropTransform``."""

    def to_source(self, heatmap: NDArray[Any]) -> NDArray[Any]:
        """Map a ``[H, W]`` model-grid array onto the ``[R, C]`` source image grid."""
        ...


def normalize_map(a: NDArray[Any]) -> NDArray[np.float32]:
    """Min-max normalise to ``[0, 1]`` exactly as tf-keras-vis does.

    ``(a - min) / (max - min + 1e-7)``; a constant map (an all-zero gradient
    included) gives zeros, never NaN. Non-finite inputs are set to 0 first.

    Args:
        a: any-shape real array.

    Returns:
        float32 array of the same shape, values in ``[0, 1]``.
    """
    x = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    out = (x - lo) / (hi - lo + _EPS)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def upsample_map(
    cam: NDArray[Any], size: tuple[int, int], *, align: Literal["centre", "corner"] = "centre"
) -> NDArray[np.float32]:
    """Bilinear upsampling of a low-resolution map ``[h, w]`` to ``size = (H, W)``.

    Args:
        cam: ``[h, w]`` map on a layer's grid.
        size: target ``(H, W)`` in pixels of the model input.
        align: ``"centre"`` (default): cell ``i`` of a stride-``s`` layer covers
            input pixels ``[i*s, (i+1)*s)``, pixel centres are aligned (the same
            as ``tf.image.resize(..., "bilinear")``); this is the geometrically
            right choice for mapping back onto the image. ``"corner"``: the
            corner-aligned ``scipy.ndimage.zoom(order=1)`` that tf-keras-vis
            uses (kept to compare with it exactly).

    Returns:
        float32 ``[H, W]``.
    """
    from scipy.ndimage import zoom

    c = np.asarray(cam, dtype=np.float32)
    if c.shape == tuple(size):
        return c.copy()
    factors = (size[0] / c.shape[0], size[1] / c.shape[1])
    if align == "corner":
        out = zoom(c, factors, order=1)
    else:
        out = zoom(c, factors, order=1, grid_mode=True, mode="nearest")
    if out.shape != tuple(size):  # zoom rounds; pad/crop by at most one pixel
        fixed = np.zeros(size, dtype=np.float32)
        h, w = min(size[0], out.shape[0]), min(size[1], out.shape[1])
        fixed[:h, :w] = out[:h, :w]
        out = fixed
    return out.astype(np.float32)


def fuse_maps(
    maps: Sequence[NDArray[Any]],
    size: tuple[int, int],
    *,
    align: Literal["centre", "corner"] = "centre",
    per_batch: bool = False,
    gamma: float = FUSE_GAMMA,
) -> NDArray[np.float32]:
    """Fuse the CAMs of several layers into one map on the ``size`` grid (Layer-CAM's hierarchy rule).

    The rule (Jiang et al., LayerCAM, IEEE TIP 2021, section III-C; the element-wise
    maximum as in torchcam's ``fuse_cams``):

    1. each layer's map ``[n, h_l, w_l]`` is upsampled bilinearly to ``size``
       (:func:`upsample_map`), so every layer lands on the same grid;
    2. it is min-max normalised to ``[0, 1]``, per map, or with one minimum and
       maximum over the whole batch when ``per_batch`` (one case's slices);
    3. every layer but the deepest (the last) is scaled by ``tanh(gamma * m)``:
       shallow layers have small, noisy values, and the scaling lifts their
       fine detail to the deep layer's range without letting it exceed 1;
    4. the fused map is the element-wise maximum over layers.

    So the fused map has the finest layer's resolution (its detail survives
    the maximum) and keeps the deepest layer's class evidence.

    Args:
        maps: per layer, shallow to deep, float ``[n, h_l, w_l]`` (>= 0, the method's ReLU applied).
        size: target ``(H, W)`` (the model input, or the finest layer's grid).
        align: upsampling alignment.
        per_batch: normalise each layer over the whole batch instead of per map.
        gamma: the tanh scale of the shallower layers.

    Returns:
        float32 ``[n, H, W]``, values in ``[0, 1]`` (not re-normalised).
    """
    if not maps:
        raise ValueError("no layer maps to fuse")
    scaled = []
    for k, m in enumerate(maps):
        up = np.stack([upsample_map(c, size, align=align) for c in np.asarray(m, dtype=np.float32)])
        up = normalize_map(up) if per_batch else np.stack([normalize_map(u) for u in up])
        scaled.append(np.tanh(gamma * up) if k < len(maps) - 1 else up)
    return np.max(np.stack(scaled), axis=0).astype(np.float32)


def pool_to_grid(a: NDArray[Any], grid: tuple[int, int]) -> NDArray[np.float32]:
    """Average-pool ``a [H, W]`` onto a layer's ``grid = (h, w)``.

    Cell ``(i, j)`` averages rows ``floor(i H / h) .. floor((i + 1) H / h) - 1``
    and the columns likewise: the input pixels a stride-``H / h`` feature map
    cell covers. This is what a perfect readout at that layer could at best
    represent (the audit's ideal-map ceiling).

    Returns:
        float32 ``[h, w]``.
    """
    x = np.asarray(a, dtype=np.float64)
    h, w = int(grid[0]), int(grid[1])
    if h <= 0 or w <= 0 or h > x.shape[0] or w > x.shape[1]:
        raise ValueError(f"grid {grid} does not fit an array of shape {x.shape}")
    re = (np.arange(h + 1) * x.shape[0]) // h
    ce = (np.arange(w + 1) * x.shape[1]) // w
    rows = np.add.reduceat(x, re[:-1], axis=0) / np.diff(re)[:, None]
    return (np.add.reduceat(rows, ce[:-1], axis=1) / np.diff(ce)[None, :]).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Heatmap:
    """A class-activation or saliency map for one image.

    Attributes:
        array: float32 ``[H, W]`` in ``[0, 1]`` on :attr:`grid` (peak 1 when normalised
            per slice; at most 1 when normalised over a case's slices).
        method: registry name (``"gradcam"``, ``"gradcam++"``, ...).
        layer: the layer whose activations were used (``"+"``-joined when fused;
            ``None`` for saliency).
        target_class: index of the explained output class.
        class_name: its name (``deepoxymap.CLASSES`` for 4-class models).
        probabilities: float32 ``[n_classes]`` softmax of the model on the
            input (``None`` where not computed).
        raw: float32 ``[h, w]`` map on the layer's own grid before upsampling
            and normalisation (after the method's ReLU; fused layers: the fused
            map on the finest layer's grid), or ``None``.
        grid: ``"model"`` (network input pixels) or ``"source"`` (OS-CMR pixels).
        contrast_class: index of the class whose logit was subtracted from the
            target's (a contrastive map), or ``None``.
    """

    array: NDArray[np.float32]
    method: str
    layer: str | None
    target_class: int
    class_name: str
    probabilities: NDArray[np.float32] | None = None
    raw: NDArray[np.float32] | None = None
    grid: str = "model"
    contrast_class: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of :attr:`array`."""
        return (int(self.array.shape[0]), int(self.array.shape[1]))

    @property
    def peak(self) -> tuple[int, int]:
        """``(row, col)`` of the maximum of :attr:`array` (first if tied)."""
        r, c = np.unravel_index(int(np.argmax(self.array)), self.array.shape)
        return int(r), int(c)

    def to_source(self, transform: SourceTransform) -> Heatmap:
        """This heatmap mapped onto the original OS-CMR pixel grid.

        Args:
            transform: the slice's ``CropTransform`` (from ``preprocess_case``);
                its ``to_source`` inverts the crop/resize/rotation.

        Returns:
            A new :class:`Heatmap` with ``grid="source"`` and ``array`` float32
            ``[R, C]`` in ``[0, 1]`` (0 outside the crop). Values are
            interpolated, not re-normalised, so the peak may be slightly < 1.
        """
        if self.grid != "model":
            raise ValueError(f"heatmap is already on the {self.grid!r} grid")
        mapped = np.asarray(transform.to_source(self.array), dtype=np.float32)
        mapped = np.clip(np.nan_to_num(mapped, nan=0.0), 0.0, 1.0)
        return dataclasses.replace(self, array=mapped, grid="source")


@dataclass(frozen=True, eq=False)
class FeatureMaps:
    """Raw activations of one layer for one image (the study's "feature maps").

    Attributes:
        layer: layer name.
        maps: float32 ``[k, h, w]`` activations of the selected channels (not normalised).
        channels: int ``[k]`` channel indices, by decreasing mean activation.
        mean_activation: float32 ``[k]`` spatial mean of each selected channel.
        n_channels: channels in the layer.
    """

    layer: str
    maps: NDArray[np.float32]
    channels: NDArray[np.int64]
    mean_activation: NDArray[np.float32]
    n_channels: int

    def normalized(self, size: tuple[int, int] | None = None) -> NDArray[np.float32]:
        """Each map min-max normalised to ``[0, 1]`` (and upsampled to ``size`` if given); ``[k, H, W]``."""
        out = []
        for m in self.maps:
            u = upsample_map(m, size) if size is not None else m
            out.append(normalize_map(u))
        return np.stack(out) if out else np.zeros((0, *(size or self.maps.shape[1:])), np.float32)
