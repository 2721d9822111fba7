"""DICOM out: the AI's maps and numbers as standard objects, a PDF report, de-identification.

* :mod:`~deepoxymap.export.analysis`: :func:`analyse_case` -> :class:`CaseAnalysis`
  (prediction, CAMs on the OS-CMR grid, per-segment values, agreement, scar and edema).
* :mod:`~deepoxymap.export.sources`: :class:`SourceIndex`, the source DICOM headers
  every object references.
* :mod:`~deepoxymap.export.dicom_objects`: Parametric Map (CAM, ``DCM 130402 Class
  activation``) and Segmentations (thresholded CAM, raw CAM, scar, edema), highdicom.
* :mod:`~deepoxymap.export.sr`: Comprehensive 3D SR, TID 1500 measurement report.
* :mod:`~deepoxymap.export.report`: the one-page PDF case report.
* :mod:`~deepoxymap.export.deid`: de-identification (dicognito), on by default.
* :mod:`~deepoxymap.export.bundle`: :func:`export_case` (everything, named as the
  app's download buttons), :func:`write_bundle`, :func:`push_exports` (STOW to a PACS).

Example::

    from deepoxymap.export import SourceIndex, analyse_case, export_case, write_bundle

    analysis = analyse_case(case, load_model())
    bundle = export_case(analysis, case, SourceIndex.from_sources(["study/"]))
    write_bundle(bundle, "out/")
"""

from __future__ import annotations

from deepoxymap.export.analysis import AGREEMENT_FIGURES, SEGMENT_QUANTITIES, CaseAnalysis, LesionMask, analyse_case
from deepoxymap.export.bundle import (
    DICOM_KINDS,
    KIND_LABELS,
    ExportBundle,
    build_dicom,
    export_case,
    export_names,
    push_exports,
    write_bundle,
)
from deepoxymap.export.deid import deidentify
from deepoxymap.export.sources import SourceIndex

__all__ = [
    "AGREEMENT_FIGURES",
    "DICOM_KINDS",
    "KIND_LABELS",
    "SEGMENT_QUANTITIES",
    "CaseAnalysis",
    "ExportBundle",
    "LesionMask",
    "SourceIndex",
    "analyse_case",
    "build_dicom",
    "deidentify",
    "export_case",
    "export_names",
    "push_exports",
    "write_bundle",
]
