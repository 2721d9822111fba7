"""Heatmap overlays as RGB arrays and PNG files (matplotlib colormaps; no pyplot state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["overlay_heatmap", "save_overlay_png", "window_image"]


def window_image(image: NDArray[Any], percentiles: tuple[float, float] = (1.0, 99.5)) -> NDArray[np.float32]:
    """Grey image scaled to ``[0, 1]`` between two intensity percentiles; float32 ``[H, W]``."""
    a = np.nan_to_num(np.asarray(image, dtype=np.float32))
    lo, hi = np.percentile(a, percentiles)
    if not hi > lo:
        hi = lo + 1.0
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def overlay_heatmap(
    image: NDArray[Any], heatmap: NDArray[Any], *, alpha: float = 0.4, colormap: str = "jet", min_value: float = 0.0
) -> NDArray[np.uint8]:
    """Blend a heatmap over a grey image.

    Args:
        image: ``[H, W]`` any intensity (windowed by :func:`window_image`).
        heatmap: ``[H, W]`` in ``[0, 1]`` on the same grid.
        alpha: heatmap opacity in ``[0, 1]`` (scaled by the heatmap value, so cold regions stay grey).
        colormap: matplotlib colormap name.
        min_value: heatmap values below this are not drawn.

    Returns:
        uint8 RGB ``[H, W, 3]``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    from matplotlib import colormaps

    g = window_image(image)
    h = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0.0, 1.0)
    if h.shape != g.shape:
        raise ValueError(f"heatmap {h.shape} and image {g.shape} are not on the same grid")
    rgb = colormaps[colormap](h)[..., :3]
    a = alpha * h * (h >= min_value)
    out = (1 - a[..., None]) * g[..., None] + a[..., None] * rgb
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_overlay_png(path: Path | str, image: NDArray[Any], heatmap: NDArray[Any], **kw: Any) -> Path:
    """Write :func:`overlay_heatmap` as a PNG; returns the path."""
    from matplotlib.image import imsave

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    imsave(p, overlay_heatmap(image, heatmap, **kw))
    return p
