"""The AI's maps as DICOM objects (highdicom): a Parametric Map and Segmentations.

Every object references its source images (the same Study, Frame of Reference
and SOP instances, through highdicom's derivation and referenced-series
sequences) and lies on their pixel grid:

* :func:`parametric_map`: the CAM as a float32 Parametric Map, coded
  ``DCM 130402 "Class activation"`` (real-world value 0-1 of the map's
  maximum), one frame per OS-CMR slice the model read, on the OS-CMR grid,
  referencing the instance of the frame the model saw;
* :func:`cam_segmentations`: the CAM thresholded at the user's threshold
  (BINARY) and the raw CAM (FRACTIONAL, 0-1 stored as 0-255), same frames;
* :func:`lesion_segmentation`: the scar on the LGE series and the edema on
  the T2 map (BINARY), one frame per slice of that series.

The structured report lives in :mod:`deepoxymap.export.sr`; file names and
de-identification in :mod:`deepoxymap.export.bundle`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from deepoxymap.errors import ExportError
from deepoxymap.export.analysis import CaseAnalysis, LesionMask
from deepoxymap.export.sources import SourceIndex

__all__ = [
    "MANUFACTURER",
    "SERIES_NUMBERS",
    "cam_segmentations",
    "lesion_segmentation",
    "lesion_sources",
    "oscmr_sources",
    "parametric_map",
    "software_version",
]

MANUFACTURER = "DeepOxyMap"
"""Manufacturer and model name written in every object (the software, not the scanner)."""

SERIES_NUMBERS = {
    "parametric_map": 9101,
    "seg_cam": 9102,
    "seg_cam_fractional": 9103,
    "seg_scar": 9104,
    "seg_edema": 9105,
    "sr": 9106,
}
"""SeriesNumber of each exported object (distinct from the scanner's series)."""


def new_instance(analysis: CaseAnalysis, series_number: int) -> dict[str, Any]:
    """The constructor arguments every exported object shares: fresh UIDs, series number, the device (model)."""
    import highdicom as hd

    return {
        "series_instance_uid": hd.UID(),
        "series_number": series_number,
        "sop_instance_uid": hd.UID(),
        "instance_number": 1,
        "manufacturer": MANUFACTURER,
        "manufacturer_model_name": f"{MANUFACTURER} {analysis.model_name}"[:64],
        "software_versions": software_version(),
        "device_serial_number": analysis.model_version[:64],
    }


def software_version() -> str:
    """The package version (``deepoxymap.__version__`` when set, else the project version)."""
    import deepoxymap

    return str(getattr(deepoxymap, "__version__", "0.1.0"))


def oscmr_sources(analysis: CaseAnalysis, index: SourceIndex) -> list[Dataset]:
    """The source instance of every row the model read (slice, frame), in row order.

    Raises:
        ExportError: see :meth:`~deepoxymap.export.sources.SourceIndex.for_slices`.
    """
    return index.for_slices(analysis.series, analysis.slice_indices, analysis.frames)


def lesion_sources(lesion: LesionMask, index: SourceIndex) -> list[Dataset]:
    """The source instance of every slice of a lesion's series (frame 0), base -> apex."""
    n = lesion.series.stack.n_slices
    return index.for_slices(lesion.series, list(range(n)), [0] * n)


def _algorithm(name: str, version: str, family: Any, parameters: dict[str, str] | None = None) -> Any:
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(
        name=name[:64], family=family, version=version[:64], parameters=parameters
    )


def _check_grid(volume: NDArray[Any], sources: Sequence[Dataset], what: str) -> None:
    if volume.ndim != 3 or volume.shape[0] != len(sources):
        raise ExportError(f"{what}: {volume.shape} does not match {len(sources)} source image(s)")
    rows, cols = int(sources[0].Rows), int(sources[0].Columns)
    if volume.shape[1:] != (rows, cols):
        raise ExportError(f"{what}: frames are {volume.shape[1:]}, the source images {(rows, cols)}")


def parametric_map(analysis: CaseAnalysis, sources: Sequence[Dataset]) -> Dataset:
    """The CAM as a float32 Parametric Map on the OS-CMR grid.

    Args:
        analysis: the case's analysis (``cam_volume``: float32 ``[n, rows, cols]`` in ``[0, 1]``).
        sources: :func:`oscmr_sources` (one single-frame image per row).

    Returns:
        a ``highdicom.pm.ParametricMap`` (a pydicom ``Dataset``).

    Raises:
        ExportError: the maps do not fit the sources, or highdicom refused the object.
    """
    import highdicom as hd

    vol = analysis.cam_volume.astype(np.float32)
    _check_grid(vol, sources, "parametric map")
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="CAM",
        lut_explanation=f"{analysis.method} class activation, fraction of the maximum"[:64],
        unit=codes.UCUM.NoUnits,
        value_range=(0.0, 1.0),
        slope=1.0,
        intercept=0.0,
        quantity_definition=codes.DCM.ClassActivation,
    )
    try:
        pm = hd.pm.ParametricMap(
            source_images=list(sources),
            pixel_array=vol,
            **new_instance(analysis, SERIES_NUMBERS["parametric_map"]),
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
            content_label="CAM",
            content_description=f"{analysis.method} of {', '.join(sorted(set(analysis.explained)))}"[:64],
            series_description=f"DeepOxyMap {analysis.method} map (research)"[:64],
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"highdicom refused the parametric map: {exc}", source=analysis.case_id) from None
    # General Series: Laterality (0020,0060) is Type 2C on a paired body part; naming the
    # (unpaired) heart settles the condition (PS3.3 C.7.3.1).
    pm.BodyPartExamined = str(sources[0].get("BodyPartExamined") or "HEART")
    return pm


def _segmentation(
    sources: Sequence[Dataset],
    pixels: NDArray[Any],
    seg_type: str,
    description: Any,
    *,
    series_number: int,
    series_description: str,
    analysis: CaseAnalysis,
    content_label: str,
) -> Dataset:
    import highdicom as hd

    try:
        return hd.seg.Segmentation(
            source_images=list(sources),
            pixel_array=pixels,
            segmentation_type=seg_type,
            segment_descriptions=[description],
            **new_instance(analysis, series_number),
            omit_empty_frames=False,
            content_label=content_label,
            content_description=series_description[:64],
            series_description=series_description[:64],
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(
            f"highdicom refused the segmentation '{content_label}': {exc}", source=analysis.case_id
        ) from None


def cam_segmentations(analysis: CaseAnalysis, sources: Sequence[Dataset]) -> tuple[Dataset, Dataset]:
    """The thresholded CAM (BINARY) and the raw CAM (FRACTIONAL) as Segmentations on the OS-CMR grid.

    The binary mask is ``cam >= analysis.threshold``; the fractional one stores
    the map (0-1) as 0-255 (``MaximumFractionalValue`` 255, type PROBABILITY:
    read it as a soft region, not as a calibrated probability).

    Returns:
        ``(binary, fractional)`` ``highdicom.seg.Segmentation`` datasets.

    Raises:
        ExportError: the maps do not fit the sources, or highdicom refused an object.
    """
    import highdicom as hd

    vol = analysis.cam_volume
    _check_grid(vol, sources, "CAM segmentation")
    name, version = analysis.model_name, analysis.model_version
    ai = codes.cid7162.ArtificialIntelligence
    params = {"method": analysis.method, "layer": analysis.layer or "default", "threshold": f"{analysis.threshold:.2f}"}
    desc_bin = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=f"CAM >= {analysis.threshold:.2f}",
        segmented_property_category=codes.SCT.SpatialAndRelationalConcept,
        segmented_property_type=codes.DCM.ClassActivation,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=_algorithm(name, version, ai, params),
        anatomic_regions=[codes.SCT.Heart],
    )
    binary = _segmentation(
        sources,
        (vol >= analysis.threshold).astype(np.uint8),
        "BINARY",
        desc_bin,
        series_number=SERIES_NUMBERS["seg_cam"],
        analysis=analysis,
        content_label="CAMTHRESHOLD",
        series_description=f"DeepOxyMap {analysis.method} >= {analysis.threshold:.2f} (research)",
    )
    desc_frac = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=f"{analysis.method} map (0-1)"[:64],
        segmented_property_category=codes.SCT.SpatialAndRelationalConcept,
        segmented_property_type=codes.DCM.ClassActivation,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=_algorithm(name, version, ai, {k: v for k, v in params.items() if k != "threshold"}),
        anatomic_regions=[codes.SCT.Heart],
    )
    fractional = _segmentation(
        sources,
        vol.astype(np.float32),
        "FRACTIONAL",
        desc_frac,
        series_number=SERIES_NUMBERS["seg_cam_fractional"],
        analysis=analysis,
        content_label="CAMFRACTIONAL",
        series_description=f"DeepOxyMap {analysis.method} map, fractional (research)",
    )
    return binary, fractional


def lesion_segmentation(analysis: CaseAnalysis, lesion: LesionMask, sources: Sequence[Dataset]) -> Dataset:
    """Scar (on LGE) or edema (on the T2 map) as a BINARY Segmentation on its own series' grid.

    Args:
        analysis: the case's analysis (model identity for the equipment attributes).
        lesion: :attr:`CaseAnalysis.scar` or :attr:`CaseAnalysis.edema`.
        sources: :func:`lesion_sources` of that lesion.

    Raises:
        ExportError: the mask does not fit the sources, or highdicom refused the object.
    """
    import highdicom as hd

    mask = np.asarray(lesion.mask, dtype=np.uint8)
    _check_grid(mask, sources, f"{lesion.kind} segmentation")
    prop = codes.SCT.Scar if lesion.kind == "scar" else codes.SCT.Edema
    family = codes.cid7162.HistogramAnalysis
    desc = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=f"{lesion.kind} ({lesion.series.role.label})",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=prop,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=_algorithm(
            f"DeepOxyMap {lesion.kind}", software_version(), family, {"rule": lesion.method[:64]}
        ),
        anatomic_regions=[codes.SCT.Heart],
        primary_anatomic_structures=[codes.SCT.LeftVentricleMyocardium],
    )
    key = "seg_scar" if lesion.kind == "scar" else "seg_edema"
    return _segmentation(
        sources,
        mask,
        "BINARY",
        desc,
        series_number=SERIES_NUMBERS[key],
        analysis=analysis,
        content_label=lesion.kind.upper(),
        series_description=f"DeepOxyMap {lesion.kind} on {lesion.series.role.label} (research)",
    )
