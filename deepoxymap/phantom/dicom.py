"""Writing synthetic MR Image Storage files that ``dciodvfy`` and ``dcm2niix`` accept.

One call of :func:`write_series` writes one series (all slices x frames) with
fresh datasets per instance (pydicom element objects are mutable, so templates
are never shared). UIDs come from :func:`det_uid` (deterministic ``2.25.``
UUID-derived UIDs: same seed -> byte-identical files).

The numbers a reader gets back from the text attributes (positions, orientation,
spacing, trigger and acquisition times, window, rescale) are quantised by their
DS/TM strings; :func:`stored_text` makes those strings once per series, the
writer writes them and :func:`deepoxymap.phantom.load.case_of` parses the very same
strings when a subject goes straight from memory to a :class:`~deepoxymap.case.Case`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def det_uid(*parts: object) -> str:
    """A deterministic DICOM UID ``2.25.<int>`` from the hash of ``parts`` (<= 64 chars)."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()[:16]
    return "2.25." + str(int.from_bytes(h, "big"))


def _ds(v: float, nd: int = 6) -> str:
    """Format a number as a DICOM DS string (<= 16 chars)."""
    s = f"{v:.{nd}f}".rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    while len(s) > 16 and nd > 0:
        nd -= 1
        s = f"{v:.{nd}f}".rstrip("0").rstrip(".")
    return s


def tm(seconds: float) -> str:
    """Seconds after midnight -> DICOM TM ``HHMMSS.ffffff``."""
    s = max(0.0, min(seconds, 86399.999))
    h = int(s // 3600)
    m = int((s % 3600) // 60)
    sec = s - 3600 * h - 60 * m
    return f"{h:02d}{m:02d}{sec:09.6f}"


@dataclass(frozen=True)
class SeriesMeta:
    """Series-level DICOM attributes.

    Attributes:
        kind: ``os`` (bSSFP cine), ``lge`` or ``t1map``/``t2map``.
        description: SeriesDescription.
        image_type: ImageType values.
        series_uid / study_uid / for_uid: UIDs.
        series_number: SeriesNumber.
        acq_time_s: AcquisitionTime (seconds after midnight).
        pixel_spacing: (row, col) mm.
        iop: ImageOrientationPatient (6 floats).
        ipps: ``(n_slices, 3)`` ImagePositionPatient per slice.
        slice_thickness: mm.
        trigger_ms: ``(n_frames,)`` TriggerTime per frame, ms.
        rr_ms: NominalInterval, ms.
        tr_ms / te_ms / ti_ms / flip_deg: sequence parameters (``ti_ms`` None = absent).
        rescale: (slope, intercept, type) or None.
        window: (centre, width) in stored*slope+intercept units.
        extra: further keyword -> value (site, patient, ...).
        acq_matrix: acquired k-space lines ``(rows, cols)`` for AcquisitionMatrix, or None
            (then the stored matrix).
    """

    kind: str
    description: str
    image_type: tuple[str, ...]
    series_uid: str
    study_uid: str
    for_uid: str
    series_number: int
    acq_time_s: float
    pixel_spacing: tuple[float, float]
    iop: tuple[float, ...]
    ipps: NDArray[np.float64]
    slice_thickness: float
    trigger_ms: NDArray[np.float64]
    rr_ms: float
    tr_ms: float
    te_ms: float
    ti_ms: float | None
    flip_deg: float
    rescale: tuple[float, float, str] | None
    window: tuple[float, float]
    extra: dict[str, Any]
    acq_matrix: tuple[int, int] | None = None


@dataclass(frozen=True)
class StoredText:
    """The DS/TM strings :func:`write_series` writes for a series' numeric attributes.

    Attributes:
        ipps: ImagePositionPatient per slice (3 DS strings each, mm).
        iop: ImageOrientationPatient (6 DS strings, 8 decimals).
        pixel_spacing: PixelSpacing (row, col) DS strings, mm.
        slice_thickness: SliceThickness DS string, mm.
        slice_locations: SliceLocation per slice (DS, mm along the normal).
        trigger: TriggerTime per frame (DS, 2 decimals, ms).
        acq_time: AcquisitionTime (TM, microseconds).
        window: (WindowCenter, WindowWidth) DS strings (1 decimal).
        rescale: (RescaleSlope, RescaleIntercept) DS strings, or None.
        inversion_time: InversionTime DS string (ms), or None.
        cardiac_images: CardiacNumberOfImages IS string (frames of a cine, else 1).
    """

    ipps: tuple[tuple[str, ...], ...]
    iop: tuple[str, ...]
    pixel_spacing: tuple[str, str]
    slice_thickness: str
    slice_locations: tuple[str, ...]
    trigger: tuple[str, ...]
    acq_time: str
    window: tuple[str, str]
    rescale: tuple[str, str] | None
    inversion_time: str | None
    cardiac_images: str


def stored_text(meta: SeriesMeta) -> StoredText:
    """The strings of ``meta``'s numeric attributes as written (the quantisation a reader sees)."""
    normal = np.cross(np.asarray(meta.iop[:3]), np.asarray(meta.iop[3:]))
    return StoredText(
        ipps=tuple(tuple(_ds(float(v)) for v in ipp) for ipp in meta.ipps),
        iop=tuple(_ds(float(v), 8) for v in meta.iop),
        pixel_spacing=(_ds(meta.pixel_spacing[0]), _ds(meta.pixel_spacing[1])),
        slice_thickness=_ds(meta.slice_thickness),
        slice_locations=tuple(_ds(float(ipp @ normal)) for ipp in meta.ipps),
        trigger=tuple(_ds(float(t), 2) for t in meta.trigger_ms),
        acq_time=tm(meta.acq_time_s),
        window=(_ds(meta.window[0], 1), _ds(meta.window[1], 1)),
        rescale=None if meta.rescale is None else (_ds(meta.rescale[0]), _ds(meta.rescale[1])),
        inversion_time=None if meta.ti_ms is None else _ds(meta.ti_ms),
        cardiac_images=str(len(meta.trigger_ms) if meta.kind == "os" else 1),
    )


def _rwvm(rescale: tuple[float, float, str], kind: str) -> Dataset:
    """Real World Value Mapping item: stored value * slope + intercept = milliseconds (UCUM ``ms``)."""
    item = Dataset()
    item.RealWorldValueFirstValueMapped = 0
    item.RealWorldValueLastValueMapped = 4095
    item.RealWorldValueIntercept = float(rescale[1])
    item.RealWorldValueSlope = float(rescale[0])
    item.LUTExplanation = "T1" if kind == "t1map" else "T2"
    item.LUTLabel = "T1_MS" if kind == "t1map" else "T2_MS"
    code = Dataset()
    code.CodeValue = "ms"
    code.CodingSchemeDesignator = "UCUM"
    code.CodeMeaning = "millisecond"
    item.MeasurementUnitsCodeSequence = [code]
    return item


def write_series(folder: Path, pixels: NDArray[np.uint16], meta: SeriesMeta, uid_seed: str) -> list[Path]:
    """Write one series as ``folder/IM_<slice>_<frame>.dcm``.

    Args:
        folder: created if needed.
        pixels: uint16 ``[slice, frame, row, col]`` stored values.
        meta: series attributes.
        uid_seed: string making SOPInstanceUIDs unique and deterministic.

    Returns:
        the written paths.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n_s, n_f, rows, cols = pixels.shape
    txt = stored_text(meta)
    ex = meta.extra
    is_cine = meta.kind == "os"
    paths: list[Path] = []
    for k in range(n_s):
        for f in range(n_f):
            inst = k * n_f + f + 1
            sop = det_uid(uid_seed, meta.series_uid, k, f)
            fm = FileMetaDataset()
            fm.MediaStorageSOPClassUID = UID(MR_IMAGE_STORAGE)
            fm.MediaStorageSOPInstanceUID = UID(sop)
            fm.TransferSyntaxUID = ExplicitVRLittleEndian
            fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            fm.ImplementationVersionName = "DEEPOXYMAP_0_2"
            ds = Dataset()
            ds.file_meta = fm
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.ImageType = list(meta.image_type)
            ds.SOPClassUID = MR_IMAGE_STORAGE
            ds.SOPInstanceUID = sop
            ds.StudyDate = ex["study_date"]
            ds.SeriesDate = ex["study_date"]
            ds.AcquisitionDate = ex["study_date"]
            ds.ContentDate = ex["study_date"]
            ds.StudyTime = tm(ex["study_time_s"])
            ds.SeriesTime = txt.acq_time
            ds.AcquisitionTime = txt.acq_time
            ds.ContentTime = txt.acq_time
            ds.AccessionNumber = ""
            ds.Modality = "MR"
            ds.Manufacturer = ex["manufacturer"]
            ds.InstitutionName = ex["institution"]
            ds.ReferringPhysicianName = ""
            ds.StationName = ex["station"]
            ds.StudyDescription = "SYNTHETIC OS-CMR PHANTOM"
            ds.SeriesDescription = meta.description
            ds.ManufacturerModelName = ex["model"]
            ds.PatientName = ex["patient_name"]
            ds.PatientID = ex["patient_id"]
            ds.PatientBirthDate = ""
            ds.PatientSex = ""
            ds.PatientIdentityRemoved = "YES"
            ds.DeidentificationMethod = "SYNTHETIC PHANTOM, NO REAL PATIENT"
            if meta.kind == "lge":
                ds.ScanningSequence = ["IR", "GR"]
                ds.SequenceVariant = ["SK", "SP", "MP"]
                ds.SequenceName = "tfl2d1_psir"
            elif meta.kind in ("t1map", "t2map"):
                ds.ScanningSequence = ["GR"]
                ds.SequenceVariant = ["SS", "MP"]
                ds.SequenceName = "molli2d" if meta.kind == "t1map" else "t2prep_ssfp2d"
            else:
                ds.ScanningSequence = ["GR"]
                ds.SequenceVariant = ["SS"]
                ds.SequenceName = "tfi2d1_os"
            ds.ScanOptions = ["CG"]
            ds.MRAcquisitionType = "2D"
            ds.SliceThickness = txt.slice_thickness
            ds.RepetitionTime = _ds(meta.tr_ms)
            ds.EchoTime = _ds(meta.te_ms)
            if txt.inversion_time is not None:
                ds.InversionTime = txt.inversion_time
            ds.NumberOfAverages = "1"
            ds.ImagingFrequency = _ds(42.577478 * ex["field_t"])
            ds.ImagedNucleus = "1H"
            ds.EchoNumbers = "1"
            ds.MagneticFieldStrength = _ds(ex["field_t"])
            ds.EchoTrainLength = "1"
            ds.PixelBandwidth = _ds(ex.get("bandwidth", 930.0))
            ds.TriggerTime = txt.trigger[f]
            ds.NominalInterval = str(round(meta.rr_ms))
            ds.CardiacNumberOfImages = txt.cardiac_images
            ds.HeartRate = str(round(60000.0 / meta.rr_ms))
            ds.ReceiveCoilName = "SYNTH_CARDIAC"
            ds.TransmitCoilName = "BODY"
            # frequency rows \ frequency columns \ phase rows \ phase columns: frequency along
            # the row direction (columns), phase encoded along the column direction (rows)
            acq_r, acq_c = meta.acq_matrix if meta.acq_matrix is not None else (rows, cols)
            ds.AcquisitionMatrix = [0, int(acq_c), int(acq_r), 0]
            ds.InPlanePhaseEncodingDirection = "COL"
            ds.FlipAngle = _ds(meta.flip_deg)
            ds.PatientPosition = "HFS"
            ds.BodyPartExamined = "HEART"
            ds.StudyInstanceUID = meta.study_uid
            ds.SeriesInstanceUID = meta.series_uid
            ds.StudyID = "1"
            ds.SeriesNumber = str(meta.series_number)
            ds.AcquisitionNumber = "1"
            ds.InstanceNumber = str(inst)
            ds.ImagePositionPatient = list(txt.ipps[k])
            ds.ImageOrientationPatient = list(txt.iop)
            ds.FrameOfReferenceUID = meta.for_uid
            ds.PositionReferenceIndicator = ""
            ds.SliceLocation = txt.slice_locations[k]
            if is_cine:
                ds.TemporalPositionIdentifier = str(f + 1)
                ds.NumberOfTemporalPositions = str(n_f)
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = int(rows)
            ds.Columns = int(cols)
            ds.PixelSpacing = list(txt.pixel_spacing)
            ds.BitsAllocated = 16
            ds.BitsStored = 12
            ds.HighBit = 11
            ds.PixelRepresentation = 0
            ds.WindowCenter = txt.window[0]
            ds.WindowWidth = txt.window[1]
            if meta.rescale is not None and txt.rescale is not None:
                ds.RescaleIntercept = txt.rescale[1]
                ds.RescaleSlope = txt.rescale[0]
                ds.RescaleType = meta.rescale[2]
                ds.RealWorldValueMappingSequence = [_rwvm(meta.rescale, meta.kind)]
            ds.LossyImageCompression = "00"
            ds.PixelData = np.ascontiguousarray(pixels[k, f], dtype="<u2").tobytes()
            p = folder / f"IM_{k + 1:02d}_{f + 1:03d}.dcm"
            ds.save_as(p, enforce_file_format=True)
            paths.append(p)
    return paths
