"""The case's numbers as a Comprehensive 3D SR, TID 1500 Measurement Report (highdicom).

Content tree (every group is a TID 1501 / 1411 measurement group with a
tracking identifier; the observer is the DeepOxyMap device):

* **classification**: one ``Probability of <class>`` per class ({ratio}, 0-1,
  mean of the slice probabilities), the case call as a qualitative evaluation
  (``SCT 278201002 "Classification"`` = the class), the model as the
  algorithm identification (name, version, CAM parameters); source images:
  the OS-CMR instances the model read;
* **one group per AHA segment** with data, finding site = the SNOMED code of
  that segment: CAM energy (%), lesion transmurality (%), T1 (ms), T2 (ms) and
  the OS response (% signal change);
* **agreement** of the CAM with the reference lesion
  (:data:`~deepoxymap.export.analysis.AGREEMENT_FIGURES`);
* **scar** and **edema** burden (% of the myocardium), each a volumetric ROI
  group that references segment 1 of its SEG object.

Concepts without a standard code use the private coding scheme
:data:`SCHEME` (declared in the CodingSchemeIdentificationSequence).
:func:`read_measurements` reads the numbers back (tests and round trips).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from deepoxymap.cardiac.segments import SEGMENT_NAMES
from deepoxymap.errors import ExportError
from deepoxymap.export.analysis import AGREEMENT_FIGURES, SEGMENT_QUANTITIES, CaseAnalysis
from deepoxymap.export.dicom_objects import MANUFACTURER, SERIES_NUMBERS, software_version

__all__ = ["SCHEME", "SEGMENT_CODES", "measurement_report", "read_measurements"]

SCHEME = "99DOXMAP"
"""Private coding scheme designator of DeepOxyMap's own concepts."""

SEGMENT_CODES: dict[int, Any] = {
    1: codes.SCT.LeftVentricleBasalAnteriorSegment,
    2: codes.SCT.LeftVentricleBasalAnteroseptalSegment,
    3: codes.SCT.LeftVentricleBasalInferoseptalSegment,
    4: codes.SCT.LeftVentricleBasalInferiorSegment,
    5: codes.SCT.LeftVentricleBasalInferolateralSegment,
    6: codes.SCT.LeftVentricleBasalAnterolateralSegment,
    7: codes.SCT.LeftVentricleMidAnteriorSegment,
    8: codes.SCT.LeftVentricleMidAnteroseptalSegment,
    9: codes.SCT.LeftVentricleMidInferoseptalSegment,
    10: codes.SCT.LeftVentricleMidInferiorSegment,
    11: codes.SCT.LeftVentricleMidInferolateralSegment,
    12: codes.SCT.LeftVentricleMidAnterolateralSegment,
    13: codes.SCT.LeftVentricleApicalAnteriorSegment,
    14: codes.SCT.LeftVentricleApicalSeptalSegment,
    15: codes.SCT.LeftVentricleApicalInferiorSegment,
    16: codes.SCT.LeftVentricleApicalLateralSegment,
    17: codes.SCT.ApexOfLeftVentricle,
}
"""AHA segment -> SNOMED CT body structure (the finding site of its measurements)."""

_UNITS = {
    "%": codes.UCUM.Percent,
    "ms": codes.UCUM.Millisecond,
    "1": codes.UCUM.NoUnits,
    "mm2": codes.UCUM.SquareMillimeter,
    "{ratio}": codes.UCUM.Ratio,
}


def _private(value: str, meaning: str) -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(value=value[:16], scheme_designator=SCHEME, meaning=meaning[:64])


def _quantity_code(key: str) -> Any:
    if key == "t1_ms":
        return codes.DCM.T1
    if key == "t2_ms":
        return codes.DCM.T2
    return _private(f"SEG-{key.upper().replace('_', '')}"[:16], SEGMENT_QUANTITIES[key][0])


def _class_code(name: str) -> Any:
    return _private(f"CLS-{name.upper().replace('-', '')}"[:16], name)


def _tracking(identifier: str) -> Any:
    import highdicom as hd

    return hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=identifier[:64])


def _measurement(name: Any, value: float, unit: str, algorithm: Any = None) -> Any:
    import highdicom as hd

    return hd.sr.Measurement(name=name, value=float(value), unit=_UNITS[unit], algorithm_id=algorithm)


def _groups(analysis: CaseAnalysis, os_sources: Sequence[Dataset], segs: Mapping[str, Dataset]) -> list[Any]:
    import highdicom as hd

    algo = hd.sr.AlgorithmIdentification(
        name=analysis.model_name[:64],
        version=analysis.model_version[:64],
        parameters=[
            f"cam={analysis.method}",
            f"layer={analysis.layer or 'default'}",
            f"threshold={analysis.threshold:.2f}",
        ],
    )
    myo = [hd.sr.FindingSite(anatomic_location=codes.SCT.LeftVentricleMyocardium)]
    probs = [
        _measurement(_private(f"P-{c.upper().replace('-', '')}"[:16], f"Probability of {c}"), p, "{ratio}", algo)
        for c, p in analysis.probabilities().items()
    ]
    groups: list[Any] = [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking("DeepOxyMap classification"),
            algorithm_id=algo,
            finding_sites=myo,
            measurements=probs,
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.SCT.Classification, _class_code(analysis.call))],
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(d) for d in os_sources],
        )
    ]
    for s in range(1, 18):
        ms = []
        for key, values in analysis.segments.items():
            v = float(values[s - 1])
            if np.isfinite(v):
                ms.append(_measurement(_quantity_code(key), v, SEGMENT_QUANTITIES[key][1]))
        if ms:
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=_tracking(f"AHA segment {s} ({SEGMENT_NAMES[s]})"),
                    finding_sites=[hd.sr.FindingSite(anatomic_location=SEGMENT_CODES[s])],
                    measurements=ms,
                )
            )
    agree = [
        _measurement(
            _private(f"AGR-{k.upper().replace('_', '')}"[:16], AGREEMENT_FIGURES[k][0]),
            v,
            AGREEMENT_FIGURES[k][1],
            algo,
        )
        for k, v in analysis.agreement.items()
    ]
    if agree:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(f"CAM agreement with the reference lesion ({analysis.lesion_kind})"),
                algorithm_id=algo,
                finding_sites=myo,
                measurements=agree,
            )
        )
    for lesion in (analysis.scar, analysis.edema):
        if lesion is None or f"seg_{lesion.kind}" not in segs:
            continue
        seg = segs[f"seg_{lesion.kind}"]
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(f"{lesion.kind} on {lesion.series.role.label}"),
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=seg.SOPClassUID,
                    sop_instance_uid=seg.SOPInstanceUID,
                    segment_number=1,
                    source_series=hd.sr.SourceSeriesForSegmentation(lesion.series.uid.split("#", 1)[0]),
                ),
                finding_type=codes.SCT.Scar if lesion.kind == "scar" else codes.SCT.Edema,
                finding_sites=myo,
                measurements=[
                    _measurement(
                        _private(
                            f"BURDEN-{lesion.kind.upper()}"[:16],
                            f"{lesion.kind.capitalize()} extent, percent of myocardium",
                        ),
                        lesion.percent_of_myocardium,
                        "%",
                    )
                ],
            )
        )
    return groups


def measurement_report(analysis: CaseAnalysis, os_sources: Sequence[Dataset], segs: Mapping[str, Dataset]) -> Dataset:
    """The Comprehensive 3D SR (TID 1500) of a case (see the module doc).

    Args:
        analysis: the case's analysis.
        os_sources: the OS-CMR source instances (:func:`~deepoxymap.export.dicom_objects.oscmr_sources`).
        segs: the SEG objects already built, by kind (``seg_scar``, ``seg_edema``, ...): the
            lesion groups reference them and they join the evidence.

    Returns:
        a ``highdicom.sr.Comprehensive3DSR`` dataset.

    Raises:
        ExportError: highdicom refused the content.
    """
    import highdicom as hd
    from highdicom.coding_schemes import CodingSchemeIdentificationItem

    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(),
            name=MANUFACTURER,
            manufacturer_name=MANUFACTURER,
            model_name=analysis.model_name[:64],
            serial_number=analysis.model_version[:64],
        ),
    )
    try:
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=observer),
            procedure_reported=codes.SCT.CardiacMRI,
            imaging_measurements=_groups(analysis, os_sources, segs),
            title=codes.DCM.ImagingMeasurementReport,
        )
        evidence = [*os_sources, *[segs[k] for k in ("seg_scar", "seg_edema") if k in segs]]
        return hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report,
            series_instance_uid=hd.UID(),
            series_number=SERIES_NUMBERS["sr"],
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            series_description="DeepOxyMap measurement report (research)",
            coding_schemes=[
                CodingSchemeIdentificationItem(
                    designator=SCHEME, name="DeepOxyMap concepts", responsible_organization="DeepOxyMap project"
                )
            ],
            manufacturer_model_name=f"{MANUFACTURER} {analysis.model_name}"[:64],
            software_versions=software_version(),
            device_serial_number=analysis.model_version[:64],
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"highdicom refused the structured report: {exc}", source=analysis.case_id) from None


def read_measurements(sr: Dataset) -> dict[str, Any]:
    """The numbers of a DeepOxyMap SR, read back.

    Returns:
        ``{"probabilities": {class: p}, "call": class, "algorithm": (name, version),
        "segments": {segment: {quantity meaning: value}}, "agreement": {meaning: value},
        "burden": {kind: percent}}``.

    Raises:
        ExportError: the dataset is not a TID 1500 report.
    """
    import highdicom as hd
    from highdicom.sr.utils import find_content_items

    try:
        doc = hd.sr.Comprehensive3DSR.from_dataset(sr)
        report = hd.sr.MeasurementReport.from_sequence(doc.content)
        groups = [*report.get_image_measurement_groups(), *report.get_volumetric_roi_measurement_groups()]
    except Exception as exc:  # noqa: BLE001 - any malformed tree
        raise ExportError(f"not a TID 1500 measurement report ({type(exc).__name__}: {exc})") from None
    out: dict[str, Any] = {
        "probabilities": {},
        "call": None,
        "algorithm": None,
        "segments": {},
        "agreement": {},
        "burden": {},
    }
    seg_by_code = {str(c.value): s for s, c in SEGMENT_CODES.items()}
    for g in groups:
        ident = str(g.tracking_identifier or "")
        sites = [str(fs.value.value) for fs in (g.finding_sites or [])]
        values = {str(m.name.meaning): float(m.value) for m in g.get_measurements()}
        if ident == "DeepOxyMap classification":
            out["probabilities"] = {k.removeprefix("Probability of "): v for k, v in values.items()}
            evals = g.get_qualitative_evaluations()
            out["call"] = str(evals[0][0].ConceptCodeSequence[0].CodeMeaning) if evals else None
            name = find_content_items(g[0], name=codes.DCM.AlgorithmName)
            version = find_content_items(g[0], name=codes.DCM.AlgorithmVersion)
            if name and version:
                out["algorithm"] = (str(name[0].TextValue), str(version[0].TextValue))
        elif ident.startswith("AHA segment") and sites and sites[0] in seg_by_code:
            out["segments"][seg_by_code[sites[0]]] = values
        elif ident.startswith("CAM agreement"):
            out["agreement"] = values
        elif ident.startswith(("scar", "edema")):
            out["burden"][ident.split(" ", 1)[0]] = next(iter(values.values()), float("nan"))
    return out
