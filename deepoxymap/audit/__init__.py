"""Agreement between feature maps and reference lesion masks, in patient millimetres.

* :mod:`~deepoxymap.audit.metrics`: pointing game, energy, Dice/IoU, segment
  kappa, segment AUC, energy spread, threshold choice; :func:`case_metrics` for one case.
* :mod:`~deepoxymap.audit.reference`: :func:`prepare_reference` (the case's
  reference lesion, myocardium, AHA segments and transmurality on the OS-CMR
  grid of the model's preprocessed input) and :func:`ideal_heatmaps` (the
  ideal-map ceiling of a readout).
* :mod:`~deepoxymap.audit.run`: :func:`run_audit` over cases, in memory
  (predictions, probabilities, agreement; maps normalised per case, figures per
  :data:`AUDIT_CLASSES` group).
* :mod:`~deepoxymap.audit.plan`: :func:`plan_subjects` (who chooses the
  thresholds) and :func:`audit_manifest`.
* :mod:`~deepoxymap.audit.report`: :func:`write_audit` (CSV, markdown, JSON, PNG)
  and :func:`summary_json`.

Sanity checks (:mod:`deepoxymap.explain.sanity`): model-parameter
randomisation (Spearman rho; a method with mean rho >= 0.5 is flagged) and the
deletion curve AUC (vs a random deletion order).
"""

from __future__ import annotations

from deepoxymap.audit.metrics import (
    TAU_GRID,
    case_metrics,
    choose_segment_threshold,
    choose_threshold,
    cohen_kappa,
    dice_iou,
    energy_pointing_game,
    energy_spread,
    pointing_game,
    segment_auc,
    segment_calls,
)
from deepoxymap.audit.plan import SubjectPlan, audit_manifest, plan_subjects
from deepoxymap.audit.reference import (
    CaseReference,
    SliceReference,
    ideal_heatmaps,
    lesion_on_model_grid,
    prepare_case,
    prepare_reference,
)
from deepoxymap.audit.report import audit_markdown, summary_json, write_audit
from deepoxymap.audit.run import (
    AUDIT_CLASSES,
    INPUT_LAYER,
    AuditConfig,
    AuditResult,
    audit_group,
    fit_thresholds,
    run_audit,
)
from deepoxymap.cardiac.masks import LESION_OF_CLASS

__all__ = [
    "AUDIT_CLASSES",
    "INPUT_LAYER",
    "LESION_OF_CLASS",
    "TAU_GRID",
    "AuditConfig",
    "AuditResult",
    "CaseReference",
    "SliceReference",
    "SubjectPlan",
    "audit_group",
    "audit_manifest",
    "audit_markdown",
    "case_metrics",
    "choose_segment_threshold",
    "choose_threshold",
    "cohen_kappa",
    "dice_iou",
    "energy_pointing_game",
    "energy_spread",
    "fit_thresholds",
    "ideal_heatmaps",
    "lesion_on_model_grid",
    "plan_subjects",
    "pointing_game",
    "prepare_case",
    "prepare_reference",
    "run_audit",
    "segment_auc",
    "segment_calls",
    "summary_json",
    "write_audit",
]
