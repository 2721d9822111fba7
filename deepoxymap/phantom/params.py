"""Every number of the synthetic OS-CMR generator, in frozen dataclasses.

Values follow ``DOMAIN.md`` sections 2-7; every field's docstring carries the
tag of its number: [S] published (the DOMAIN section that quotes the source), [D]
derived from published numbers, [A] an engineering assumption. Where this
module deviates from DOMAIN, the field docstring says so (see also ``deepoxymap/phantom/README``
in :mod:`deepoxymap.phantom`). Ranges are ``(low, high)`` tuples sampled
uniformly unless a field says "mean, sd" (normal). Units are in the names:
``_mm``, ``_ms``, ``_deg``, ``_pct`` (percent signal change), ``_bpm``.

Nothing here depends on the class of a subject except :class:`ClassParams`;
scanner and grid parameters live in :class:`SiteParams` and are sampled
independently of the class (no label leak through matrix, spacing, tags or
scaling).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Range = tuple[float, float]
MeanSd = tuple[float, float]


@dataclass(frozen=True)
class TissueRelax:
    """Proton density (fraction) and relaxation times (ms) of one tissue at one field.

    Used by the bSSFP steady-state formula (DOMAIN 6.2 step 3, MRXCAT defaults).
    """

    rho: float
    t1_ms: float
    t2_ms: float


@dataclass(frozen=True)
class FieldTissues:
    """Tissue relaxation for one field strength (MRXCAT ``CINEpar.m`` values at 1.5 T,
    DOMAIN 6.2 step 3 [S]: fat 70/350/30, muscle 80/900/50, liver 90/800/50, bone
    12/250/20; lung (12 %, 1200/30) and the fat-like mediastinal ``soft`` tissue [A];
    3 T values scaled as DOMAIN section 4 says: T1 +10-20 %, T2 slightly lower [D/A]).
    Myocardium and blood T1/T2 are sampled per subject (see :class:`SiteParams`);
    these are the other tissues."""

    fat: TissueRelax
    muscle: TissueRelax
    liver: TissueRelax
    lung: TissueRelax
    bone: TissueRelax
    soft: TissueRelax


TISSUES_15T = FieldTissues(
    fat=TissueRelax(0.70, 350.0, 30.0),
    muscle=TissueRelax(0.80, 900.0, 50.0),
    liver=TissueRelax(0.90, 800.0, 50.0),
    lung=TissueRelax(0.12, 1200.0, 30.0),
    bone=TissueRelax(0.12, 250.0, 20.0),
    soft=TissueRelax(0.72, 480.0, 40.0),
)
TISSUES_3T = FieldTissues(
    fat=TissueRelax(0.70, 380.0, 28.0),
    muscle=TissueRelax(0.80, 1050.0, 45.0),
    liver=TissueRelax(0.90, 900.0, 42.0),
    lung=TissueRelax(0.10, 1300.0, 25.0),
    bone=TissueRelax(0.12, 280.0, 18.0),
    soft=TissueRelax(0.72, 540.0, 36.0),
)


@dataclass(frozen=True)
class SiteParams:
    """One acquisition site: scanner, protocol and grid. Sampled per subject, never per class.

    Tags: [S] published (DOMAIN section), [D] derived, [A] assumption. Site A is a 3 T,
    site B a 1.5 T scanner (DOMAIN 7: P(3 T) = 0.7 [A]; the study's 160 + 30 cohorts [S 1]).

    Attributes:
        name: site id written to truth/manifest (``A``/``B``).
        field_t: MagneticFieldStrength, tesla (DOMAIN 2.6: 1.5 or 3 T [S]).
        manufacturer / model: DICOM Manufacturer / ManufacturerModelName (synthetic).
        os_matrix: OS-CMR reconstruction matrix ``(rows, cols)`` (DOMAIN 2.6: 192-256
            reconstructed [D]); rows (anterior-posterior) are the shorter, phase-encoded
            FOV, columns the frequency-encoded one [A].
        os_pixel_mm: OS-CMR reconstructed pixel spacing range (square pixels), mm
            (DOMAIN 2.6: acquired 1.7-1.9 mm "often interpolated to 1.2-1.4 mm" [S];
            Sunnybrook cine 1.3 mm). FOV = matrix x pixel: about 260-310 mm (rows) x
            300-350 mm (columns) (DOMAIN 2.6/6.1: 300-380 mm [A]; reduced phase FOV [A]).
        os_acq_pixel_mm: OS-CMR *acquired* pixel (k-space extent 1/pixel), mm, square
            (DOMAIN 2.6: 1.7-1.9 mm acquired at 1.5 T, 1.8 x 1.8 mm [S]; 3 T slightly finer
            [A]); the image is band-limited to it and zero-fill interpolated to ``os_pixel_mm``.
        lge_matrix / lge_pixel_mm / lge_acq_pixel_mm: LGE reconstruction grid and acquired
            pixel (DOMAIN 3.1: in-plane < 2 mm [S]; matrix and pixel [A]).
        map_matrix / map_pixel_mm / map_acq_pixel_mm: T1/T2 map grid and acquired pixel
            (maps are usually coarser [A]).
        slice_thickness_mm: choices of SliceThickness (mm), one per subject (DOMAIN 2.6:
            6-8 mm, 8 typical, 10 in real-time [S]).
        n_frames: cine phases per cardiac cycle. Deviation from 20-30 (DOMAIN 2.6 [S]):
            12 phases keep the cohort's size down; ES is still resolved (~70 ms steps) [A].
        tr_ms: bSSFP repetition time range; TE = TR/2 (DOMAIN 2.6: 3.1-3.4 ms, TE ~ TR/2 [S];
            ranges [A]).
        flip_deg: bSSFP flip angle range (DOMAIN 2.6: ~50 deg at 3 T, 60 at 1.5 T [S]).
        snr_myo: nominal myocardial SNR of the OS cine (myocardial signal at unit coil
            sensitivity / noise SD). Calibrated [A] so that the SNR the realism report
            *measures* (background tiles of the zero-filled image read the noise ~20 % low,
            and partial volume raises the myocardial mean: measured ~1.3 x nominal) has a
            median near 29 (DOMAIN 2.6: 29 +- 7 [S]; DOMAIN 7: 15-35 [A]).
        lge_snr_blood: LGE blood SNR range [A].
        lge_ti_ms: LGE inversion time range (DOMAIN 3.1: 280-310 [D]; wider for realism [A]).
        lge_tr_ms / lge_te_ms / lge_flip_deg: LGE scanner parameters [A].
        t1_myo_ms: native myocardial T1 (mean, sd) of healthy myocardium (DOMAIN 4: 3 T
            1183.8 +- 37.5, 1.5 T 995.8 +- 30.9, Granitz [S]).
        t2_myo_ms: myocardial T2 (mean, sd), ms (DOMAIN 4: 3 T 44-52, 1.5 T 55.8 +- 2.8 [S]).
        t1_blood_ms / t2_blood_ms: blood T1/T2 ranges (per subject; haematocrit and
            flow make blood/myocardium contrast vary; T2 tuned so blood/myocardium
            bSSFP ratio is about 3-3.5 as in real cine, DOMAIN 2.6 [S ratio, A values]).
        os_scale: multiplier of the 3 T OS (BOLD) effect sizes at this field
            (DOMAIN 7: 0.5-0.7 at 1.5 T [A; sources disagree, DOMAIN 2.1]).
        banding_prob: probability of an off-resonance band (bSSFP, mostly 3 T; DOMAIN 6.2
            step 8 [A]).
        gain: receiver gain range (stored value per unit signal), per subject [A].
        tissues: the other tissues' relaxation at this field (MRXCAT, DOMAIN 6.2 [S];
            3 T values [A, DOMAIN 4 field dependence]).
    """

    name: str
    field_t: float
    manufacturer: str
    model: str
    os_matrix: tuple[int, int]
    os_pixel_mm: Range
    os_acq_pixel_mm: Range
    lge_matrix: tuple[int, int]
    lge_pixel_mm: Range
    lge_acq_pixel_mm: Range
    map_matrix: tuple[int, int]
    map_pixel_mm: Range
    map_acq_pixel_mm: Range
    slice_thickness_mm: tuple[float, ...]
    n_frames: int
    tr_ms: Range
    flip_deg: Range
    snr_myo: Range
    lge_snr_blood: Range
    lge_ti_ms: Range
    lge_tr_ms: float
    lge_te_ms: float
    lge_flip_deg: float
    t1_myo_ms: MeanSd
    t2_myo_ms: MeanSd
    t1_blood_ms: Range
    t2_blood_ms: Range
    os_scale: Range
    banding_prob: float
    gain: Range
    tissues: FieldTissues


SITE_A = SiteParams(
    name="A",
    field_t=3.0,
    manufacturer="DeepOxyMap Synthetic",
    model="PhantomScan 3T",
    os_matrix=(192, 224),
    os_pixel_mm=(1.35, 1.55),
    os_acq_pixel_mm=(1.6, 1.8),
    lge_matrix=(192, 224),
    lge_pixel_mm=(1.35, 1.55),
    lge_acq_pixel_mm=(1.6, 1.9),
    map_matrix=(160, 192),
    map_pixel_mm=(1.65, 1.85),
    map_acq_pixel_mm=(2.0, 2.4),
    slice_thickness_mm=(8.0,),
    n_frames=12,
    tr_ms=(3.2, 3.6),
    flip_deg=(45.0, 55.0),
    snr_myo=(16.0, 30.0),
    lge_snr_blood=(18.0, 30.0),
    lge_ti_ms=(270.0, 340.0),
    lge_tr_ms=5.2,
    lge_te_ms=2.0,
    lge_flip_deg=20.0,
    t1_myo_ms=(1180.0, 38.0),
    t2_myo_ms=(46.0, 2.5),
    t1_blood_ms=(1850.0, 2050.0),
    t2_blood_ms=(150.0, 260.0),
    os_scale=(1.0, 1.0),
    banding_prob=0.25,
    gain=(6.0, 14.0),
    tissues=TISSUES_3T,
)

SITE_B = SiteParams(
    name="B",
    field_t=1.5,
    manufacturer="DeepOxyMap Synthetic",
    model="PhantomScan 1.5T",
    os_matrix=(192, 208),
    os_pixel_mm=(1.45, 1.6),
    os_acq_pixel_mm=(1.7, 1.9),
    lge_matrix=(192, 208),
    lge_pixel_mm=(1.45, 1.6),
    lge_acq_pixel_mm=(1.7, 1.95),
    map_matrix=(160, 192),
    map_pixel_mm=(1.7, 1.9),
    map_acq_pixel_mm=(2.1, 2.5),
    slice_thickness_mm=(8.0, 10.0),
    n_frames=12,
    tr_ms=(2.9, 3.3),
    flip_deg=(55.0, 65.0),
    snr_myo=(12.0, 24.0),
    lge_snr_blood=(14.0, 24.0),
    lge_ti_ms=(260.0, 320.0),
    lge_tr_ms=4.8,
    lge_te_ms=1.9,
    lge_flip_deg=25.0,
    t1_myo_ms=(996.0, 31.0),
    t2_myo_ms=(54.0, 2.8),
    t1_blood_ms=(1500.0, 1650.0),
    t2_blood_ms=(180.0, 300.0),
    os_scale=(0.5, 0.7),
    banding_prob=0.05,
    gain=(5.5, 12.0),
    tissues=TISSUES_15T,
)


@dataclass(frozen=True)
class AnatomyParams:
    """Class-independent anatomy (DOMAIN 6.1/6.2). Lengths in mm, angles in degrees.

    Attributes:
        heart_rate_bpm: heart rate range (RR = 60000/HR ms) (DOMAIN 7: 55-85 [A]).
        es_phase: phase of end-systole as fraction of RR (DOMAIN 2.4/6.2: ~0.35 RR [A]).
        relax_phase: phase by which the LV has relaxed (DOMAIN 6.2: ~0.7 RR [A]).
        es_area_gain: fractional growth of the in-plane myocardial area at ES.
            Deviation: DOMAIN 6.2 asks for constant area, but with constant area the
            wall thickens only ~2 mm (DOMAIN's own 4 mm needs through-plane
            shortening); 0.2-0.35 yields the 3-5 mm thickening of DOMAIN 6.1 [D from S].
        septal_extra_mm: septal thickening over the free wall (DOMAIN 6.2: +1 mm [A]).
        segmental_sd_mm: SD of smooth segmental thickness variation [A].
        trabeculation_mm: SD of the high-frequency endocardial irregularity
            (trabeculae; the epicardium stays smooth) [A].
        ellipticity: ``e`` range; radius * (1 + e cos 2(theta - phi)) (DOMAIN 6.2: axis
            ratio 0.9-1 [A]).
        rotation_deg: in-plane rotation range of the heart (and body) about the LV centre [A].
        offset_mm: LV centre offset range from the image centre (each axis) [A].
        level_radius: endocardial radius factor of (basal, mid, apical) slices [A].
        level_wall: wall thickness factor of (basal, mid, apical) slices (DOMAIN 6.1: thins
            base -> apex [S]; factors [A]).
        slice_gap_mm: distance between neighbouring slice planes (base-mid, mid-apex) [A].
        rv_depth_mm: maximal RV cavity depth at mid ED (DOMAIN 6.1: RV area 0.6-1.0 x LV [A]).
        rv_halfwidth_deg: half the RV arc (insertion points at 180 -+ this; DOMAIN 6.2:
            100-140 deg arc [A]).
        rv_wall_mm: RV free wall thickness (DOMAIN 6.1: 3-4 mm [A]).
        rv_level: RV depth factor per level (basal, mid, apical) [A].
        epi_fat_mm: maximal epicardial fat thickness (patchy; DOMAIN 6.2: 1-3 mm band [A]).
        pap_radius_mm: papillary muscle radius [A].
        axis_jitter_deg: random tilt of the long axis from the nominal LAI direction [A].
        breathing_shift_mm: residual in-plane shift between OS time points (max) (DOMAIN 6.2
            step 8: 1-5 mm [A]).
        misregistration_mm: in-plane shift of LGE/T1/T2 relative to the OS exam (DOMAIN 7:
            0-3 mm [A]).
    """

    heart_rate_bpm: Range = (55.0, 85.0)
    es_phase: Range = (0.32, 0.38)
    relax_phase: float = 0.70
    es_area_gain: Range = (0.20, 0.35)
    septal_extra_mm: Range = (0.5, 1.5)
    segmental_sd_mm: float = 0.35
    trabeculation_mm: float = 0.6
    ellipticity: Range = (0.0, 0.05)
    rotation_deg: Range = (-25.0, 25.0)
    offset_mm: Range = (-12.0, 12.0)
    level_radius: tuple[float, float, float] = (1.08, 1.0, 0.68)
    level_wall: tuple[float, float, float] = (1.04, 1.0, 0.85)
    slice_gap_mm: Range = (18.0, 24.0)
    rv_depth_mm: Range = (11.0, 19.0)
    rv_halfwidth_deg: Range = (52.0, 68.0)
    rv_wall_mm: Range = (3.0, 4.0)
    rv_level: tuple[float, float, float] = (1.15, 1.0, 0.55)
    epi_fat_mm: Range = (1.0, 3.5)
    pap_radius_mm: Range = (3.0, 4.8)
    axis_jitter_deg: float = 10.0
    breathing_shift_mm: float = 2.5
    misregistration_mm: float = 3.0


@dataclass(frozen=True)
class OsEffect:
    """Between-subject distribution of a subject-level OS (BOLD) response at 3 T: (mean, sd) percent.

    Attributes:
        hv_pct: end-of-hyperventilation change vs baseline ("response to hyperventilation").
        bh_pct: breath-hold change (B-MORE: BH end vs BH start).
    """

    hv_pct: MeanSd
    bh_pct: MeanSd


@dataclass(frozen=True)
class OsRow:
    """Mean OS response of one myocardial region in the DOMAIN 7 table, percent at 3 T.

    Only the mean is used: the region's *class effect* is this mean minus the
    subject-level (remote) mean of the same class (DOMAIN 7, "How to read the OS
    rows"). The table's +- values are between-subject SDs and are not drawn again
    per region.

    Attributes:
        hv_pct: mean end-of-hyperventilation change vs baseline.
        bh_pct: mean breath-hold change (B-MORE).
    """

    hv_pct: float
    bh_pct: float


@dataclass(frozen=True)
class ClassParams:
    """Per-class parameter table (DOMAIN 7). Everything per subject.

    OS (BOLD) model (DOMAIN 7 correction, 2026-12): per manoeuvre phase one
    subject-level response ``R ~ N(os_subject)`` (clipped); remote myocardium
    follows ``R``; a lesion region gets ``R + (row mean - os_subject mean) + delta``
    with ``delta ~ N(0, regional SD)`` (:attr:`PhantomParams.regional_sd_pct`).

    Attributes:
        subtypes: sub-type -> probability (sums to 1) [A, DOMAIN 7 "Sub-type mix"].
        r_ed_mm: mid-slice ED endocardial radius range [A/D, DOMAIN 6.1: ED cavity 45-55 mm].
        wall_ed_mm: mid-slice ED wall thickness range [S, DOMAIN 6.1/7: 5-8 mm].
        ef: ejection-fraction-like contraction range (cavity area shrinks by ~0.8*EF)
            [A, DOMAIN 7 morphology row].
        os_subject: subject-level response (the remote / non-involved row of DOMAIN 7,
            between-subject SD), which remote myocardium follows.
        os_lesion: mean response of lesion myocardium (scar, edema, ischaemic territory),
            or None (healthy: no lesion).
        os_core: mean response of the ischaemic scar core (transmural scar, MVO), or None
            (then the core follows ``os_lesion``).
        os_global: mean response of a globally edematous ring (edema sub-type ``global``),
            or None.
    """

    subtypes: dict[str, float]
    r_ed_mm: Range
    wall_ed_mm: Range
    ef: Range
    os_subject: OsEffect
    os_lesion: OsRow | None = None
    os_core: OsRow | None = None
    os_global: OsRow | None = None


def _default_classes() -> dict[str, ClassParams]:
    """The DOMAIN 7 class table.

    OS numbers (3 T, percent; hv = HV end vs baseline, bh = B-MORE):

    * healthy: subject hv -10 +- 8 [S: Guensch 2015 -10.6 +- 7.8], bh +11 +- 6
      [S: range of means 9.1-14.8, Fischer 2018 11.3 +- 6.1].
    * ischemic: subject (remote) hv -6 +- 9 [S: CAD -5.8 +- 9.6, Spicher 2022],
      bh +5 +- 5 [A: DOMAIN 7]; territory/lesion mean hv -3 [S: CAD -3.1, Fischer 2018],
      bh +2 [S: CAD 2.1 / 2.7]; scar core hv -1, bh 0 [A].
    * non-ischemic: subject hv -5 +- 8, bh +5 +- 6 [A]; lesion hv -3 [A, as CAD],
      bh +1.5 [A: DOMAIN 7 "lesion 0-3 %", mid-point].
    * edema: subject (non-involved) hv -5 +- 8, bh +8 +- 6 [A]; edematous region hv -3,
      bh +1 [A]; global edema ring hv -5, bh +3 [A: DOMAIN 7 "whole ring +3 +- 5 %"].
    """
    return {
        "healthy": ClassParams(
            subtypes={"normal": 1.0},
            r_ed_mm=(22.0, 27.5),
            wall_ed_mm=(5.0, 8.0),
            ef=(0.55, 0.72),
            os_subject=OsEffect((-10.0, 8.0), (11.0, 6.0)),
        ),
        "ischemic": ClassParams(
            subtypes={
                "LAD-subendocardial": 0.225,
                "LAD-transmural": 0.225,
                "RCA-subendocardial": 0.175,
                "RCA-transmural": 0.175,
                "LCx-subendocardial": 0.10,
                "LCx-transmural": 0.10,
            },
            r_ed_mm=(23.0, 30.0),
            wall_ed_mm=(5.0, 8.0),
            ef=(0.35, 0.55),
            os_subject=OsEffect((-6.0, 9.0), (5.0, 5.0)),
            os_lesion=OsRow(-3.0, 2.0),
            os_core=OsRow(-1.0, 0.0),
        ),
        "non-ischemic": ClassParams(
            subtypes={"DCM": 0.40, "HCM": 0.35, "myocarditis": 0.25},
            r_ed_mm=(22.0, 27.5),
            wall_ed_mm=(5.0, 7.5),
            ef=(0.45, 0.65),
            os_subject=OsEffect((-5.0, 8.0), (5.0, 6.0)),
            os_lesion=OsRow(-3.0, 1.5),
        ),
        "edema": ClassParams(
            subtypes={"focal": 0.40, "AAR": 0.30, "global": 0.30},
            r_ed_mm=(22.0, 28.0),
            wall_ed_mm=(5.0, 8.0),
            ef=(0.48, 0.68),
            os_subject=OsEffect((-5.0, 8.0), (8.0, 6.0)),
            os_lesion=OsRow(-3.0, 1.0),
            os_global=OsRow(-5.0, 3.0),
        ),
    }


@dataclass(frozen=True)
class LesionParams:
    """Lesion geometry, relaxation and LGE numbers (DOMAIN 3, 4, 7).

    T1 values are given at 3 T and 1.5 T as (low, high) ranges; deltas are
    added to the subject's remote value. LGE intensities are normalised to a
    blood pool of about 0.6-0.9 (DOMAIN 7).

    Sources, field by field (DOMAIN 7 table unless stated):

    * ischemic: arc 60-180 deg, sub-endocardial extent 10-50 % / transmural 51-100 %
      [A, TEI bins S DOMAIN 3.1] (kept 15-50 % and 75-100 % so the two patterns
      separate [A]); transmural wall 3-5 mm and kinesis [A, DOMAIN 6.1]; MVO in 0-20 %
      [A, MVO exists S]; scar T1 3 T 1500-1750 [S 1621 +- 110], 1.5 T 1100-1250 [S/A];
      scar T2 ~ normal [S, DOMAIN 4], -2..+3 ms [A]; territory centres and jitter [A,
      DOMAIN 5.3 territories S].
    * non-ischemic: DCM EDD 60-75 mm [A], EF 20-45 % [S: 32 +- 12], mid-wall band 20-40 %
      and arc 60-120 deg [A]; HCM wall 15-25 mm [S: 21 +- 5], asymmetric 62 % [S], small
      cavity and EF 60-75 % [A], blobs 5-15 mm [A]; myocarditis-type outer 20-50 %, arc
      60-120 deg [A]; lesion T1 +60-150 ms, global +0-40 ms, T2 +0-3 ms [A].
    * edema: focal transmurality 20-70 % [A]; AAR arc 90-180 deg [A]; T1 3 T 1250-1400
      [S: NSTEMI 1323 +- 68], 1.5 T 1050-1200 [S: myocarditis focal 1100-1200]; T2 +8-20 ms
      [S]; global T2 +5-10 ms [A], T1 +40-110 ms [A]; LGE in 60 % (focal) [A: 50-70 %],
      80 % (AAR) [A]; wall +0-2 mm [A].
    * LGE intensities: myocardium 0.02-0.08, blood 0.6-0.9, ischaemic scar 0.75-1.0,
      MVO 0.05-0.2, non-ischaemic 0.5-0.9, edema-type 0.5-0.8 [A, DOMAIN 7 row]. These
      are drawn with the anatomy; :class:`LgeRealismParams` then moves the rendered
      LGE towards real images (incomplete nulling, grey zone, heterogeneity, lower
      CNR; MVO as dark as remote, replacing ``lge_mvo`` in the image).
    * edges: irregular edge noise (deg, depth fraction) [A, DOMAIN 7 "smoothed noise"].
    """

    # ischemic
    isch_arc_deg: Range = (60.0, 180.0)
    subendo_tm: Range = (0.15, 0.50)
    transmural_tm: Range = (0.75, 1.0)
    transmural_wall_mm: Range = (3.0, 5.0)
    transmural_kinesis: Range = (0.0, 0.2)
    subendo_kinesis: Range = (0.4, 0.7)
    mvo_prob: float = 0.15
    scar_t1_3t_ms: Range = (1500.0, 1750.0)
    scar_t1_15t_ms: Range = (1100.0, 1250.0)
    scar_t2_delta_ms: Range = (-2.0, 3.0)
    territory_center_deg: dict[str, float] = field(default_factory=lambda: {"LAD": 115.0, "RCA": 245.0, "LCx": 0.0})
    territory_jitter_deg: float = 20.0
    # non-ischemic
    dcm_r_ed_mm: Range = (30.0, 37.5)
    dcm_ef: Range = (0.20, 0.45)
    dcm_band_width: Range = (0.2, 0.4)
    dcm_arc_deg: Range = (60.0, 120.0)
    hcm_wall_max_mm: Range = (15.0, 25.0)
    hcm_r_ed_mm: Range = (17.0, 22.0)
    hcm_ef: Range = (0.60, 0.75)
    hcm_asymmetric_prob: float = 0.62
    hcm_blob_mm: Range = (5.0, 15.0)
    myocarditis_depth: Range = (0.2, 0.5)
    myocarditis_arc_deg: Range = (60.0, 120.0)
    noni_t1_delta_ms: Range = (60.0, 150.0)
    noni_global_t1_delta_ms: Range = (0.0, 40.0)
    noni_t2_delta_ms: Range = (0.0, 3.0)
    # edema
    edema_focal_tm: Range = (0.2, 0.7)
    edema_aar_arc_deg: Range = (90.0, 180.0)
    edema_t1_3t_ms: Range = (1250.0, 1400.0)
    edema_t1_15t_ms: Range = (1050.0, 1200.0)
    edema_t2_delta_ms: Range = (8.0, 20.0)
    global_t2_delta_ms: Range = (5.0, 10.0)
    global_t1_delta_ms: Range = (40.0, 110.0)
    focal_lge_prob: float = 0.6
    aar_lge_prob: float = 0.8
    edema_wall_extra_mm: Range = (0.0, 2.0)
    # LGE intensities (normalised)
    lge_myo: Range = (0.02, 0.08)
    lge_blood: Range = (0.6, 0.9)
    lge_isch_scar: Range = (0.75, 1.0)
    lge_mvo: Range = (0.05, 0.2)
    lge_noni_scar: Range = (0.5, 0.9)
    lge_edema_scar: Range = (0.5, 0.8)
    # edges
    edge_noise_deg: float = 8.0
    edge_noise_depth: float = 0.12


@dataclass(frozen=True)
class LgeRealismParams:
    """What makes the phantom LGE as hard as real LGE (drawn per subject from its own stream).

    All are drawn from a generator of their own
    (``SeedSequence([seed, index, LGE_STREAM])``, :mod:`.seq_lge`), so the
    OS-CMR, T1 and T2 series stay byte-identical whatever these are.

    Attributes:
        null_offset: incomplete nulling: added to the remote-myocardium LGE value,
            as a fraction of the blood value (TI drifts up 10-15 ms every few minutes
            after a TI scout [S: DOMAIN 3.1, cmr-guide], so remote is rarely exactly
            null; the EMIDEC negative sample reads remote about 200 SI under blood on a
            ~2300 offset [S: measured]; range [A]).
        noise_factor: multiplies the LGE noise SD from ``lge_snr_blood``, so scar-to-remote
            CNR lands near 5-20 (real scar reads 3-6 robust SD above remote in the
            EMIDEC sample and the issue's real case: n-SD 5 found nothing [S: measured];
            range [A]). Rician magnitude noise as before.
        scar_het_sd: SD (of the log) of the smooth multiplicative heterogeneity of scar
            enhancement (patchy, heterogeneous infarcts [S: Schmidt 2007 Circulation
            115:2006, heterogeneous infarct tissue]; value [A]).
        scar_het_mm: correlation length (Gaussian SD, mm) of that field [A].
        grey_zone_mm: width of the peri-infarct grey zone at the scar border, mm (SI
            intermediate between remote and core [S: Yan 2006 Circulation 114:32;
            Schmidt 2007]; width [A]).
        grey_zone_floor: enhancement at the scar border as a fraction of the core's; it
            rises linearly to 1 over ``grey_zone_mm`` [A].
        mvo_of_remote: MVO (no-reflow core) SI as a fraction of the remote-myocardium
            value: as dark as remote or darker [S: MVO dark core DOMAIN 3.2; fraction A].
    """

    null_offset: Range = (0.0, 0.25)
    noise_factor: Range = (1.5, 3.0)
    scar_het_sd: Range = (0.15, 0.30)
    scar_het_mm: Range = (2.0, 4.0)
    grey_zone_mm: Range = (1.5, 3.5)
    grey_zone_floor: Range = (0.3, 0.5)
    mvo_of_remote: Range = (0.4, 1.0)


@dataclass(frozen=True)
class PhantomParams:
    """Top-level parameters of the generator (all configurable).

    Attributes:
        oversample: fine-grid factor: tissues are rendered on a grid ``oversample`` times
            finer than the reconstruction grid (point samples; fine spacing 0.7-0.8 mm at
            2), then band-limited to the acquired resolution in k-space (DOMAIN 6.2 step 5
            "render at 4x and box-downsample, or low-pass" [S/A]; 2 keeps the cost of the
            larger matrices near the old 3x box average).
        kspace_taper: fraction of the acquired k-space half-width over which a cosine
            (Tukey) roll-off brings the raw data to zero at its edge: the mild raw-data
            filter of vendors' reconstructions (MRXCAT low-pass "FilterStr 1.2", DOMAIN
            6.2 step 5 [S]; the fraction is [A]). 0 = sharp truncation (full Gibbs ringing).
        sites: site name -> :class:`SiteParams`.
        anatomy / lesions / classes: see their classes.
        lge: LGE realism (grey zone, heterogeneity, nulling, noise, MVO): :class:`LgeRealismParams`.
        os_subject_clip_hv_pct / os_subject_clip_bh_pct: limits of the subject-level HV and
            breath-hold responses (DOMAIN 7: B-MORE clipped to [-5, 30] [S table]; HV limits [A]).
        regional_sd_pct: range of the per-subject SD of the lesion's regional deviation
            from the subject-level response, per manoeuvre phase, percent (DOMAIN 7
            correction: SD 2-5 %, Hillier circumferential heterogeneity 2.2 % controls,
            5.1 % ANOCA [S]). Kept to 2-4 % [A] because the remote heterogeneity field
            (``het_segment_sd_pct``) adds about 1.05 x its SD to a lesion-vs-remote
            contrast (measured), so the total per-phase lesion-vs-remote SD is about 4 %.
            Not scaled by the field factor (heterogeneity is only published at 3 T [A]).
        het_segment_sd_pct: SD of the smooth circumferential heterogeneity of the whole
            myocardium per manoeuvre phase (DOMAIN 7: per-segment SD 2-3 %; Hillier controls
            2.2 % [S]).
        blood_bh_pct: blood-pool change over the breath-hold (DOMAIN 6.2 step 4: -2 to -5 % [A,
            direction S Guensch 2014]).
        blood_hv_pct: blood-pool change at end of hyperventilation [A].
        bh_start_jitter_pct: BH-start vs HV-end change of the whole heart, (mean, sd) percent [A].
        fat_opposed_phase: give fat its bSSFP echo phase relative to water in the OS cine
            (:func:`~deepoxymap.phantom.imaging.fat_bssfp_sign`), so fat-water partial-volume
            pixels cancel: the dark "India ink" line at the epicardial fat border of real
            bSSFP cine [A: bSSFP physics, not in DOMAIN].
        fat_shift_ppm: fat-water chemical shift, ppm [A: textbook 3.4-3.5 ppm].
        texture_sd: SD of the smooth multiplicative tissue texture (fraction, 5 %) [A].
        texture_scales_mm: Gaussian smoothing SDs (mm) of the fine and coarse texture
            components [A].
        texture_coarse_weight: weight of the coarse component before normalising [A].
        timepoints: OS time point -> (SeriesDescription, seconds after manoeuvre start)
            (DOMAIN 2.3: 120 s baseline, 60 s HV, breath-hold >= 30 s [S]; times [A]).
    """

    oversample: int = 2
    kspace_taper: float = 0.25
    sites: dict[str, SiteParams] = field(default_factory=lambda: {"A": SITE_A, "B": SITE_B})
    anatomy: AnatomyParams = field(default_factory=AnatomyParams)
    lesions: LesionParams = field(default_factory=LesionParams)
    lge: LgeRealismParams = field(default_factory=LgeRealismParams)
    classes: dict[str, ClassParams] = field(default_factory=_default_classes)
    os_subject_clip_hv_pct: Range = (-30.0, 10.0)
    os_subject_clip_bh_pct: Range = (-5.0, 30.0)
    regional_sd_pct: Range = (2.0, 4.0)
    het_segment_sd_pct: Range = (2.0, 3.0)
    blood_bh_pct: Range = (-5.0, -2.0)
    blood_hv_pct: Range = (0.0, 2.0)
    bh_start_jitter_pct: MeanSd = (0.0, 1.0)
    fat_opposed_phase: bool = True
    fat_shift_ppm: float = 3.4
    texture_sd: float = 0.05
    texture_scales_mm: tuple[float, float] = (2.0, 8.0)
    texture_coarse_weight: float = 0.7
    timepoints: tuple[tuple[str, str, float], ...] = (
        ("baseline", "OS_SAX_BASELINE", 60.0),
        ("hv-end", "OS_SAX_HV_END", 180.0),
        ("bh-start", "OS_SAX_BH_START", 185.0),
        ("bh-end", "OS_SAX_BH_END", 220.0),
    )


@dataclass(frozen=True)
class CohortSpec:
    """How many subjects of each class at each site.

    Attributes:
        name: ``study`` / ``demo`` / custom.
        class_counts: class -> number of subjects (all sites together).
        site_counts: site -> number of subjects; classes are spread over sites
            proportionally (largest remainder), so class mix is equal across sites.
        fixed_subtypes: class -> sub-type forced for every subject of that class
            (the demo shows the clearest pattern of each class); empty = DOMAIN mix.

    The study cohort's counts are the study's (DOMAIN 1: 68/42/33/47, 160 + 30 subjects
    [S]); the site split of the 30 as 1.5 T is [A].
    """

    name: str
    class_counts: dict[str, int]
    site_counts: dict[str, int]
    fixed_subtypes: dict[str, str] = field(default_factory=dict)


STUDY = CohortSpec(
    name="study",
    class_counts={"healthy": 68, "ischemic": 42, "non-ischemic": 33, "edema": 47},
    site_counts={"A": 160, "B": 30},
)
DEMO = CohortSpec(
    name="demo",
    class_counts={"healthy": 1, "ischemic": 1, "non-ischemic": 1, "edema": 1},
    site_counts={"A": 4},
    fixed_subtypes={"ischemic": "LAD-transmural", "non-ischemic": "HCM", "edema": "AAR"},
)
COHORTS: dict[str, CohortSpec] = {"study": STUDY, "demo": DEMO}
