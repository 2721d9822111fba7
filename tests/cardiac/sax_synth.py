"""A synthetic short-axis label map (standard view: anterior up, septum/RV on the viewer's left)."""

from __future__ import annotations

import numpy as np


def sax_labels(
    size: int = 96,
    centre: tuple[float, float] = (48.0, 50.0),
    r_endo: float = 14.0,
    r_epi: float = 22.0,
    rv_half_deg: float = 60.0,
    rv_depth: float = 12.0,
    lesion: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Phantom-scheme labels: 1 LV blood, 2 myocardium, 3 RV, 4 scar.

    ``lesion = (theta_lo, theta_hi, depth_lo, depth_hi)``: screen-angle interval (deg)
    and depth fractions (0 endocardium, 1 epicardium) of a scar.
    """
    rr, cc = np.mgrid[0:size, 0:size].astype(float)
    dy, dx = -(rr - centre[0]), cc - centre[1]
    rad = np.hypot(dx, dy)
    th = np.degrees(np.arctan2(dy, dx)) % 360
    lab = np.zeros((size, size), np.uint8)
    lab[rad <= r_endo] = 1
    myo = (rad > r_endo) & (rad <= r_epi)
    lab[myo] = 2
    dth = np.abs((th - 180 + 180) % 360 - 180)
    rv = (
        (rad > r_epi)
        & (rad <= r_epi + rv_depth * np.clip(np.cos(np.radians(dth * 90 / rv_half_deg)), 0, 1))
        & (dth < rv_half_deg)
    )
    lab[rv] = 3
    if lesion is not None:
        lo, hi, d0, d1 = lesion
        depth = (rad - r_endo) / (r_epi - r_endo)
        inside = ((th - lo) % 360) <= ((hi - lo) % 360)
        lab[myo & inside & (depth >= d0) & (depth <= d1)] = 4
    return lab


def lge_image(labels: np.ndarray, rng: np.random.Generator, scar_si: float = 400.0) -> np.ndarray:
    """LGE-like SI: nulled myocardium ~ 100 +- 10, blood 300, scar ``scar_si``."""
    img = rng.normal(20, 5, labels.shape)
    img[labels == 1] = rng.normal(300, 20, (labels == 1).sum())
    img[labels == 2] = rng.normal(100, 10, (labels == 2).sum())
    img[labels == 4] = rng.normal(scar_si, 20, (labels == 4).sum())
    return img.astype(np.float32)
