"""One subject's exam: protocol, orientation, coils and UIDs shared by every series.

:func:`sample_exam` draws, from the subject's scanner generator and in a fixed
order, everything that is class-independent and common to all series (scanner
parameters, SAX orientation, receive coils, banding, study time). The
sequence modules (:mod:`.seq_oscine`, :mod:`.seq_lge`, :mod:`.seq_maps`) render
and write their series from an :class:`Exam` and return :class:`SeriesResult`.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.errors import PhantomError
from deepoxymap.phantom.anatomy import Subject
from deepoxymap.phantom.dicom import SeriesMeta, det_uid, write_series
from deepoxymap.phantom.params import PhantomParams, SiteParams
from deepoxymap.phantom.render import Acquisition, Grid, RenderOut, acquisition

__all__ = [
    "DIASTOLIC_PHASE",
    "MAP_KEYS",
    "OS_KEYS",
    "Exam",
    "SeriesResult",
    "draw_shift",
    "os_series_keys",
    "percentile_window",
    "rotation",
    "sample_exam",
    "sample_orientation",
    "sample_scan",
    "still_result",
    "subject_rngs",
]

OS_KEYS = ("os_baseline", "os_hv-end", "os_bh-start", "os_bh-end")
"""Series keys of the OS-CMR cine at the four manoeuvre time points (CONTRACTS.md)."""
MAP_KEYS = ("lge", "t1map", "t2map")
"""Series keys of the single-frame series, in writing order."""
DIASTOLIC_PHASE = 0.75
"""Cardiac phase (fraction of RR) of the LGE, T1 and T2 images."""


def os_series_keys(timepoints: Collection[str], p: PhantomParams) -> tuple[str, ...]:
    """The :data:`OS_KEYS` of some OS-CMR manoeuvre time points (``PhantomParams.timepoints`` names), in writing order.

    Raises:
        PhantomError: a time point the generator does not acquire.
    """
    names = [tp for tp, _, _ in p.timepoints]
    unknown = set(timepoints) - set(names)
    if unknown:
        raise PhantomError(f"unknown OS-CMR time point(s) {sorted(unknown)}", hint=f"any of {names}")
    return tuple(OS_KEYS[i] for i, tp in enumerate(names) if tp in timepoints)


def subject_rngs(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """The four generators of a subject (anatomy, scanner, OS response, noise) from ``SeedSequence([seed, index])``."""
    ss = np.random.SeedSequence([int(seed), int(index)])
    return tuple(np.random.default_rng(s) for s in ss.spawn(4))


# ---------------------------------------------------------------------------
# protocol and geometry
# ---------------------------------------------------------------------------


def sample_scan(rng: np.random.Generator, sp: SiteParams, n_frames: int, rr_ms: float) -> dict[str, Any]:
    """Scanner / protocol numbers of one exam (class-independent), in truth.json ``scanner`` order.

    Pixel sizes: ``*_pixel_mm`` reconstructed, ``*_acq_pixel_mm`` acquired (mm, square).
    """
    scan: dict[str, Any] = {
        "field_t": sp.field_t,
        "tr_ms": float(rng.uniform(*sp.tr_ms)),
        "flip_deg": float(rng.uniform(*sp.flip_deg)),
        "snr_myo": float(rng.uniform(*sp.snr_myo)),
        "lge_snr_blood": float(rng.uniform(*sp.lge_snr_blood)),
        "lge_ti_ms": float(rng.uniform(*sp.lge_ti_ms)),
        "gain": float(rng.uniform(*sp.gain)),
        "lge_gain": float(rng.uniform(1400.0, 2600.0)),
        "inflow": float(rng.uniform(1.05, 1.35)),
        "os_pixel_mm": float(rng.uniform(*sp.os_pixel_mm)),
        "lge_pixel_mm": float(rng.uniform(*sp.lge_pixel_mm)),
        "map_pixel_mm": float(rng.uniform(*sp.map_pixel_mm)),
        "os_acq_pixel_mm": float(rng.uniform(*sp.os_acq_pixel_mm)),
        "lge_acq_pixel_mm": float(rng.uniform(*sp.lge_acq_pixel_mm)),
        "map_acq_pixel_mm": float(rng.uniform(*sp.map_acq_pixel_mm)),
        "slice_thickness_mm": float(rng.choice(np.asarray(sp.slice_thickness_mm))),
        "n_frames": n_frames,
        "bh_duration_s": float(rng.uniform(30.0, 45.0)),
    }
    scan["te_ms"] = scan["tr_ms"] / 2.0
    scan["rr_ms"] = rr_ms
    return scan


def rotation(axis: NDArray[np.float64], ang: float) -> NDArray[np.float64]:
    """Rotation matrix about ``axis`` by ``ang`` radians (Rodrigues)."""
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
    u = rotation(ax, math.radians(rng.uniform(0, jitter_deg))) @ u
    ant = np.array([0.0, -1.0, 0.0])
    a = ant - (ant @ u) * u
    a /= np.linalg.norm(a)
    col = -a
    row = np.cross(col, -u)
    row /= np.linalg.norm(row)
    center = np.array([rng.uniform(20, 45), rng.uniform(-40, -15), rng.uniform(-70, -40)])
    return {"row": row.tolist(), "col": col.tolist(), "apex": u.tolist(), "center": center.tolist()}


def draw_shift(rng: np.random.Generator, max_mm: float, *, still: bool = False) -> tuple[float, float]:
    """A random in-plane heart shift (right, down) mm of magnitude ``U(0, max_mm)``.

    Draws the angle, then (unless ``still``, which gives no shift) the magnitude.
    """
    ang = rng.uniform(0, 2 * np.pi)
    mag = rng.uniform(0, max_mm) if not still else 0.0
    return (float(mag * np.cos(ang)), float(mag * np.sin(ang)))


def percentile_window(px: NDArray[Any]) -> tuple[float, float]:
    """Display window (centre, width) of a magnitude series: width = 99.5th percentile."""
    hi = float(np.percentile(px, 99.5))
    return (hi / 2.0, hi)


# ---------------------------------------------------------------------------
# the exam
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Exam:
    """What every series of one subject shares.

    Attributes:
        subj: the sampled subject.
        params / site: generator and site parameters.
        seed / index: the cohort seed and the subject's index (UIDs, instance seeds).
        n_frames: cine phases.
        scan: scanner numbers (:func:`sample_scan`); the OS cine adds its notes.
        orientation: :func:`sample_orientation` result.
        centers: LV centre (mm) of each slice, base -> apex.
        coils / coil_len: receive coils (X, Y, weight) and decay length (mm).
        banding: whether the OS cine has an off-resonance band.
        study_uid / for_uid / study_time_s: study UIDs and start time (s after midnight).
        extra: patient / site DICOM attributes.
        r_scan / r_noise: the scanner and noise generators (drawn in series order).
        dicom_dir: ``SUBJECT/dicom``, or ``None`` to render in memory only (nothing written).
    """

    subj: Subject
    params: PhantomParams
    site: SiteParams
    seed: int
    index: int
    n_frames: int
    scan: dict[str, Any]
    orientation: dict[str, Any]
    centers: list[NDArray[np.float64]]
    coils: list[tuple[float, float, float]]
    coil_len: float
    banding: bool
    study_uid: str
    for_uid: str
    study_time_s: float
    extra: dict[str, Any]
    r_scan: np.random.Generator
    r_noise: np.random.Generator
    dicom_dir: Path | None

    @property
    def subject_id(self) -> str:
        """The subject's folder name."""
        return self.subj.subject_id

    @property
    def rr_ms(self) -> float:
        """RR interval, ms."""
        return float(self.scan["rr_ms"])

    @property
    def rot_deg(self) -> float:
        """In-plane rotation of the heart, degrees."""
        return self.subj.params["rotation_deg"]

    @property
    def iop(self) -> tuple[float, ...]:
        """ImageOrientationPatient (row, col direction cosines)."""
        return (*self.orientation["row"], *self.orientation["col"])

    def acquisition(self, grid: Grid, acq_pixel_mm: float) -> Acquisition:
        """The acquired k-space of ``grid`` at ``acq_pixel_mm`` with the generator's raw-data taper."""
        return acquisition(grid, acq_pixel_mm, self.params.kspace_taper)

    def grid(self, shape: tuple[int, int], px: float) -> tuple[Grid, NDArray[np.float64]]:
        """A series grid of ``shape`` at ``px`` mm centred on the LV, and its per-slice IPPs."""
        row, col = np.asarray(self.orientation["row"]), np.asarray(self.orientation["col"])
        ox, oy = self.subj.params["offset_mm"]
        R, C = shape
        r0 = (R - 1) / 2.0 + oy / px
        c0 = (C - 1) / 2.0 + ox / px
        ipps = np.stack([cc - c0 * px * row - r0 * px * col for cc in self.centers])
        return Grid((R, C), (px, px), (r0, c0)), ipps

    def series_uid(self, key: str) -> str:
        """SeriesInstanceUID of series ``key``."""
        return det_uid("series", self.seed, self.index, self.subject_id, key)

    def series_meta(
        self,
        key: str,
        *,
        kind: str,
        description: str,
        image_type: tuple[str, ...],
        series_number: int,
        acq_offset_s: float,
        grid: Grid,
        ipps: NDArray[np.float64],
        trigger_ms: NDArray[np.float64],
        tr_ms: float,
        te_ms: float,
        ti_ms: float | None,
        flip_deg: float,
        rescale: tuple[float, float, str] | None,
        window: tuple[float, float],
        acq: Acquisition | None = None,
    ) -> SeriesMeta:
        """The DICOM attributes of series ``key`` with the exam's shared ones (uid, study, patient, times).

        ``acq`` sets AcquisitionMatrix. Built whether or not anything is written: the
        in-memory :class:`~deepoxymap.case.Case` (:func:`deepoxymap.phantom.load.case_of`)
        reads its geometry and times from it.
        """
        return SeriesMeta(
            kind=kind,
            description=description,
            image_type=image_type,
            series_uid=self.series_uid(key),
            study_uid=self.study_uid,
            for_uid=self.for_uid,
            series_number=series_number,
            acq_time_s=self.study_time_s + acq_offset_s,
            pixel_spacing=grid.spacing,
            iop=self.iop,
            ipps=ipps,
            slice_thickness=self.scan["slice_thickness_mm"],
            trigger_ms=trigger_ms,
            rr_ms=self.scan["rr_ms"],
            tr_ms=tr_ms,
            te_ms=te_ms,
            ti_ms=ti_ms,
            flip_deg=flip_deg,
            rescale=rescale,
            window=window,
            extra=self.extra,
            acq_matrix=acq.acq_shape if acq is not None else None,
        )

    def write(self, key: str, pixels: NDArray[np.uint16], meta: SeriesMeta) -> str:
        """Write series ``key`` (uint16 ``[slice, frame, row, col]``) to ``dicom/<key>``; returns its uid.

        With ``dicom_dir`` None nothing is written.
        """
        if self.dicom_dir is not None:
            write_series(self.dicom_dir / key, pixels, meta, f"{self.seed}-{self.index}")
        return meta.series_uid


def sample_exam(
    subj: Subject,
    p: PhantomParams,
    sp: SiteParams,
    r_scan: np.random.Generator,
    r_noise: np.random.Generator,
    *,
    seed: int,
    index: int,
    n_frames: int,
    dicom_dir: Path | None,
) -> Exam:
    """Draw the exam of one subject from ``r_scan`` (protocol, orientation, coils, banding, study time)."""
    scan = sample_scan(r_scan, sp, n_frames, 60000.0 / subj.params["heart_rate_bpm"])
    orient = sample_orientation(r_scan, p.anatomy.axis_jitter_deg)
    apex = np.asarray(orient["apex"])
    gap = subj.params["slice_gap_mm"]
    centers = [np.asarray(orient["center"]) + s * gap * apex for s in (-1.0, 0.0, 1.0)]
    # coils, texture, banding (fixed in the exam's frame)
    coils = [
        (float(r_scan.uniform(-50, 30)), float(r_scan.uniform(90, 130)), float(r_scan.uniform(0.7, 1.0))),
        (float(r_scan.uniform(-50, 30)), float(r_scan.uniform(-170, -130)), float(r_scan.uniform(0.5, 0.9))),
    ]
    coil_len = float(r_scan.uniform(90, 170))
    banding = bool(r_scan.uniform() < sp.banding_prob)
    sid = subj.subject_id
    study_time = 9 * 3600.0 + float(r_scan.uniform(0, 8 * 3600))
    extra = {
        "study_date": f"2026{1 + index % 12:02d}{1 + index % 28:02d}",
        "study_time_s": study_time,
        "manufacturer": sp.manufacturer,
        "model": sp.model,
        "institution": f"SYNTHETIC SITE {sp.name}",
        "station": f"SYNTH{sp.name}",
        "patient_name": f"SYNTHETIC^{sid}",
        "patient_id": f"SYN-{sid}",
        "field_t": sp.field_t,
    }
    return Exam(
        subj=subj,
        params=p,
        site=sp,
        seed=seed,
        index=index,
        n_frames=n_frames,
        scan=scan,
        orientation=orient,
        centers=centers,
        coils=coils,
        coil_len=coil_len,
        banding=banding,
        study_uid=det_uid("study", seed, index, sid),
        for_uid=det_uid("for", seed, index, sid),
        study_time_s=study_time,
        extra=extra,
        r_scan=r_scan,
        r_noise=r_noise,
        dicom_dir=dicom_dir,
    )


# ---------------------------------------------------------------------------
# what a series hands back
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesResult:
    """One rendered series: its ``labels.npz`` members (in order), its ``truth.json["series"]``
    entry and its stored pixel values (uint16 ``[slice, frame, row, col]``, as written to DICOM;
    stored value x RescaleSlope = ms for maps) and its DICOM attributes (:class:`SeriesMeta`, written
    or not)."""

    key: str
    labels: dict[str, NDArray[Any]]
    truth: dict[str, Any]
    pixels: NDArray[np.uint16] | None = None
    meta: SeriesMeta | None = None


def still_result(
    key: str,
    uid: str,
    description: str,
    role: str,
    grid: Grid,
    shift: tuple[float, float],
    ro: RenderOut,
    pixels: NDArray[np.uint16] | None = None,
    acq: Acquisition | None = None,
    meta: SeriesMeta | None = None,
) -> SeriesResult:
    """The :class:`SeriesResult` of a single-frame series (LGE, T1 or T2 map)."""
    return SeriesResult(
        key=key,
        labels={uid: ro.labels[:, 0], uid + "__edema": ro.edema[:, 0]},
        truth={
            "uid": uid,
            "description": description,
            "role": role,
            "timepoint": None,
            "shape": list(grid.shape),
            "pixel_spacing_mm": list(grid.spacing),
            "acquired_matrix": list(acq.acq_shape) if acq is not None else None,
            "heart_shift_mm": list(shift),
            "label_frame": 0,
            "n_frames": 1,
        },
        pixels=pixels,
        meta=meta,
    )
