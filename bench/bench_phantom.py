"""Phantom generation speed and size vs an anchor measured in the same run.

Anchor: writing the same number of plain 16-bit MR DICOM files of the same size
with pydicom (random pixels, a minimal dataset). The ratio generator/anchor is
machine-independent; the projected full-cohort time (190 subjects, one process)
and size are printed against the targets (< 10 min on 2 cores, < 1 GB).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

N_SUBJECTS = int(os.environ.get("BENCH_PHANTOM_N", "4"))
TARGET_S = 600.0
TARGET_BYTES = 1e9


def _anchor(folder: Path, n_files: int, shape: tuple[int, int]) -> float:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(n_files):
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        fm.MediaStorageSOPInstanceUID = generate_uid()
        fm.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = fm
        ds.SOPClassUID = fm.MediaStorageSOPClassUID
        ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
        ds.Modality = "MR"
        ds.Rows, ds.Columns = shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = rng.integers(0, 4096, shape, dtype=np.uint16).tobytes()
        ds.save_as(folder / f"{i}.dcm", enforce_file_format=True)
    return time.perf_counter() - t0


def main() -> int:
    """Time N subjects (one process) vs the anchor; 0 if the projection meets the targets."""
    from deepoxymap.phantom import STUDY, generate_cohort

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cohort"
        t0 = time.perf_counter()
        rows = generate_cohort(out, "study", seed=0, limit=N_SUBJECTS, jobs=1)
        t_gen = time.perf_counter() - t0
        files = [p for p in out.rglob("*") if p.is_file()]
        n_dcm = sum(p.suffix == ".dcm" for p in files)
        size = sum(p.stat().st_size for p in files)
        adir = Path(tmp) / "anchor"
        adir.mkdir()
        t_anchor = _anchor(adir, n_dcm, (128, 112))
    n_total = sum(STUDY.class_counts.values())
    per = t_gen / len(rows)
    proj_1 = per * n_total
    proj_size = size / len(rows) * n_total
    print(f"generated {len(rows)} subjects ({n_dcm} DICOM files) in {t_gen:.2f} s = {per:.2f} s/subject")
    print(f"anchor: {n_dcm} plain pydicom writes in {t_anchor:.2f} s; ratio generator/anchor {t_gen / t_anchor:.1f}x")
    print(
        f"projected study cohort ({n_total} subjects): {proj_1:.0f} s on 1 process, {proj_1 / 2:.0f} s on 2 "
        f"(target < {TARGET_S:.0f} s on 2 cores); size {proj_size / 1e6:.0f} MB (target < {TARGET_BYTES / 1e6:.0f} MB)"
    )
    return 0 if (proj_1 / 2 < TARGET_S and proj_size < TARGET_BYTES) else 1


if __name__ == "__main__":
    raise SystemExit(main())
