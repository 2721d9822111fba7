"""Scar quantification on a real EMIDEC LGE volume against its expert labels.

Library only (no printing): :func:`check_case` gives, per method
(:data:`~deepoxymap.cardiac.scar.SCAR_METHODS`), the scar percentage of the
myocardium found automatically next to the expert's (labels 3 infarct + 4
no-reflow), and the Dice of the two where the expert marked scar;
:func:`check_implants` does the same on semi-synthetic infarcts implanted
into a scar-free case (:mod:`~deepoxymap.cardiac.scar_implant`; no real
infarcted LGE with expert scar is available locally);
:func:`find_cases` lists the case folders and :func:`format_table` renders
rows as a markdown table.
``python -m tools.emidec_check [CASE_DIR ...]`` prints that table (default:
every case under ``<real_data_dir>/emidec``).

EMIDEC has no RV label, so the ``darkest-segment`` remote uses image-axis
sectors (:func:`~deepoxymap.cardiac.segments.fixed_insertion_points`), not
anatomy-anchored segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.masks import EMIDEC, masks_from_labels
from deepoxymap.cardiac.scar import SCAR_METHODS, compare_methods, dice, lower_mode_stats
from deepoxymap.cardiac.segments import fixed_insertion_points, segment_map, slice_levels

__all__ = [
    "CEILING_LABEL",
    "TABLE_HEADER",
    "TEST_SEEDS",
    "TUNING_SEEDS",
    "EmidecRow",
    "check_case",
    "check_implants",
    "find_cases",
    "format_table",
    "load_emidec_case",
    "min_dice",
    "oracle_threshold_dice",
    "summarize",
]

CEILING_LABEL = "ceiling: best single threshold for this case (reads the reference; not a method)"
"""Method label of the :func:`oracle_threshold_dice` rows."""

TUNING_SEEDS = tuple(range(40))
"""Implant seeds the defaults were chosen on (docs/experiments/scar.md)."""
TEST_SEEDS = tuple(range(100, 120))
"""Held-out implant seeds the defaults are tested on (never used to choose them)."""


@dataclass(frozen=True)
class EmidecRow:
    """One method's result on one case.

    Attributes:
        case: case folder name.
        method: e.g. ``"nsd5 remote=myocardium"``.
        scar_percent: automatic scar, % of myocardium.
        expert_percent: expert scar (labels 3 + 4), % of myocardium.
        dice: Dice of automatic vs expert scar (NaN when both are empty).
        threshold: SI threshold used.
    """

    case: str
    method: str
    scar_percent: float
    expert_percent: float
    dice: float
    threshold: float


def load_emidec_case(case_dir: Path) -> tuple[NDArray[np.float32], NDArray[np.int64], tuple[float, float]]:
    """Image ``[slice, rows, cols]``, labels (same shape) and in-plane spacing (mm) of one EMIDEC case.

    Uses ``deepoxymap.io`` when it reads NIfTI; otherwise nibabel directly
    (both give the same voxels; only the in-plane axis order may differ,
    which no number here depends on).
    """
    img_path = next((case_dir / "Images").glob("*.nii*"))
    lab_path = next((case_dir / "Contours").glob("*.nii*"))
    try:
        from deepoxymap.io import load
        from deepoxymap.io import nifti as _nifti  # noqa: F401  (present once io reads NIfTI)

        img_s = load([img_path]).series
        lab_s = load([lab_path]).series
        if len(img_s) == 1 and len(lab_s) == 1:
            img = img_s[0].stack.data[:, 0]
            lab = np.rint(lab_s[0].stack.data[:, 0]).astype(np.int64)
            if img.shape == lab.shape:
                return img.astype(np.float32), lab, img_s[0].stack.geometry.pixel_spacing
    except ImportError:
        pass
    import nibabel as nib

    im: Any = nib.load(str(img_path))
    lb: Any = nib.load(str(lab_path))
    img = np.moveaxis(np.asarray(im.get_fdata(), dtype=np.float32), -1, 0)
    lab = np.moveaxis(np.rint(np.asarray(lb.get_fdata())).astype(np.int64), -1, 0)
    z = im.header.get_zooms()
    return img, lab, (float(z[0]), float(z[1]))


def oracle_threshold_dice(
    image: NDArray[Any], myocardium: NDArray[Any], reference: NDArray[Any], z_grid: NDArray[Any] | None = None
) -> tuple[float, float, float, float]:
    """How well *any* single intensity threshold can do on this case: a ceiling, not a method.

    Each slice's SI is turned into a z-score against that slice's remote
    (:func:`~deepoxymap.cardiac.scar.lower_mode_stats`, the default's remote),
    and the pixels of ``myocardium`` above ``z`` are compared with
    ``reference`` for every ``z`` in ``z_grid`` (default 0-8 SD in steps of
    0.25). The best Dice is what the default's family (a per-slice n-SD
    threshold, without its spatial rules) could reach with ``n`` chosen by
    looking at the answer. A method far below it has room to improve; one
    near it is limited by the image's contrast, not by its threshold.

    Args:
        image: SI, float ``[slice, rows, cols]``.
        myocardium: bool, same shape.
        reference: bool reference scar, same shape.
        z_grid: thresholds in remote SDs.

    Returns:
        ``(dice, z, mean SI threshold over the slices, scar % of the
        myocardium)`` at the best ``z``; all NaN when the reference is empty.
    """
    img = np.asarray(image, dtype=np.float64)
    myo = np.asarray(myocardium, dtype=bool)
    ref = np.asarray(reference, dtype=bool)
    grid = np.arange(0.0, 8.001, 0.25) if z_grid is None else np.asarray(z_grid, dtype=np.float64)
    if not ref.any():
        return float("nan"), float("nan"), float("nan"), float("nan")
    z = np.full(img.shape, -np.inf)
    stats = []
    for k in range(img.shape[0]):
        if myo[k].sum() < 10:
            continue
        mk, sk = lower_mode_stats(img[k][myo[k]])
        if sk > 0:
            z[k] = (img[k] - mk) / sk
            stats.append((mk, sk))
    scores = [dice(myo & (z > t), ref) for t in grid]
    i = int(np.nanargmax(scores))
    thr = float(np.mean([m + grid[i] * s for m, s in stats])) if stats else float("nan")
    pct = 100.0 * float((myo & (z > grid[i])).sum()) / max(int(myo.sum()), 1)
    return float(scores[i]), float(grid[i]), thr, pct


def _ceiling_row(case: str, image: NDArray[Any], myo: NDArray[Any], ref: NDArray[Any]) -> EmidecRow:
    d, _, thr, pct = oracle_threshold_dice(image, myo, ref)
    return EmidecRow(case, CEILING_LABEL, pct, 100.0 * ref.sum() / max(int(myo.sum()), 1), d, thr)


def check_case(
    image: NDArray[Any], labels: NDArray[Any], pixel_spacing: tuple[float, float], case: str = "case"
) -> list[EmidecRow]:
    """Scar % of myocardium by every method of :data:`~deepoxymap.cardiac.scar.SCAR_METHODS` against the expert.

    The expert scar is labels 3 (infarct) + 4 (no-reflow); Dice is NaN when both
    the method and the expert found none. Also one row per method with the
    darkest image-axis segment as remote (n-SD 5, the usual manual choice
    automated). A case with expert scar also gets a :data:`CEILING_LABEL` row
    (:func:`oracle_threshold_dice`).
    """
    m = masks_from_labels(labels, EMIDEC)
    myo, expert = m.myocardium, m.scar
    valid = [bool(myo[k].any() and m.lv_blood[k].any()) for k in range(myo.shape[0])]
    levels = slice_levels(myo.shape[0], valid)
    seg = np.zeros(myo.shape, dtype=np.int64)
    for k, lv in enumerate(levels):
        if lv in ("basal", "mid", "apical"):
            ip = fixed_insertion_points(labels[k], scheme=EMIDEC)
            seg[k] = segment_map(labels[k], lv, scheme=EMIDEC, insertion=ip, pixel_spacing=pixel_spacing)
    methods = dict(SCAR_METHODS)
    methods["n-SD 5, darkest image-axis segment remote (pooled)"] = {
        "n_sd": 5.0, "n_sd_extent": None, "remote": "darkest-segment", "seg_map": seg, "per_slice": False,
        "core_erosion": 0,
    }  # fmt: skip
    rows = compare_methods(image, myo, pixel_spacing, expert, methods)
    out = [EmidecRow(case, r.method, r.percent_of_myocardium, r.reference_percent, r.dice, r.threshold) for r in rows]
    if expert.any():
        out.append(_ceiling_row(case, image, myo, expert))
    return out


def check_implants(
    image: NDArray[Any],
    labels: NDArray[Any],
    pixel_spacing: tuple[float, float],
    seeds: Sequence[int],
    case: str = "case",
) -> list[EmidecRow]:
    """Per method, Dice against a semi-synthetic infarct implanted into a scar-free case.

    For every seed, :func:`~deepoxymap.cardiac.scar_implant.implant_infarct`
    adds an infarct inside the expert myocardium; the rows' ``case`` is
    ``"<case>+implant<seed>"`` and ``expert_percent`` the implanted reference.
    Each implant also gets a :data:`CEILING_LABEL` row
    (:func:`oracle_threshold_dice`: the best any single threshold does).

    Raises:
        ValueError: the case already holds expert scar (labels 3/4).
    """
    from deepoxymap.cardiac.scar_implant import implant_infarct

    m = masks_from_labels(labels, EMIDEC)
    if m.scar.any():
        raise ValueError(f"{case}: implants need a scar-free case, this one has expert scar")
    rows = []
    for sd in seeds:
        imp = implant_infarct(image, m.myocardium, m.lv_blood, pixel_spacing, seed=int(sd))
        for r in compare_methods(imp.image, m.myocardium, pixel_spacing, imp.scar):
            rows.append(
                EmidecRow(f"{case}+implant{sd}", r.method, r.percent_of_myocardium, r.reference_percent, r.dice,
                          r.threshold)
            )  # fmt: skip
        rows.append(_ceiling_row(f"{case}+implant{sd}", imp.image, m.myocardium, imp.scar))
    return rows


def summarize(rows: Sequence[EmidecRow]) -> list[EmidecRow]:
    """Per method: mean scar %, mean reference %, mean Dice (NaN-free cases) and mean threshold over ``rows``.

    The summary row's ``case`` is ``"mean of N"`` and its ``threshold`` the
    mean threshold; the minimum Dice is not kept (see :func:`min_dice`).
    """
    out = []
    for meth in dict.fromkeys(r.method for r in rows):
        sel = [r for r in rows if r.method == meth]
        d = [r.dice for r in sel if np.isfinite(r.dice)]
        out.append(
            EmidecRow(
                f"mean of {len(sel)}", meth, float(np.mean([r.scar_percent for r in sel])),
                float(np.mean([r.expert_percent for r in sel])), float(np.mean(d)) if d else float("nan"),
                float(np.mean([r.threshold for r in sel])),
            )
        )  # fmt: skip
    return out


def min_dice(rows: Sequence[EmidecRow]) -> dict[str, float]:
    """Per method, the smallest finite Dice over ``rows`` (NaN when none)."""
    out: dict[str, float] = {}
    for meth in dict.fromkeys(r.method for r in rows):
        d = [r.dice for r in rows if r.method == meth and np.isfinite(r.dice)]
        out[meth] = float(min(d)) if d else float("nan")
    return out


def find_cases(root: Path | str | None = None) -> list[Path]:
    """EMIDEC case folders under ``root`` (default ``<real_data_dir>/emidec``), sorted; empty if none."""
    if root is None:
        from deepoxymap.config import settings

        root = settings().real_data_dir / "emidec"
    return sorted(p for p in Path(root).glob("*") if p.is_dir())


TABLE_HEADER = (
    "| case | method | scar % of myocardium | expert % | Dice | threshold (SI) |",
    "|---|---|---|---|---|---|",
)
"""The two header lines of :func:`format_table`."""


def format_table(rows: Sequence[EmidecRow], *, header: bool = True) -> str:
    """Markdown table of :func:`check_case` rows (with the :data:`TABLE_HEADER` lines unless ``header=False``)."""
    lines = list(TABLE_HEADER) if header else []
    for row in rows:
        lines.append(
            f"| {row.case} | {row.method} | {row.scar_percent:.2f} | {row.expert_percent:.2f} | "
            f"{'n/a' if np.isnan(row.dice) else f'{row.dice:.2f}'} | {row.threshold:.0f} |"
        )
    return "\n".join(lines)
