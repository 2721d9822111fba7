"""Rendering one series of a subject: pixel grids, fine tissue maps, acquisition-like band limiting.

Image formation (DOMAIN 6.2 step 5, MRXCAT-style):

1. tissue codes are point-sampled on a *fine* grid ``oversample`` times finer than
   the reconstruction grid (fine sample ``j`` sits at ``j / oversample``
   reconstruction pixels, so every ``oversample``-th fine sample is a
   reconstruction pixel centre, where the label maps are read);
2. per-tissue values (signal or ms), times smooth multiplicative maps (coil
   sensitivity, texture, banding) on the same fine grid;
3. the fine image is Fourier transformed; only the k-space that the scanner
   acquired is kept (``Acquisition``: ``acq_shape`` lines about the centre, i.e. an
   acquired pixel of FOV / lines) with a cosine roll-off at its edge, and the
   result is inverse transformed on the reconstruction matrix (zero-filled
   interpolation, as scanners reconstruct 1.7-1.9 mm data on 1.2-1.6 mm pixels);
4. noise (:func:`kspace_noise`) is complex Gaussian limited to the same k-space,
   so it is correlated over neighbouring pixels as in real zero-filled images.

No randomness here except :func:`kspace_noise`, which takes its generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft
from numpy.typing import NDArray

from deepoxymap.phantom.anatomy import (
    EDEMA_CODES,
    LABEL_OF_TISSUE,
    MYO_CODES,
    N_TISSUE,
    TISSUE,
    Subject,
    contraction,
    render_body,
    render_heart,
)

__all__ = [
    "Acquisition",
    "Grid",
    "RenderOut",
    "acquisition",
    "band_limit",
    "kspace_noise",
    "kspace_weights",
    "render_series",
    "sample_coords",
    "white_kspace",
]


@dataclass
class Grid:
    """One series' reconstruction grid: shape ``(rows, cols)``, spacing ``(dr, dc)`` mm, LV centre pixel."""

    shape: tuple[int, int]
    spacing: tuple[float, float]
    center_rc: tuple[float, float]


@dataclass(frozen=True)
class Acquisition:
    """What the scanner sampled of a series' k-space.

    Attributes:
        acq_shape: acquired k-space lines ``(rows, cols)``, each <= the reconstruction
            matrix; acquired pixel = FOV / lines (mm).
        taper: fraction of the acquired half-width with a cosine roll-off (0 = sharp).
    """

    acq_shape: tuple[int, int]
    taper: float


def acquisition(grid: Grid, acq_pixel_mm: float, taper: float) -> Acquisition:
    """The :class:`Acquisition` of ``grid`` acquired at ``acq_pixel_mm`` (square) with ``taper``.

    Lines = round(FOV / acquired pixel), at most the reconstruction matrix (an
    acquired pixel finer than the reconstruction pixel is not zero-filled).
    """
    (R, C), (dr, dc) = grid.shape, grid.spacing
    nr = min(R, max(2, round(R * dr / acq_pixel_mm)))
    nc = min(C, max(2, round(C * dc / acq_pixel_mm)))
    return Acquisition((int(nr), int(nc)), float(taper))


def _weights_1d(n_recon: int, n_acq: int, taper: float) -> NDArray[np.float64]:
    """1D k-space weights in FFT order for ``n_recon`` bins: 1 inside ``n_acq`` lines, cosine edge."""
    k = np.abs(np.fft.fftfreq(n_recon) * n_recon)  # integer frequency index
    half = n_acq / 2.0
    t = taper * half
    w = (k <= half).astype(np.float64)
    if t > 0:
        edge = (k > half - t) & (k <= half)
        w[edge] = 0.5 * (1.0 + np.cos(np.pi * (k[edge] - (half - t)) / t))
    return w


def kspace_weights(shape: tuple[int, int], acq: Acquisition) -> NDArray[np.float64]:
    """Separable k-space weights ``(rows, cols)`` float64 in FFT order (``numpy.fft.fft2`` layout)."""
    wr = _weights_1d(shape[0], acq.acq_shape[0], acq.taper)
    wc = _weights_1d(shape[1], acq.acq_shape[1], acq.taper)
    return np.outer(wr, wc)


def band_limit(
    fine: NDArray[np.floating[Any]], shape: tuple[int, int], os_: int, acq: Acquisition
) -> NDArray[np.float32]:
    """Band-limit a fine image to the acquired k-space and sample it on the reconstruction grid.

    Args:
        fine: float ``(rows * os_, cols * os_)`` image on the fine grid.
        shape: reconstruction matrix ``(rows, cols)``.
        os_: fine-grid factor.
        acq: the acquired k-space.

    Returns:
        float32 ``(rows, cols)``: the zero-filled reconstruction, with ``out[i, j]`` the
        band-limited image at fine sample ``(os_ i, os_ j)``; a constant image keeps its value.
    """
    R, C = shape
    F = scipy.fft.rfft2(np.asarray(fine, dtype=np.float32))
    Rf = F.shape[0]
    rows = np.r_[0 : R - R // 2, Rf - R // 2 : Rf]
    G = F[rows, : C // 2 + 1]
    w = kspace_weights(shape, acq)[:, : C // 2 + 1].astype(np.float32)
    out = scipy.fft.irfft2(G * w, s=(R, C))
    return (out / float(os_ * os_)).astype(np.float32)


def kspace_noise(
    shape: tuple[int, ...], acq: Acquisition, sigma: float, rng: np.random.Generator
) -> NDArray[np.complex64]:
    """Complex Gaussian noise limited to the acquired k-space, ``shape`` = ``(..., rows, cols)``.

    White complex noise is drawn in k-space (float32 pairs: real, imaginary),
    weighted like the signal and transformed to the image; it is scaled so each
    real and imaginary pixel value has SD ``sigma`` (the magnitude background is then
    Rayleigh with scale ``sigma``) and neighbouring pixels are correlated.
    """
    R, C = shape[-2], shape[-1]
    w = kspace_weights((R, C), acq).astype(np.float32)
    scale = sigma * R * C / math.sqrt(float(np.sum(w.astype(np.float64) ** 2)))
    k = white_kspace(shape, rng)
    k *= w * np.float32(scale)
    return scipy.fft.ifft2(k, axes=(-2, -1), overwrite_x=True).astype(np.complex64, copy=False)


def white_kspace(shape: tuple[int, ...], rng: np.random.Generator) -> NDArray[np.complex64]:
    """Unit white complex noise ``shape`` (complex64): the one draw of :func:`kspace_noise`.

    Drawing it and throwing it away advances ``rng`` exactly as :func:`kspace_noise`
    of the same shape does (a series that is not rendered leaves the next one's noise as it was).
    """
    return rng.standard_normal((*shape, 2), dtype=np.float32).view(np.complex64)[..., 0]


def sample_coords(
    grid: Grid,
    os_: int,
    shift: tuple[float, float],
    rot_deg: float,
    rows: slice | None = None,
    cols: slice | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Anatomical (X, Y) mm of the fine samples of ``grid`` (optionally a block of them).

    Fine sample ``j`` lies at reconstruction-pixel coordinate ``j / os_`` (``os_ = 1``:
    the pixel centres).
    """
    R, C = grid.shape
    dr, dc = grid.spacing
    r0, c0 = grid.center_rc
    rr = np.arange(R * os_, dtype=np.float32) / os_
    cc = np.arange(C * os_, dtype=np.float32) / os_
    if rows is not None:
        rr = rr[rows]
    if cols is not None:
        cc = cc[cols]
    x = (cc[None, :] - c0) * dc - shift[0]
    y = -((rr[:, None] - r0) * dr - shift[1])
    ps = math.radians(rot_deg)
    cs, sn = math.cos(ps), math.sin(ps)
    X = (cs * x + sn * y).astype(np.float32)
    Y = (-sn * x + cs * y).astype(np.float32)
    return X, Y


@dataclass
class RenderOut:
    """Noise-free rendering of one series on the reconstruction grid: ``signal`` float32
    ``[slice, frame, R, C]`` (band-limited, real), ``labels`` uint8 and ``edema`` bool of the
    same shape (tissue at each pixel centre); ``signal2`` the second value table
    (``render_series(values2=...)``) or None."""

    signal: NDArray[np.float32]
    labels: NDArray[np.uint8]
    edema: NDArray[np.bool_]
    signal2: NDArray[np.float32] | None = None


def _heart_box(subj: Subject, grid: Grid, shift: tuple[float, float]) -> tuple[int, int, int, int]:
    """Reconstruction-pixel bounding box ``(r0, r1, c0, c1)`` of the heart (with margin)."""
    ext = 0.0
    for sh in subj.slices:
        ext = max(ext, float(np.max(sh.r_ed + sh.wall_ed + sh.rv_depth + sh.fat)) + sh.rv_wall + 8.0)
    R, C = grid.shape
    r0, c0 = grid.center_rc
    hr = math.ceil(ext / grid.spacing[0]) + 2
    hc = math.ceil(ext / grid.spacing[1]) + 2
    sr = max(0, int(r0 + shift[1] / grid.spacing[0]) - hr)
    er = min(R, int(r0 + shift[1] / grid.spacing[0]) + hr + 1)
    sc = max(0, int(c0 + shift[0] / grid.spacing[1]) - hc)
    ec = min(C, int(c0 + shift[0] / grid.spacing[1]) + hc + 1)
    return sr, er, sc, ec


def render_series(
    subj: Subject,
    grid: Grid,
    phases: NDArray[np.float64],
    values: NDArray[np.float32],
    myo_het: list[NDArray[np.float32]] | None,
    shift: tuple[float, float],
    os_: int,
    acq: Acquisition,
    *,
    gain: NDArray[np.float32] | None = None,
    flow: bool = False,
    values2: NDArray[np.float32] | None = None,
) -> RenderOut:
    """Render all slices x phases of one series with per-tissue values, band-limited to ``acq``.

    Args:
        values: float32 ``(N_TISSUE,)`` value per tissue code (signal or ms).
        myo_het: per slice ``(N_THETA,)`` multiplicative modulation of myocardial codes
            (BOLD heterogeneity), or ``None``.
        shift: in-plane heart shift (right, down) mm for breathing / misregistration.
        os_: fine-grid factor.
        acq: acquired k-space (:func:`acquisition`).
        gain: float32 ``(rows * os_, cols * os_)`` multiplicative map on the fine grid
            (coil sensitivity x texture x banding), applied before band limiting; ``None`` = 1.
        flow: modulate blood-pool values by a smooth travelling pattern (bSSFP inflow
            inhomogeneity; cine only).
        values2: a second ``(N_TISSUE,)`` table rendered from the same tissue maps
            (without flow, heterogeneity or gain) into ``RenderOut.signal2``.
    """
    R, C = grid.shape
    n_s, n_f = len(subj.slices), len(phases)
    sig = np.zeros((n_s, n_f, R, C), np.float32)
    lab = np.zeros((n_s, n_f, R, C), np.uint8)
    ede = np.zeros((n_s, n_f, R, C), bool)
    sig2 = np.zeros((n_s, n_f, R, C), np.float32) if values2 is not None else None
    rot = subj.params["rotation_deg"]
    is_myo = np.zeros(N_TISSUE, bool)
    is_myo[list(MYO_CODES) + [TISSUE["papillary"]]] = True
    is_ede = np.zeros(N_TISSUE, bool)
    is_ede[list(EDEMA_CODES)] = True
    is_blood = np.zeros(N_TISSUE, bool)
    is_blood[[TISSUE["lv_blood"], TISSUE["rv_blood"]]] = True
    flow_amp, kx, ky, p1, p2 = subj.params.get("flow", [0.0, 0.0, 0.0, 0.0, 0.0]) if flow else [0.0] * 5
    sr, er, sc, ec = _heart_box(subj, grid, shift)
    fr, fc = slice(sr * os_, er * os_), slice(sc * os_, ec * os_)
    Xb, Yb = sample_coords(grid, os_, shift, rot, fr, fc)
    X, Y = sample_coords(grid, os_, shift, rot)
    g_box = gain[fr, fc] if gain is not None else None
    for k, sh in enumerate(subj.slices):
        Tbody = render_body(X, Y, subj, k)
        body_val = values[Tbody]
        if gain is not None:
            body_val = body_val * gain
        body_lab = LABEL_OF_TISSUE[Tbody[::os_, ::os_]]
        Tb0 = Tbody[fr, fc]
        for f, ph in enumerate(phases):
            c = float(contraction(ph, subj.params["es_phase"], subj.params["relax_phase"]))
            T, ti = render_heart(Xb, Yb, Tb0.copy(), sh, c, subj)
            v = values[T]
            if flow_amp > 0:
                fl = 1.0 + flow_amp * np.sin(kx * Xb + 2 * np.pi * ph + p1) * np.cos(ky * Yb - 2 * np.pi * ph + p2)
                v = np.where(is_blood[T], v * fl.astype(np.float32), v)
            if myo_het is not None:
                v = np.where(is_myo[T], v * myo_het[k][ti], v)
            if g_box is not None:
                v = v * g_box
            fine = body_val.copy()
            fine[fr, fc] = v
            sig[k, f] = band_limit(fine, (R, C), os_, acq)
            if values2 is not None and sig2 is not None:
                fine2 = values2[Tbody]
                fine2[fr, fc] = values2[T]
                sig2[k, f] = band_limit(fine2, (R, C), os_, acq)
            lb = body_lab.copy()
            Tc = T[::os_, ::os_]
            lb[sr:er, sc:ec] = LABEL_OF_TISSUE[Tc]
            lab[k, f] = lb
            ede[k, f, sr:er, sc:ec] = is_ede[Tc]
    return RenderOut(sig, lab, ede, sig2)
