"""Analytic short-axis heart + thorax: sampling a subject and rendering tissue codes.

Coordinates
-----------
Anatomical in-plane frame, origin at the LV centre of a slice, millimetres:
``X`` towards the lateral wall (viewer's right), ``Y`` anterior (viewer's up).
Angles ``theta`` (degrees) are counter-clockwise from lateral: 0 lateral,
90 anterior, 180 septal (RV side), 270 inferior. AHA segments use the
septal-midpoint convention (DOMAIN 5.2 option 2): the RV centre is at 180 deg
and the insertion points sit near 180 -+ 60 deg.

The myocardium is described per slice by angular tables (``N_THETA`` samples)
of end-diastolic endocardial radius, wall thickness and kinesis; lesions are
intervals of *depth fraction* ``d`` (0 endocardium, 1 epicardium) per angle, so
they deform with the wall over the cardiac cycle.

Internal tissue codes (uint8, :data:`TISSUE`) are richer than the contract's
label values; :data:`LABEL_OF_TISSUE` maps them (CONTRACTS.md: 0 background,
1 LV blood, 2 myocardium, 3 RV, 4 scar, 5 edema, 6 MVO).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.phantom.params import PhantomParams

N_THETA = 720
"""Angular samples of the per-slice tables (0.5 deg)."""
THETA = np.arange(N_THETA) * (360.0 / N_THETA)
LEVELS = ("basal", "mid", "apical")

TISSUE: dict[str, int] = {
    "air": 0,
    "lv_blood": 1,
    "myo": 2,
    "rv_blood": 3,
    "scar": 4,
    "edema": 5,
    "mvo": 6,
    "rv_wall": 7,
    "epi_fat": 8,
    "sub_fat": 9,
    "muscle": 10,
    "lung": 11,
    "liver": 12,
    "aorta": 13,
    "bone": 14,
    "soft": 15,
    "papillary": 16,
    "territory": 17,
    "scar_edema": 18,
    "vessel": 19,
}
N_TISSUE = 20
LABEL_OF_TISSUE = np.zeros(N_TISSUE, dtype=np.uint8)
LABEL_OF_TISSUE[[1, 16]] = 1
LABEL_OF_TISSUE[[2, 17]] = 2
LABEL_OF_TISSUE[3] = 3
LABEL_OF_TISSUE[[4, 18]] = 4
LABEL_OF_TISSUE[5] = 5
LABEL_OF_TISSUE[6] = 6
MYO_CODES = (2, 4, 5, 6, 17, 18)
"""Tissue codes that are LV myocardium."""
EDEMA_CODES = (5, 18)


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def smooth_periodic(rng: np.random.Generator, sd: float, kmax: int = 4) -> NDArray[np.float64]:
    """Random smooth periodic function of theta, ``(N_THETA,)`` float64 with SD ~ ``sd``."""
    t = np.deg2rad(THETA)
    out = np.zeros(N_THETA)
    for k in range(1, kmax + 1):
        a, b = rng.normal(0.0, 1.0 / k, 2)
        out += a * np.cos(k * t) + b * np.sin(k * t)
    s = out.std()
    return out * (sd / s) if s > 0 else out


def ang_dist(theta: NDArray[Any] | float, center: float) -> NDArray[np.float64]:
    """Signed angular difference ``theta - center`` wrapped to (-180, 180] degrees."""
    return (np.asarray(theta, dtype=np.float64) - center + 180.0) % 360.0 - 180.0


def aha_segment(theta: NDArray[Any] | float, level: str) -> NDArray[np.int64]:
    """AHA segment (1-16) of anatomical angle(s) ``theta`` (deg) on a slice level."""
    t = np.asarray(theta, dtype=np.float64) % 360.0
    if level == "apical":
        idx = np.floor(((t - 45.0) % 360.0) / 90.0).astype(np.int64)  # 0 ant,1 sept,2 inf,3 lat
        return 13 + idx
    idx = np.floor(((t - 60.0) % 360.0) / 60.0).astype(np.int64)  # 0 ant .. 5 antlat
    base = 1 if level == "basal" else 7
    return base + idx


@dataclass
class Band:
    """A lesion component on one slice: depth interval ``[lo, hi]`` per angle (``(N_THETA,)``)."""

    lo: NDArray[np.float64]
    hi: NDArray[np.float64]

    def contains(self, ti: NDArray[np.int64], d: NDArray[np.floating[Any]]) -> NDArray[np.bool_]:
        """Whether depth ``d`` at angle index ``ti`` lies in the band."""
        return (d >= self.lo[ti]) & (d <= self.hi[ti])

    def coverage(self) -> NDArray[np.float64]:
        """Transmural fraction covered per angle, ``(N_THETA,)``."""
        return np.clip(np.minimum(self.hi, 1.0) - np.maximum(self.lo, 0.0), 0.0, 1.0)


@dataclass
class SliceHeart:
    """Per-slice heart tables (all ``(N_THETA,)`` float64, mm unless stated)."""

    level: str
    r_ed: NDArray[np.float64]
    wall_ed: NDArray[np.float64]
    kinesis: NDArray[np.float64]
    rv_depth: NDArray[np.float64]
    rv_wall: float
    fat: NDArray[np.float64]
    pap: list[tuple[float, float]]  # (theta deg, radius mm)
    scar: list[Band] = field(default_factory=list)
    mvo: list[Band] = field(default_factory=list)
    edema: list[Band] = field(default_factory=list)
    territory: list[Band] = field(default_factory=list)


@dataclass
class Subject:
    """Everything sampled for one subject (JSON-able through :meth:`truth_params`)."""

    subject_id: str
    cls: str
    subtype: str
    site: str
    params: dict[str, Any]
    slices: list[SliceHeart]
    body: dict[str, Any]


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------


def _arc_band(
    rng: np.random.Generator,
    center: float,
    arc: float,
    lo: float,
    hi: float,
    *,
    edge_deg: float,
    edge_depth: float,
    taper: bool,
    taper_floor: float = 0.25,
    endo: bool = False,
    epi: bool = False,
) -> Band:
    """A lesion band centred at ``center`` deg spanning ``arc`` deg with irregular edges.

    ``endo``/``epi`` pin the band to the endocardium/epicardium (lo = 0 / hi = 1);
    ``taper`` shrinks transmural extent towards the arc ends (wavefront shape).
    """
    dt = ang_dist(THETA, center)
    edge = smooth_periodic(rng, edge_deg, kmax=8)
    half = arc / 2.0 + edge
    inside = np.abs(dt) <= half
    prof = np.ones(N_THETA)
    if taper:
        prof = np.clip(1.0 - 0.6 * (np.abs(dt) / np.maximum(half, 1.0)) ** 2, taper_floor, 1.0)
    jitter = smooth_periodic(rng, edge_depth, kmax=10)
    width = (hi - lo) * prof * (1.0 + jitter)
    if endo:
        lo_a = np.full(N_THETA, -0.05)
        hi_a = lo + width
    elif epi:
        hi_a = np.full(N_THETA, 1.05)
        lo_a = 1.0 - width
    else:
        mid = (lo + hi) / 2.0 + 0.5 * smooth_periodic(rng, edge_depth, kmax=6)
        lo_a, hi_a = mid - width / 2.0, mid + width / 2.0
    lo_a = np.where(inside, lo_a, 2.0)
    hi_a = np.where(inside, hi_a, -1.0)
    return Band(lo_a, hi_a)


def _blob_band(center_deg: float, depth_c: float, half_deg: float, half_depth: float) -> Band:
    """An elliptic blob in (theta, depth) space."""
    dt = ang_dist(THETA, center_deg) / max(half_deg, 1e-3)
    h = half_depth * np.sqrt(np.clip(1.0 - dt**2, 0.0, 1.0))
    inside = np.abs(dt) < 1.0
    return Band(np.where(inside, depth_c - h, 2.0), np.where(inside, depth_c + h, -1.0))


def _territory_arc_center(rng: np.random.Generator, territory: str, p: PhantomParams) -> float:
    c = p.lesions.territory_center_deg[territory]
    return float(c + rng.uniform(-p.lesions.territory_jitter_deg, p.lesions.territory_jitter_deg))


def sample_subject(
    rng: np.random.Generator, subject_id: str, cls: str, subtype: str, site: str, p: PhantomParams
) -> Subject:
    """Sample anatomy, lesions and tissue properties of one subject.

    Args:
        rng: the subject's generator (all randomness of anatomy comes from it).
        cls / subtype: class and sub-type (see :class:`~deepoxymap.phantom.params.ClassParams`).
        site: key of ``p.sites``.

    Returns:
        a :class:`Subject` with 3 slices (basal, mid, apical).
    """
    a, L = p.anatomy, p.lesions
    cp = p.classes[cls]
    sp = p.sites[site]
    prm: dict[str, Any] = {}
    # global morphology
    r_ed = _u(rng, cp.r_ed_mm)
    wall = _u(rng, cp.wall_ed_mm)
    ef = _u(rng, cp.ef)
    if cls == "non-ischemic" and subtype == "DCM":
        r_ed, ef = _u(rng, L.dcm_r_ed_mm), _u(rng, L.dcm_ef)
        wall = _u(rng, (5.0, 7.0))
    if cls == "non-ischemic" and subtype == "HCM":
        r_ed, ef = _u(rng, L.hcm_r_ed_mm), _u(rng, L.hcm_ef)
    if cls == "ischemic" and subtype.endswith("transmural"):
        ef = _u(rng, (0.35, 0.50))
    if cls == "edema":
        wall += _u(rng, L.edema_wall_extra_mm) * (1.0 if subtype == "global" else 0.5)
    prm.update(r_ed_mid_mm=r_ed, wall_ed_mid_mm=wall, ef=ef)
    prm["es_cavity_radius_factor"] = float(np.sqrt(1.0 - 0.8 * ef))
    prm["es_area_gain"] = _u(rng, a.es_area_gain)
    prm["heart_rate_bpm"] = _u(rng, a.heart_rate_bpm)
    prm["es_phase"] = _u(rng, a.es_phase)
    prm["relax_phase"] = a.relax_phase
    prm["rotation_deg"] = _u(rng, a.rotation_deg)
    prm["offset_mm"] = [_u(rng, a.offset_mm), _u(rng, a.offset_mm)]
    prm["ellipticity"] = _u(rng, a.ellipticity)
    prm["ellipse_angle_deg"] = _u(rng, (0.0, 180.0))
    prm["septal_extra_mm"] = _u(rng, a.septal_extra_mm)
    prm["slice_gap_mm"] = _u(rng, a.slice_gap_mm)
    prm["rv_depth_mm"] = _u(rng, a.rv_depth_mm) * (1.1 if subtype == "DCM" else 1.0)
    prm["rv_halfwidth_deg"] = _u(rng, a.rv_halfwidth_deg)
    prm["rv_wall_mm"] = _u(rng, a.rv_wall_mm)
    prm["epi_fat_mm"] = _u(rng, a.epi_fat_mm)
    prm["insertion_points_deg"] = [180.0 - prm["rv_halfwidth_deg"], 180.0 + prm["rv_halfwidth_deg"]]
    hcm_asym = bool(rng.uniform() < L.hcm_asymmetric_prob)
    hcm_wmax = _u(rng, L.hcm_wall_max_mm)
    if subtype == "HCM":
        prm.update(hcm_asymmetric=hcm_asym, hcm_wall_max_mm=hcm_wmax)

    # tissue relaxation (per subject)
    t1m, t1s = sp.t1_myo_ms
    t2m, t2s = sp.t2_myo_ms
    tis: dict[str, float] = {
        "t1_myo_ms": float(rng.normal(t1m, t1s)),
        "t2_myo_ms": float(rng.normal(t2m, t2s)),
        "t1_blood_ms": _u(rng, sp.t1_blood_ms),
        "t2_blood_ms": _u(rng, sp.t2_blood_ms),
    }

    # lesion recipe (per subject, then per slice)
    lesion: dict[str, Any] = {"kind": "none"}
    is3t = sp.field_t >= 2.0
    if cls == "ischemic":
        terr, pattern = subtype.split("-")
        tm = _u(rng, L.transmural_tm if pattern == "transmural" else L.subendo_tm)
        center = _territory_arc_center(rng, terr, p)
        arc = _u(rng, L.isch_arc_deg)
        levels = {"LAD": ["mid", "apical"], "RCA": ["basal", "mid"], "LCx": ["basal", "mid"]}[terr]
        extra = {"LAD": "basal", "RCA": "apical", "LCx": "apical"}[terr]
        if rng.uniform() < 0.5:
            levels = [*levels, extra]
        mvo = bool(rng.uniform() < L.mvo_prob)
        lesion = {
            "kind": "ischemic-scar",
            "territory": terr,
            "pattern": pattern,
            "transmurality": tm,
            "center_deg": center,
            "arc_deg": arc,
            "levels": levels,
            "mvo": mvo,
            "kinesis": _u(rng, L.transmural_kinesis if pattern == "transmural" else L.subendo_kinesis),
            "scar_wall_ed_mm": _u(rng, L.transmural_wall_mm) if pattern == "transmural" else None,
            "territory_arc_deg": min(arc + _u(rng, (30.0, 80.0)), 240.0),
        }
        tis["t1_scar_ms"] = _u(rng, L.scar_t1_3t_ms if is3t else L.scar_t1_15t_ms)
        tis["t2_scar_ms"] = tis["t2_myo_ms"] + _u(rng, L.scar_t2_delta_ms)
        tis["lge_scar"] = _u(rng, L.lge_isch_scar)
        tis["lge_mvo"] = _u(rng, L.lge_mvo)
    elif cls == "non-ischemic":
        tis["t1_scar_ms"] = tis["t1_myo_ms"] + _u(rng, L.noni_t1_delta_ms)
        tis["t2_scar_ms"] = tis["t2_myo_ms"] + _u(rng, L.noni_t2_delta_ms)
        tis["t1_myo_ms"] += _u(rng, L.noni_global_t1_delta_ms)
        tis["lge_scar"] = _u(rng, L.lge_noni_scar)
        if subtype == "DCM":
            lesion = {
                "kind": "dcm-midwall",
                "center_deg": 180.0 + rng.uniform(-15.0, 15.0),
                "arc_deg": _u(rng, L.dcm_arc_deg),
                "band_width": _u(rng, L.dcm_band_width),
                "levels": ["basal", "mid"],
            }
        elif subtype == "HCM":
            blobs = []
            for ip in prm["insertion_points_deg"]:
                for _ in range(int(rng.integers(1, 3))):
                    blobs.append(
                        {
                            "center_deg": ip + rng.uniform(-20.0, 20.0),
                            "size_mm": _u(rng, L.hcm_blob_mm),
                            "depth": _u(rng, (0.35, 0.65)),
                        }
                    )
            lesion = {"kind": "hcm-insertion", "blobs": blobs, "levels": ["basal", "mid"]}
        else:
            lesion = {
                "kind": "myocarditis-subepicardial",
                "center_deg": float(rng.uniform(-35.0, 10.0) % 360.0),
                "arc_deg": _u(rng, L.myocarditis_arc_deg),
                "depth": _u(rng, L.myocarditis_depth),
                "levels": ["basal", "mid"] + (["apical"] if rng.uniform() < 0.4 else []),
            }
    elif cls == "edema":
        de2 = _u(rng, L.edema_t2_delta_ms)
        tis["t2_edema_ms"] = tis["t2_myo_ms"] + de2
        tis["t1_edema_ms"] = _u(rng, L.edema_t1_3t_ms if is3t else L.edema_t1_15t_ms)
        tis["lge_scar"] = _u(rng, L.lge_edema_scar)
        if subtype == "focal":
            n = int(rng.integers(1, 3))
            patches = [
                {
                    "center_deg": float(rng.uniform(-60.0, 20.0) % 360.0),
                    "arc_deg": _u(rng, (50.0, 100.0)),
                    "depth": _u(rng, L.edema_focal_tm),
                }
                for _ in range(n)
            ]
            lesion = {
                "kind": "edema-focal",
                "patches": patches,
                "levels": ["basal", "mid"] + (["apical"] if rng.uniform() < 0.4 else []),
                "lge": bool(rng.uniform() < L.focal_lge_prob),
            }
        elif subtype == "AAR":
            terr = str(rng.choice(["LAD", "RCA", "LCx"], p=[0.45, 0.35, 0.20]))
            lesion = {
                "kind": "edema-aar",
                "territory": terr,
                "center_deg": _territory_arc_center(rng, terr, p),
                "arc_deg": _u(rng, L.edema_aar_arc_deg),
                "levels": {"LAD": ["mid", "apical"], "RCA": ["basal", "mid"], "LCx": ["basal", "mid"]}[terr],
                "lge": bool(rng.uniform() < L.aar_lge_prob),
                "lge_transmurality": _u(rng, (0.15, 0.5)),
            }
            tis["t1_scar_ms"] = tis["t1_edema_ms"] + _u(rng, (20.0, 80.0))
            tis["t2_scar_ms"] = tis["t2_edema_ms"] + _u(rng, (0.0, 5.0))
        else:
            tis["t2_edema_ms"] = tis["t2_myo_ms"] + _u(rng, L.global_t2_delta_ms)
            tis["t1_edema_ms"] = tis["t1_myo_ms"] + _u(rng, L.global_t1_delta_ms)
            lesion = {"kind": "edema-global", "levels": list(LEVELS), "lge": False}
        tis.setdefault("t1_scar_ms", tis["t1_edema_ms"] + 30.0)
        tis.setdefault("t2_scar_ms", tis["t2_edema_ms"])
    tis["lge_myo"] = _u(rng, L.lge_myo)
    tis["lge_blood"] = _u(rng, L.lge_blood)

    # per-slice tables
    slices: list[SliceHeart] = []
    t = np.deg2rad(THETA)
    sept = np.exp(-0.5 * (ang_dist(THETA, 180.0) / 35.0) ** 2)
    for li, level in enumerate(LEVELS):
        r_l = r_ed * a.level_radius[li]
        w_l = wall * a.level_wall[li]
        ell = 1.0 + prm["ellipticity"] * np.cos(2.0 * (t - np.deg2rad(prm["ellipse_angle_deg"])))
        r_tab = r_l * ell
        w_tab = w_l + prm["septal_extra_mm"] * sept + smooth_periodic(rng, a.segmental_sd_mm, kmax=5)
        kin = np.ones(N_THETA)
        if subtype == "HCM" and level != "apical":
            hcm_extra = hcm_wmax - w_l
            if hcm_asym:
                prof = np.exp(-0.5 * (ang_dist(THETA, 180.0) / 50.0) ** 2)
                w_tab = w_tab + hcm_extra * prof * (1.0 if level == "basal" else 0.85)
            else:
                w_tab = w_tab + hcm_extra * (0.75 + 0.25 * sept) * (1.0 if level == "basal" else 0.9)
        # trabeculation: irregular endocardial border, smooth epicardium
        trab = np.abs(smooth_periodic(rng, a.trabeculation_mm, kmax=24))
        r_tab = r_tab + trab
        w_tab = np.maximum(w_tab - trab, 2.5)
        rv = prm["rv_depth_mm"] * a.rv_level[li]
        dt = ang_dist(THETA, 180.0) / prm["rv_halfwidth_deg"]
        rv_tab = rv * np.clip(np.cos(np.pi / 2.0 * np.clip(dt, -1, 1)), 0.0, 1.0) ** 0.6
        fat = np.clip(prm["epi_fat_mm"] * (0.5 + smooth_periodic(rng, 0.6, kmax=6)), 0.0, None)
        pap: list[tuple[float, float]] = []
        if level != "apical" or rng.uniform() < 0.5:
            pr = _u(rng, a.pap_radius_mm) * (0.7 if level == "basal" else 1.0)
            pap = [(float(rng.uniform(20.0, 60.0)), pr), (float(rng.uniform(265.0, 300.0)), pr * 1.1)]
        sh = SliceHeart(level, r_tab, w_tab, kin, rv_tab, prm["rv_wall_mm"], fat, pap)
        _add_lesions(rng, sh, lesion, p, w_l)
        slices.append(sh)

    body = {
        "center_mm": [_u(rng, (-55.0, -30.0)), _u(rng, (-45.0, -25.0))],
        "semi_mm": [_u(rng, (150.0, 175.0)), _u(rng, (105.0, 125.0))],
        "sub_fat_mm": _u(rng, (8.0, 18.0)),
        "muscle_mm": _u(rng, (8.0, 14.0)),
        "mediastinum": [_u(rng, (-38.0, -25.0)), _u(rng, (5.0, 18.0)), _u(rng, (50.0, 60.0)), _u(rng, (45.0, 55.0))],
        "post_mediastinum": [
            _u(rng, (-25.0, -10.0)),
            _u(rng, (-100.0, -85.0)),
            _u(rng, (30.0, 40.0)),
            _u(rng, (22.0, 30.0)),
        ],
        "liver": [_u(rng, (-75.0, -50.0)), _u(rng, (-100.0, -80.0)), _u(rng, (70.0, 95.0)), _u(rng, (40.0, 55.0))],
        "spine": [_u(rng, (-35.0, -20.0)), _u(rng, (-120.0, -105.0)), _u(rng, (14.0, 18.0))],
        "aorta": [_u(rng, (0.0, 15.0)), _u(rng, (-95.0, -80.0)), _u(rng, (10.0, 13.0))],
        # smooth boundary wobble per organ: (a_k, b_k) for k = 2..5
        "wobble": {
            name: [[float(v) for v in rng.normal(0.0, amp / k, 2)] for k in range(2, 6)]
            for name, amp in (("body", 0.03), ("mediastinum", 0.10), ("post_mediastinum", 0.10), ("liver", 0.10))
        },
        # pulmonary vessels: (X, Y, radius) mm, bright dots inside lung
        "lung_vessels": [
            [_u(rng, (-170.0, 150.0)), _u(rng, (-140.0, 110.0)), _u(rng, (1.2, 3.2))]
            for _ in range(int(rng.integers(40, 70)))
        ],
    }
    # blood-pool flow inhomogeneity: amplitude, wave numbers (rad/mm), phases
    prm["flow"] = [
        _u(rng, (0.03, 0.08)),
        _u(rng, (0.05, 0.12)),
        _u(rng, (0.05, 0.12)),
        _u(rng, (0.0, 6.283)),
        _u(rng, (0.0, 6.283)),
    ]
    prm["tissue"] = tis
    prm["lesion"] = lesion
    return Subject(subject_id, cls, subtype, site, prm, slices, body)


def _add_lesions(
    rng: np.random.Generator, sh: SliceHeart, lesion: dict[str, Any], p: PhantomParams, w_l: float
) -> None:
    """Fill the lesion bands of one slice from the subject's lesion recipe (in place)."""
    L = p.lesions
    kind = lesion["kind"]
    if kind == "none" or sh.level not in lesion.get("levels", []):
        return
    ed, edd = L.edge_noise_deg, L.edge_noise_depth
    lvl_arc = {"basal": 0.9, "mid": 1.0, "apical": 1.1}[sh.level]
    if kind == "ischemic-scar":
        arc = lesion["arc_deg"] * lvl_arc * rng.uniform(0.85, 1.1)
        if sh.level == "apical":
            arc = max(arc, 120.0)
        tm = lesion["transmurality"]
        hi = min(tm * rng.uniform(0.9, 1.1), 1.05)
        floor = 0.25
        if lesion["pattern"] == "transmural":
            hi, floor = max(hi, 0.8) + 0.1, 0.7
        b = _arc_band(
            rng,
            lesion["center_deg"],
            arc,
            0.0,
            hi,
            edge_deg=ed,
            edge_depth=edd,
            taper=True,
            taper_floor=floor,
            endo=True,
        )
        sh.scar.append(b)
        terr_arc = max(lesion["territory_arc_deg"], arc + 20.0)
        sh.territory.append(
            _arc_band(
                rng, lesion["center_deg"], terr_arc, 0.0, 1.1, edge_deg=ed, edge_depth=0.0, taper=False, endo=True
            )
        )
        inside = b.hi > b.lo
        sh.kinesis = np.where(inside, lesion["kinesis"], sh.kinesis)
        # soften kinesis transition
        sh.kinesis = _circ_smooth(sh.kinesis, 15)
        if lesion["pattern"] == "transmural" and lesion["scar_wall_ed_mm"] is not None:
            thin = np.where(inside, lesion["scar_wall_ed_mm"] * (1.0 if sh.level != "apical" else 0.85), sh.wall_ed)
            sh.wall_ed = _circ_smooth(np.minimum(sh.wall_ed, thin), 10)
        if lesion["mvo"] and sh.level != "apical":
            core_arc = arc * 0.35
            sh.mvo.append(
                _arc_band(
                    rng,
                    lesion["center_deg"],
                    core_arc,
                    0.0,
                    hi * 0.5,
                    edge_deg=3.0,
                    edge_depth=0.05,
                    taper=True,
                    endo=True,
                )
            )
    elif kind == "dcm-midwall":
        bw = lesion["band_width"]
        sh.scar.append(
            _arc_band(
                rng,
                lesion["center_deg"],
                lesion["arc_deg"],
                0.5 - bw / 2,
                0.5 + bw / 2,
                edge_deg=ed,
                edge_depth=edd,
                taper=True,
            )
        )
    elif kind == "hcm-insertion":
        # blob size in mm -> degrees at mid-wall radius
        rmid = float(np.mean(sh.r_ed) + 0.5 * np.mean(sh.wall_ed))
        for bl in lesion["blobs"]:
            size = bl["size_mm"] * rng.uniform(0.8, 1.1)
            half_deg = np.rad2deg(size / 2.0 / rmid)
            wall_here = float(np.interp(bl["center_deg"] % 360.0, THETA, sh.wall_ed))
            half_depth = min(0.45, size / 2.0 / max(wall_here, 1.0))
            sh.scar.append(_blob_band(bl["center_deg"], bl["depth"], half_deg, half_depth))
    elif kind == "myocarditis-subepicardial":
        dep = lesion["depth"]
        sh.scar.append(
            _arc_band(
                rng,
                lesion["center_deg"],
                lesion["arc_deg"] * lvl_arc,
                1.0 - dep,
                1.0,
                edge_deg=ed,
                edge_depth=edd,
                taper=True,
                epi=True,
            )
        )
    elif kind == "edema-focal":
        for pt in lesion["patches"]:
            dep = pt["depth"]
            b = _arc_band(
                rng,
                pt["center_deg"],
                pt["arc_deg"] * lvl_arc,
                1.0 - dep,
                1.0,
                edge_deg=ed,
                edge_depth=edd,
                taper=True,
                epi=True,
            )
            sh.edema.append(b)
            if lesion["lge"]:
                sh.scar.append(
                    _blob_band(
                        pt["center_deg"] + rng.uniform(-10, 10), 1.0 - dep * 0.35, pt["arc_deg"] * 0.25, dep * 0.3
                    )
                )
    elif kind == "edema-aar":
        arc = lesion["arc_deg"] * lvl_arc
        sh.edema.append(
            _arc_band(rng, lesion["center_deg"], arc, 0.0, 1.1, edge_deg=ed, edge_depth=0.0, taper=False, endo=True)
        )
        if lesion["lge"]:
            sh.scar.append(
                _arc_band(
                    rng,
                    lesion["center_deg"],
                    arc * 0.55,
                    0.0,
                    lesion["lge_transmurality"],
                    edge_deg=ed,
                    edge_depth=edd,
                    taper=True,
                    endo=True,
                )
            )
    elif kind == "edema-global":
        sh.edema.append(Band(np.full(N_THETA, -0.1), np.full(N_THETA, 1.1)))


def _circ_smooth(x: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """Circular moving average over ``width`` samples."""
    k = np.ones(width) / width
    xx = np.concatenate([x[-width:], x, x[:width]])
    return np.convolve(xx, k, mode="same")[width:-width]


# ---------------------------------------------------------------------------
# motion
# ---------------------------------------------------------------------------


def contraction(phase: NDArray[np.float64] | float, es_phase: float, relax_phase: float) -> NDArray[np.float64]:
    """Contraction curve c(phase) in [0, 1]: 0 at ED, 1 at ES, relaxed by ``relax_phase``."""
    ph = np.asarray(phase, dtype=np.float64) % 1.0
    up = 0.5 * (1.0 - np.cos(np.pi * np.clip(ph / es_phase, 0.0, 1.0)))
    down = 0.5 * (1.0 + np.cos(np.pi * np.clip((ph - es_phase) / (relax_phase - es_phase), 0.0, 1.0)))
    return np.where(ph <= es_phase, up, np.where(ph <= relax_phase, down, 0.0))


def wall_tables(
    sh: SliceHeart, c: float, subj: Subject
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Endocardial radius, epicardial radius and RV depth at contraction ``c``.

    Returns:
        ``(r_en, r_ep, rv_depth)``, each ``(N_THETA,)`` mm.
    """
    f = subj.params["es_cavity_radius_factor"]
    g = subj.params["es_area_gain"]
    dr = sh.r_ed * (1.0 - f) * sh.kinesis
    r_en = sh.r_ed - dr * c
    area = (sh.r_ed + sh.wall_ed) ** 2 - sh.r_ed**2
    r_ep = np.sqrt(r_en**2 + area * (1.0 + g * sh.kinesis * c))
    rv = sh.rv_depth * (1.0 - 0.35 * c)
    return r_en, r_ep, rv


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------


def _ellipse(
    x: NDArray[Any],
    y: NDArray[Any],
    cx: float,
    cy: float,
    ax: float,
    ay: float,
    wobble: list[list[float]] | None = None,
) -> NDArray[np.bool_]:
    """Inside an ellipse whose radius is modulated by ``1 + sum a_k cos k phi + b_k sin k phi``.

    The angle is only evaluated where the modulation can matter (``|m - 1| <= sum |a_k| + |b_k|``).
    """
    e = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2
    if not wobble:
        return e <= 1.0
    amp = float(sum(abs(a) + abs(b) for a, b in wobble))
    inside = e <= max(1.0 - amp, 0.0) ** 2
    band = ~inside & (e <= (1.0 + amp) ** 2)
    xb, yb = x[band], y[band]
    phi = np.arctan2((yb - cy) / ay, (xb - cx) / ax)
    m = np.ones_like(phi)
    for k, (a, b) in enumerate(wobble, start=2):
        m += a * np.cos(k * phi) + b * np.sin(k * phi)
    inside[band] = e[band] <= m * m
    return inside


def render_body(X: NDArray[np.float32], Y: NDArray[np.float32], subj: Subject, level_index: int) -> NDArray[np.uint8]:
    """Tissue codes of the thorax (no heart) at anatomical coordinates ``X, Y`` (mm).

    Returns:
        uint8 array of ``X.shape`` with codes from :data:`TISSUE`.
    """
    b = subj.body
    T = np.zeros(X.shape, dtype=np.uint8)
    cx, cy = b["center_mm"]
    ax, ay = b["semi_mm"]
    inside = _ellipse(X, Y, cx, cy, ax, ay, b.get("wobble", {}).get("body"))
    T[inside] = TISSUE["sub_fat"]
    f1 = ((X - cx) / (ax - b["sub_fat_mm"])) ** 2 + ((Y - cy) / (ay - b["sub_fat_mm"])) ** 2 <= 1.0
    T[f1] = TISSUE["muscle"]
    inner_ax, inner_ay = ax - b["sub_fat_mm"] - b["muscle_mm"], ay - b["sub_fat_mm"] - b["muscle_mm"]
    f2 = ((X - cx) / inner_ax) ** 2 + ((Y - cy) / inner_ay) ** 2 <= 1.0
    T[f2] = TISSUE["lung"]
    ms = b["mediastinum"]
    wb = b.get("wobble", {})
    T[f2 & _ellipse(X, Y, ms[0], ms[1], ms[2], ms[3], wb.get("mediastinum"))] = TISSUE["soft"]
    pm = b["post_mediastinum"]
    T[f2 & _ellipse(X, Y, pm[0], pm[1], pm[2], pm[3], wb.get("post_mediastinum"))] = TISSUE["soft"]
    lung = T == TISSUE["lung"]
    for vx, vy, vr in b.get("lung_vessels", []):
        sel = lung & ((X - vx) ** 2 + (Y - vy) ** 2 < vr * vr)
        T[sel] = TISSUE["vessel"]
    lv = b["liver"]
    grow = (0.75, 0.95, 1.15)[level_index]
    T[f2 & _ellipse(X, Y, lv[0], lv[1], lv[2] * grow, lv[3] * grow, wb.get("liver"))] = TISSUE["liver"]
    sp = b["spine"]
    T[_ellipse(X, Y, sp[0], sp[1], sp[2], sp[2])] = TISSUE["bone"]
    ao = b["aorta"]
    T[f2 & _ellipse(X, Y, ao[0], ao[1], ao[2], ao[2])] = TISSUE["aorta"]
    return T


def render_heart(
    X: NDArray[np.float32],
    Y: NDArray[np.float32],
    T: NDArray[np.uint8],
    sh: SliceHeart,
    c: float,
    subj: Subject,
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Paint the heart into tissue codes ``T`` (modified in place) at contraction ``c``.

    Args:
        X, Y: anatomical coordinates (mm) of the samples, any shape.
        T: body codes from :func:`render_body`, same shape.

    Returns:
        ``(T, ti)``: codes and the angle-table index of every sample.
    """
    r_en, r_ep, rv = wall_tables(sh, c, subj)
    r = np.hypot(X, Y)
    th = np.degrees(np.arctan2(Y, X)) % 360.0
    ti = (th * (N_THETA / 360.0)).astype(np.int64) % N_THETA
    Ren, Rep, D = r_en[ti], r_ep[ti], rv[ti]
    rvw = np.where(D > 0.3, sh.rv_wall, 0.0)
    outer = Rep + D + rvw
    fat = sh.fat[ti]
    heart_fat = r < outer + fat
    T[heart_fat] = TISSUE["epi_fat"]
    T[(r < Rep + D + rvw) & (D > 0.3)] = TISSUE["rv_wall"]
    T[(r >= Rep) & (r < Rep + D)] = TISSUE["rv_blood"]
    myo = (r >= Ren) & (r < Rep)
    T[myo] = TISSUE["myo"]
    T[r < Ren] = TISSUE["lv_blood"]
    for pth, prad in sh.pap:
        pr = prad * (1.0 + 0.25 * c)
        rc = r_en[int(pth * N_THETA / 360.0) % N_THETA] - pr * 0.9
        px, py = rc * np.cos(np.deg2rad(pth)), rc * np.sin(np.deg2rad(pth))
        T[((X - px) ** 2 + (Y - py) ** 2 < pr**2) & (r < Ren)] = TISSUE["papillary"]
    if sh.scar or sh.edema or sh.territory:
        idx = np.nonzero(myo)
        d = (r[idx] - Ren[idx]) / np.maximum(Rep[idx] - Ren[idx], 1e-3)
        tt = ti[idx]
        code = np.full(d.shape, TISSUE["myo"], dtype=np.uint8)
        terr = np.zeros(d.shape, bool)
        for bnd in sh.territory:
            terr |= bnd.contains(tt, d)
        code[terr] = TISSUE["territory"]
        ede = np.zeros(d.shape, bool)
        for bnd in sh.edema:
            ede |= bnd.contains(tt, d)
        code[ede] = TISSUE["edema"]
        sc = np.zeros(d.shape, bool)
        for bnd in sh.scar:
            sc |= bnd.contains(tt, d)
        code[sc] = np.where(ede[sc], TISSUE["scar_edema"], TISSUE["scar"])
        mv = np.zeros(d.shape, bool)
        for bnd in sh.mvo:
            mv |= bnd.contains(tt, d)
        code[mv & sc] = TISSUE["mvo"]
        T[idx] = code
    return T, ti
