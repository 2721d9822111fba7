"""Synthetic short-axis images with known LV / RV labels, and a minimal DICOM writer (nothing binary committed).

The geometry is drawn in millimetres: an LV blood pool (radius ``r_endo_mm``), a
wall whose thickness varies smoothly around the circumference, a crescent RV
on the septal side, epicardial fat on part of the free wall, lung on one side
and liver below. Intensities per contrast (``kind``) are randomised, then the
image is blurred (partial volume) and given Rician noise.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from scipy import ndimage as ndi

# tissue means per contrast: blood, myocardium, RV blood, fat, lung, liver/body
LEVELS = {
    "cine": (1.0, 0.30, 0.90, 0.85, 0.05, 0.40),
    "lge": (0.75, 0.08, 0.65, 0.80, 0.03, 0.35),
    "t1-map": (1600.0, 1000.0, 1600.0, 350.0, 50.0, 650.0),
    "t2-map": (150.0, 50.0, 150.0, 80.0, 10.0, 40.0),
}


def sax_case(
    kind: str,
    rng: np.random.Generator,
    *,
    shape: tuple[int, int] = (150, 170),
    spacing_mm: float = 1.4,
    centre: tuple[float, float] = (72.0, 88.0),
    r_endo_mm: float = 20.0,
    thick_mm: float = 9.0,
    rv_depth_mm: float = 14.0,
    rv_centre_deg: float = 180.0,
    noise: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """``(image float32 [rows, cols], labels uint8 [rows, cols])``; labels 1 LV blood, 2 myocardium, 3 RV."""
    lv_b, lv_m, rv_b, fat, lung, body = (v * rng.uniform(0.9, 1.1) for v in LEVELS[kind])
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    dy, dx = -(rr - centre[0]) * spacing_mm, (cc - centre[1]) * spacing_mm
    rad = np.hypot(dx, dy)
    th = np.degrees(np.arctan2(dy, dx)) % 360
    phase = rng.uniform(0, 360)
    r_endo = r_endo_mm * (1 + 0.06 * np.cos(np.radians(2 * th + phase)))
    r_epi = r_endo + thick_mm * (1 + 0.15 * np.cos(np.radians(th - phase)))
    lab = np.zeros(shape, np.uint8)
    lab[rad <= r_endo] = 1
    lab[(rad > r_endo) & (rad <= r_epi)] = 2
    dth = np.abs((th - rv_centre_deg + 180) % 360 - 180)
    rv = (rad > r_epi + 0.5) & (dth < 65) & (rad <= r_epi + rv_depth_mm * np.clip(np.cos(np.radians(dth * 1.3)), 0, 1))
    lab[rv] = 3
    img = np.full(shape, body)
    img[rad > r_epi + 25] = body
    lung_side = (dx > 0) & (dy > -10) & (rad > r_epi + 3)
    img[lung_side] = lung
    fat_band = (rad > r_epi) & (rad <= r_epi + 2.5) & (np.abs((th - 60 + 180) % 360 - 180) < 50)
    img[fat_band] = fat
    img[lab == 1] = lv_b
    img[lab == 2] = lv_m
    img[lab == 3] = rv_b
    scale = max(LEVELS[kind][0], 1e-6)
    img = ndi.gaussian_filter(img, 0.8 / spacing_mm * 1.4)
    sd = noise * scale
    img = np.hypot(img + rng.normal(0, sd, shape), rng.normal(0, sd, shape))
    return img.astype(np.float32), lab


def mr_file(pixels: np.ndarray, path: Path, *, series_uid: str, z_mm: float, spacing_mm: float, instance: int) -> str:
    """Write a minimal MR Image Storage file (axial-like geometry); returns its SOPInstanceUID."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    sop = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop
    ds.Modality = "MR"
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.11"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.12"
    ds.SeriesDescription = "SA_CINE"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [0.0, 0.0, float(z_mm)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [spacing_mm, spacing_mm]
    ds.SliceThickness = 8.0
    ds.set_pixel_data(np.asarray(pixels, dtype=np.uint16), "MONOCHROME2", 12, generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return sop
