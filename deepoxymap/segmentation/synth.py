"""Synthetic training images for the learned segmenter: phantom anatomy, random appearance.

The phantom's analytic thorax (:mod:`deepoxymap.phantom.anatomy`: 20 tissue codes, from
lung and liver to papillary muscles and epicardial fat) gives the label maps; the
intensities are drawn at random per tissue for every sample, as in SynthSeg (Billot et al.,
*Medical Image Analysis* 2023;86:102789), so a network trained on them learns shape and
borders, not one contrast. One network then serves cine / OS-CMR, LGE and T1 / T2 maps.

Grids (all square, millimetres):

* the **tissue bank** is rendered on a fine grid of :data:`FINE_SIZE` x :data:`FINE_SIZE`
  samples at :data:`FINE_MM` mm, centred on the slice's LV centre;
* the **network grid** is :data:`SIZE` x :data:`SIZE` pixels at :data:`GRID_MM` mm (a
  192 mm field of view); a real image is resampled to it around its LV centre
  (:mod:`deepoxymap.segmentation.learned`).

Target labels (the segmentation's output scheme): 0 background, 1 LV blood pool
(papillary muscles included, the SCMR convention), 2 LV myocardium (lesions included),
3 RV blood pool.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from deepoxymap.phantom.anatomy import (
    MYO_CODES,
    N_THETA,
    N_TISSUE,
    TISSUE,
    render_body,
    render_heart,
    sample_subject,
    wall_tables,
)
from deepoxymap.phantom.params import PhantomParams

__all__ = [
    "FINE_MM",
    "FINE_SIZE",
    "GRID_MM",
    "SIZE",
    "TARGET_OF_TISSUE",
    "AppearanceRanges",
    "BankVariation",
    "normalise",
    "synth_batch",
    "tissue_bank",
]

FINE_MM = 1.0
"""Sample spacing of the tissue bank, mm."""
FINE_SIZE = 256
"""Tissue-bank side, samples (256 mm: the network's 192 mm field survives rotation and shift)."""
GRID_MM = 1.5
"""Pixel spacing of the network grid, mm (real short-axis cine: about 1.2-1.9 mm)."""
SIZE = 128
"""Network grid side, pixels."""

TARGET_OF_TISSUE = np.zeros(N_TISSUE, dtype=np.uint8)
TARGET_OF_TISSUE[[TISSUE["lv_blood"], TISSUE["papillary"]]] = 1
TARGET_OF_TISSUE[list(MYO_CODES)] = 2
TARGET_OF_TISSUE[TISSUE["rv_blood"]] = 3
"""Tissue code -> target label (0 background, 1 LV blood, 2 LV myocardium, 3 RV blood)."""

BANK_SEED_OFFSET = 7_000_000
"""Bank subjects draw from ``default_rng([BANK_SEED_OFFSET, seed, i])``: a namespace no
cohort (study, demo, training) uses."""


@dataclass(frozen=True)
class BankVariation:
    """Anatomy beyond the phantom's own spread, drawn per slice (assumptions).

    Attributes:
        wall_factor: wall thickness multiplier range (the phantom draws 5-8 mm; real
            labelled walls span about 4-14 mm).
        cavity_factor: cavity radius multiplier range.
        trabeculae: most trabeculae per slice (0 to this many, uniform): small discs of
            papillary tissue (label LV blood, the SCMR convention) just inside the
            endocardium, which real cine shows at the blood pool's rim.
        trabecula_radius_mm / trabecula_depth_mm: their radius, and the depth of their
            centre inside the endocardium (negative: attached to the wall).
    """

    wall_factor: tuple[float, float] = (0.8, 1.4)
    cavity_factor: tuple[float, float] = (0.9, 1.2)
    trabeculae: int = 30
    trabecula_radius_mm: tuple[float, float] = (0.6, 2.0)
    trabecula_depth_mm: tuple[float, float] = (-0.5, 3.0)


def _add_trabeculae(
    codes: NDArray[np.uint8],
    X: NDArray[np.float32],
    Y: NDArray[np.float32],
    r_en: NDArray[np.float64],
    rng: np.random.Generator,
    v: BankVariation,
) -> None:
    """Paint trabeculae (papillary code) into the LV blood pool of ``codes`` in place."""
    n = int(rng.integers(0, v.trabeculae + 1))
    blood, pap = TISSUE["lv_blood"], TISSUE["papillary"]
    half = (FINE_SIZE - 1) / 2.0
    for _ in range(n):
        th = rng.uniform(0.0, 360.0)
        rad = rng.uniform(*v.trabecula_radius_mm)
        rc = float(r_en[int(th * N_THETA / 360.0) % N_THETA]) - rng.uniform(*v.trabecula_depth_mm)
        px, py = rc * np.cos(np.deg2rad(th)), rc * np.sin(np.deg2rad(th))
        # a window of the grid around the disc (X is column mm, Y row mm upwards)
        c0, r0 = round(float(px) / FINE_MM + half), round(float(-py) / FINE_MM + half)
        w = int(np.ceil(rad / FINE_MM)) + 1
        rs, cs = slice(max(r0 - w, 0), max(r0 + w + 1, 0)), slice(max(c0 - w, 0), max(c0 + w + 1, 0))
        win = codes[rs, cs]
        disc = (X[rs, cs] - px) ** 2 + (Y[rs, cs] - py) ** 2 < rad * rad
        win[disc & (win == blood)] = pap


def tissue_bank(
    n_subjects: int,
    seed: int,
    *,
    contractions: tuple[float, ...] = (0.0, 0.5, 1.0),
    params: PhantomParams | None = None,
    variation: BankVariation | None = None,
) -> NDArray[np.uint8]:
    """Tissue-code maps of generated subjects: every slice at every contraction.

    Classes and sub-types are drawn with the study's mix (all four classes), sites at
    random, so cavity size, wall thickness, lesions and RV shape vary as in the phantom;
    :class:`BankVariation` widens the wall and cavity and adds trabeculae.

    Args:
        n_subjects: subjects to sample (3 slices each).
        seed: bank seed (see :data:`BANK_SEED_OFFSET`).
        contractions: cardiac contraction states to render (0 end-diastole, 1 end-systole).

    Returns:
        uint8 ``[n_subjects * 3 * len(contractions), FINE_SIZE, FINE_SIZE]`` tissue codes
        (:data:`deepoxymap.phantom.anatomy.TISSUE`); row 0 is anterior, column 0 is the
        viewer's left, the LV centre sits at the middle of the grid.
    """
    p = params or PhantomParams()
    v = variation or BankVariation()
    half = (FINE_SIZE - 1) / 2.0
    ax = (np.arange(FINE_SIZE, dtype=np.float32) - half) * FINE_MM
    X = np.broadcast_to(ax[None, :], (FINE_SIZE, FINE_SIZE)).astype(np.float32)
    Y = np.broadcast_to(-ax[:, None], (FINE_SIZE, FINE_SIZE)).astype(np.float32)
    classes = list(p.classes)
    out: list[NDArray[np.uint8]] = []
    for i in range(n_subjects):
        rng = np.random.default_rng([BANK_SEED_OFFSET, seed, i])
        cls = classes[int(rng.integers(len(classes)))]
        sub = p.classes[cls].subtypes
        subtype = str(rng.choice(list(sub), p=np.asarray(list(sub.values()), dtype=np.float64)))
        site = str(rng.choice(sorted(p.sites)))
        subj = sample_subject(rng, f"BANK{i:05d}", cls, subtype, site, p)
        for k, sh0 in enumerate(subj.slices):
            sh = dataclasses.replace(
                sh0, r_ed=sh0.r_ed * rng.uniform(*v.cavity_factor), wall_ed=sh0.wall_ed * rng.uniform(*v.wall_factor)
            )
            body = render_body(X, Y, subj, k)
            for c in contractions:
                codes, _ = render_heart(X, Y, body.copy(), sh, float(c), subj)
                _add_trabeculae(codes, X, Y, wall_tables(sh, float(c), subj)[0], rng, v)
                out.append(codes)
    return np.stack(out) if out else np.zeros((0, FINE_SIZE, FINE_SIZE), np.uint8)


@dataclass(frozen=True)
class AppearanceRanges:
    """Ranges of the random appearance and geometry (SynthSeg-style; assumptions, tuned on
    generated images only).

    Attributes:
        tissue_sd: within-tissue SD as a fraction of the 0-1 range, drawn in ``[0, tissue_sd]``.
        muscle_like_myo: probability that papillary muscles / trabeculae and the RV wall
            take the myocardium's mean (+-0.03): they are muscle too, and look like it on
            every contrast; otherwise their mean is drawn like any tissue's.
        tissue_field / tissue_field_mm: amplitude range ``[0, tissue_field]`` (fraction of
            the 0-1 range, random sign per tissue) and smoothness of a slowly varying field
            inside each tissue: inflow and slow-flow shading of the blood pool, coil and
            B1 shading that differs between tissues.
        (always) any in-plane rotation, and a mirror with probability 0.5: scanners and
            viewers differ in orientation.
        scale: isotropic zoom range (heart size beyond the phantom's own spread).
        shift_mm: the LV centre's offset from the grid centre, up to this in each axis (the
            localiser's error at inference).
        elastic_mm / elastic_smooth_mm: amplitude and smoothness of a random displacement field.
        blur_px: Gaussian PSF sigma range on the network grid (acquired resolution, slice
            partial volume).
        bias: SD of the log of a smooth multiplicative field (coil shading).
        noise: noise SD range (fraction of the 0-1 range); magnitude (Rician) half of the time.
        gamma_sd: SD of the log of a gamma applied after normalising.
    """

    tissue_sd: float = 0.08
    muscle_like_myo: float = 0.8
    tissue_field: float = 0.15
    tissue_field_mm: float = 10.0
    scale: tuple[float, float] = (0.8, 1.25)
    shift_mm: float = 15.0
    elastic_mm: float = 3.0
    elastic_smooth_mm: float = 12.0
    blur_px: tuple[float, float] = (0.3, 1.2)
    bias: float = 0.3
    noise: tuple[float, float] = (0.005, 0.06)
    gamma_sd: float = 0.25


def normalise(image: NDArray[np.floating], valid: NDArray[np.bool_] | None = None) -> NDArray[np.float32]:
    """Scale to the 1st-99.5th percentiles (of ``valid`` samples) and clip to [0, 1]; float32."""
    img = np.asarray(image, dtype=np.float32)
    vals = img[valid] if valid is not None and valid.any() else img.ravel()
    lo, hi = (float(v) for v in np.percentile(vals, [1.0, 99.5]))
    return np.clip((img - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> NDArray[np.float64]:
    """Unit-SD smooth random field."""
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return f / max(float(f.std()), 1e-9)


def _sample_one(
    codes: NDArray[np.uint8], rng: np.random.Generator, a: AppearanceRanges
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    # appearance on the fine grid: a random mean per tissue, within-tissue texture
    means = rng.uniform(0.0, 1.0, N_TISSUE)
    for code in (TISSUE["papillary"], TISSUE["rv_wall"]):
        if rng.random() < a.muscle_like_myo:
            means[code] = means[TISSUE["myo"]] + rng.normal(0.0, 0.03)
    sds = rng.uniform(0.0, a.tissue_sd, N_TISSUE)
    shade = np.zeros(codes.shape)
    if a.tissue_field > 0:
        amps = rng.uniform(-a.tissue_field, a.tissue_field, N_TISSUE)
        shade = amps[codes] * _smooth_field(rng, codes.shape, a.tissue_field_mm / FINE_MM)
    fine = means[codes] + sds[codes] * rng.standard_normal(codes.shape) + shade
    # geometry: output pixel (i, j) -> fine coordinates (rotation, mirror, zoom, shift, elastic)
    half = (SIZE - 1) / 2.0
    ii, jj = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    y, x = (ii - half) * GRID_MM, (jj - half) * GRID_MM
    if rng.random() < 0.5:
        x = -x
    t = rng.uniform(0.0, 2.0 * math.pi)
    s = rng.uniform(*a.scale)
    cs, sn = math.cos(t) / s, math.sin(t) / s
    yr, xr = cs * y - sn * x, sn * y + cs * x
    sig = a.elastic_smooth_mm / GRID_MM
    yr = yr + a.elastic_mm * _smooth_field(rng, (SIZE, SIZE), sig)
    xr = xr + a.elastic_mm * _smooth_field(rng, (SIZE, SIZE), sig)
    off = rng.uniform(-a.shift_mm, a.shift_mm, 2)
    fh = (FINE_SIZE - 1) / 2.0
    coords = [(yr + off[0]) / FINE_MM + fh, (xr + off[1]) / FINE_MM + fh]
    img = ndi.map_coordinates(fine, coords, order=1, mode="constant", cval=float(means[0]))
    lab = TARGET_OF_TISSUE[ndi.map_coordinates(codes, coords, order=0, mode="constant", cval=0)]
    # acquisition: PSF, coil shading, noise, contrast curve
    img = ndi.gaussian_filter(img, rng.uniform(*a.blur_px))
    img = img * np.exp(a.bias * rng.uniform(0.0, 1.0) * _smooth_field(rng, (SIZE, SIZE), SIZE / 4.0))
    sd = rng.uniform(*a.noise)
    if rng.random() < 0.5:
        img = np.hypot(img + sd * rng.standard_normal(img.shape), sd * rng.standard_normal(img.shape))
    else:
        img = img + sd * rng.standard_normal(img.shape)
    img = normalise(img) ** float(np.exp(a.gamma_sd * rng.standard_normal()))
    return img.astype(np.float32), lab.astype(np.uint8)


def synth_batch(
    bank: NDArray[np.uint8],
    rng: np.random.Generator,
    n: int,
    appearance: AppearanceRanges | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """A batch of random-appearance images and their target labels.

    Args:
        bank: uint8 ``[m, FINE_SIZE, FINE_SIZE]`` tissue codes from :func:`tissue_bank`.
        rng: the batch's generator.
        n: batch size.

    Returns:
        ``(x, y)``: float32 ``[n, SIZE, SIZE, 1]`` in [0, 1] and uint8 ``[n, SIZE, SIZE]``
        labels (:data:`TARGET_OF_TISSUE`).
    """
    a = appearance or AppearanceRanges()
    xs = np.zeros((n, SIZE, SIZE, 1), np.float32)
    ys = np.zeros((n, SIZE, SIZE), np.uint8)
    for b in range(n):
        xs[b, ..., 0], ys[b] = _sample_one(bank[int(rng.integers(bank.shape[0]))], rng, a)
    return xs, ys
