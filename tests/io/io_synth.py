"""Tiny synthetic DICOM / NIfTI builders for the io tests (nothing binary is committed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

# an oblique short-axis orientation (row and column cosines, orthonormal)
ROW = np.array([0.8, 0.6, 0.0])
COL = np.array([-0.36, 0.48, -0.8])
NORMAL = np.cross(ROW, COL)


def mr_dataset(
    pixels: np.ndarray,
    *,
    series_uid: str,
    ipp: Sequence[float] | None = (0.0, 0.0, 0.0),
    iop: Sequence[float] | None = (*ROW, *COL),
    spacing: Sequence[float] | None = (1.5, 1.5),
    trigger: float | None = None,
    acq_time: str | None = "101010.000000",
    instance: int = 1,
    description: str = "",
    image_type: str = "ORIGINAL\\PRIMARY\\M\\NONE",
    rescale: tuple[float, float] | None = None,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    cardiac_images: int | None = None,
    inversion_time: float | None = None,
) -> Dataset:
    """A minimal single-frame MR Image Storage dataset around a uint16 ``pixels`` [rows, cols]."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    sop = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET-ID-42"
    ds.Modality = "MR"
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesDescription = description
    ds.ImageType = image_type.split("\\")
    ds.InstanceNumber = instance
    if ipp is not None:
        ds.ImagePositionPatient = [float(x) for x in ipp]
    if iop is not None:
        ds.ImageOrientationPatient = [round(float(x), 6) for x in iop]
    if spacing is not None:
        ds.PixelSpacing = [float(x) for x in spacing]
    ds.SliceThickness = 8.0
    if trigger is not None:
        ds.TriggerTime = float(trigger)
    if acq_time is not None:
        ds.AcquisitionTime = acq_time
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if cardiac_images is not None:
        ds.CardiacNumberOfImages = cardiac_images
    if inversion_time is not None:
        ds.InversionTime = inversion_time
    ds.set_pixel_data(np.asarray(pixels, dtype=np.uint16), photometric, 12)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    """The dataset as a DICOM file (with preamble)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(ds))
    return path


def cine_files(
    folder: Path | None,
    *,
    n_slices: int = 3,
    n_frames: int = 4,
    series_uid: str | None = None,
    spacing_mm: float = 8.0,
    shape: tuple[int, int] = (8, 10),
    rng: np.random.Generator | None = None,
    description: str = "SA_CINE",
    acq_base: str = "1010",
    **kw: object,
) -> dict[str, Dataset]:
    """A cine with pixel value ``100 * slice + frame + 1`` everywhere.

    ``slice`` counts along +NORMAL; file names and InstanceNumbers are shuffled
    so that only position and trigger time can recover the order. Returns
    ``{file name: dataset}`` (written under ``folder`` when given).
    """
    rng = rng or np.random.default_rng(0)
    uid = series_uid or generate_uid()
    items = [(k, j) for k in range(n_slices) for j in range(n_frames)]
    perm = rng.permutation(len(items))
    out: dict[str, Dataset] = {}
    for n, idx in enumerate(perm):
        k, j = items[int(idx)]
        ipp = np.array([10.0, -20.0, 30.0]) + k * spacing_mm * NORMAL
        px = np.full(shape, 100 * k + j + 1, dtype=np.uint16)
        ds = mr_dataset(
            px,
            series_uid=uid,
            ipp=ipp,
            trigger=25.0 + 40.0 * j,
            instance=int(rng.integers(1, 10_000)),
            description=description,
            acq_time=f"{acq_base}{k:02d}.000000",
            cardiac_images=n_frames,
            **kw,  # type: ignore[arg-type]
        )
        name = f"IM{n:04d}.dcm"
        out[name] = ds
        if folder is not None:
            write(ds, folder / name)
    return out


def nifti_bytes(data: np.ndarray, affine: np.ndarray, *, gz: bool = True, pixdim4_ms: float | None = None) -> bytes:
    """A NIfTI-1 file's bytes (gzip-compressed unless ``gz=False``)."""
    import gzip

    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    if pixdim4_ms is not None:
        img.header.set_xyzt_units("mm", "msec")
        z = list(img.header.get_zooms())
        z[3] = pixdim4_ms
        img.header.set_zooms(z)
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw
