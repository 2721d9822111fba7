"""The OS-CMR bSSFP cine at the four manoeuvre time points (baseline, HV end, BH start, BH end).

Per time point the myocardial and blood-pool bSSFP signals are scaled by the
subject's sampled OS (BOLD) responses (:func:`sample_os`, :func:`os_factor`,
:func:`blood_factor`), the heart is shifted by residual breathing, and the
series is written with its cine labels (every frame) and end-systolic labels.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.phantom.anatomy import LEVELS, N_THETA, N_TISSUE, TISSUE, Subject, contraction, smooth_periodic
from deepoxymap.phantom.exam import OS_KEYS, Exam, SeriesResult, draw_shift, percentile_window
from deepoxymap.phantom.imaging import (
    band_map,
    bssfp_signal,
    coil_map,
    fat_bssfp_sign,
    magnitude,
    relax_table,
    texture,
    to_u16,
)
from deepoxymap.phantom.params import ClassParams, OsRow, PhantomParams, SiteParams
from deepoxymap.phantom.render import kspace_noise, render_series, white_kspace

__all__ = [
    "FAT_CODES",
    "OS_KEYS",
    "PHASES",
    "CineResult",
    "blood_factor",
    "bssfp_values",
    "class_effects",
    "os_factor",
    "os_regions",
    "render_os_cine",
    "sample_os",
    "timepoint_heterogeneity",
]


# ---------------------------------------------------------------------------
# OS effects
# ---------------------------------------------------------------------------

PHASES = ("hv", "bh")
"""Manoeuvre phases of the OS response: ``hv`` (HV end vs baseline), ``bh`` (B-MORE: BH end vs BH start)."""


def _clip(x: float, lim: tuple[float, float]) -> float:
    return float(np.clip(x, lim[0], lim[1]))


def class_effects(cp: ClassParams, subtype: str) -> dict[str, dict[str, float]]:
    """Class effects at 3 T, percent: ``{"lesion": {"hv_pct", "bh_pct"}, "core": {...}}``.

    A region's effect is its DOMAIN 7 row mean minus the subject-level (remote) mean
    (DOMAIN 7 correction). Healthy: zeros. Edema ``global``: the global-ring row.
    No core row: the core has the lesion's effect.
    """
    sub = cp.os_subject
    row = cp.os_global if (subtype == "global" and cp.os_global is not None) else cp.os_lesion

    def eff(r: OsRow | None) -> dict[str, float]:
        if r is None:
            return {"hv_pct": 0.0, "bh_pct": 0.0}
        return {"hv_pct": r.hv_pct - sub.hv_pct[0], "bh_pct": r.bh_pct - sub.bh_pct[0]}

    lesion = eff(row)
    core = eff(cp.os_core) if cp.os_core is not None else dict(lesion)
    return {"lesion": lesion, "core": core}


def sample_os(subj: Subject, rng: np.random.Generator, p: PhantomParams, sp: SiteParams) -> dict[str, Any]:
    """Sample the subject's OS (BOLD) responses, regionally coherent (DOMAIN 7 correction).

    Per manoeuvre phase ``ph`` (``hv``, ``bh``), in percent at this field (factor
    ``s``: 1 at 3 T, 0.5-0.7 at 1.5 T):

    * subject-level response ``R_ph = s * clip(N(mu_ph, sd_ph))`` (``ClassParams.os_subject``);
    * remote myocardium: ``R_ph``;
    * lesion (and core): ``R_ph + s * E_ph + delta_ph`` with the class effect ``E``
      (:func:`class_effects`) and a regional deviation ``delta_ph ~ N(0, sigma_reg)``,
      ``sigma_reg ~ U(PhantomParams.regional_sd_pct)`` per subject (2-4 %), not scaled.

    Draws from ``rng`` in this order: field factor, subject hv, subject bh, sigma_reg,
    deviations (lesion hv, lesion bh, core hv, core bh; always drawn), BH-start jitter,
    blood HV, blood BH, heterogeneity SD, heterogeneity fields. Healthy subjects have no
    lesion: their lesion and core equal the remote response.

    Returns:
        dict with ``field_scale``, ``subject`` / ``remote`` / ``lesion`` / ``core``
        (``{"hv_pct", "bh_pct"}``), ``effect`` and ``deviation`` (``{"lesion": ...,
        "core": ...}``, so lesion = remote + effect + deviation), ``regional_sd_pct``,
        ``bh_start_pct``, ``blood_hv_pct``, ``blood_bh_pct``, ``het_sd_pct`` and the private
        ``_het`` fields (not written to truth.json).
    """
    cp = p.classes[subj.cls]
    scale = float(rng.uniform(*sp.os_scale))
    sub = {
        "hv_pct": scale * _clip(rng.normal(*cp.os_subject.hv_pct), p.os_subject_clip_hv_pct),
        "bh_pct": scale * _clip(rng.normal(*cp.os_subject.bh_pct), p.os_subject_clip_bh_pct),
    }
    reg_sd = float(rng.uniform(*p.regional_sd_pct))
    dev = {r: {f"{ph}_pct": float(rng.normal(0.0, reg_sd)) for ph in PHASES} for r in ("lesion", "core")}
    eff = {r: {k: scale * v for k, v in e.items()} for r, e in class_effects(cp, subj.subtype).items()}
    if subj.cls == "healthy":
        dev = {r: {f"{ph}_pct": 0.0 for ph in PHASES} for r in dev}
    if cp.os_core is None:
        dev["core"] = dict(dev["lesion"])
    out: dict[str, Any] = {
        "model": "remote = subject; lesion = subject + class effect + regional deviation (DOMAIN 7)",
        "field_scale": scale,
        "subject": dict(sub),
        "remote": dict(sub),
    }
    for r in ("lesion", "core"):
        out[r] = {k: sub[k] + eff[r][k] + dev[r][k] for k in sub}
    out["effect"] = eff
    out["deviation"] = dev
    out["regional_sd_pct"] = reg_sd if subj.cls != "healthy" else 0.0
    out["bh_start_pct"] = float(rng.normal(*p.bh_start_jitter_pct))
    out["blood_hv_pct"] = float(rng.uniform(*p.blood_hv_pct))
    out["blood_bh_pct"] = float(rng.uniform(*p.blood_bh_pct))
    het_sd = float(rng.uniform(*p.het_segment_sd_pct))
    out["het_sd_pct"] = het_sd
    out["_het"] = {tp: [smooth_periodic(rng, het_sd, kmax=3) for _ in LEVELS] for tp in PHASES}
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


def os_regions(subj: Subject) -> dict[int, str]:
    """Which OS response region (``remote``, ``lesion``, ``core``) drives each myocardial tissue code."""
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
    return region_of


def timepoint_heterogeneity(resp: dict[str, Any], tp: str) -> list[NDArray[np.float32]]:
    """Per slice ``(N_THETA,)`` multiplicative BOLD heterogeneity of the myocardium at ``tp``."""
    het = []
    for k in range(len(LEVELS)):
        h = np.ones(N_THETA)
        if tp != "baseline":
            h = h * (1.0 + resp["_het"]["hv"][k] / 100.0)
        if tp == "bh-end":
            h = h * (1.0 + resp["_het"]["bh"][k] / 100.0)
        het.append(h.astype(np.float32))
    return het


# ---------------------------------------------------------------------------
# signal
# ---------------------------------------------------------------------------


FAT_CODES = ("epi_fat", "sub_fat", "soft")
"""Tissues with fat's chemical shift (``soft`` is the fat-like mediastinal tissue)."""


def bssfp_values(
    subj: Subject, sp: SiteParams, flip: float, te: float, inflow: float, fat_sign: float = 1.0
) -> NDArray[np.float32]:
    """bSSFP signal per tissue code, ``(N_TISSUE,)`` float32 (blood x ``inflow``).

    ``fat_sign`` (:func:`~deepoxymap.phantom.imaging.fat_bssfp_sign`): -1 gives the fat
    tissues opposite phase to water, so partial-volume fat-water pixels cancel after
    band limiting (the bSSFP "India ink" border); the magnitude is taken after noise.
    """
    tab = relax_table(subj, sp)
    v = np.zeros(N_TISSUE, np.float32)
    for code, (rho, t1, t2) in tab.items():
        v[code] = bssfp_signal(rho, t1, t2, flip, te) if rho > 0 else 0.0
    for code in (TISSUE["lv_blood"], TISSUE["rv_blood"], TISSUE["aorta"]):
        v[code] *= inflow
    for name in FAT_CODES:
        v[TISSUE[name]] *= np.float32(fat_sign)
    return v


def _timepoint_values(
    base: NDArray[np.float32], resp: dict[str, Any], region_of: dict[int, str], tp: str
) -> NDArray[np.float32]:
    vals = base.copy()
    for code, reg in region_of.items():
        vals[code] = base[code] * os_factor(resp, reg, tp)
    for code in (TISSUE["lv_blood"], TISSUE["rv_blood"]):
        vals[code] = base[code] * blood_factor(resp, tp)
    return vals


# ---------------------------------------------------------------------------
# the series
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CineResult:
    """The four OS series of a subject.

    Attributes:
        series: one :class:`SeriesResult` per rendered time point, in :data:`OS_KEYS` order.
        es_frame: the end-systolic frame (the classifier's input frame, label frame).
        scan_notes: what the cine adds to truth.json ``scanner`` (``banding`` when
            present, then ``noise_sigma_signal``), in that order.
    """

    series: list[SeriesResult]
    es_frame: int
    scan_notes: dict[str, Any]


def render_os_cine(exam: Exam, resp: dict[str, Any], keys: Collection[str] | None = None) -> CineResult:
    """Render, add coils/texture/banding/noise to and write the four OS-CMR cine series.

    ``keys``: only these series of :data:`OS_KEYS` (``None``: all four). A series left
    out still draws its breathing shift and its noise (:func:`~deepoxymap.phantom.render.white_kspace`),
    so every rendered series, and everything drawn after the cine, has the pixels it has
    when all four are rendered.

    Image formation: fine-grid tissues x (coil x texture x band), band-limited to the
    acquired resolution and zero-filled onto the reconstruction matrix
    (:func:`~deepoxymap.phantom.render.render_series`), plus complex noise limited to the
    same k-space (:func:`~deepoxymap.phantom.render.kspace_noise`), magnitude.

    Draws from ``exam.r_scan``: texture, band (when ``exam.banding``), then per time
    point the breathing shift; from ``exam.r_noise``: the noise per time point.
    """
    subj, sp, p, scan = exam.subj, exam.site, exam.params, exam.scan
    nf, rr, rot, os_ = exam.n_frames, exam.rr_ms, exam.rot_deg, p.oversample
    og, oipps = exam.grid(sp.os_matrix, scan["os_pixel_mm"])
    acq = exam.acquisition(og, scan["os_acq_pixel_mm"])
    phases = np.arange(nf) / nf
    trig = phases * rr
    cvals = contraction(phases, subj.params["es_phase"], subj.params["relax_phase"])
    es_frame = int(np.argmax(cvals))
    fat_sign = fat_bssfp_sign(sp.field_t, scan["tr_ms"], p.fat_shift_ppm) if p.fat_opposed_phase else 1.0
    base = bssfp_values(subj, sp, scan["flip_deg"], scan["te_ms"], scan["inflow"], fat_sign)
    gain = coil_map(og, exam.coils, exam.coil_len, rot, os_)
    gain *= texture(og, exam.r_scan, p.texture_sd, os_, p.texture_scales_mm, p.texture_coarse_weight)
    notes: dict[str, Any] = {}
    if exam.banding:
        bmul, binfo = band_map(og, exam.r_scan, rot, os_)
        gain *= bmul
        notes["banding"] = binfo
    sigma = float(base[TISSUE["myo"]]) / scan["snr_myo"]
    notes["noise_sigma_signal"] = sigma
    notes["os_acquired_matrix"] = list(acq.acq_shape)
    notes["fat_sign"] = fat_sign
    region_of = os_regions(subj)
    series = []
    for si, (tp, desc, t_s) in enumerate(p.timepoints):
        key = OS_KEYS[si]
        if tp == "bh-end":
            t_s = p.timepoints[2][2] + scan["bh_duration_s"]
        vals = _timepoint_values(base, resp, region_of, tp)
        het = timepoint_heterogeneity(resp, tp)
        shift = draw_shift(exam.r_scan, p.anatomy.breathing_shift_mm, still=tp == "baseline")
        if keys is not None and key not in keys:
            white_kspace((len(subj.slices), nf, *og.shape), exam.r_noise)  # the noise it would have drawn
            continue
        ro = render_series(subj, og, phases, vals, het, shift, os_, acq, gain=gain, flow=True)
        noise = kspace_noise(ro.signal.shape, acq, sigma, exam.r_noise)
        px = to_u16(magnitude(ro.signal, noise) * (scan["gain"] * 1000.0))
        meta = exam.series_meta(
            key,
            kind="os",
            description=desc,
            image_type=("ORIGINAL", "PRIMARY", "M", "NONE"),
            series_number=10 + si,
            acq_offset_s=t_s,
            grid=og,
            ipps=oipps,
            trigger_ms=trig,
            tr_ms=scan["tr_ms"],
            te_ms=scan["te_ms"],
            ti_ms=None,
            flip_deg=scan["flip_deg"],
            rescale=None,
            window=percentile_window(px),
            acq=acq,
        )
        uid = exam.write(key, px, meta)
        labels = {uid: ro.labels[:, es_frame], uid + "__edema": ro.edema[:, es_frame], uid + "__cine": ro.labels}
        truth = {
            "uid": uid,
            "description": desc,
            "role": "os-cmr",
            "timepoint": tp,
            "acquisition_offset_s": t_s,
            "shape": list(og.shape),
            "pixel_spacing_mm": list(og.spacing),
            "acquired_matrix": list(acq.acq_shape),
            "heart_shift_mm": list(shift),
            "label_frame": es_frame,
            "n_frames": nf,
        }
        series.append(SeriesResult(key, labels, truth, px, meta))
    return CineResult(series, es_frame, notes)
