"""``deepoxymap scar IMAGE --myocardium MASK --labels 2,3,4 --out DIR``: LGE scar inside a labelled myocardium.

IMAGE is an LGE NIfTI volume and MASK a NIfTI label map on the same grid
(same shape and affine); ``--labels`` are MASK's values that make up the
myocardium (EMIDEC: 2 normal myocardium, 3 infarct, 4 no-reflow). Writes
``DIR/scar.nii.gz`` (uint8, 1 = scar) on IMAGE's grid and prints one JSON line
with ``percent_of_myocardium``, ``method``, ``threshold`` (SI; the mean of the
per-slice thresholds with the default per-slice remote) and more. The method
is :func:`deepoxymap.cardiac.scar.quantify_scar` with its defaults unless
``--method``/``--n-sd`` say otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deepoxymap.errors import DeepOxyMapError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("image", type=Path, help="LGE volume (NIfTI .nii or .nii.gz)")
    parser.add_argument("--myocardium", type=Path, required=True, help="label map on IMAGE's grid (NIfTI)")
    parser.add_argument(
        "--labels", default="2,3,4", help="comma-separated label values of the myocardium (default 2,3,4: EMIDEC)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--method", choices=("nsd", "fwhm"), default="nsd", help="default nsd (the chosen default)")
    parser.add_argument("--n-sd", type=float, default=None, help="n-SD detection n (default: the module default)")


def _labels(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DeepOxyMapError(f"--labels {text!r}: give comma-separated integers, e.g. 2,3,4") from None
    if not vals:
        raise DeepOxyMapError("--labels is empty: give the label values of the myocardium, e.g. 2,3,4")
    return vals


def _read(path: Path, what: str) -> Any:
    import nibabel as nib

    if not path.is_file():
        raise DeepOxyMapError(f"{path}: {what} file not found")
    if not path.name.endswith((".nii", ".nii.gz")):
        raise DeepOxyMapError(f"{path}: {what} must be a NIfTI file (.nii or .nii.gz)")
    try:
        return nib.load(str(path))
    except (OSError, ValueError, EOFError) as exc:  # nibabel: ImageFileError is a ValueError
        raise DeepOxyMapError(f"{path}: cannot read the {what} as NIfTI ({exc})") from None


def run(args: argparse.Namespace) -> int:
    """Quantify, write ``scar.nii.gz`` and print the JSON line; 0 on success."""
    import nibabel as nib
    import numpy as np

    from deepoxymap.cardiac.scar import quantify_scar

    labels = _labels(args.labels)
    im = _read(args.image, "image")
    mk = _read(args.myocardium, "myocardium mask")
    img = np.asarray(im.get_fdata(dtype=np.float32))
    lab = np.asarray(mk.get_fdata(dtype=np.float32))
    img3 = img[..., 0] if img.ndim == 4 and img.shape[3] == 1 else img
    lab3 = lab[..., 0] if lab.ndim == 4 and lab.shape[3] == 1 else lab
    if img3.ndim not in (2, 3):
        raise DeepOxyMapError(f"{args.image}: expected a 2-D or 3-D image, got shape {img.shape}")
    if lab3.shape != img3.shape:
        raise DeepOxyMapError(
            f"{args.myocardium}: mask grid {lab3.shape} does not match the image grid {img3.shape} of {args.image}"
        )
    if not np.allclose(np.asarray(im.affine), np.asarray(mk.affine), atol=1e-3):
        raise DeepOxyMapError(
            f"{args.myocardium}: mask affine differs from the affine of {args.image} (not the same grid)"
        )
    if not np.isfinite(img3).all():
        raise DeepOxyMapError(f"{args.image}: the image holds NaN or infinite values")
    ilab = np.rint(lab3).astype(np.int64)
    present = [v for v in labels if (ilab == v).any()]
    if not present:
        found = sorted(int(v) for v in np.unique(ilab))[:20]
        raise DeepOxyMapError(f"{args.myocardium}: none of the labels {labels} is in the mask (values found: {found})")
    absent = [v for v in labels if v not in present]
    if absent:
        print(f"note: {args.myocardium}: labels {absent} absent (myocardium from {present})", file=sys.stderr)
    myo = np.isin(ilab, present)
    zooms = im.header.get_zooms()
    spacing = (float(zooms[0]), float(zooms[1]))
    # NIfTI (x, y, z) -> (slice, x, y) for per-slice statistics
    vol = img3 if img3.ndim == 2 else np.moveaxis(img3, -1, 0)
    msk = myo if myo.ndim == 2 else np.moveaxis(myo, -1, 0)
    if msk.sum() < 2:
        raise DeepOxyMapError(f"{args.myocardium}: the myocardium ({present}) has fewer than 2 pixels")
    kw: dict[str, Any] = {"method": args.method}
    if args.n_sd is not None:
        kw["n_sd"] = float(args.n_sd)
    r = quantify_scar(vol, msk, pixel_spacing=spacing, **kw)
    scar = r.mask if r.mask.ndim == 2 else np.moveaxis(r.mask, 0, -1)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    hdr = im.header.copy()
    hdr.set_data_dtype(np.uint8)
    hdr["scl_slope"], hdr["scl_inter"] = 1.0, 0.0
    path = out / "scar.nii.gz"
    nib.save(nib.Nifti1Image(scar.astype(np.uint8), im.affine, hdr), str(path))
    line = {
        "image": str(args.image),
        "scar": str(path),
        "percent_of_myocardium": round(float(r.percent_of_myocardium), 4),
        "method": r.describe().split("; threshold")[0],
        "threshold": round(float(r.threshold), 4),
        "slice_thresholds": [round(t, 4) if np.isfinite(t) else None for t in r.slice_thresholds],
        "scar_px": r.scar_px,
        "myocardium_px": r.myocardium_px,
        "scar_mm2": round(float(r.scar_mm2), 3),
        "labels": present,
    }
    print(json.dumps(line), flush=True)
    return 0
