"""All exports of one case, named as the app's download buttons: :func:`export_case` -> :class:`ExportBundle`.

Kinds and file names (:func:`export_names`; ``<case>`` is the case id made
file-name safe):

=====================  ==============================================  =========================================
kind                   file                                            what
=====================  ==============================================  =========================================
``parametric_map``     ``deepoxymap_<case>_cam_map.dcm``               CAM, float32 Parametric Map (OS-CMR grid)
``seg_cam``            ``deepoxymap_<case>_seg_cam_threshold.dcm``     CAM >= threshold, BINARY SEG
``seg_cam_fractional`` ``deepoxymap_<case>_seg_cam_fractional.dcm``    raw CAM, FRACTIONAL SEG
``seg_scar``           ``deepoxymap_<case>_seg_scar.dcm``              scar on LGE, BINARY SEG (when computable)
``seg_edema``          ``deepoxymap_<case>_seg_edema.dcm``             edema on T2, BINARY SEG (when computable)
``sr``                 ``deepoxymap_<case>_sr.dcm``                    Comprehensive 3D SR, TID 1500
``report``             ``deepoxymap_<case>_report.pdf``                one-page PDF report
=====================  ==============================================  =========================================

De-identification (:mod:`deepoxymap.export.deid`) is on unless
``keep_identifiers``: all DICOM objects of one bundle go through one
anonymizer, so their shared Study, Frame of Reference and cross-references
stay consistent.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from deepoxymap.case import Case
from deepoxymap.errors import ExportError
from deepoxymap.export.analysis import CaseAnalysis
from deepoxymap.export.sources import SourceIndex

if TYPE_CHECKING:
    from deepoxymap.dicomweb import PacsClient, StoreResult

__all__ = [
    "DICOM_KINDS",
    "KIND_LABELS",
    "ExportBundle",
    "build_dicom",
    "export_case",
    "export_names",
    "push_exports",
    "write_bundle",
]

DICOM_KINDS = ("parametric_map", "seg_cam", "seg_cam_fractional", "seg_scar", "seg_edema", "sr")
"""The DICOM objects of a bundle, in the order they are built."""

KIND_LABELS = {
    "parametric_map": "Feature map (DICOM Parametric Map)",
    "seg_cam": "Thresholded map (DICOM SEG)",
    "seg_cam_fractional": "Raw map (DICOM SEG, fractional)",
    "seg_scar": "Scar (DICOM SEG)",
    "seg_edema": "Edema (DICOM SEG)",
    "sr": "Measurements (DICOM SR)",
    "report": "Case report (PDF)",
}
"""Button label of each kind (the app's download buttons use these)."""

_SUFFIX = {
    "parametric_map": "cam_map.dcm",
    "seg_cam": "seg_cam_threshold.dcm",
    "seg_cam_fractional": "seg_cam_fractional.dcm",
    "seg_scar": "seg_scar.dcm",
    "seg_edema": "seg_edema.dcm",
    "sr": "sr.dcm",
    "report": "report.pdf",
}


def _safe(case_id: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", case_id).strip("._")
    return s or "case"


def export_names(case_id: str) -> dict[str, str]:
    """File name of every kind for a case (the same names as the app's download buttons)."""
    return {k: f"deepoxymap_{_safe(case_id)}_{v}" for k, v in _SUFFIX.items()}


@dataclass(frozen=True, eq=False)
class ExportBundle:
    """The exports of one case.

    Attributes:
        files: file name -> bytes, in :data:`DICOM_KINDS` order then the report.
        kinds: kind -> file name (kinds that could not be built are absent).
        datasets: kind -> the DICOM dataset written (after de-identification).
        deidentified: whether the DICOM objects were de-identified.
        notes: kinds left out and why.
    """

    files: dict[str, bytes]
    kinds: dict[str, str]
    datasets: dict[str, Dataset]
    deidentified: bool
    notes: list[str] = field(default_factory=list)

    def data(self, kind: str) -> bytes:
        """The bytes of one kind.

        Raises:
            ExportError: that kind is not in the bundle (the message says why).
        """
        if kind not in self.kinds:
            why = next((n for n in self.notes if n.startswith(kind)), "not built")
            raise ExportError(f"no {KIND_LABELS.get(kind, kind)} in this export: {why}")
        return self.files[self.kinds[kind]]


def build_dicom(analysis: CaseAnalysis, index: SourceIndex) -> tuple[dict[str, Dataset], list[str]]:
    """The DICOM objects of an analysis, with the source identifiers (not de-identified).

    Returns:
        ``(datasets by kind, notes)``: scar/edema SEGs are left out (with a note)
        when the analysis has no such lesion mask.

    Raises:
        ExportError: the OS-CMR source instances cannot be found or highdicom refused an object.
    """
    from deepoxymap.export import dicom_objects as do
    from deepoxymap.export.sr import measurement_report

    notes: list[str] = []
    src = do.oscmr_sources(analysis, index)
    out: dict[str, Dataset] = {"parametric_map": do.parametric_map(analysis, src)}
    out["seg_cam"], out["seg_cam_fractional"] = do.cam_segmentations(analysis, src)
    for lesion in (analysis.scar, analysis.edema):
        if lesion is None:
            continue
        try:
            out[f"seg_{lesion.kind}"] = do.lesion_segmentation(analysis, lesion, do.lesion_sources(lesion, index))
        except ExportError as exc:
            notes.append(f"seg_{lesion.kind}: {exc}")
    for kind, note in (("seg_scar", "scar"), ("seg_edema", "edema")):
        if kind not in out and not any(n.startswith(kind) for n in notes):
            notes.append(f"{kind}: " + next((n for n in analysis.notes if n.startswith(note)), "not computed"))
    out["sr"] = measurement_report(analysis, src, out)
    return out, notes


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def export_case(
    analysis: CaseAnalysis,
    case: Case,
    index: SourceIndex,
    *,
    keep_identifiers: bool = False,
    with_report: bool = True,
    seed: str | None = None,
) -> ExportBundle:
    """Every export of a case (see the module doc), in memory.

    Args:
        analysis: :func:`~deepoxymap.export.analysis.analyse_case` of ``case``.
        case: the case (panels of the PDF report).
        index: headers of the files the case was loaded from (:class:`SourceIndex`).
        keep_identifiers: write the source's patient and study identifiers (default: de-identify).
        with_report: include the PDF report.
        seed: de-identification key (tests); ``None``: random per export.

    Raises:
        ExportError: an object could not be built (the message names it).
    """
    from deepoxymap.export.deid import deidentify

    raw, notes = build_dicom(analysis, index)
    kinds = [k for k in DICOM_KINDS if k in raw]
    objs = [raw[k] for k in kinds] if keep_identifiers else deidentify([raw[k] for k in kinds], seed=seed)
    names = export_names(analysis.case_id)
    datasets = dict(zip(kinds, objs, strict=True))
    files = {names[k]: _bytes(ds) for k, ds in datasets.items()}
    kind_files = {k: names[k] for k in kinds}
    if with_report:
        from deepoxymap.export.report import report_pdf

        files[names["report"]] = report_pdf(analysis, case)
        kind_files["report"] = names["report"]
    return ExportBundle(files, kind_files, datasets, not keep_identifiers, notes)


def write_bundle(bundle: ExportBundle, out_dir: Path | str) -> list[Path]:
    """Write every file of a bundle into ``out_dir`` (created); returns the paths, in bundle order.

    Raises:
        ExportError: the folder cannot be created or a file cannot be written.
    """
    d = Path(out_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, data in bundle.files.items():
            p = d / name
            p.write_bytes(data)
            paths.append(p)
    except OSError as exc:
        raise ExportError(f"cannot write the exports ({exc.strerror})", source=str(d)) from None
    return paths


def push_exports(
    client: PacsClient, analysis: CaseAnalysis, index: SourceIndex, *, keep_identifiers: bool | None = None
) -> StoreResult:
    """Build the DICOM objects of a case and store them on a PACS (STOW-RS).

    De-identified unless the server is marked trusted or ``keep_identifiers`` is
    ``True`` (:meth:`~deepoxymap.dicomweb.PacsClient.store`); one anonymizer for the whole push.

    Raises:
        ExportError: an object could not be built.
        PacsError: the server is unreachable or refused the objects.
    """
    raw, _ = build_dicom(analysis, index)
    client.check()
    return client.store([raw[k] for k in DICOM_KINDS if k in raw], keep_identifiers=keep_identifiers)
