"""Image formation shared by every sequence: relaxation tables, bSSFP signal, coils, texture, noise.

Functions that draw random numbers take the generator explicitly; the caller
fixes the order of the draws (see :mod:`deepoxymap.phantom.generate`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

from deepoxymap.phantom.anatomy import TISSUE, Subject
from deepoxymap.phantom.params import SiteParams, TissueRelax
from deepoxymap.phantom.render import Grid, sample_coords

__all__ = [
    "RHO_BLOOD",
    "RHO_EDEMA",
    "RHO_MYO",
    "band_map",
    "bssfp_signal",
    "coil_map",
    "fat_bssfp_sign",
    "magnitude",
    "relax_table",
    "rician",
    "texture",
    "tissue_triplet",
    "to_u16",
]


RHO_MYO = 0.80
"""Proton density of myocardium and scar (MRXCAT muscle 80 %, DOMAIN 6.2 step 3 [S])."""
RHO_EDEMA = 0.82
"""Proton density of edematous myocardium (more water) [A]."""
RHO_BLOOD = 0.95
"""Proton density of blood (MRXCAT 95 %, DOMAIN 6.2 step 3 [S])."""


def bssfp_signal(rho: float, t1_ms: float, t2_ms: float, flip_deg: float, te_ms: float) -> float:
    """bSSFP steady-state magnitude (MRXCAT, DOMAIN 6.2 step 3), arbitrary units.

    ``S = rho sin(a) / ((T1/T2 + 1) - cos(a) (T1/T2 - 1)) * exp(-TE/T2)``.
    """
    a = math.radians(flip_deg)
    q = t1_ms / t2_ms
    return rho * math.sin(a) / ((q + 1.0) - math.cos(a) * (q - 1.0)) * math.exp(-te_ms / t2_ms)


def fat_bssfp_sign(field_t: float, tr_ms: float, shift_ppm: float = 3.4) -> float:
    """Sign (phase 0 or pi) of fat relative to water in a bSSFP echo at TE = TR/2.

    With the usual alternating RF phase the bSSFP pass-bands repeat every 1/TR and
    the echo phase alternates between neighbouring bands; fat, ``shift_ppm`` below
    water (``f = 42.577 MHz/T x B0 x ppm``), sits in band ``round(f TR)``: odd -> -1
    (opposed phase: 1.5 T with TR 2.9-3.3 ms, and 3 T with TR < 3.46 ms), even -> +1.
    """
    df_hz = 42.577478 * field_t * shift_ppm
    n = round(df_hz * tr_ms / 1000.0)
    return -1.0 if n % 2 else 1.0


# ---------------------------------------------------------------------------
# relaxation per tissue code
# ---------------------------------------------------------------------------


def tissue_triplet(t: TissueRelax | tuple[float, float, float]) -> tuple[float, float, float]:
    """``(rho, T1 ms, T2 ms)`` of a fixed tissue."""
    if isinstance(t, TissueRelax):
        return (t.rho, t.t1_ms, t.t2_ms)
    return t


def relax_table(subj: Subject, sp: SiteParams) -> dict[int, tuple[float, float, float]]:
    """(rho, T1 ms, T2 ms) per tissue code for this subject."""
    tis = subj.params["tissue"]
    ft = sp.tissues
    myo = (RHO_MYO, tis["t1_myo_ms"], tis["t2_myo_ms"])
    blood = (RHO_BLOOD, tis["t1_blood_ms"], tis["t2_blood_ms"])
    scar = (RHO_MYO, tis.get("t1_scar_ms", myo[1]), tis.get("t2_scar_ms", myo[2]))
    ede = (RHO_EDEMA, tis.get("t1_edema_ms", myo[1]), tis.get("t2_edema_ms", myo[2]))
    scar_ede = (RHO_EDEMA, max(scar[1], ede[1]), max(scar[2], ede[2]))
    return {
        TISSUE["air"]: (0.0, 1000.0, 50.0),
        TISSUE["lv_blood"]: blood,
        TISSUE["myo"]: myo,
        TISSUE["rv_blood"]: blood,
        TISSUE["scar"]: scar,
        TISSUE["edema"]: ede,
        TISSUE["mvo"]: scar,
        TISSUE["rv_wall"]: myo,
        TISSUE["epi_fat"]: tissue_triplet(ft.fat),
        TISSUE["sub_fat"]: tissue_triplet(ft.fat),
        TISSUE["muscle"]: tissue_triplet(ft.muscle),
        TISSUE["lung"]: tissue_triplet(ft.lung),
        TISSUE["liver"]: tissue_triplet(ft.liver),
        TISSUE["aorta"]: blood,
        TISSUE["bone"]: tissue_triplet(ft.bone),
        TISSUE["soft"]: tissue_triplet(ft.soft),
        TISSUE["papillary"]: myo,
        TISSUE["territory"]: myo,
        TISSUE["scar_edema"]: scar_ede,
        TISSUE["vessel"]: blood,
    }


# ---------------------------------------------------------------------------
# receive chain
# ---------------------------------------------------------------------------


def coil_map(
    grid: Grid, coils: list[tuple[float, float, float]], length: float, rot_deg: float, os_: int = 1
) -> NDArray[np.float32]:
    """Smooth receive sensitivity on the grid's fine samples ``(rows * os_, cols * os_)``, 1 at the LV centre.

    Args:
        coils: (X, Y, weight) in anatomical mm relative to the LV centre.
        length: decay length L (mm) of ``exp(-|r - r_c| / L)``.
        os_: fine-grid factor (1: reconstruction pixel centres).
    """
    X, Y = sample_coords(grid, os_, (0.0, 0.0), rot_deg)
    b = np.zeros(X.shape, np.float32)
    b0 = 0.0
    for cx, cy, w in coils:
        b += w * np.exp(-np.hypot(X - cx, Y - cy) / length)
        b0 += w * math.exp(-math.hypot(cx, cy) / length)
    return (b / b0).astype(np.float32)


def texture(
    grid: Grid,
    rng: np.random.Generator,
    sd: float,
    os_: int = 1,
    scales_mm: tuple[float, float] = (2.0, 8.0),
    coarse_weight: float = 0.7,
) -> NDArray[np.float32]:
    """Smooth multiplicative tissue texture ``1 + N(0, sd)`` on the fine samples ``(rows * os_, cols * os_)``.

    Two Gaussian-smoothed white-noise fields (SDs ``scales_mm``, converted to fine
    pixels) are normalised, mixed ``fine + coarse_weight * coarse`` and scaled to SD ``sd``.
    Draws two standard-normal fields of the fine shape from ``rng``.
    """
    shape = (grid.shape[0] * os_, grid.shape[1] * os_)
    fine_px = float(np.sqrt(grid.spacing[0] * grid.spacing[1])) / os_
    n1 = gaussian_filter(rng.standard_normal(shape), scales_mm[0] / fine_px)
    n2 = gaussian_filter(rng.standard_normal(shape), scales_mm[1] / fine_px)
    n = n1 / max(float(n1.std()), 1e-9) + coarse_weight * n2 / max(float(n2.std()), 1e-9)
    n *= sd / max(float(n.std()), 1e-9)
    return (1.0 + n).astype(np.float32)


def band_map(
    grid: Grid, rng: np.random.Generator, rot_deg: float, os_: int = 1
) -> tuple[NDArray[np.float32], dict[str, float]]:
    """An off-resonance (bSSFP) dark band near the lateral wall: multiplier on the fine samples."""
    X, Y = sample_coords(grid, os_, (0.0, 0.0), rot_deg)
    ang = rng.uniform(-40, 40)
    off = rng.uniform(30, 70)
    w = rng.uniform(1.5, 3.0)
    a = math.radians(ang)
    dist = X * math.cos(a) + Y * math.sin(a) - off + 0.002 * (Y**2)
    m = 1.0 - 0.85 * np.exp(-((dist / w) ** 2))
    return m.astype(np.float32), {"angle_deg": ang, "offset_mm": off, "width_mm": w}


def magnitude(img: NDArray[np.float32], noise: NDArray[np.complex64]) -> NDArray[np.float32]:
    """Magnitude ``|img + noise|`` of a real noise-free image plus complex noise (Rician), float32."""
    return np.sqrt((img + noise.real) ** 2 + noise.imag**2).astype(np.float32)


def rician(img: NDArray[np.float32], sigma: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """Magnitude of signal plus complex Gaussian noise (Rician), float32."""
    n1 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    n2 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    return np.sqrt((img + n1) ** 2 + n2**2)


def to_u16(a: NDArray[np.floating[Any]], hi: int = 4095) -> NDArray[np.uint16]:
    """Round and clip to ``[0, hi]`` uint16."""
    return np.clip(np.rint(a), 0, hi).astype(np.uint16)
