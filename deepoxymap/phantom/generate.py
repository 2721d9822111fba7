"""Subject and cohort generation: sampling -> rendering -> DICOM + ground truth.

Per subject (``SUBJECT/``, CONTRACTS.md):

* ``dicom/os_baseline``, ``os_hv-end``, ``os_bh-start``, ``os_bh-end``: bSSFP cine
  (3 slices x ``n_frames``) at the manoeuvre time points;
* ``dicom/lge``, ``dicom/t1map``, ``dicom/t2map``: one image per slice;
* ``truth/labels.npz``: ``<uid>`` uint8 ``[slice,row,col]`` (OS series: at the
  end-systolic frame, ``truth.json["series"][key]["label_frame"]``), ``<uid>__edema``
  bool, and for OS series ``<uid>__cine`` uint8 ``[slice,frame,row,col]``;
* ``truth/truth.json``: class, sub-type, site, every sampled parameter, AHA
  segment transmurality, series keys -> uids.

Randomness: subject ``i`` of a cohort with seed ``s`` uses
``SeedSequence([s, i])`` only, so subjects can be generated in any order or in
parallel and the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

from deepoxymap.errors import PhantomError
from deepoxymap.phantom.anatomy import (
    EDEMA_CODES,
    LABEL_OF_TISSUE,
    LEVELS,
    MYO_CODES,
    N_THETA,
    N_TISSUE,
    THETA,
    TISSUE,
    Subject,
    aha_segment,
    contraction,
    render_body,
    render_heart,
    sample_subject,
    smooth_periodic,
)
from deepoxymap.phantom.dicom import SeriesMeta, det_uid, write_series
from deepoxymap.phantom.params import COHORTS, CohortSpec, OsEffect, PhantomParams, SiteParams, TissueRelax

OS_KEYS = ("os_baseline", "os_hv-end", "os_bh-start", "os_bh-end")
MAP_KEYS = ("lge", "t1map", "t2map")


# ---------------------------------------------------------------------------
# physics
# ---------------------------------------------------------------------------


def bssfp_signal(rho: float, t1_ms: float, t2_ms: float, flip_deg: float, te_ms: float) -> float:
    """bSSFP steady-state magnitude (MRXCAT, DOMAIN 6.2 step 3), arbitrary units.

    ``S = rho sin(a) / ((T1/T2 + 1) - cos(a) (T1/T2 - 1)) * exp(-TE/T2)``.
    """
    a = math.radians(flip_deg)
    q = t1_ms / t2_ms
    return rho * math.sin(a) / ((q + 1.0) - math.cos(a) * (q - 1.0)) * math.exp(-te_ms / t2_ms)


def _clipn(rng: np.random.Generator, ms: tuple[float, float], lo: float = -5.0, hi: float = 30.0) -> float:
    return float(np.clip(rng.normal(ms[0], ms[1]), lo, hi))


# ---------------------------------------------------------------------------
# grids and geometry
# ---------------------------------------------------------------------------


@dataclass
class Grid:
    """One series' pixel grid: shape ``(rows, cols)``, spacing ``(dr, dc)`` mm, LV centre pixel."""

    shape: tuple[int, int]
    spacing: tuple[float, float]
    center_rc: tuple[float, float]


def _rotation(axis: NDArray[np.float64], ang: float) -> NDArray[np.float64]:
    axis = axis / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(ang) * K + (1 - math.cos(ang)) * K @ K


def sample_orientation(rng: np.random.Generator, jitter_deg: float) -> dict[str, Any]:
    """Oblique SAX orientation (LPS): long axis towards left-anterior-inferior, jittered.

    Returns:
        dict with ``row``, ``col`` (direction cosines, lists), ``apex`` (base->apex unit
        vector) and ``center`` (LV centre of the mid slice, mm). The slice normal
        ``row x col`` points apex -> base; screen-up is anterior, screen-left the RV.
    """
    u = np.array([0.60, -0.45, -0.66])
    u /= np.linalg.norm(u)
    ax = rng.normal(size=3)
    ax -= (ax @ u) * u
    u = _rotation(ax, math.radians(rng.uniform(0, jitter_deg))) @ u
    ant = np.array([0.0, -1.0, 0.0])
    a = ant - (ant @ u) * u
    a /= np.linalg.norm(a)
    col = -a
    row = np.cross(col, -u)
    row /= np.linalg.norm(row)
    center = np.array([rng.uniform(20, 45), rng.uniform(-40, -15), rng.uniform(-70, -40)])
    return {"row": row.tolist(), "col": col.tolist(), "apex": u.tolist(), "center": center.tolist()}


# ---------------------------------------------------------------------------
# rendering of one series
# ---------------------------------------------------------------------------


def _sample_coords(
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


def _down(a: NDArray[Any], os_: int) -> NDArray[np.float32]:
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
    Xb, Yb = _sample_coords(grid, os_, shift, rot, slice(sr * os_, er * os_), slice(sc * os_, ec * os_))
    X, Y = _sample_coords(grid, os_, shift, rot)
    for k, sh in enumerate(subj.slices):
        Tbody = render_body(X, Y, subj, k)
        body_sig = _down(values[Tbody], os_)
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
            img[sr:er, sc:ec] = _down(v, os_)
            sig[k, f] = img
            lb = body_lab.copy()
            Tc = T[c_idx::os_, c_idx::os_]
            lb[sr:er, sc:ec] = LABEL_OF_TISSUE[Tc]
            lab[k, f] = lb
            ede[k, f, sr:er, sc:ec] = is_ede[Tc]
    return RenderOut(sig, lab, ede)


# ---------------------------------------------------------------------------
# per-series value tables
# ---------------------------------------------------------------------------


def _tissue_table(t: TissueRelax | tuple[float, float, float]) -> tuple[float, float, float]:
    if isinstance(t, TissueRelax):
        return (t.rho, t.t1_ms, t.t2_ms)
    return t


def relax_table(subj: Subject, sp: SiteParams) -> dict[int, tuple[float, float, float]]:
    """(rho, T1 ms, T2 ms) per tissue code for this subject."""
    tis = subj.params["tissue"]
    ft = sp.tissues
    myo = (0.80, tis["t1_myo_ms"], tis["t2_myo_ms"])
    blood = (0.95, tis["t1_blood_ms"], tis["t2_blood_ms"])
    scar = (0.80, tis.get("t1_scar_ms", myo[1]), tis.get("t2_scar_ms", myo[2]))
    ede = (0.82, tis.get("t1_edema_ms", myo[1]), tis.get("t2_edema_ms", myo[2]))
    scar_ede = (0.82, max(scar[1], ede[1]), max(scar[2], ede[2]))
    return {
        TISSUE["air"]: (0.0, 1000.0, 50.0),
        TISSUE["lv_blood"]: blood,
        TISSUE["myo"]: myo,
        TISSUE["rv_blood"]: blood,
        TISSUE["scar"]: scar,
        TISSUE["edema"]: ede,
        TISSUE["mvo"]: scar,
        TISSUE["rv_wall"]: myo,
        TISSUE["epi_fat"]: _tissue_table(ft.fat),
        TISSUE["sub_fat"]: _tissue_table(ft.fat),
        TISSUE["muscle"]: _tissue_table(ft.muscle),
        TISSUE["lung"]: _tissue_table(ft.lung),
        TISSUE["liver"]: _tissue_table(ft.liver),
        TISSUE["aorta"]: blood,
        TISSUE["bone"]: _tissue_table(ft.bone),
        TISSUE["soft"]: _tissue_table(ft.soft),
        TISSUE["papillary"]: myo,
        TISSUE["territory"]: myo,
        TISSUE["scar_edema"]: scar_ede,
        TISSUE["vessel"]: blood,
    }


def bssfp_values(subj: Subject, sp: SiteParams, flip: float, te: float, inflow: float) -> NDArray[np.float32]:
    """bSSFP signal per tissue code, ``(N_TISSUE,)`` float32 (blood x ``inflow``)."""
    tab = relax_table(subj, sp)
    v = np.zeros(N_TISSUE, np.float32)
    for code, (rho, t1, t2) in tab.items():
        v[code] = bssfp_signal(rho, t1, t2, flip, te) if rho > 0 else 0.0
    for code in (TISSUE["lv_blood"], TISSUE["rv_blood"], TISSUE["aorta"]):
        v[code] *= inflow
    return v


def lge_values(subj: Subject, rng: np.random.Generator) -> NDArray[np.float32]:
    """Normalised LGE intensity per tissue code (DOMAIN 7 LGE row)."""
    tis = subj.params["tissue"]
    v = np.zeros(N_TISSUE, np.float32)
    v[TISSUE["lv_blood"]] = v[TISSUE["rv_blood"]] = v[TISSUE["aorta"]] = tis["lge_blood"]
    for c in ("myo", "territory", "papillary", "rv_wall"):
        v[TISSUE[c]] = tis["lge_myo"]
    v[TISSUE["edema"]] = tis["lge_myo"] * 1.6
    scar = tis.get("lge_scar", 0.8)
    v[TISSUE["scar"]] = v[TISSUE["scar_edema"]] = scar
    v[TISSUE["mvo"]] = tis.get("lge_mvo", 0.1)
    v[TISSUE["epi_fat"]] = v[TISSUE["sub_fat"]] = rng.uniform(0.35, 0.55)
    v[TISSUE["muscle"]] = rng.uniform(0.10, 0.18)
    v[TISSUE["soft"]] = rng.uniform(0.15, 0.25)
    v[TISSUE["liver"]] = rng.uniform(0.30, 0.45)
    v[TISSUE["lung"]] = 0.03
    v[TISSUE["vessel"]] = tis["lge_blood"] * 0.8
    v[TISSUE["bone"]] = 0.08
    return v


def map_values(subj: Subject, sp: SiteParams, which: str) -> NDArray[np.float32]:
    """T1 or T2 (ms) per tissue code (air 0)."""
    tab = relax_table(subj, sp)
    i = 1 if which == "t1" else 2
    v = np.zeros(N_TISSUE, np.float32)
    for code, t in tab.items():
        v[code] = t[i] if t[0] > 0 else 0.0
    v[TISSUE["lung"]] = 500.0 if which == "t1" else 25.0
    if which == "t1":
        # MOLLI underestimates short-T1 fat; blood as measured
        v[TISSUE["epi_fat"]] = v[TISSUE["sub_fat"]] = 280.0 if sp.field_t > 2 else 260.0
    else:
        v[TISSUE["epi_fat"]] = v[TISSUE["sub_fat"]] = 70.0
        v[TISSUE["lv_blood"]] = v[TISSUE["rv_blood"]] = v[TISSUE["aorta"]] = min(tab[TISSUE["lv_blood"]][2], 220.0)
    return v


# ---------------------------------------------------------------------------
# OS effects
# ---------------------------------------------------------------------------


def sample_os(subj: Subject, rng: np.random.Generator, p: PhantomParams, sp: SiteParams) -> dict[str, Any]:
    """Sample the subject's OS (BOLD) responses per region, scaled for the field strength."""
    cp = p.classes[subj.cls]
    scale = float(rng.uniform(*sp.os_scale))

    def eff(e: OsEffect) -> dict[str, float]:
        return {"hv_pct": scale * _clipn(rng, e.hv_pct, -30.0, 10.0), "bh_pct": scale * _clipn(rng, e.bh_pct)}

    out: dict[str, Any] = {"field_scale": scale, "remote": eff(cp.os_remote), "lesion": eff(cp.os_lesion)}
    out["core"] = eff(cp.os_core) if cp.os_core else dict(out["lesion"])
    if subj.subtype == "global":
        # whole ring edematous: DOMAIN 7 "global edema: whole ring +3 +- 5 %"
        out["lesion"] = {"hv_pct": scale * _clipn(rng, (-5.0, 8.0), -30, 10), "bh_pct": scale * _clipn(rng, (3.0, 5.0))}
    out["bh_start_pct"] = float(rng.normal(*p.bh_start_jitter_pct))
    out["blood_hv_pct"] = float(rng.uniform(*p.blood_hv_pct))
    out["blood_bh_pct"] = float(rng.uniform(*p.blood_bh_pct))
    het_sd = float(rng.uniform(*p.het_segment_sd_pct))
    out["het_sd_pct"] = het_sd
    out["_het"] = {tp: [smooth_periodic(rng, het_sd, kmax=3) for _ in LEVELS] for tp in ("hv", "bh")}
    return out


def os_factor(resp: dict[str, Any], region: str, tp: str) -> float:
    """Multiplicative OS factor of a region at a time point (vs baseline).

    Args:
        resp: the subject's responses from :func:`sample_os`.
        region: ``remote``, ``lesion`` or ``core``.
        tp: ``baseline``, ``hv-end``, ``bh-start`` or ``bh-end``.
    """
    e = resp[region]
    hv = 1.0 + e["hv_pct"] / 100.0
    if tp == "baseline":
        return 1.0
    if tp == "hv-end":
        return hv
    bs = hv * (1.0 + resp["bh_start_pct"] / 100.0)
    if tp == "bh-start":
        return bs
    return bs * (1.0 + e["bh_pct"] / 100.0)


def blood_factor(resp: dict[str, Any], tp: str) -> float:
    """Blood-pool OS factor (DOMAIN 6.2 step 4)."""
    if tp == "baseline":
        return 1.0
    f = 1.0 + resp["blood_hv_pct"] / 100.0
    if tp == "hv-end" or tp == "bh-start":
        return f
    return f * (1.0 + resp["blood_bh_pct"] / 100.0)


# ---------------------------------------------------------------------------
# image formation helpers
# ---------------------------------------------------------------------------


def coil_map(grid: Grid, coils: list[tuple[float, float, float]], length: float, rot_deg: float) -> NDArray[np.float32]:
    """Smooth receive sensitivity ``(rows, cols)`` normalised to 1 at the LV centre.

    Args:
        coils: (X, Y, weight) in anatomical mm relative to the LV centre.
        length: decay length L (mm) of ``exp(-|r - r_c| / L)``.
    """
    X, Y = _sample_coords(grid, 1, (0.0, 0.0), rot_deg)
    b = np.zeros(grid.shape, np.float32)
    b0 = 0.0
    for cx, cy, w in coils:
        b += w * np.exp(-np.hypot(X - cx, Y - cy) / length)
        b0 += w * math.exp(-math.hypot(cx, cy) / length)
    return (b / b0).astype(np.float32)


def texture(grid: Grid, rng: np.random.Generator, sd: float) -> NDArray[np.float32]:
    """Smooth multiplicative tissue texture ``1 + N(0, sd)`` (rows, cols)."""
    n1 = gaussian_filter(rng.standard_normal(grid.shape), 1.0)
    n2 = gaussian_filter(rng.standard_normal(grid.shape), 4.0)
    n = n1 / max(float(n1.std()), 1e-9) + 0.7 * n2 / max(float(n2.std()), 1e-9)
    n *= sd / max(float(n.std()), 1e-9)
    return (1.0 + n).astype(np.float32)


def band_map(grid: Grid, rng: np.random.Generator, rot_deg: float) -> tuple[NDArray[np.float32], dict[str, float]]:
    """An off-resonance (bSSFP) dark band near the lateral wall: multiplier (rows, cols)."""
    X, Y = _sample_coords(grid, 1, (0.0, 0.0), rot_deg)
    ang = rng.uniform(-40, 40)
    off = rng.uniform(30, 70)
    w = rng.uniform(1.5, 3.0)
    a = math.radians(ang)
    dist = X * math.cos(a) + Y * math.sin(a) - off + 0.002 * (Y**2)
    m = 1.0 - 0.85 * np.exp(-((dist / w) ** 2))
    return m.astype(np.float32), {"angle_deg": ang, "offset_mm": off, "width_mm": w}


def rician(img: NDArray[np.float32], sigma: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """Magnitude of signal plus complex Gaussian noise (Rician), float32."""
    n1 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    n2 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    return np.sqrt((img + n1) ** 2 + n2**2)


def to_u16(a: NDArray[np.floating[Any]], hi: int = 4095) -> NDArray[np.uint16]:
    """Round and clip to ``[0, hi]`` uint16."""
    return np.clip(np.rint(a), 0, hi).astype(np.uint16)


# ---------------------------------------------------------------------------
# one subject
# ---------------------------------------------------------------------------


def _segment_truth(subj: Subject) -> dict[str, Any]:
    """AHA segment transmurality of scar and edema per slice level, from the ED bands."""
    out: dict[str, Any] = {"scar": {}, "edema": {}, "mvo": {}}
    for sh in subj.slices:
        seg = aha_segment(THETA, sh.level)
        for name, bands in (("scar", sh.scar), ("edema", sh.edema), ("mvo", sh.mvo)):
            if not bands:
                continue
            cov = np.zeros(N_THETA)
            for b in bands:
                cov = np.maximum(cov, b.coverage())
            for s in np.unique(seg):
                m = seg == s
                c = cov[m]
                extent = float(np.mean(c > 0.02))
                if extent <= 0:
                    continue
                out[name][str(int(s))] = {
                    "extent": round(extent, 3),
                    "transmurality": round(float(np.mean(c[c > 0.02])), 3),
                    "max_transmurality": round(float(c.max()), 3),
                }
    out["scar_segments"] = sorted(int(s) for s, v in out["scar"].items() if v["extent"] >= 0.1)
    out["edema_segments"] = sorted(int(s) for s, v in out["edema"].items() if v["extent"] >= 0.1)
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, float):
        return round(x, 5)
    return x


def generate_subject(
    out_dir: Path,
    subject_id: str,
    cls: str,
    subtype: str,
    site: str,
    seed: int,
    index: int,
    params: PhantomParams | None = None,
    *,
    n_frames: int | None = None,
) -> dict[str, Any]:
    """Generate and write one subject folder ``out_dir/subject_id``.

    Args:
        seed, index: randomness comes from ``SeedSequence([seed, index])`` only.
        n_frames: override the site's cine phases (demo cases).

    Returns:
        the truth dict written to ``truth/truth.json``.
    """
    p = params or PhantomParams()
    if cls not in p.classes:
        raise PhantomError(f"unknown class {cls!r}", hint=f"one of {sorted(p.classes)}")
    if site not in p.sites:
        raise PhantomError(f"unknown site {site!r}")
    sp = p.sites[site]
    ss = np.random.SeedSequence([int(seed), int(index)])
    r_anat, r_scan, r_os, r_noise = (np.random.default_rng(s) for s in ss.spawn(4))
    subj = sample_subject(r_anat, subject_id, cls, subtype, site, p)
    nf = int(n_frames or sp.n_frames)
    os_ = p.oversample
    a = p.anatomy

    # scanner / protocol (class-independent)
    scan: dict[str, Any] = {
        "field_t": sp.field_t,
        "tr_ms": float(r_scan.uniform(*sp.tr_ms)),
        "flip_deg": float(r_scan.uniform(*sp.flip_deg)),
        "snr_myo": float(r_scan.uniform(*sp.snr_myo)),
        "lge_snr_blood": float(r_scan.uniform(*sp.lge_snr_blood)),
        "lge_ti_ms": float(r_scan.uniform(*sp.lge_ti_ms)),
        "gain": float(r_scan.uniform(*sp.gain)),
        "lge_gain": float(r_scan.uniform(1400.0, 2600.0)),
        "inflow": float(r_scan.uniform(1.05, 1.35)),
        "os_pixel_mm": float(r_scan.uniform(*sp.os_pixel_mm)),
        "lge_pixel_mm": float(r_scan.uniform(*sp.lge_pixel_mm)),
        "map_pixel_mm": float(r_scan.uniform(*sp.map_pixel_mm)),
        "slice_thickness_mm": float(r_scan.choice(np.asarray(sp.slice_thickness_mm))),
        "n_frames": nf,
        "bh_duration_s": float(r_scan.uniform(30.0, 45.0)),
    }
    scan["te_ms"] = scan["tr_ms"] / 2.0
    rr = 60000.0 / subj.params["heart_rate_bpm"]
    scan["rr_ms"] = rr
    orient = sample_orientation(r_scan, a.axis_jitter_deg)
    row, col, apex = (np.asarray(orient[k]) for k in ("row", "col", "apex"))
    gap = subj.params["slice_gap_mm"]
    centers = [np.asarray(orient["center"]) + s * gap * apex for s in (-1.0, 0.0, 1.0)]
    ox, oy = subj.params["offset_mm"]
    rot = subj.params["rotation_deg"]

    def make_grid(shape: tuple[int, int], px: float) -> tuple[Grid, NDArray[np.float64]]:
        R, C = shape
        r0 = (R - 1) / 2.0 + oy / px
        c0 = (C - 1) / 2.0 + ox / px
        ipps = np.stack([cc - c0 * px * row - r0 * px * col for cc in centers])
        return Grid((R, C), (px, px), (r0, c0)), ipps

    # coils, texture, banding (fixed in the exam's frame)
    coils = [
        (float(r_scan.uniform(-50, 30)), float(r_scan.uniform(90, 130)), float(r_scan.uniform(0.7, 1.0))),
        (float(r_scan.uniform(-50, 30)), float(r_scan.uniform(-170, -130)), float(r_scan.uniform(0.5, 0.9))),
    ]
    coil_len = float(r_scan.uniform(90, 170))
    banding = bool(r_scan.uniform() < sp.banding_prob)

    osr = sample_os(subj, r_os, p, sp)
    study_uid = det_uid("study", seed, index, subject_id)
    for_uid = det_uid("for", seed, index, subject_id)
    study_time = 9 * 3600.0 + float(r_scan.uniform(0, 8 * 3600))
    extra = {
        "study_date": f"2026{1 + index % 12:02d}{1 + index % 28:02d}",
        "study_time_s": study_time,
        "manufacturer": sp.manufacturer,
        "model": sp.model,
        "institution": f"SYNTHETIC SITE {sp.name}",
        "station": f"SYNTH{sp.name}",
        "patient_name": f"SYNTHETIC^{subject_id}",
        "patient_id": f"SYN-{subject_id}",
        "field_t": sp.field_t,
    }
    sdir = out_dir / subject_id
    ddir = sdir / "dicom"
    tdir = sdir / "truth"
    tdir.mkdir(parents=True, exist_ok=True)
    labels_out: dict[str, NDArray[Any]] = {}
    series_truth: dict[str, Any] = {}
    iop = (*row.tolist(), *col.tolist())

    # ---- OS-CMR cine at the four time points
    og, oipps = make_grid(sp.os_matrix, scan["os_pixel_mm"])
    phases = np.arange(nf) / nf
    trig = phases * rr
    cvals = contraction(phases, subj.params["es_phase"], subj.params["relax_phase"])
    es_frame = int(np.argmax(cvals))
    base = bssfp_values(subj, sp, scan["flip_deg"], scan["te_ms"], scan["inflow"])
    cm = coil_map(og, coils, coil_len, rot)
    tex = texture(og, r_scan, p.texture_sd)
    bmul = np.ones(og.shape, np.float32)
    if banding:
        bmul, binfo = band_map(og, r_scan, rot)
        scan["banding"] = binfo
    sigma = float(base[TISSUE["myo"]]) / scan["snr_myo"]
    scan["noise_sigma_signal"] = sigma
    bshift = a.breathing_shift_mm
    region_of = {
        TISSUE["myo"]: "remote",
        TISSUE["papillary"]: "remote",
        TISSUE["territory"]: "lesion",
        TISSUE["scar"]: "lesion",
        TISSUE["edema"]: "lesion",
        TISSUE["scar_edema"]: "lesion",
        TISSUE["mvo"]: "core",
    }
    if subj.cls == "ischemic":
        region_of[TISSUE["scar"]] = "core" if subj.subtype.endswith("transmural") else "lesion"
    if subj.cls == "healthy":
        region_of = {k: "remote" for k in region_of}
    for si, (tp, desc, t_s) in enumerate(p.timepoints):
        key = OS_KEYS[si]
        if tp == "bh-end":
            t_s = p.timepoints[2][2] + scan["bh_duration_s"]
        vals = base.copy()
        for code, reg in region_of.items():
            vals[code] = base[code] * os_factor(osr, reg, tp)
        for code in (TISSUE["lv_blood"], TISSUE["rv_blood"]):
            vals[code] = base[code] * blood_factor(osr, tp)
        het = []
        for k in range(len(LEVELS)):
            h = np.ones(N_THETA)
            if tp != "baseline":
                h = h * (1.0 + osr["_het"]["hv"][k] / 100.0)
            if tp == "bh-end":
                h = h * (1.0 + osr["_het"]["bh"][k] / 100.0)
            het.append(h.astype(np.float32))
        ang = r_scan.uniform(0, 2 * np.pi)
        mag = r_scan.uniform(0, bshift) if tp != "baseline" else 0.0
        shift = (float(mag * np.cos(ang)), float(mag * np.sin(ang)))
        ro = render_series(subj, og, phases, vals, het, shift, os_, flow=True)
        img = ro.signal * (cm * tex * bmul)[None, None]
        img = rician(img, sigma, r_noise) * scan["gain"] * 1000.0
        px = to_u16(img)
        uid = det_uid("series", seed, index, subject_id, key)
        meta = SeriesMeta(
            kind="os",
            description=desc,
            image_type=("ORIGINAL", "PRIMARY", "M", "NONE"),
            series_uid=uid,
            study_uid=study_uid,
            for_uid=for_uid,
            series_number=10 + si,
            acq_time_s=study_time + t_s,
            pixel_spacing=og.spacing,
            iop=iop,
            ipps=oipps,
            slice_thickness=scan["slice_thickness_mm"],
            trigger_ms=trig,
            rr_ms=rr,
            tr_ms=scan["tr_ms"],
            te_ms=scan["te_ms"],
            ti_ms=None,
            flip_deg=scan["flip_deg"],
            rescale=None,
            window=(float(np.percentile(px, 99.5)) / 2.0, float(np.percentile(px, 99.5))),
            extra=extra,
        )
        write_series(ddir / key, px[:, :, :, :], meta, f"{seed}-{index}")
        labels_out[uid] = ro.labels[:, es_frame]
        labels_out[uid + "__edema"] = ro.edema[:, es_frame]
        labels_out[uid + "__cine"] = ro.labels
        series_truth[key] = {
            "uid": uid,
            "description": desc,
            "role": "os-cmr",
            "timepoint": tp,
            "acquisition_offset_s": t_s,
            "shape": list(og.shape),
            "pixel_spacing_mm": list(og.spacing),
            "heart_shift_mm": list(shift),
            "label_frame": es_frame,
            "n_frames": nf,
        }

    # ---- LGE, T1, T2 (mid-diastole, misregistered)
    dia_phase = np.array([0.75])
    mis = a.misregistration_mm
    for mi, key in enumerate(MAP_KEYS):
        ang = r_scan.uniform(0, 2 * np.pi)
        mag = r_scan.uniform(0, mis)
        shift = (float(mag * np.cos(ang)), float(mag * np.sin(ang)))
        if key == "lge":
            g, ipps = make_grid(sp.lge_matrix, scan["lge_pixel_mm"])
            vals = lge_values(subj, r_scan)
            ro = render_series(subj, g, dia_phase, vals, None, shift, os_)
            img = (
                ro.signal * coil_map(g, coils, coil_len, rot)[None, None] * texture(g, r_scan, p.texture_sd)[None, None]
            )
            lsig = float(vals[TISSUE["lv_blood"]]) / scan["lge_snr_blood"]
            img = rician(img, lsig, r_noise) * scan["lge_gain"]
            px = to_u16(img)
            desc, itype, rescale = "LGE_PSIR_SAX", ("ORIGINAL", "PRIMARY", "M", "NONE"), None
            ti, tr, te, fl = scan["lge_ti_ms"], sp.lge_tr_ms, sp.lge_te_ms, sp.lge_flip_deg
            win = (float(np.percentile(px, 99.5)) / 2.0, float(np.percentile(px, 99.5)))
        else:
            g, ipps = make_grid(sp.map_matrix, scan["map_pixel_mm"])
            which = "t1" if key == "t1map" else "t2"
            vals = map_values(subj, sp, which)
            ro = render_series(subj, g, dia_phase, vals, None, shift, os_)
            m = ro.signal
            sd_tab = np.full(N_TISSUE, 0.025 if which == "t1" else 0.05, np.float32)
            sd_tab[TISSUE["lung"]] = 0.6
            sd_tab[[TISSUE["lv_blood"], TISSUE["rv_blood"], TISSUE["aorta"]]] *= 2.0
            rel = render_series(subj, g, dia_phase, sd_tab, None, shift, os_).signal
            noise = r_noise.standard_normal(m.shape).astype(np.float32) * (rel * m)
            m = np.where(m < 1.0, 0.0, np.abs(m + noise))  # air stays 0
            slope = 1.0 if which == "t1" else 0.1
            px = to_u16(m / slope)
            desc = "T1MAP_MOLLI" if which == "t1" else "T2MAP"
            itype = ("DERIVED", "PRIMARY", "T1 MAP" if which == "t1" else "T2 MAP")
            rescale = (slope, 0.0, "MS")
            ti, tr, te, fl = None, (2.7 if which == "t1" else 3.0), (1.1 if which == "t1" else 1.3), 35.0
            win = (
                (1200.0, 1000.0)
                if which == "t1" and sp.field_t > 2
                else (1000.0, 900.0)
                if which == "t1"
                else (50.0, 60.0)
            )
        uid = det_uid("series", seed, index, subject_id, key)
        meta = SeriesMeta(
            kind=key,
            description=desc,
            image_type=itype,
            series_uid=uid,
            study_uid=study_uid,
            for_uid=for_uid,
            series_number=20 + mi,
            acq_time_s=study_time + (900.0 + 60 * mi if key == "lge" else 30.0 + 10 * mi),
            pixel_spacing=g.spacing,
            iop=iop,
            ipps=ipps,
            slice_thickness=scan["slice_thickness_mm"],
            trigger_ms=dia_phase * rr,
            rr_ms=rr,
            tr_ms=tr,
            te_ms=te,
            ti_ms=ti,
            flip_deg=fl,
            rescale=rescale,
            window=win,
            extra=extra,
        )
        write_series(ddir / key, px, meta, f"{seed}-{index}")
        labels_out[uid] = ro.labels[:, 0]
        labels_out[uid + "__edema"] = ro.edema[:, 0]
        series_truth[key] = {
            "uid": uid,
            "description": desc,
            "role": {"lge": "lge", "t1map": "t1-map", "t2map": "t2-map"}[key],
            "timepoint": None,
            "shape": list(g.shape),
            "pixel_spacing_mm": list(g.spacing),
            "heart_shift_mm": list(shift),
            "label_frame": 0,
            "n_frames": 1,
        }

    np.savez_compressed(tdir / "labels.npz", **labels_out)
    os_public = {k: v for k, v in osr.items() if not k.startswith("_")}
    truth = {
        "subject": subject_id,
        "class": cls,
        "subtype": subtype,
        "site": site,
        "field_strength": sp.field_t,
        "seed": int(seed),
        "index": int(index),
        "generator": "deepoxymap.phantom 0.1",
        "levels": list(LEVELS),
        "slice_order": "base->apex (labels.npz slices and DICOM IM_<slice> numbering)",
        "label_values": {
            "0": "background",
            "1": "LV blood",
            "2": "LV myocardium",
            "3": "RV blood",
            "4": "scar",
            "5": "edema (no scar)",
            "6": "MVO",
        },
        "aha_convention": "septal-midpoint anchored (RV centre = septal mid-point); insertion points ~ +-60 deg",
        "anatomy": subj.params,
        "body": subj.body,
        "scanner": scan,
        "orientation": orient,
        "os_response": os_public,
        "es_frame": es_frame,
        "segments": _segment_truth(subj),
        "series": series_truth,
    }
    (tdir / "truth.json").write_text(json.dumps(_jsonable(truth), indent=1))
    return truth


# ---------------------------------------------------------------------------
# cohorts
# ---------------------------------------------------------------------------


def _largest_remainder(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``total`` proportionally to ``weights`` (largest-remainder rounding, stable order)."""
    s = sum(weights.values())
    raw = {k: total * w / s for k, w in weights.items()}
    out = {k: math.floor(v) for k, v in raw.items()}
    rest = total - sum(out.values())
    order = sorted(weights, key=lambda k: (-(raw[k] - out[k]), list(weights).index(k)))
    for k in order[:rest]:
        out[k] += 1
    return out


def cohort_plan(spec: CohortSpec, seed: int, params: PhantomParams | None = None) -> list[dict[str, Any]]:
    """The subject list of a cohort: class, sub-type and site per subject, shuffled by ``seed``.

    Class counts are exact; each class is split over sites proportionally to the
    site sizes, and sub-types proportionally to their mix (largest remainder).
    Subject ids are assigned after shuffling so the id carries no class.

    Returns:
        list of dicts ``subject, class, subtype, site, index``.
    """
    p = params or PhantomParams()
    total = sum(spec.class_counts.values())
    if sum(spec.site_counts.values()) != total:
        raise PhantomError(f"site counts {spec.site_counts} do not add up to {total} subjects")
    # class x site table: largest remainder per class, then fix site totals
    table = {
        c: _largest_remainder(n, {s: float(m) for s, m in spec.site_counts.items()})
        for c, n in spec.class_counts.items()
    }
    sites = list(spec.site_counts)
    for _ in range(100):
        diff = {s: sum(table[c][s] for c in table) - spec.site_counts[s] for s in sites}
        over = [s for s in sites if diff[s] > 0]
        under = [s for s in sites if diff[s] < 0]
        if not over:
            break
        so, su = over[0], under[0]
        c = max((c for c in table if table[c][so] > 0), key=lambda c: table[c][so])
        table[c][so] -= 1
        table[c][su] += 1
    rows: list[dict[str, Any]] = []
    for c, per_site in table.items():
        n_c = sum(per_site.values())
        mix = {spec.fixed_subtypes[c]: 1.0} if c in spec.fixed_subtypes else p.classes[c].subtypes
        subs = _largest_remainder(n_c, mix)
        sub_list = [s for s, n in subs.items() for _ in range(n)]
        rng = np.random.default_rng([int(seed), 7919, list(table).index(c)])
        rng.shuffle(sub_list)
        site_list = [s for s, n in per_site.items() for _ in range(n)]
        for st, si in zip(sub_list, site_list, strict=True):
            rows.append({"class": c, "subtype": st, "site": si})
    order = np.random.default_rng([int(seed), 104729]).permutation(len(rows))
    plan = []
    for i, j in enumerate(order):
        r = dict(rows[int(j)])
        r["index"] = i
        r["subject"] = f"SUBJECT{i + 1:03d}"
        plan.append(r)
    return plan


def _gen_one(args: tuple[str, dict[str, Any], int, PhantomParams, int | None]) -> dict[str, Any]:
    out, row, seed, params, nf = args
    generate_subject(
        Path(out), row["subject"], row["class"], row["subtype"], row["site"], seed, row["index"], params, n_frames=nf
    )
    return row


def write_manifest(out: Path, rows: list[dict[str, Any]], params: PhantomParams) -> Path:
    """Write ``out/manifest.csv`` (CONTRACTS.md columns)."""
    path = out / "manifest.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "class", "subtype", "site", "field_strength", "path"])
        for r in sorted(rows, key=lambda r: r["subject"]):
            w.writerow(
                [r["subject"], r["class"], r["subtype"], r["site"], params.sites[r["site"]].field_t, r["subject"]]
            )
    return path


def generate_cohort(
    out: Path,
    cohort: str | CohortSpec = "study",
    seed: int = 0,
    *,
    params: PhantomParams | None = None,
    jobs: int = 1,
    limit: int | None = None,
    n_frames: int | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Generate a cohort into ``out`` and write ``manifest.csv``.

    Args:
        cohort: ``study`` (190 subjects), ``demo`` (one per class) or a :class:`CohortSpec`.
        jobs: worker processes.
        limit: only the first ``limit`` subjects of the plan (tests, benchmarks).
        n_frames: override cine phases.

    Returns:
        the manifest rows.
    """
    p = params or PhantomParams()
    spec = COHORTS[cohort] if isinstance(cohort, str) else cohort
    if isinstance(cohort, str) and cohort not in COHORTS:
        raise PhantomError(f"unknown cohort {cohort!r}", hint=f"one of {sorted(COHORTS)}")
    plan = cohort_plan(spec, seed, p)
    if limit is not None:
        plan = plan[:limit]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    args = [(str(out), r, seed, p, n_frames) for r in plan]
    done: list[dict[str, Any]] = []
    if jobs > 1 and len(plan) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            for i, r in enumerate(ex.map(_gen_one, args, chunksize=1)):
                done.append(r)
                if progress and (i + 1) % 10 == 0:
                    print(f"  {i + 1}/{len(plan)} subjects, {time.perf_counter() - t0:.0f} s", flush=True)
    else:
        for i, a_ in enumerate(args):
            done.append(_gen_one(a_))
            if progress and (i + 1) % 10 == 0:
                print(f"  {i + 1}/{len(plan)} subjects, {time.perf_counter() - t0:.0f} s", flush=True)
    write_manifest(out, done, p)
    return done


def default_jobs() -> int:
    """Worker count: at most 2 (the machine is shared)."""
    return max(1, min(2, os.cpu_count() or 1))
