"""LGE (PSIR magnitude): one mid-diastolic image per slice, misregistered against the OS exam.

Realism (:class:`~deepoxymap.phantom.params.LgeRealismParams`): incomplete
nulling of remote myocardium, lower scar-to-remote CNR, heterogeneous scar
enhancement, a peri-infarct grey zone at the scar border, and MVO as dark as
remote. Partial volume comes from rendering on the fine grid and band-limiting
to the acquired k-space; noise is complex Gaussian in k-space (Rician
magnitude). These draws come from a generator of their own,
``SeedSequence([seed, index, LGE_STREAM])``, so the scanner and noise
generators advance exactly as before and the OS-CMR, T1 and T2 series that
follow are byte-identical whatever the LGE realism settings are.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deepoxymap.phantom.anatomy import N_TISSUE, TISSUE, Subject
from deepoxymap.phantom.exam import DIASTOLIC_PHASE, Exam, SeriesResult, draw_shift, percentile_window, still_result
from deepoxymap.phantom.imaging import coil_map, magnitude, texture, to_u16
from deepoxymap.phantom.render import kspace_noise, render_series

__all__ = ["LGE_STREAM", "lge_realism", "lge_values", "render_lge"]

LGE_STREAM = 0x4C4745
"""Third SeedSequence word of the LGE realism generator ("LGE")."""


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


def lge_realism(exam: Exam) -> dict[str, float]:
    """Draw the subject's LGE realism numbers (:class:`~deepoxymap.phantom.params.LgeRealismParams`).

    From ``SeedSequence([exam.seed, exam.index, LGE_STREAM])`` in a fixed order;
    the ``"het_seed"`` entry seeds the heterogeneity field.
    """
    lp = exam.params.lge
    r = np.random.default_rng(np.random.SeedSequence([int(exam.seed), int(exam.index), LGE_STREAM]))
    out = {
        "null_offset": float(r.uniform(*lp.null_offset)),
        "noise_factor": float(r.uniform(*lp.noise_factor)),
        "scar_het_sd": float(r.uniform(*lp.scar_het_sd)),
        "scar_het_mm": float(r.uniform(*lp.scar_het_mm)),
        "grey_zone_mm": float(r.uniform(*lp.grey_zone_mm)),
        "grey_zone_floor": float(r.uniform(*lp.grey_zone_floor)),
        "mvo_of_remote": float(r.uniform(*lp.mvo_of_remote)),
    }
    out["het_seed"] = float(r.integers(0, 2**31 - 1))
    return out


def _scar_modulation(
    labels: NDArray[np.uint8], spacing: tuple[float, float], real: dict[str, float]
) -> NDArray[np.float32]:
    """Multiplicative scar-enhancement map ``[slice, phase, rows, cols]``: heterogeneity x grey zone.

    Grey zone: inside the scar (labels 4 and 6), enhancement rises linearly from
    ``grey_zone_floor`` at the border to 1 at ``grey_zone_mm`` deep (distance on
    the reconstruction grid); heterogeneity: a smooth log-normal field (mean 1).
    """
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    rng = np.random.default_rng(int(real["het_seed"]))
    out = np.ones(labels.shape, np.float32)
    sig = real["scar_het_mm"] / float(np.sqrt(spacing[0] * spacing[1]))
    sd = real["scar_het_sd"]
    for idx in np.ndindex(*labels.shape[:2]):
        sc = np.isin(labels[idx], (4, 6))
        f = gaussian_filter(rng.standard_normal(sc.shape), sig)
        f /= max(float(f.std()), 1e-12)
        if not sc.any():
            continue
        d = distance_transform_edt(sc, sampling=spacing)
        gz = np.clip(real["grey_zone_floor"] + (1.0 - real["grey_zone_floor"]) * d / real["grey_zone_mm"], 0.0, 1.0)
        m = np.exp(sd * f - 0.5 * sd * sd) * gz
        out[idx] = np.where(sc, m, 1.0).astype(np.float32)
    return out


def render_lge(exam: Exam, series_index: int, key: str = "lge") -> SeriesResult:
    """Render and write the LGE series (``series_index``: position among the single-frame series).

    Draws from ``exam.r_scan``: misregistration shift, tissue intensities, texture;
    from ``exam.r_noise``: the k-space-limited complex noise (magnitude: Rician);
    from its own generator (:func:`lge_realism`): nulling, noise level, grey zone,
    heterogeneity and MVO numbers (module doc).
    """
    subj, sp, scan, p = exam.subj, exam.site, exam.scan, exam.params
    os_ = p.oversample
    dia_phase = np.array([DIASTOLIC_PHASE])
    shift = draw_shift(exam.r_scan, p.anatomy.misregistration_mm)
    g, ipps = exam.grid(sp.lge_matrix, scan["lge_pixel_mm"])
    acq = exam.acquisition(g, scan["lge_acq_pixel_mm"])
    vals = lge_values(subj, exam.r_scan)
    gain = coil_map(g, exam.coils, exam.coil_len, exam.rot_deg, os_)
    gain *= texture(g, exam.r_scan, p.texture_sd, os_, p.texture_scales_mm, p.texture_coarse_weight)
    real = lge_realism(exam)
    blood = float(vals[TISSUE["lv_blood"]])
    myo_codes = [TISSUE[c] for c in ("myo", "territory", "papillary")] + [TISSUE["edema"]]
    v_myo = float(vals[TISSUE["myo"]]) + real["null_offset"] * blood
    for c in myo_codes:
        vals[c] = vals[c] + np.float32(real["null_offset"] * blood)
    vals[TISSUE["rv_wall"]] = np.float32(v_myo)
    vals[TISSUE["mvo"]] = np.float32(real["mvo_of_remote"] * v_myo)
    scar_ind = np.zeros(N_TISSUE, np.float32)
    scar_ind[[TISSUE["scar"], TISSUE["scar_edema"]]] = 1.0
    ro = render_series(subj, g, dia_phase, vals, None, shift, os_, acq, gain=gain, values2=scar_ind)
    # heterogeneity and grey zone scale the scar's enhancement over remote (linear in the band-limited scar fraction)
    if ro.signal2 is None:  # pragma: no cover - render_series always fills it when values2 is given
        raise RuntimeError("render_series returned no scar fraction")
    mod = _scar_modulation(ro.labels, g.spacing, real)
    enh = (float(vals[TISSUE["scar"]]) - v_myo) * ro.signal2 * gain[::os_, ::os_][None, None]
    signal = ro.signal + enh * (mod - 1.0)
    lsig = blood / scan["lge_snr_blood"] * real["noise_factor"]
    noise = kspace_noise(ro.signal.shape, acq, lsig, exam.r_noise)
    px = to_u16(magnitude(signal.astype(np.float32), noise) * scan["lge_gain"])
    desc = "LGE_PSIR_SAX"
    meta = exam.series_meta(
        key,
        kind=key,
        description=desc,
        image_type=("ORIGINAL", "PRIMARY", "M", "NONE"),
        series_number=20 + series_index,
        acq_offset_s=900.0 + 60 * series_index,
        grid=g,
        ipps=ipps,
        trigger_ms=dia_phase * exam.rr_ms,
        tr_ms=sp.lge_tr_ms,
        te_ms=sp.lge_te_ms,
        ti_ms=scan["lge_ti_ms"],
        flip_deg=sp.lge_flip_deg,
        rescale=None,
        window=percentile_window(px),
        acq=acq,
    )
    uid = exam.write(key, px, meta)
    return still_result(key, uid, desc, "lge", g, shift, ro, px, acq, meta)
