"""LGE (PSIR magnitude): one mid-diastolic image per slice, misregistered against the OS exam."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deepoxymap.phantom.anatomy import N_TISSUE, TISSUE, Subject
from deepoxymap.phantom.exam import DIASTOLIC_PHASE, Exam, SeriesResult, draw_shift, percentile_window, still_result
from deepoxymap.phantom.imaging import coil_map, magnitude, texture, to_u16
from deepoxymap.phantom.render import kspace_noise, render_series

__all__ = ["lge_values", "render_lge"]


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


def render_lge(exam: Exam, series_index: int, key: str = "lge") -> SeriesResult:
    """Render and write the LGE series (``series_index``: position among the single-frame series).

    Draws from ``exam.r_scan``: misregistration shift, tissue intensities, texture;
    from ``exam.r_noise``: the k-space-limited complex noise (magnitude: Rician).
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
    ro = render_series(subj, g, dia_phase, vals, None, shift, os_, acq, gain=gain)
    lsig = float(vals[TISSUE["lv_blood"]]) / scan["lge_snr_blood"]
    noise = kspace_noise(ro.signal.shape, acq, lsig, exam.r_noise)
    px = to_u16(magnitude(ro.signal, noise) * scan["lge_gain"])
    desc = "LGE_PSIR_SAX"
    uid = exam.write(
        key,
        px,
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
    return still_result(key, uid, desc, "lge", g, shift, ro, px, acq)
