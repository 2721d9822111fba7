"""``deepoxymap segment PATH... --out DIR``: automatic LV / RV label maps as 8-bit PNGs.

For every source image it segments, the command writes one greyscale 8-bit PNG
on that image's own pixel grid (rows x columns as stored), with values
0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool
(:func:`deepoxymap.segmentation.segment_stack`):

* DICOM: ``DIR/<SOPInstanceUID>.png`` (a multi-frame file: ``<SOPInstanceUID>_<frame>.png``,
  frame numbers from 1 as in DICOM);
* NIfTI: ``DIR/<file stem>_s<slice>_f<frame>.png``, ``slice`` and ``frame`` the
  indices of the image in the stack the reader built (slices base to apex,
  from 0); for NIfTI, rows are the first voxel axis ``i`` and columns ``j``.

Label maps among the inputs (DICOM SEG, NIfTI masks) are not segmented. A
file that cannot be read, or a series that cannot be segmented, is reported
on stderr with its name and the rest are still written; the exit code is 1
when anything failed or nothing was written. One JSON line on stdout
summarises the run (``written``, ``failed``, ``out``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "nifti_stem", "run"]

_KIND_CHOICES = ("cine", "os-cmr", "lge", "t1-map", "t2-map")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``deepoxymap segment``."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files, folders, .zip or .nii/.nii.gz")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the PNG label maps")
    parser.add_argument(
        "--kind",
        choices=_KIND_CHOICES,
        default=None,
        help="image contrast (default: from each series' role; unknown roles are treated as cine)",
    )
    parser.add_argument(
        "--method",
        choices=("polar", "unet"),
        default=None,
        help="segmentation method (default: unet, or polar with a note when the segmenter file is unusable)",
    )


def nifti_stem(series_uid: str) -> str:
    """File stem of a NIfTI series from its reader uid (``nifti:<path>``).

    ``nifti:Case0101/images/Case0101_s*_*`` (files assembled per slice and frame) -> ``Case0101``;
    ``nifti:case/Images/scan.nii.gz`` -> ``scan``. Characters unsafe in a file name become ``_``.
    """
    name = series_uid.removeprefix("nifti:").replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"\.nii(\.gz)?$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"(_s\*)?(_\*)?$", "", name)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
    return name


def _sop_uids(paths: list[str]) -> dict[str, str]:
    """Reader display name -> SOPInstanceUID of every DICOM among ``paths`` (headers only)."""
    import io

    import pydicom
    from pydicom.errors import InvalidDicomError

    from deepoxymap.config import settings
    from deepoxymap.io.sources import expand, is_nifti_name

    out: dict[str, str] = {}
    for entry in expand(paths, settings()).entries:
        if is_nifti_name(entry.name):
            continue
        uid = ""
        try:
            ds = pydicom.dcmread(io.BytesIO(entry.read()), stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            uid = str(ds.get("SOPInstanceUID", "") or "")
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
            uid = ""  # not DICOM: the loader reports it
        if uid:
            out[entry.name] = uid
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"


def _output_names(series: Any, sop: dict[str, str]) -> list[list[str | None]]:
    """``[slice][frame]`` PNG file name of every image of a series (``None``: no name could be given)."""
    n_s, n_f = series.stack.data.shape[:2]
    meta = series.meta or {}
    if meta.get("format") == "NIfTI" or str(series.uid).startswith("nifti:"):
        stem = nifti_stem(str(series.uid))
        return [[f"{stem}_s{k}_f{j}.png" for j in range(n_f)] for k in range(n_s)]
    grid = meta.get("source_grid") or ()
    names: list[list[str | None]] = [[None] * n_f for _ in range(n_s)]
    count: dict[str, int] = {}
    for row in grid:
        for f in row:
            count[str(f)] = count.get(str(f), 0) + 1
    seen: dict[str, int] = {}
    for k, row in enumerate(grid[:n_s]):
        for j, f in enumerate(tuple(row)[:n_f]):
            uid = sop.get(str(f))
            if not uid:
                continue
            if count[str(f)] > 1:  # a multi-frame file: one PNG per frame
                seen[str(f)] = seen.get(str(f), 0) + 1
                names[k][j] = f"{_safe(uid)}_{seen[str(f)]}.png"
            else:
                names[k][j] = f"{_safe(uid)}.png"
    return names


def run(args: argparse.Namespace) -> int:
    """Segment every image series found in the paths and write the PNGs; see the module doc."""
    import numpy as np
    from PIL import Image

    from deepoxymap.case import Role
    from deepoxymap.errors import DeepOxyMapError
    from deepoxymap.io import printable_name
    from deepoxymap.io.seg import load
    from deepoxymap.segmentation import DEFAULT_METHOD, KIND_OF_ROLE, segment_stack
    from deepoxymap.segmentation.learned import SegmenterUnavailable

    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeepOxyMapError(f"cannot create the output folder ({exc.strerror})", source=str(out)) from None
    paths = [str(p) for p in args.paths]
    failed = 0
    written = 0

    def fail(name: str, message: str) -> None:
        nonlocal failed
        failed += 1
        text = message if message.startswith(name) else f"{name}: {message}"
        print(f"error: {printable_name(text)}", file=sys.stderr)

    readable: list[str] = []
    for p in paths:
        if not Path(p).exists():
            fail(p, "no such file or folder")
        else:
            readable.append(p)
    if not readable:
        print(json.dumps({"written": 0, "failed": failed, "out": str(out)}))
        return 1
    result = load(readable)
    for issue in result.issues:
        if issue.severity == "error":
            fail(issue.file, issue.message)
    images = [s for s in result.series if s.role != Role.MASK]
    if not images and not result.issues:
        fail(", ".join(readable), "no image series found")
    method = args.method or DEFAULT_METHOD
    sop = _sop_uids(readable) if any(not str(s.uid).startswith("nifti:") for s in images) else {}
    for s in images:
        kind = args.kind or KIND_OF_ROLE.get(s.role, "cine")
        where = f"series {s.uid}"
        if s.stack.data.shape[2] < 8 or s.stack.data.shape[3] < 8:
            fail(where, f"images of {s.stack.data.shape[2]} x {s.stack.data.shape[3]} pixels are too small to segment")
            continue
        try:
            try:
                labels = segment_stack(s.stack, kind=kind, method=method)
            except SegmenterUnavailable as exc:
                if args.method is not None:  # the user asked for this method: say why it cannot run
                    raise
                print(f"note: {printable_name(str(exc))}; using the classical method", file=sys.stderr)
                method = "polar"
                labels = segment_stack(s.stack, kind=kind, method=method)
        except SegmenterUnavailable as exc:
            fail(where, str(exc))
            continue
        except (ValueError, DeepOxyMapError) as exc:
            fail(where, f"could not be segmented ({exc})")
            continue
        names = _output_names(s, sop)
        for k in range(labels.shape[0]):
            for j in range(labels.shape[1]):
                name = names[k][j]
                if name is None:
                    fail(where, f"slice {k}, frame {j}: no SOPInstanceUID to name the output after")
                    continue
                Image.fromarray(np.ascontiguousarray(labels[k, j], dtype=np.uint8), mode="L").save(out / name)
                written += 1
    print(json.dumps({"written": written, "failed": failed, "out": str(out)}))
    return 1 if failed or not written else 0
