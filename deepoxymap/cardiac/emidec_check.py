"""Scar quantification on a real EMIDEC LGE volume against its expert labels.

Library only (no printing): :func:`check_case` gives, per method, the scar
percentage of the myocardium found automatically next to the expert's
(labels 3 infarct + 4 no-reflow), and the Dice of the two where the expert
marked scar; :func:`find_cases` lists the case folders and
:func:`format_table` renders rows as a markdown table.
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
from deepoxymap.cardiac.scar import quantify_scar
from deepoxymap.cardiac.segments import fixed_insertion_points, segment_map, slice_levels

__all__ = ["TABLE_HEADER", "EmidecRow", "check_case", "find_cases", "format_table", "load_emidec_case"]


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


def _dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    s = int(a.sum()) + int(b.sum())
    return float("nan") if s == 0 else 2.0 * int((a & b).sum()) / s


def check_case(
    image: NDArray[Any], labels: NDArray[Any], pixel_spacing: tuple[float, float], case: str = "case"
) -> list[EmidecRow]:
    """Scar % of myocardium by several methods against the expert labels.

    Methods: n-SD with the robust whole-myocardium remote (median, MAD; the
    default) and with the plain whole myocardium (mean, SD), pooled over
    slices or per slice; n-SD 5 with the darkest image-axis segment as remote; FWHM (remote
    baseline) with and without the 5-SD guard; classic FWHM (half the peak).
    """
    m = masks_from_labels(labels, EMIDEC)
    myo, expert = m.myocardium, m.scar
    expert_pct = 100.0 * expert.sum() / max(int(myo.sum()), 1)
    valid = [bool(myo[k].any() and m.lv_blood[k].any()) for k in range(myo.shape[0])]
    levels = slice_levels(myo.shape[0], valid)
    seg = np.zeros(myo.shape, dtype=np.int64)
    for k, lv in enumerate(levels):
        if lv in ("basal", "mid", "apical"):
            ip = fixed_insertion_points(labels[k], scheme=EMIDEC)
            seg[k] = segment_map(labels[k], lv, scheme=EMIDEC, insertion=ip, pixel_spacing=pixel_spacing)
    runs: list[tuple[str, dict[str, Any]]] = [
        *[(f"nsd{n} remote=robust", {"method": "nsd", "n_sd": float(n)}) for n in (2, 3, 5)],
        ("fwhm seeded by nsd5 (default)", {"method": "fwhm"}),
        ("fwhm remote=robust peak>5SD guard", {"method": "fwhm", "fwhm_guard": "sd"}),
        *[
            (f"nsd{n} remote=myocardium", {"method": "nsd", "n_sd": float(n), "remote": "myocardium"})
            for n in (2, 3, 5, 6)
        ],
        ("nsd5 remote=myocardium per slice", {"method": "nsd", "n_sd": 5.0, "per_slice": True, "remote": "myocardium"}),
        ("nsd5 remote=robust per slice", {"method": "nsd", "n_sd": 5.0, "per_slice": True}),
        ("nsd5 remote=darkest-segment", {"method": "nsd", "n_sd": 5.0, "remote": "darkest-segment", "seg_map": seg}),
        ("fwhm remote=myocardium peak>5SD guard", {"method": "fwhm", "remote": "myocardium", "fwhm_guard": "sd"}),
        ("fwhm remote=robust no guard", {"method": "fwhm", "fwhm_guard": "none"}),
        ("fwhm classic (peak/2) no guard", {"method": "fwhm", "fwhm_guard": "none", "fwhm_baseline": "zero"}),
        ("nsd5 remote=robust, no min-area filter", {"method": "nsd", "n_sd": 5.0, "min_area_mm2": 0.0}),
    ]
    rows = []
    for name, kw in runs:
        r = quantify_scar(image, myo, pixel_spacing=pixel_spacing, **kw)
        rows.append(EmidecRow(case, name, r.percent_of_myocardium, expert_pct, _dice(r.mask, expert), r.threshold))
    return rows


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
