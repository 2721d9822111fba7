"""Synthetic OS-CMR cohort: analytic short-axis hearts rendered as OS-CMR cine, LGE, T1 and T2 DICOM.

Public API::

    from deepoxymap.phantom import case_of, generate_cohort, generate_subject, load_subject, simulate_subject

    generate_cohort("data/study", "study", seed=0, jobs=2)   # 190 subjects + manifest.csv
    case = load_subject("data/study/SUBJECT001")             # Case with label, truth, masks
    sim = simulate_subject("S", "healthy", "normal", "A", seed=1, index=0)  # in memory only
    case = case_of(sim)                                      # = load_subject of the written folder
    case_of(simulate_subject(..., series=["os_bh-end"]))     # one OS series (training), same pixels

Every number lives in :mod:`deepoxymap.phantom.params` (frozen dataclasses);
sampling in :mod:`.anatomy`, rendering and acquisition-like band limiting in
:mod:`.render`, one module per sequence (:mod:`.seq_oscine`, :mod:`.seq_lge`,
:mod:`.seq_maps`), orchestration in :mod:`.generate`, writing in :mod:`.dicom`.
Validation is library code that never prints: :mod:`.realism`, :mod:`.difficulty`
and the lesion-contrast check :mod:`.os_contrast`. The ``deepoxymap generate``,
``realism`` and ``difficulty`` commands live in :mod:`deepoxymap.cli`
(:mod:`deepoxymap.cli.generate`, :mod:`deepoxymap.cli.realism`,
:mod:`deepoxymap.cli.difficulty`); ``tools/`` wraps them and ``os_contrast``.
"""

from __future__ import annotations

from deepoxymap.phantom.generate import (
    SimulatedSubject,
    cohort_plan,
    generate_cohort,
    generate_subject,
    simulate_subject,
    write_manifest,
)
from deepoxymap.phantom.load import case_of, load_subject, read_edema_masks, read_labels, read_truth, truth_of
from deepoxymap.phantom.params import COHORTS, DEMO, STUDY, CohortSpec, PhantomParams

__all__ = [
    "COHORTS",
    "DEMO",
    "STUDY",
    "CohortSpec",
    "PhantomParams",
    "SimulatedSubject",
    "case_of",
    "cohort_plan",
    "generate_cohort",
    "generate_subject",
    "load_subject",
    "read_edema_masks",
    "read_labels",
    "read_truth",
    "simulate_subject",
    "truth_of",
    "write_manifest",
]
