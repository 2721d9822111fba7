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

This module is the orchestration; the work lives in

* :mod:`.exam`: protocol, orientation, coils, UIDs shared by the series;
* :mod:`.render`: grids, fine-grid rendering, k-space band limiting to the acquired
  resolution, k-space-limited noise;
* :mod:`.imaging`: relaxation tables, bSSFP signal, coils, texture, noise;
* :mod:`.seq_oscine`, :mod:`.seq_lge`, :mod:`.seq_maps`: one module per sequence;
* :mod:`.truth`: ``labels.npz`` and ``truth.json``.

:func:`simulate_subject` renders a subject in memory (pixels, labels, truth, the
DICOM attributes of every series) and writes DICOM only when given a folder;
:func:`generate_subject` writes the folder. ``simulate_subject(series=...)`` renders
only some series (training reads one or two OS-CMR time points): the others still
draw what they would have drawn, so the rendered ones are the same pixels
(:func:`deepoxymap.phantom.load.case_of` turns it into a :class:`~deepoxymap.case.Case`).

Randomness: subject ``i`` of a cohort with seed ``s`` uses
``SeedSequence([s, i])`` only, so subjects can be generated in any order or in
parallel and the same seed gives byte-identical files. Within a subject the four
generators (anatomy, scanner, OS response, noise) are drawn in a fixed order:
exam, OS cine (texture, band, per time point shift), then LGE, T1, T2 map.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepoxymap.errors import PhantomError
from deepoxymap.phantom.anatomy import sample_subject
from deepoxymap.phantom.exam import MAP_KEYS, OS_KEYS, SeriesResult, sample_exam, sample_orientation, subject_rngs
from deepoxymap.phantom.imaging import (
    band_map,
    bssfp_signal,
    coil_map,
    magnitude,
    relax_table,
    rician,
    texture,
    to_u16,
)
from deepoxymap.phantom.params import COHORTS, CohortSpec, PhantomParams
from deepoxymap.phantom.render import Acquisition, Grid, RenderOut, acquisition, kspace_noise, render_series
from deepoxymap.phantom.seq_lge import lge_values, render_lge
from deepoxymap.phantom.seq_maps import map_values, render_map
from deepoxymap.phantom.seq_oscine import blood_factor, bssfp_values, os_factor, render_os_cine, sample_os
from deepoxymap.phantom.truth import subject_truth, write_truth

__all__ = [
    "MAP_KEYS",
    "MAX_COHORT_SEED",
    "OS_KEYS",
    "Acquisition",
    "Grid",
    "RenderOut",
    "SimulatedSubject",
    "acquisition",
    "band_map",
    "blood_factor",
    "bssfp_signal",
    "bssfp_values",
    "cohort_plan",
    "coil_map",
    "default_jobs",
    "generate_cohort",
    "generate_subject",
    "kspace_noise",
    "lge_values",
    "magnitude",
    "map_values",
    "os_factor",
    "relax_table",
    "render_series",
    "rician",
    "sample_orientation",
    "sample_os",
    "simulate_subject",
    "texture",
    "to_u16",
    "write_manifest",
]

logger = logging.getLogger(__name__)

MAX_COHORT_SEED = 1 << 32
"""Cohort seeds (``deepoxymap generate --seed``) lie in ``[0, 2**32)``; larger seeds are reserved
for generated training subjects (:mod:`deepoxymap.model.synthetic`), so those can never
reproduce a cohort's subject."""


# ---------------------------------------------------------------------------
# one subject
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedSubject:
    """One subject rendered in memory (:func:`simulate_subject`).

    Attributes:
        truth: the ``truth.json`` content (before :func:`~deepoxymap.phantom.truth.jsonable`);
            its ``series`` holds the rendered series only.
        series: the rendered series in writing order (all seven: :data:`OS_KEYS`, then
            :data:`MAP_KEYS`), each with its labels, stored pixels (uint16
            ``[slice, frame, row, col]``) and DICOM attributes.
        os_response: the sampled OS responses (:func:`sample_os`, with the private
            heterogeneity fields).
    """

    truth: dict[str, Any]
    series: list[SeriesResult]
    os_response: dict[str, Any]


def simulate_subject(
    subject_id: str,
    cls: str,
    subtype: str,
    site: str,
    seed: int,
    index: int,
    params: PhantomParams | None = None,
    *,
    n_frames: int | None = None,
    dicom_dir: Path | None = None,
    series: Collection[str] | None = None,
) -> SimulatedSubject:
    """Sample and render one subject; write its DICOM to ``dicom_dir`` unless it is None.

    The same arguments give the same pixels and truth whether or not DICOM is written
    (randomness from ``SeedSequence([seed, index])`` only).

    Args:
        series: render (and write) only these series keys (:data:`OS_KEYS`,
            :data:`MAP_KEYS`); ``None``: all seven. A series left out gives the same
            pixels to the rest: an OS series left out still draws its breathing shift and
            noise (:func:`~deepoxymap.phantom.seq_oscine.render_os_cine`); the LGE and
            maps come after the whole cine and are rendered in order up to the last one
            asked for (each draws from the generators the next one uses), then the
            unasked ones are dropped from the result (with ``dicom_dir`` they are written too).

    Raises:
        PhantomError: unknown class, site or series key.
    """
    p = params or PhantomParams()
    if cls not in p.classes:
        raise PhantomError(f"unknown class {cls!r}", hint=f"one of {sorted(p.classes)}")
    if site not in p.sites:
        raise PhantomError(f"unknown site {site!r}")
    sp = p.sites[site]
    wanted = set(OS_KEYS + MAP_KEYS) if series is None else set(series)
    unknown = wanted - set(OS_KEYS + MAP_KEYS)
    if unknown:
        raise PhantomError(f"unknown series {sorted(unknown)}", hint=f"any of {[*OS_KEYS, *MAP_KEYS]}")
    r_anat, r_scan, r_os, r_noise = subject_rngs(seed, index)
    subj = sample_subject(r_anat, subject_id, cls, subtype, site, p)
    nf = int(n_frames or sp.n_frames)
    exam = sample_exam(subj, p, sp, r_scan, r_noise, seed=seed, index=index, n_frames=nf, dicom_dir=dicom_dir)
    os_response = sample_os(subj, r_os, p, sp)
    cine = render_os_cine(exam, os_response, None if series is None else wanted & set(OS_KEYS))
    exam.scan.update(cine.scan_notes)
    done: list[SeriesResult] = list(cine.series)
    last_map = max((MAP_KEYS.index(k) for k in wanted & set(MAP_KEYS)), default=-1)
    for mi, key in enumerate(MAP_KEYS[: last_map + 1]):  # mid-diastole, misregistered
        res = render_lge(exam, mi, key) if key == "lge" else render_map(exam, key, mi)
        if key in wanted:
            done.append(res)
    truth = subject_truth(exam, os_response, cine.es_frame, done)
    return SimulatedSubject(truth, done, os_response)


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
    """Generate and write one subject folder ``out_dir/subject_id`` (DICOM, labels, truth).

    Args:
        seed, index: randomness comes from ``SeedSequence([seed, index])`` only.
        n_frames: override the site's cine phases (demo cases).

    Returns:
        the truth dict written to ``truth/truth.json``.
    """
    sdir = Path(out_dir) / subject_id
    sim = simulate_subject(
        subject_id, cls, subtype, site, seed, index, params, n_frames=n_frames, dicom_dir=sdir / "dicom"
    )
    tdir = sdir / "truth"
    tdir.mkdir(parents=True, exist_ok=True)
    write_truth(tdir, sim.series, sim.truth)
    return sim.truth


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


def _log_progress(done: int, total: int, t0: float) -> None:
    logger.info("  %d/%d subjects, %.0f s", done, total, time.perf_counter() - t0)


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
        progress: log ``i/n subjects, t s`` every 10 subjects (INFO, logger
            ``deepoxymap.phantom.generate``).

    Returns:
        the manifest rows.
    """
    p = params or PhantomParams()
    if not 0 <= int(seed) < MAX_COHORT_SEED:
        raise PhantomError(
            f"cohort seed {seed} is outside [0, 2**32)",
            hint="larger seeds are reserved for generated training subjects",
        )
    if isinstance(cohort, str) and cohort not in COHORTS:
        raise PhantomError(f"unknown cohort {cohort!r}", hint=f"one of {sorted(COHORTS)}")
    spec = COHORTS[cohort] if isinstance(cohort, str) else cohort
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
                    _log_progress(i + 1, len(plan), t0)
    else:
        for i, a_ in enumerate(args):
            done.append(_gen_one(a_))
            if progress and (i + 1) % 10 == 0:
                _log_progress(i + 1, len(plan), t0)
    write_manifest(out, done, p)
    return done


def default_jobs() -> int:
    """Worker count: at most 2 (the machine is shared)."""
    return max(1, min(2, os.cpu_count() or 1))
