"""Sunnybrook Cardiac Data manual contours -> label-map stacks.

The Sunnybrook LV segmentation challenge ships expert contours as text files
``IM-0001-NNNN-{i,o}contour-manual.txt``, one ``x y`` pixel coordinate pair per
line (``x`` = column, ``y`` = row, origin at the top-left pixel), ``i`` for the
endocardium and ``o`` for the epicardium. Image ``NNNN`` is the DICOM whose
InstanceNumber is ``NNNN`` (in the shared copy the file ``NNNN.dcm``, without
leading zeros). After :func:`deepoxymap.io.load` has ordered the series, that
image sits at some ``(slice, frame)`` of the stack; this module finds it through
``Series.meta["source_grid"]`` / ``["instance_grid"]`` and never assumes an order.

Labels: 0 background, 1 LV blood pool (inside the i-contour), 2 LV myocardium
(inside the o-contour, outside the i-contour). Frames without contours are all
0; :func:`annotated_frames` lists the annotated ``(slice, frame)`` pairs. In
SCD0000101 every annotated slice has an i-contour at two phases (end-systole
and end-diastole) and an o-contour only at end-diastole, so label 2 exists only
in the end-diastolic frames.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Case, Role, Series, Stack, Truth
from deepoxymap.errors import CaseError

__all__ = [
    "SUNNYBROOK_CASES",
    "annotated_frames",
    "load_sunnybrook_contours",
    "polygon_mask",
    "read_contour",
    "sunnybrook_case",
]

SUNNYBROOK_CASES: dict[str, str] = {"SCD0000101": "SC-HF-I-1"}
"""Patient folder -> contour folder, for the cases in ``../shared/data/real/sunnybrook``."""

_CONTOUR_FILE = re.compile(r"^IM-\d+-(?P<num>\d+)-(?P<kind>[io])contour-manual\.txt$", re.IGNORECASE)


def read_contour(path: str | Path) -> NDArray[np.float64]:
    """``(n, 2)`` float64 ``(x, y)`` = ``(col, row)`` pixel coordinates of one contour file.

    Raises:
        CaseError: the file is missing, malformed or has fewer than 3 points.
    """
    p = Path(path)
    try:
        pts = np.loadtxt(p, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise CaseError(f"contour file could not be read ({exc})", source=str(p)) from exc
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 3:
        raise CaseError(f"contour must be at least 3 'x y' lines, got shape {pts.shape}", source=str(p))
    return pts


def polygon_mask(points_xy: NDArray[np.float64], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Pixels ``[rows, cols]`` whose centre ``(x=col, y=row)`` lies inside the closed polygon."""
    from matplotlib.path import Path as MplPath

    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    centres = np.column_stack([cc.ravel(), rr.ravel()]).astype(np.float64)
    inside = MplPath(points_xy, closed=False).contains_points(centres)
    return inside.reshape(shape)


def _image_index(series: Series) -> dict[int, tuple[int, int]]:
    """Image number NNNN -> (slice, frame), from file names ``NNNN.dcm`` (else InstanceNumber)."""
    grid = series.meta.get("source_grid") or ()
    inst = series.meta.get("instance_grid") or ()
    out: dict[int, tuple[int, int]] = {}
    for k, row in enumerate(grid):
        for j, name in enumerate(row):
            m = re.search(r"(\d+)\.dcm$", str(name), re.IGNORECASE)
            if m:
                out[int(m.group(1))] = (k, j)
    if not out:
        for k, row in enumerate(inst):
            for j, n in enumerate(row):
                out[int(n)] = (k, j)
    return out


def load_sunnybrook_contours(contour_dir: str | Path, series: Series) -> Stack:
    """Rasterise a case's manual contours onto its loaded cine stack.

    Args:
        contour_dir: the case's contour folder (holding ``i-contours/`` and ``o-contours/``).
        series: the cine series from :func:`deepoxymap.io.load` (its ``meta`` maps
            each ``(slice, frame)`` to its source file).

    Returns:
        ``Stack(role=MASK, units="label")`` with the cine stack's geometry,
        shape ``[slice, frame, row, col]`` and trigger times; labels 0/1/2 (see
        the module docstring).

    Raises:
        CaseError: no contour files, or a contour names an image the series lacks.
    """
    cdir = Path(contour_dir)
    files = sorted(p for p in cdir.rglob("*contour-manual.txt"))
    if not files:
        raise CaseError("no '*contour-manual.txt' files found", source=str(cdir))
    index = _image_index(series)
    stack = series.stack
    shape = stack.geometry.shape
    inner: dict[tuple[int, int], NDArray[np.bool_]] = {}
    outer: dict[tuple[int, int], NDArray[np.bool_]] = {}
    for f in files:
        m = _CONTOUR_FILE.match(f.name)
        if not m:
            continue
        num = int(m["num"])
        if num not in index:
            raise CaseError(f"contour refers to image {num}, which is not in the series", source=str(f))
        target = inner if m["kind"].lower() == "i" else outer
        target[index[num]] = polygon_mask(read_contour(f), shape)
    labels = np.zeros(stack.data.shape, dtype=np.float32)
    for (k, j), msk in outer.items():
        labels[k, j][msk] = 2.0
    for (k, j), msk in inner.items():
        labels[k, j][msk] = 1.0
    return Stack(
        data=labels,
        geometry=stack.geometry,
        trigger_times=stack.trigger_times,
        role=Role.MASK,
        units="label",
        series_uid=f"{series.uid}#contours",
        description="manual LV contours (1 blood pool, 2 myocardium)",
        window=(1.0, 2.0),
    )


def annotated_frames(mask: Stack, label: int | None = None) -> list[tuple[int, int]]:
    """``(slice, frame)`` pairs of a mask stack that hold any label (or ``label``)."""
    d = mask.data if label is None else (mask.data == label)
    hit = np.asarray(d).reshape(d.shape[0], d.shape[1], -1).any(axis=2)
    return [(int(k), int(j)) for k, j in zip(*np.nonzero(hit), strict=True)]


def sunnybrook_case(root: str | Path, patient: str = "SCD0000101") -> Case:
    """The Sunnybrook cine of ``patient`` with its manual contours as a mask.

    Args:
        root: the ``sunnybrook`` folder (holding ``<patient>/`` and
            ``contours/<contour folder>/``) or the folder above it
            (e.g. ``settings().real_data_dir``).
        patient: patient folder name; its contour folder comes from
            :data:`SUNNYBROOK_CASES`.

    Returns:
        ``Case(case_id=patient)`` with the one cine series (12 slices x 20
        frames for SCD0000101) and ``masks[cine.uid]`` the contour label stack;
        ``truth.annotated`` lists the annotated ``(slice, frame)`` pairs and
        ``truth.myocardium_frames`` those with a myocardium label.

    Raises:
        CaseError: the folders are missing or the DICOM did not load as one series.
    """
    from deepoxymap.io.loader import load

    base = Path(root)
    if (base / "sunnybrook").is_dir():
        base = base / "sunnybrook"
    pdir = base / patient
    cdir = base / "contours" / SUNNYBROOK_CASES.get(patient, patient)
    if not pdir.is_dir() or not cdir.is_dir():
        raise CaseError(f"expected {pdir} and {cdir}", source=str(base))
    res = load(pdir)
    if len(res.series) != 1:
        raise CaseError(
            f"expected one cine series, loaded {len(res.series)} ({[i.message for i in res.issues][:3]})",
            source=str(pdir),
        )
    cine = res.series[0]
    if cine.role != Role.CINE:
        cine = cine.with_role(Role.CINE, "Sunnybrook cine (set by sunnybrook_case)")
    mask = load_sunnybrook_contours(cdir, cine)
    truth = Truth(
        annotated=tuple(annotated_frames(mask)),
        myocardium_frames=tuple(annotated_frames(mask, 2)),
        record={"source": "Sunnybrook Cardiac Data (CC0)", "labels": {"1": "LV blood pool", "2": "LV myocardium"}},
    )
    return Case(case_id=patient, series=(cine,), truth=truth, masks={cine.uid: dataclasses.replace(mask)})
