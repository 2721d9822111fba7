"""The corrected phantom: regionally coherent OS responses (DOMAIN 7) and acquisition-like resolution."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from scipy.ndimage import binary_erosion

from deepoxymap.phantom import generate_subject
from deepoxymap.phantom.anatomy import LEVELS, Subject, sample_subject
from deepoxymap.phantom.exam import OS_KEYS, subject_rngs
from deepoxymap.phantom.generate import simulate_subject
from deepoxymap.phantom.os_contrast import lesion_contrast
from deepoxymap.phantom.params import PhantomParams, SiteParams
from deepoxymap.phantom.render import (
    Grid,
    acquisition,
    band_limit,
    kspace_noise,
    kspace_weights,
    render_series,
)
from deepoxymap.phantom.seq_oscine import (
    PHASES,
    bssfp_values,
    class_effects,
    os_factor,
    os_regions,
    sample_os,
    timepoint_heterogeneity,
)

LESION_CASES = {
    "ischemic": ["LAD-subendocardial", "RCA-transmural", "LCx-subendocardial"],
    "non-ischemic": ["DCM", "HCM", "myocarditis"],
    "edema": ["focal", "AAR", "global"],
}
P = PhantomParams()


def _batch(cls: str, n: int, site: str = "A") -> list[tuple[Subject, dict[str, Any]]]:
    out = []
    subs = LESION_CASES.get(cls, ["normal"])
    for i in range(n):
        r_anat, _r_scan, r_os, _r_noise = subject_rngs(101, i)
        subj = sample_subject(r_anat, f"S{i}", cls, subs[i % len(subs)], site, P)
        out.append((subj, sample_os(subj, r_os, P, P.sites[site])))
    return out


# ---------------------------------------------------------------------------
# OS response model (truth level, large batch)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", sorted(LESION_CASES))
def test_lesion_response_is_subject_plus_effect_plus_regional_deviation(cls: str) -> None:
    """Remote = subject-level response; lesion - remote has the class effect's sign; deviation SD 2-5 %."""
    batch = _batch(cls, 240)
    for _subj, r in batch:
        assert r["remote"] == r["subject"]
        for reg in ("lesion", "core"):
            for k in ("hv_pct", "bh_pct"):
                total = r["remote"][k] + r["effect"][reg][k] + r["deviation"][reg][k]
                assert r[reg][k] == pytest.approx(total)
        assert 2.0 <= r["regional_sd_pct"] <= 4.0
    cp = P.classes[cls]
    for ph in PHASES:
        k = f"{ph}_pct"
        for sub in LESION_CASES[cls]:
            sel = [r for s, r in batch if s.subtype == sub]
            diff = np.array([r["lesion"][k] - r["remote"][k] for r in sel])
            eff = class_effects(cp, sub)["lesion"][k]
            if ph == "bh":  # every lesion has a B-MORE deficit (DOMAIN 7)
                assert eff < 0.0
            if eff != 0.0:  # global edema: no HV effect
                assert np.sign(diff.mean()) == np.sign(eff), (sub, ph, diff.mean(), eff)
            assert abs(diff.mean() - eff) < 1.5  # 3 T: no field scaling
        dev = np.array([r["deviation"]["lesion"][k] for _s, r in batch])
        assert 2.0 <= dev.std() <= 5.0, (ph, dev.std())
        assert abs(dev.mean()) < 0.6


def test_class_effects_follow_domain_rows() -> None:
    """Effect = row mean - remote mean (DOMAIN 7): ischemic territory +2 vs remote +5 -> -3 %."""
    e = class_effects(P.classes["ischemic"], "LAD-transmural")
    assert e["lesion"] == {"hv_pct": pytest.approx(3.0), "bh_pct": pytest.approx(-3.0)}
    assert e["core"] == {"hv_pct": pytest.approx(5.0), "bh_pct": pytest.approx(-5.0)}
    assert class_effects(P.classes["edema"], "focal")["lesion"]["bh_pct"] == pytest.approx(-7.0)
    assert class_effects(P.classes["edema"], "global")["lesion"]["bh_pct"] == pytest.approx(-5.0)
    assert class_effects(P.classes["non-ischemic"], "HCM")["lesion"]["bh_pct"] == pytest.approx(-3.5)
    assert class_effects(P.classes["healthy"], "normal")["lesion"] == {"hv_pct": 0.0, "bh_pct": 0.0}


def test_healthy_has_one_response_and_field_scaling() -> None:
    for _subj, r in _batch("healthy", 20):
        assert r["lesion"] == r["remote"] == r["core"]
    b15 = _batch("ischemic", 120, site="B")
    for _s, r in b15:
        assert 0.5 <= r["field_scale"] <= 0.7
        assert r["effect"]["lesion"]["bh_pct"] == pytest.approx(-3.0 * r["field_scale"])


def test_lesion_bmore_contrast_sd_is_regional_not_between_subject() -> None:
    """The old independent draws gave a lesion-vs-remote SD of 7-18 %; now the residual is 2-5 %."""
    for cls in LESION_CASES:
        batch = _batch(cls, 150)
        res = [r["lesion"]["bh_pct"] - r["remote"]["bh_pct"] - r["effect"]["lesion"]["bh_pct"] for _s, r in batch]
        assert 2.0 <= float(np.std(res)) <= 5.0


# ---------------------------------------------------------------------------
# OS response model (image level, small in-memory renders)
# ---------------------------------------------------------------------------


def _small_params() -> PhantomParams:
    """A small, fast grid (only for tests): 96 x 96 at 1.5 mm, acquired 1.8 mm."""
    small = {
        k: dataclasses.replace(s, os_matrix=(96, 96), os_pixel_mm=(1.5, 1.5), os_acq_pixel_mm=(1.8, 1.8))
        for k, s in P.sites.items()
    }
    return dataclasses.replace(P, sites=small)


def _image_bmore(subj: Subject, r: dict[str, Any], sp: SiteParams, p: PhantomParams) -> tuple[float, float] | None:
    """Noise-free lesion-minus-remote B-MORE (%) at ES (lesion pixels, remote pixels 2 px away
    from any other tissue) and the class effect (None when the lesion has under 10 pixels)."""
    g = Grid(sp.os_matrix, (1.5, 1.5), ((sp.os_matrix[0] - 1) / 2.0, (sp.os_matrix[1] - 1) / 2.0))
    acq = acquisition(g, 1.8, p.kspace_taper)
    es = np.array([subj.params["es_phase"]])
    base = bssfp_values(subj, sp, 50.0, 1.7, 1.2)
    region_of = os_regions(subj)
    imgs = {}
    for tp in ("bh-start", "bh-end"):
        vals = base.copy()
        for code, reg in region_of.items():
            vals[code] = base[code] * os_factor(r, reg, tp)
        het = timepoint_heterogeneity(r, tp)
        imgs[tp] = render_series(subj, g, es, vals, het, (0.0, 0.0), p.oversample, acq)
    lab = imgs["bh-start"].labels[:, 0]
    lesion = np.isin(lab, (4, 5))
    remote = binary_erosion(lab == 2, iterations=2, structure=np.ones((1, 3, 3)))
    if lesion.sum() < 10 or remote.sum() < 10:
        return None
    a, b = imgs["bh-start"].signal[:, 0], imgs["bh-end"].signal[:, 0]
    bm_l = 100.0 * (b[lesion].mean() / a[lesion].mean() - 1.0)
    bm_r = 100.0 * (b[remote].mean() / a[remote].mean() - 1.0)
    return bm_l - bm_r, r["effect"]["lesion"]["bh_pct"]


@pytest.mark.parametrize("cls", ["non-ischemic", "edema"])
def test_image_lesion_vs_remote_bmore_sign_and_spread(cls: str) -> None:
    """On noise-free renders the lesion-vs-remote B-MORE has the class effect's sign on average and
    its spread around the effect (regional deviation + circumferential heterogeneity) is 2-5 %."""
    p = _small_params()
    sp = p.sites["A"]
    subs = {"non-ischemic": ["HCM", "myocarditis"], "edema": ["focal", "AAR"]}[cls]
    res, diffs = [], []
    for i in range(18):
        r_anat, _r_scan, r_os, _r_noise = subject_rngs(202, i)
        subj = sample_subject(r_anat, f"S{i}", cls, subs[i % 2], "A", p)
        r = sample_os(subj, r_os, p, sp)
        got = _image_bmore(subj, r, sp, p)
        if got is None:
            continue
        res.append(got[0] - got[1])
        diffs.append(got[0])
    assert len(res) >= 12
    assert np.mean(diffs) < 0.0  # lesion B-MORE below remote (every lesion class effect is negative)
    assert 2.0 <= float(np.std(res)) <= 5.0, np.std(res)


def test_wrong_sign_fraction_is_small_for_scar() -> None:
    """T1/T2-driven scar contrast (darker) is not flipped by the OS response at breath-hold end."""
    flips = []
    for i in range(60):
        sim_truth = _truth_like("ischemic", ["LAD-transmural", "RCA-subendocardial"][i % 2], i)
        c = lesion_contrast(sim_truth)
        assert c is not None
        flips.append(c["flipped"])
    assert np.mean(flips) < 0.05


def _truth_like(cls: str, subtype: str, i: int) -> dict[str, Any]:
    """The truth fields :func:`lesion_contrast` reads, from the samplers (no rendering)."""
    r_anat, _r_scan, r_os, _r_noise = subject_rngs(303, i)
    subj = sample_subject(r_anat, f"S{i}", cls, subtype, "A", P)
    r = sample_os(subj, r_os, P, P.sites["A"])
    return {
        "class": cls,
        "subtype": subtype,
        "anatomy": {"tissue": subj.params["tissue"]},
        "scanner": {"flip_deg": 50.0, "te_ms": 1.7},
        "os_response": r,
    }


# ---------------------------------------------------------------------------
# resolution and blur
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("site", sorted(P.sites))
def test_site_grids_are_realistic(site: str) -> None:
    """OS cine: 192-256 matrix, 1.2-1.6 mm reconstructed pixels from 1.5-2.0 mm acquired (DOMAIN 2.6)."""
    sp = P.sites[site]
    for rows_cols in (sp.os_matrix, sp.lge_matrix, sp.map_matrix):
        assert all(160 <= n <= 256 for n in rows_cols)
    assert all(192 <= n <= 256 for n in sp.os_matrix)
    assert 1.2 <= sp.os_pixel_mm[0] <= sp.os_pixel_mm[1] <= 1.6
    assert 1.5 <= sp.os_acq_pixel_mm[0] <= sp.os_acq_pixel_mm[1] <= 2.0
    assert sp.os_acq_pixel_mm[0] > sp.os_pixel_mm[1]  # interpolated, never finer than acquired
    fov = [n * px for n in sp.os_matrix for px in sp.os_pixel_mm]
    assert 250.0 <= min(fov) and max(fov) <= 380.0
    assert sp.lge_acq_pixel_mm[1] < 2.0  # LGE in-plane < 2 mm (DOMAIN 3.1)


def _edge_spread_px(profile: np.ndarray) -> float:
    """10-90 % rise distance (pixels) of a monotone-ish step profile, linear interpolation."""
    lo, hi = float(profile[:5].mean()), float(profile[-5:].mean())
    y = (profile - lo) / (hi - lo)
    x = np.arange(len(y), dtype=float)

    def cross(level: float) -> float:
        i = int(np.argmax(y >= level))
        return x[i - 1] + (level - y[i - 1]) / (y[i] - y[i - 1])

    return cross(0.9) - cross(0.1)


def test_band_limit_blurs_a_sharp_edge_over_more_than_a_pixel() -> None:
    g = Grid((64, 64), (1.4, 1.4), (31.5, 31.5))
    os_ = P.oversample
    fine = np.zeros((64 * os_, 64 * os_), np.float32)
    fine[:, 64 * os_ // 2 + 1 :] = 1.0  # sharp vertical edge off the pixel grid
    acq = acquisition(g, 1.8, P.kspace_taper)
    assert acq.acq_shape == (50, 50)
    out = band_limit(fine, g.shape, os_, acq)
    prof = out[32, 16:48]
    spread = _edge_spread_px(prof)
    assert spread > 1.0, spread
    nearest = fine[::os_, ::os_][32, 16:48]
    assert len(np.unique(nearest)) == 2  # what the old block rendering would give: a one-pixel step
    assert len(np.unique(np.round(prof, 3))) > 6  # intermediate values across the edge
    # a constant image keeps its value (normalisation), and a sharper acquisition blurs less
    const = band_limit(np.full_like(fine, 3.0), g.shape, os_, acq)
    assert np.allclose(const, 3.0, atol=1e-4)
    sharp = band_limit(fine, g.shape, os_, acquisition(g, 1.4, 0.0))
    assert _edge_spread_px(sharp[32, 16:48]) < spread


def test_kspace_noise_sd_and_correlation() -> None:
    g = Grid((96, 80), (1.4, 1.4), (47.5, 39.5))
    acq = acquisition(g, 1.8, P.kspace_taper)
    n = kspace_noise((4, 96, 80), acq, 2.0, np.random.default_rng(0))
    assert n.dtype == np.complex64 and n.shape == (4, 96, 80)
    assert float(n.real.std()) == pytest.approx(2.0, rel=0.05)
    assert float(n.imag.std()) == pytest.approx(2.0, rel=0.05)
    a = n.real[:, :, :-1].ravel()
    b = n.real[:, :, 1:].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.15  # zero-filled: neighbours correlated
    w = kspace_weights(g.shape, acq)
    assert w[0, 0] == 1.0 and w.max() == 1.0 and w.min() == 0.0


def test_simulated_subject_grid_and_in_memory_equals_dicom(tmp_path: Path) -> None:
    """Truth records the realistic grid; in-memory pixels are the written DICOM pixels."""
    sim = simulate_subject("S", "edema", "focal", "A", 21, 3, n_frames=2)
    truth = generate_subject(tmp_path, "S", "edema", "focal", "A", 21, 3, n_frames=2)
    assert sim.truth["scanner"] == truth["scanner"]
    for s in sim.series:
        st = s.truth
        rows, cols = st["shape"]
        if s.key in OS_KEYS:
            assert 192 <= rows <= 256 and 192 <= cols <= 256
            assert 1.2 <= st["pixel_spacing_mm"][0] <= 1.6
            ar, ac = st["acquired_matrix"]
            assert ar < rows and ac < cols
            assert 1.5 <= rows * st["pixel_spacing_mm"][0] / ar <= 2.0  # acquired pixel, mm
        assert s.pixels is not None and s.pixels.shape[2:] == (rows, cols)
        ds = pydicom.dcmread(tmp_path / "S" / "dicom" / s.key / "IM_02_001.dcm")
        assert (ds.Rows, ds.Columns) == (rows, cols)
        assert np.array_equal(ds.pixel_array, s.pixels[1, 0])
        assert [int(v) for v in ds.AcquisitionMatrix] == [0, st["acquired_matrix"][1], st["acquired_matrix"][0], 0]
        assert ds.InPlanePhaseEncodingDirection == "COL"


def test_rendered_boundary_is_blurred() -> None:
    """Across the LV blood-myocardium border of a noise-free render there is more than one
    intermediate pixel (acquisition blur), not a one-pixel step."""
    p = _small_params()
    sp = p.sites["A"]
    r_anat, *_ = subject_rngs(5, 0)
    subj = sample_subject(r_anat, "S", "healthy", "normal", "A", p)
    g = Grid(sp.os_matrix, (1.5, 1.5), (47.5, 47.5))
    base = bssfp_values(subj, sp, 50.0, 1.7, 1.2)
    ro = render_series(subj, g, np.array([0.0]), base, None, (0.0, 0.0), p.oversample, acquisition(g, 1.8, 0.25))
    img, lab = ro.signal[1, 0], ro.labels[1, 0]
    blood = float(np.median(img[lab == 1]))
    myo = float(np.median(img[lab == 2]))
    mid = (img > myo + 0.2 * (blood - myo)) & (img < blood - 0.2 * (blood - myo))
    n_border = int(((lab == 1) & np.roll(lab == 2, 1, axis=1)).sum())
    assert mid.sum() > 1.5 * n_border  # the transition band is wider than one pixel
    assert ro.signal.shape[0] == len(LEVELS)
