"""Validation of the automatic segmentation on real labelled short-axis images.

Library only (no printing); ``python -m tools.segment_check`` prints the table.

Datasets (``<real_data_dir>``, see ``../shared/data/real/README.md``):

* **Sunnybrook SCD0000101** (cine bSSFP): manual endocardial contours at two
  phases per slice and epicardial contours at one. The phase with both
  contours and the larger cavity is end-diastole (ED), the other end-systole
  (ES); the myocardium can only be scored at ED (no ES epicardium), the blood
  pool at both.
* **CineMyoPS Case0101** (cine bSSFP): one label map per slice (1 myocardium,
  2 LV blood, 3 RV, 4 edema, 5 scar; myocardium = 1, 4, 5) for one frame that
  the source does not name. It is scored on frame 0 (the usual ED frame of a
  cine) and on the frame where the label map fits the image best (the highest
  ratio of mean intensity in the labelled blood pool to that in the labelled
  myocardium; the segmentation plays no part in that choice). The RV label
  gives the reference insertion points.
* **EMIDEC sampleNegative** (LGE): labels 1 cavity, 2 myocardium.

Every slice with a reference is segmented with
:func:`deepoxymap.segmentation.segment_stack` (one LV localisation per slice
from all its frames, as the app does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.masks import CINEMYOPS, EMIDEC, PHANTOM, LabelScheme
from deepoxymap.cardiac.segments import find_insertion_points
from deepoxymap.errors import CaseError
from deepoxymap.segmentation.api import DEFAULT_METHOD

__all__ = [
    "DatasetResult",
    "angle_error_deg",
    "check_all",
    "check_cinemyops",
    "check_emidec",
    "check_sunnybrook",
    "dice",
    "format_table",
    "insertion_errors_deg",
]


def dice(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Dice of two boolean masks; NaN when both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    s = int(a.sum()) + int(b.sum())
    return float(2.0 * np.logical_and(a, b).sum() / s) if s else float("nan")


def angle_error_deg(a: float, b: float) -> float:
    """Absolute difference of two angles, degrees in [0, 180]."""
    return float(abs((a - b + 180.0) % 360.0 - 180.0))


def insertion_errors_deg(
    auto: NDArray[Any],
    reference: NDArray[Any],
    pixel_spacing: tuple[float, float],
    *,
    reference_scheme: LabelScheme = PHANTOM,
) -> tuple[float, float]:
    """Anterior and inferior insertion-point angle errors (deg) of an automatic label map vs a reference.

    Both through :func:`deepoxymap.cardiac.segments.find_insertion_points`
    (screen angles around each map's own LV centre, the same ``sense``).

    Raises:
        CaseError: either map has no myocardium or no RV next to it.
    """
    a = find_insertion_points(np.asarray(auto), scheme=PHANTOM, pixel_spacing=pixel_spacing, sense=1)
    r = find_insertion_points(np.asarray(reference), scheme=reference_scheme, pixel_spacing=pixel_spacing, sense=1)
    return angle_error_deg(a.anterior_deg, r.anterior_deg), angle_error_deg(a.inferior_deg, r.inferior_deg)


@dataclass
class DatasetResult:
    """Scores of one dataset (one row of the table).

    Attributes:
        name: e.g. ``"Sunnybrook ED"``.
        kind: image kind passed to the segmentation.
        myo_dice: per-image myocardium Dice (empty where the reference has no myocardium).
        blood_dice: per-image LV blood-pool Dice.
        insertion_err_deg: per-slice insertion-point angle errors (anterior and inferior), deg.
        insertion_failed: slices where the automatic map gave no insertion points.
        seconds_per_image: wall time of the segmentation per image (localisation included).
        n_images: images scored.
    """

    name: str
    kind: str
    myo_dice: list[float] = field(default_factory=list)
    blood_dice: list[float] = field(default_factory=list)
    insertion_err_deg: list[float] = field(default_factory=list)
    insertion_failed: int = 0
    seconds_per_image: float = float("nan")
    n_images: int = 0

    @staticmethod
    def _mean(v: Sequence[float]) -> float:
        a = np.asarray(v, dtype=np.float64)
        a = a[np.isfinite(a)]
        return float(a.mean()) if a.size else float("nan")

    @property
    def myo(self) -> float:
        """Mean myocardium Dice."""
        return self._mean(self.myo_dice)

    @property
    def blood(self) -> float:
        """Mean blood-pool Dice."""
        return self._mean(self.blood_dice)

    @property
    def insertion(self) -> float:
        """Mean insertion-point angle error, deg."""
        return self._mean(self.insertion_err_deg)


def _timed_segment(
    stack: Any, kind: str, frames: Sequence[int], method: str = DEFAULT_METHOD
) -> tuple[NDArray[np.uint8], float]:
    import time

    from deepoxymap.segmentation import segment_stack

    t0 = time.perf_counter()
    lab = segment_stack(stack, kind=kind, frames=frames, method=method)
    return lab, time.perf_counter() - t0


def check_sunnybrook(root: Path, method: str = DEFAULT_METHOD) -> list[DatasetResult]:
    """ES and ED rows for Sunnybrook SCD0000101 under ``root`` (the real-data folder)."""
    from deepoxymap.io.contours import annotated_frames, sunnybrook_case

    case = sunnybrook_case(root)
    cine = case.series[0]
    mask = np.rint(case.masks[cine.uid].data).astype(np.int64)
    per_slice: dict[int, list[int]] = {}
    for k, j in annotated_frames(case.masks[cine.uid]):
        per_slice.setdefault(k, []).append(j)
    frames = sorted({j for js in per_slice.values() for j in js})
    lab, secs = _timed_segment(cine.stack, "cine", frames, method)
    es, ed = DatasetResult("Sunnybrook ES", "cine"), DatasetResult("Sunnybrook ED", "cine")
    n_done = 0
    for k, js in sorted(per_slice.items()):
        # ED: the phase with an epicardial contour; else the larger cavity
        ranked = sorted(js, key=lambda j: (bool((mask[k, j] == 2).any()), int((mask[k, j] == 1).sum())))
        for row, j in ((es, ranked[0]), (ed, ranked[-1])) if len(ranked) > 1 else ((ed, ranked[0]),):
            ref, auto = mask[k, j], lab[k, j]
            row.blood_dice.append(dice(auto == 1, ref == 1))
            if (ref == 2).any():
                row.myo_dice.append(dice(auto == 2, ref == 2))
            row.n_images += 1
            n_done += 1
    per = secs / max(len(frames) * cine.stack.n_slices, 1)
    es.seconds_per_image = ed.seconds_per_image = per
    return [es, ed]


def _best_fit_frame(images: NDArray[Any], ref: NDArray[np.int64], scheme: LabelScheme) -> int:
    """The frame whose intensities the label map fits best (blood/myocardium mean ratio)."""
    blood = np.isin(ref, scheme.lv_blood)
    myo = np.isin(ref, scheme.myocardium)
    if not blood.any() or not myo.any():
        return 0
    ratios = [float(f[blood].mean()) / max(float(f[myo].mean()), 1e-9) for f in np.asarray(images, dtype=np.float64)]
    return int(np.argmax(ratios))


def check_cinemyops(root: Path, method: str = DEFAULT_METHOD) -> list[DatasetResult]:
    """Rows for CineMyoPS Case0101: frame 0 and the best-fitting frame, with insertion-point errors."""
    from deepoxymap.case import Role
    from deepoxymap.io import load

    folder = root / "cinemyops" / "Case0101"
    res = load(folder)
    cine = next((s for s in res.series if s.role == Role.CINE), None)
    lab_s = next((s for s in res.series if s.role == Role.MASK), None)
    if cine is None or lab_s is None:
        raise CaseError("expected a cine series and a label map", source=str(folder))
    ref = np.rint(lab_s.stack.data[:, 0]).astype(np.int64)
    ps = cine.stack.geometry.pixel_spacing
    lab, secs = _timed_segment(cine.stack, "cine", list(range(cine.stack.data.shape[1])), method)
    rows = []
    for name, pick in (("CineMyoPS frame 0", lambda k: 0), ("CineMyoPS best-fit frame", None)):
        row = DatasetResult(name, "cine")
        for k in range(ref.shape[0]):
            j = _best_fit_frame(cine.stack.data[k], ref[k], CINEMYOPS) if pick is None else pick(k)
            auto = lab[k, j]
            row.myo_dice.append(dice(auto == 2, np.isin(ref[k], CINEMYOPS.myocardium)))
            row.blood_dice.append(dice(auto == 1, np.isin(ref[k], CINEMYOPS.lv_blood)))
            try:
                row.insertion_err_deg.extend(insertion_errors_deg(auto, ref[k], ps, reference_scheme=CINEMYOPS))
            except CaseError:
                row.insertion_failed += 1
            row.n_images += 1
        row.seconds_per_image = secs / max(lab.shape[0] * lab.shape[1], 1)
        rows.append(row)
    return rows


def check_emidec(root: Path, method: str = DEFAULT_METHOD) -> list[DatasetResult]:
    """The row for EMIDEC sampleNegative (LGE)."""
    from deepoxymap.case import Role
    from deepoxymap.io import load

    folder = root / "emidec" / "sampleNegative"
    res = load(folder)
    img = next((s for s in res.series if s.role != Role.MASK), None)
    lab_s = next((s for s in res.series if s.role == Role.MASK), None)
    if img is None or lab_s is None:
        raise CaseError("expected an LGE image and a label map", source=str(folder))
    ref = np.rint(lab_s.stack.data[:, 0]).astype(np.int64)
    lab, secs = _timed_segment(img.stack, "lge", [0], method)
    row = DatasetResult("EMIDEC LGE", "lge")
    for k in range(ref.shape[0]):
        if not np.isin(ref[k], EMIDEC.myocardium).any():
            continue
        row.myo_dice.append(dice(lab[k, 0] == 2, np.isin(ref[k], EMIDEC.myocardium)))
        row.blood_dice.append(dice(lab[k, 0] == 1, np.isin(ref[k], EMIDEC.lv_blood)))
        row.n_images += 1
    row.seconds_per_image = secs / max(lab.shape[0], 1)
    return [row]


def check_all(root: Path, method: str = DEFAULT_METHOD) -> list[DatasetResult]:
    """Every dataset found under ``root``, segmented by ``method``; a missing dataset is left out."""
    rows: list[DatasetResult] = []
    if (root / "sunnybrook").is_dir():
        rows += check_sunnybrook(root, method)
    if (root / "cinemyops" / "Case0101").is_dir():
        rows += check_cinemyops(root, method)
    if (root / "emidec" / "sampleNegative").is_dir():
        rows += check_emidec(root, method)
    return rows


TABLE_HEADER = (
    "| dataset | kind | images | myocardium Dice | blood-pool Dice | insertion angle error (deg) | s / image |\n"
    "|---|---|---|---|---|---|---|"
)


def format_table(rows: Sequence[DatasetResult]) -> str:
    """A markdown table: mean (min-max) Dice per dataset, insertion error, time per image."""

    def rng(v: Sequence[float]) -> str:
        a = np.asarray(v, dtype=np.float64)
        a = a[np.isfinite(a)]
        if not a.size:
            return "n/a"
        return f"{a.mean():.3f} ({a.min():.2f}-{a.max():.2f})"

    lines = [TABLE_HEADER]
    for r in rows:
        ins = "n/a"
        if r.insertion_err_deg or r.insertion_failed:
            ins = f"{r.insertion:.1f} (max {max(r.insertion_err_deg, default=float('nan')):.1f})"
            if r.insertion_failed:
                ins += f", {r.insertion_failed} slice(s) without RV contact"
        lines.append(
            f"| {r.name} | {r.kind} | {r.n_images} | {rng(r.myo_dice)} | {rng(r.blood_dice)} | {ins} |"
            f" {r.seconds_per_image:.3f} |"
        )
    return "\n".join(lines)
