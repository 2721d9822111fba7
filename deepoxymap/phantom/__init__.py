"""Synthetic OS-CMR cohort: analytic short-axis hearts rendered as OS-CMR cine, LGE, T1 and T2 DICOM.

Public API::

    from deepoxymap.phantom import generate_cohort, generate_subject, load_subject

    generate_cohort("data/study", "study", seed=0, jobs=2)   # 190 subjects + manifest.csv
    case = load_subject("data/study/SUBJECT001")             # Case with label, truth, masks

Every number lives in :mod:`deepoxymap.phantom.params` (frozen dataclasses);
sampling/rendering in :mod:`.anatomy`, image formation and writing in
:mod:`.generate` and :mod:`.dicom`; ``deepoxymap generate|realism|difficulty``
in :mod:`.cli`, :mod:`.realism`, :mod:`.difficulty`.
"""

from __future__ import annotations

from deepoxymap.phantom.generate import cohort_plan, generate_cohort, generate_subject, write_manifest
from deepoxymap.phantom.load import load_subject, read_edema_masks, read_labels, read_truth, truth_of
from deepoxymap.phantom.params import COHORTS, DEMO, STUDY, CohortSpec, PhantomParams

__all__ = [
    "COHORTS",
    "DEMO",
    "STUDY",
    "CohortSpec",
    "PhantomParams",
    "cohort_plan",
    "generate_cohort",
    "generate_subject",
    "load_subject",
    "read_edema_masks",
    "read_labels",
    "read_truth",
    "truth_of",
    "write_manifest",
]
