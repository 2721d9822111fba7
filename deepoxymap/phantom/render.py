"""Rendering one series of a subject: pixel grids, oversampled tissue maps, noise-free signal.

:func:`render_series` draws every slice x cardiac phase of a series with one value
per tissue code (a signal for cine/LGE, ms for maps) and returns the label and
edema maps on the same grid. No randomness: everything random was sampled before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
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

__all__ = ["Grid", "RenderOut", "downsample", "render_series", "sample_coords"]


@dataclass
class Grid:
    """One series' pixel grid: shape ``(rows, cols)``, spacing ``(dr, dc)`` mm, LV centre pixel."""

    shape: tuple[int, int]
    spacing: tuple[float, float]
    center_rc: tuple[float, float]


def sample_coords(
    grid: Grid,
    os_: int,
    shift: tuple[float, float],
    rot_deg: float,
    rows: slice | None = None,
    cols: slice | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Anatomical (X, Y) mm of the oversampled sample points of ``grid`` (optionally a block)."""
    R, C = grid.shape
    dr, dc = grid.spacing
    r0, c0 = grid.center_rc
    rr = (np.arange(R * os_, dtype=np.float32) + 0.5) / os_ - 0.5
    cc = (np.arange(C * os_, dtype=np.float32) + 0.5) / os_ - 0.5
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


def downsample(a: NDArray[Any], os_: int) -> NDArray[np.float32]:
    """Mean over ``os_ x os_`` blocks (oversampled -> output pixels), float32."""
    R, C = a.shape[0] // os_, a.shape[1] // os_
    return a.reshape(R, os_, C, os_).mean(axis=(1, 3), dtype=np.float32)


@dataclass
class RenderOut:
    """Noise-free rendering of one series: ``signal`` float32 ``[slice, frame, R, C]``,
    ``labels`` uint8 same shape, ``edema`` bool same shape."""

    signal: NDArray[np.float32]
    labels: NDArray[np.uint8]
    edema: NDArray[np.bool_]


def render_series(
    subj: Subject,
    grid: Grid,
    phases: NDArray[np.float64],
    values: NDArray[np.float32],
    myo_het: list[NDArray[np.float32]] | None,
    shift: tuple[float, float],
    os_: int,
    *,
    flow: bool = False,
) -> RenderOut:
    """Render all slices x phases of one series with per-tissue values.

    Args:
        values: float32 ``(N_TISSUE,)`` value per tissue code (signal or ms).
        myo_het: per slice ``(N_THETA,)`` multiplicative modulation of myocardial codes
            (BOLD heterogeneity), or ``None``.
        shift: in-plane heart shift (right, down) mm for breathing / misregistration.
        flow: modulate blood-pool values by a smooth travelling pattern (bSSFP inflow
            inhomogeneity; cine only).
    """
    R, C = grid.shape
    n_s, n_f = len(subj.slices), len(phases)
    sig = np.zeros((n_s, n_f, R, C), np.float32)
    lab = np.zeros((n_s, n_f, R, C), np.uint8)
    ede = np.zeros((n_s, n_f, R, C), bool)
    rot = subj.params["rotation_deg"]
    is_myo = np.zeros(N_TISSUE, bool)
    is_myo[list(MYO_CODES) + [TISSUE["papillary"]]] = True
    is_ede = np.zeros(N_TISSUE, bool)
    is_ede[list(EDEMA_CODES)] = True
    c_idx = os_ // 2
    is_blood = np.zeros(N_TISSUE, bool)
    is_blood[[TISSUE["lv_blood"], TISSUE["rv_blood"]]] = True
    flow_amp, kx, ky, p1, p2 = subj.params.get("flow", [0.0, 0.0, 0.0, 0.0, 0.0]) if flow else [0.0] * 5
    # heart bounding box (output pixels)
    ext = 0.0
    for sh in subj.slices:
        ext = max(ext, float(np.max(sh.r_ed + sh.wall_ed + sh.rv_depth + sh.fat)) + sh.rv_wall + 8.0)
    r0, c0 = grid.center_rc
    hr = math.ceil(ext / grid.spacing[0]) + 2
    hc = math.ceil(ext / grid.spacing[1]) + 2
    sr = max(0, int(r0 + shift[1] / grid.spacing[0]) - hr)
    er = min(R, int(r0 + shift[1] / grid.spacing[0]) + hr + 1)
    sc = max(0, int(c0 + shift[0] / grid.spacing[1]) - hc)
    ec = min(C, int(c0 + shift[0] / grid.spacing[1]) + hc + 1)
    Xb, Yb = sample_coords(grid, os_, shift, rot, slice(sr * os_, er * os_), slice(sc * os_, ec * os_))
    X, Y = sample_coords(grid, os_, shift, rot)
    for k, sh in enumerate(subj.slices):
        Tbody = render_body(X, Y, subj, k)
        body_sig = downsample(values[Tbody], os_)
        body_lab = LABEL_OF_TISSUE[Tbody[c_idx::os_, c_idx::os_]]
        Tb0 = Tbody[sr * os_ : er * os_, sc * os_ : ec * os_]
        for f, ph in enumerate(phases):
            c = float(contraction(ph, subj.params["es_phase"], subj.params["relax_phase"]))
            T, ti = render_heart(Xb, Yb, Tb0.copy(), sh, c, subj)
            v = values[T]
            if flow_amp > 0:
                fl = 1.0 + flow_amp * np.sin(kx * Xb + 2 * np.pi * ph + p1) * np.cos(ky * Yb - 2 * np.pi * ph + p2)
                v = np.where(is_blood[T], v * fl.astype(np.float32), v)
            if myo_het is not None:
                v = np.where(is_myo[T], v * myo_het[k][ti], v)
            img = body_sig.copy()
            img[sr:er, sc:ec] = downsample(v, os_)
            sig[k, f] = img
            lb = body_lab.copy()
            Tc = T[c_idx::os_, c_idx::os_]
            lb[sr:er, sc:ec] = LABEL_OF_TISSUE[Tc]
            lab[k, f] = lb
            ede[k, f, sr:er, sc:ec] = is_ede[Tc]
    return RenderOut(sig, lab, ede)
