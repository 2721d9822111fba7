"""Phantom generation speed and size vs an anchor measured in the same run.

Anchor: writing the same number of plain 16-bit MR DICOM files of the same size
with pydicom (random pixels, a minimal dataset). The ratio generator/anchor is
machine-independent; the projected full-cohort time (190 subjects, one process)
and size are printed against the targets (< 10 min on 2 cores, < 1 GB).

Training subjects (``python -m bench.bench_phantom training`` runs this part only):
generated manifest rows prepared the old way (the whole subject written to DICOM and
read back: ``load_case(record)``) and the training way (only the OS-CMR time points
the spec reads, in memory: ``load_case(record, os_timepoints=...)``), each followed by
``preprocess_case_offsets`` at offsets -2..2 (``--frame-jitter 2``) with the model
card's spec; one process, old and new alternating per subject so machine load hits
both alike. Prints seconds per subject and the ratio; the tensors must be equal.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

N_SUBJECTS = int(os.environ.get("BENCH_PHANTOM_N", "4"))
N_TRAINING = int(os.environ.get("BENCH_PHANTOM_TRAIN_N", "6"))
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
    ok = proj_1 / 2 < TARGET_S and proj_size < TARGET_BYTES
    return training_subjects() | (0 if ok else 1)


def training_subjects(n: int = N_TRAINING) -> int:
    """Seconds per generated training subject, DICOM round trip vs in memory; 0 when the tensors agree."""
    from deepoxymap.cohort import load_case, read_manifest
    from deepoxymap.model.data import input_timepoints
    from deepoxymap.model.preprocess import PreprocessSpec, preprocess_case_offsets
    from deepoxymap.model.synthetic import synthetic_manifest

    spec = PreprocessSpec(input_size=96, crop_mm=120.0)  # the model card's
    offsets = (0, -2, -1, 1, 2)
    with tempfile.TemporaryDirectory() as tmp:
        recs = [r for r in read_manifest(synthetic_manifest(Path(tmp) / "m.csv", max(n, 4), 4)) if r.split == "train"]
    recs = recs[:n]
    load_case(recs[0], os_timepoints=input_timepoints(spec))  # imports, caches
    t = {"old": [0.0, 0.0], "new": [0.0, 0.0]}  # [render + load, preprocess]
    same = True
    for rec in recs:
        xs = {}
        for way in ("old", "new"):
            t0 = time.perf_counter()
            case = load_case(rec) if way == "old" else load_case(rec, os_timepoints=input_timepoints(spec))
            t1 = time.perf_counter()
            pre = preprocess_case_offsets(case, spec, offsets)
            t[way][0] += t1 - t0
            t[way][1] += time.perf_counter() - t1
            xs[way] = [pre[o].x for o in offsets]
        same &= all(np.array_equal(a, b) for a, b in zip(xs["old"], xs["new"], strict=True))
    per = {w: (v[0] / len(recs), v[1] / len(recs)) for w, v in t.items()}
    for w, label in (("old", "DICOM round trip"), ("new", "in memory, OS-CMR " + "+".join(input_timepoints(spec)))):
        print(
            f"training subject ({label}): {per[w][0] + per[w][1]:.2f} s/subject "
            f"= {per[w][0]:.2f} s render+load + {per[w][1]:.2f} s preprocess (5 offsets)"
        )
    ratio = sum(per["old"]) / sum(per["new"])
    load_ratio = per["old"][0] / per["new"][0]
    print(f"{len(recs)} subjects, 1 process: old/new {ratio:.2f}x per subject ({load_ratio:.2f}x render+load); "
          f"tensors {'identical' if same else 'DIFFER'}")  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    import sys

    raise SystemExit(training_subjects() if sys.argv[1:] == ["training"] else main())
