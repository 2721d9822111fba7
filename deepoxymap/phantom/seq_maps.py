"""T1 (MOLLI) and T2 maps: one mid-diastolic map per slice in ms, misregistered against the OS exam."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deepoxymap.errors import PhantomError
from deepoxymap.phantom.anatomy import N_TISSUE, TISSUE, Subject
from deepoxymap.phantom.exam import DIASTOLIC_PHASE, Exam, SeriesResult, draw_shift, still_result
from deepoxymap.phantom.imaging import relax_table, to_u16
from deepoxymap.phantom.params import SiteParams
from deepoxymap.phantom.render import render_series

__all__ = ["MAP_KINDS", "map_noise_sd", "map_values", "render_map"]

MAP_KINDS = {"t1map": "t1", "t2map": "t2"}
"""Series key -> which relaxation time the map holds."""


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


def map_noise_sd(which: str) -> NDArray[np.float32]:
    """Relative SD of the fitted map per tissue code (lung noisy, blood doubled)."""
    sd_tab = np.full(N_TISSUE, 0.025 if which == "t1" else 0.05, np.float32)
    sd_tab[TISSUE["lung"]] = 0.6
    sd_tab[[TISSUE["lv_blood"], TISSUE["rv_blood"], TISSUE["aorta"]]] *= 2.0
    return sd_tab


def _window(which: str, field_t: float) -> tuple[float, float]:
    if which == "t1":
        return (1200.0, 1000.0) if field_t > 2 else (1000.0, 900.0)
    return (50.0, 60.0)


def render_map(exam: Exam, key: str, series_index: int) -> SeriesResult:
    """Render and write the ``t1map`` or ``t2map`` series (``series_index``: position among the single-frame series).

    The map (ms) is rendered like an image: fine grid, band-limited to the map's
    acquired resolution (partial volume and mild ringing at edges), sampled on its
    matrix; then pixel-wise fit noise (relative SD per tissue) is added.

    Draws from ``exam.r_scan``: the misregistration shift; from ``exam.r_noise``: the map noise.
    """
    if key not in MAP_KINDS:
        raise PhantomError(f"unknown map series {key!r}", hint=f"one of {sorted(MAP_KINDS)}")
    subj, sp, scan = exam.subj, exam.site, exam.scan
    os_ = exam.params.oversample
    which = MAP_KINDS[key]
    dia_phase = np.array([DIASTOLIC_PHASE])
    shift = draw_shift(exam.r_scan, exam.params.anatomy.misregistration_mm)
    g, ipps = exam.grid(sp.map_matrix, scan["map_pixel_mm"])
    acq = exam.acquisition(g, scan["map_acq_pixel_mm"])
    vals = map_values(subj, sp, which)
    ro = render_series(subj, g, dia_phase, vals, None, shift, os_, acq, values2=map_noise_sd(which))
    m = ro.signal
    rel = np.clip(ro.signal2 if ro.signal2 is not None else 0.0, 0.0, None)
    noise = exam.r_noise.standard_normal(m.shape).astype(np.float32) * (rel * m)
    m = np.where(m < 1.0, 0.0, np.abs(m + noise))  # air stays 0
    slope = 1.0 if which == "t1" else 0.1
    px = to_u16(m / slope)
    desc = "T1MAP_MOLLI" if which == "t1" else "T2MAP"
    meta = exam.series_meta(
        key,
        kind=key,
        description=desc,
        image_type=("DERIVED", "PRIMARY", "T1 MAP" if which == "t1" else "T2 MAP"),
        series_number=20 + series_index,
        acq_offset_s=30.0 + 10 * series_index,
        grid=g,
        ipps=ipps,
        trigger_ms=dia_phase * exam.rr_ms,
        tr_ms=2.7 if which == "t1" else 3.0,
        te_ms=1.1 if which == "t1" else 1.3,
        ti_ms=None,
        flip_deg=35.0,
        rescale=(slope, 0.0, "MS"),
        window=_window(which, sp.field_t),
        acq=acq,
    )
    uid = exam.write(key, px, meta)
    return still_result(key, uid, desc, "t1-map" if which == "t1" else "t2-map", g, shift, ro, px, acq, meta)
