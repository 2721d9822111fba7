"""Realism check: phantom image statistics beside a real cine with manual contours.

Library only (no printing): :func:`realism_report` returns the numbers,
:func:`format_report` the table as text, :func:`save_figure` writes a PNG. The
``deepoxymap realism`` command (:mod:`deepoxymap.cli.realism`) and
``python -m tools.realism_report`` print them.

The same measurement code runs on both sides:

* real: the Sunnybrook cine (GE 1.5 T FIESTA) with its manual endocardial /
  epicardial contours (:func:`deepoxymap.io.contours.sunnybrook_case`);
* phantom: the OS-CMR baseline cine of generated subjects with their ground-truth
  cine labels (:func:`deepoxymap.phantom.load_subject`).

Statistics (per annotated slice, then median and inter-quartile range):

* ``blood/myo ratio``: median LV blood / median myocardium intensity, ED frames;
* ``ED cavity diameter`` / ``ES cavity diameter``: equivalent-circle diameter of the
  LV blood pool, mm (ES = annotated frame with the smaller cavity);
* ``ED wall thickness``: ``sqrt((A_blood + A_myo)/pi) - sqrt(A_blood/pi)``, mm;
* ``myocardial SNR``: mean myocardium / sigma, sigma from the background (Rayleigh:
  ``sigma = mean_bg / sqrt(pi/2)``) in the four darkest 8x8 tiles without zero-filled pixels;
* ``myo CV``: SD/mean of myocardium (noise plus texture);
* ``background mean/SD``: 1.91 for a Rayleigh (magnitude) background, larger when the
  background is filtered or clipped; ``background zero fraction``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Case, Role, Stack

__all__ = [
    "STATS",
    "StatComparison",
    "Summary",
    "format_report",
    "inside_range",
    "phantom_stats",
    "real_stats",
    "realism_report",
    "save_figure",
    "stack_stats",
    "summarise",
]

STATS = (
    "blood/myo ratio",
    "ED cavity diameter (mm)",
    "ES cavity diameter (mm)",
    "ED wall thickness (mm)",
    "myocardial SNR",
    "myo CV",
    "background mean/SD",
    "background zero fraction",
)


class Summary(TypedDict):
    """Median, quartiles, extremes and count of one statistic (NaN and ``n == 0`` when there is no value)."""

    n: int
    median: float
    q1: float
    q3: float
    min: float
    max: float


class StatComparison(TypedDict):
    """One statistic on the real cine, on every phantom subject measured, and on the healthy ones.

    ``inside`` / ``inside_healthy``: the phantom median lies within the real cine's range
    (its per-slice minimum to maximum); None when either side has no value.
    """

    real: Summary
    phantom: Summary
    phantom_healthy: Summary
    inside: bool | None
    inside_healthy: bool | None


def _background(img: NDArray[Any], patch: int = 8, n: int = 4) -> NDArray[np.float64]:
    """Pixels of the ``n`` darkest ``patch x patch`` tiles that hold no exact zero.

    Tiles with zeros are zero-filled padding (as in Sunnybrook's corners), not
    measured noise; the darkest remaining tiles are air.
    """
    R, C = (img.shape[0] // patch) * patch, (img.shape[1] // patch) * patch
    t = img[:R, :C].reshape(R // patch, patch, C // patch, patch).swapaxes(1, 2).reshape(-1, patch * patch)
    ok = ~(t == 0).any(axis=1)
    if not ok.any():
        return t.ravel().astype(np.float64)
    t = t[ok]
    idx = np.argsort(t.mean(axis=1))[:n]
    return t[idx].ravel().astype(np.float64)


def stack_stats(image: Stack, mask: Stack, *, myo_labels: tuple[int, ...] = (2,)) -> dict[str, list[float]]:
    """Per-slice statistics of one cine with a label stack (1 blood, ``myo_labels`` myocardium).

    Returns:
        stat name -> list of per-slice values (slices with blood and myocardium labels
        in at least one frame).
    """
    out: dict[str, list[float]] = {s: [] for s in STATS}
    px = float(np.sqrt(image.geometry.pixel_spacing[0] * image.geometry.pixel_spacing[1]))
    lab = np.asarray(mask.data)
    for k in range(image.n_slices):
        blood_area = [(lab[k, f] == 1).sum() for f in range(lab.shape[1])]
        myo_frames = [
            f for f in range(lab.shape[1]) if np.isin(lab[k, f], myo_labels).sum() > 20 and blood_area[f] > 20
        ]
        if not myo_frames:
            continue
        ann = [f for f in range(lab.shape[1]) if blood_area[f] > 20]
        ed = max(myo_frames, key=lambda f: blood_area[f])
        es = min(ann, key=lambda f: blood_area[f])
        img = np.asarray(image.data[k, ed], dtype=np.float64)
        blood = img[lab[k, ed] == 1]
        myo = img[np.isin(lab[k, ed], myo_labels)]
        a_b = float(blood_area[ed]) * px * px
        a_m = float(np.isin(lab[k, ed], myo_labels).sum()) * px * px
        out["blood/myo ratio"].append(float(np.median(blood) / max(np.median(myo), 1e-6)))
        out["ED cavity diameter (mm)"].append(2.0 * math.sqrt(a_b / math.pi))
        if es != ed:
            out["ES cavity diameter (mm)"].append(2.0 * math.sqrt(float(blood_area[es]) * px * px / math.pi))
        out["ED wall thickness (mm)"].append(math.sqrt((a_b + a_m) / math.pi) - math.sqrt(a_b / math.pi))
        bg = _background(img)
        sigma = max(float(bg.mean()) / math.sqrt(math.pi / 2.0), 1e-6)
        out["myocardial SNR"].append(float(myo.mean()) / sigma)
        out["myo CV"].append(float(myo.std() / max(myo.mean(), 1e-6)))
        out["background mean/SD"].append(float(bg.mean() / max(bg.std(), 1e-6)))
        out["background zero fraction"].append(float(np.mean(bg == 0)))
    return out


def _merge(a: dict[str, list[float]], b: dict[str, list[float]]) -> dict[str, list[float]]:
    return {k: a.get(k, []) + b.get(k, []) for k in STATS}


def real_stats(real_root: Path | str) -> dict[str, list[float]]:
    """Statistics of the Sunnybrook cine with its manual contours."""
    from deepoxymap.io.contours import sunnybrook_case

    case: Case = sunnybrook_case(real_root)
    s = case.series[0]
    return stack_stats(s.stack, case.masks[s.uid])


def phantom_stats(
    cohort_dir: Path | str, n_subjects: int = 12, *, classes: tuple[str, ...] | None = None
) -> dict[str, list[float]]:
    """Statistics of the baseline OS-CMR cine of up to ``n_subjects`` generated subjects."""
    from deepoxymap.cohort import read_manifest
    from deepoxymap.phantom.load import load_subject

    rows = read_manifest(Path(cohort_dir) / "manifest.csv")
    if classes:
        rows = [r for r in rows if r.label in classes]
    acc: dict[str, list[float]] = {k: [] for k in STATS}
    for r in rows[:n_subjects]:
        case = load_subject(r.path)
        for s in case.series:
            if s.role == Role.OS_CMR and s.stack.timepoint == "baseline":
                m = case.masks[s.uid]
                acc = _merge(acc, stack_stats(s.stack, m, myo_labels=(2, 4, 5, 6)))
    return acc


def summarise(values: list[float]) -> Summary:
    """Median, quartiles, minimum, maximum and count."""
    if not values:
        nan = float("nan")
        return {"n": 0, "median": nan, "q1": nan, "q3": nan, "min": nan, "max": nan}
    a = np.asarray(values)
    return {
        "n": int(a.size),
        "median": float(np.median(a)),
        "q1": float(np.percentile(a, 25)),
        "q3": float(np.percentile(a, 75)),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def inside_range(real: Summary, phantom: Summary) -> bool | None:
    """Whether the phantom median lies within the real per-slice range ``[min, max]``."""
    if not real["n"] or not phantom["n"]:
        return None
    return bool(real["min"] <= phantom["median"] <= real["max"])


def realism_report(real_root: Path | str, cohort_dir: Path | str, n_subjects: int = 12) -> dict[str, StatComparison]:
    """Both sides summarised per statistic, with whether the phantom lies within the real range.

    Returns:
        ``{stat: {"real", "phantom", "phantom_healthy": Summary, "inside", "inside_healthy"}}``.
    """
    real = real_stats(real_root)
    ph = phantom_stats(cohort_dir, n_subjects)
    healthy = phantom_stats(cohort_dir, n_subjects, classes=("healthy",))
    out: dict[str, StatComparison] = {}
    for s in STATS:
        r, a, h = summarise(real[s]), summarise(ph[s]), summarise(healthy[s])
        out[s] = {
            "real": r,
            "phantom": a,
            "phantom_healthy": h,
            "inside": inside_range(r, a),
            "inside_healthy": inside_range(r, h),
        }
    return out


def format_report(rep: dict[str, StatComparison]) -> str:
    """Plain-text table of :func:`realism_report`: median [IQR] (n slices), real range, inside or not."""

    def cell(d: Summary) -> str:
        if not d["n"]:
            return "-"
        return f"{d['median']:.2f} [{d['q1']:.2f}-{d['q3']:.2f}] n={d['n']}"

    def rng(d: Summary) -> str:
        return f"{d['min']:.2f}-{d['max']:.2f}" if d["n"] else "-"

    def yes(b: bool | None) -> str:
        return "-" if b is None else ("yes" if b else "NO")

    w = 32
    head = f"{'statistic':<27}{'Sunnybrook (real, 1.5 T)':<{w}}{'real range':<13}{'phantom (all classes)':<{w}}"
    lines = [head + f"{'inside':<8}{'phantom (healthy)':<{w}}{'inside':<6}"]
    for s, v in rep.items():
        lines.append(
            f"{s:<27}{cell(v['real']):<{w}}{rng(v['real']):<13}{cell(v['phantom']):<{w}}{yes(v['inside']):<8}"
            f"{cell(v['phantom_healthy']):<{w}}{yes(v['inside_healthy']):<6}"
        )
    lines.append(
        "values: median [inter-quartile range] over slices; real = one heart-failure/infarct patient; "
        "inside = phantom median within the real per-slice range (min-max)"
    )
    return "\n".join(lines)


def save_figure(real_root: Path | str, cohort_dir: Path | str, path: Path | str, n_phantom: int = 3) -> Path:
    """Side-by-side PNG: the Sunnybrook mid-ventricular ED slice and phantom baseline ED
    mid slices, each with its LV contour labels outlined, at the same mm scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepoxymap.cohort import read_manifest
    from deepoxymap.io.contours import sunnybrook_case
    from deepoxymap.phantom.load import load_subject

    def crop(img: NDArray[Any], lab: NDArray[Any], px: float, half_mm: float = 60.0) -> tuple[Any, Any]:
        rr, cc = np.nonzero(lab == 1)
        r0, c0, h = int(rr.mean()), int(cc.mean()), int(half_mm / px)
        sl = (slice(max(0, r0 - h), r0 + h), slice(max(0, c0 - h), c0 + h))
        return img[sl], lab[sl]

    panels: list[tuple[str, Any, Any, float]] = []
    case = sunnybrook_case(real_root)
    s = case.series[0]
    m = case.masks[s.uid].data
    frames = case.truth.myocardium_frames
    k, f = frames[len(frames) // 2]
    panels.append(("Sunnybrook (real, GE 1.5 T)", s.stack.data[k, f], m[k, f], s.stack.geometry.pixel_spacing[0]))
    for r in read_manifest(Path(cohort_dir) / "manifest.csv")[:n_phantom]:
        c = load_subject(r.path)
        st = c.os_timepoints()["baseline"]
        lab = c.masks[st.series_uid].data[1, 0]
        panels.append(
            (
                f"phantom {r.subject} {r.label} ({r.field_strength} T)",
                st.data[1, 0],
                lab,
                st.geometry.pixel_spacing[0],
            )
        )
    fig, axs = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (title, img, lab, px) in zip(np.atleast_1d(axs), panels, strict=True):
        im, lb = crop(np.asarray(img), np.asarray(lab), float(px))
        ax.imshow(im, cmap="gray", vmin=0, vmax=float(np.percentile(im, 99.5)))
        ax.contour(lb == 1, [0.5], colors="r", linewidths=0.6)
        ax.contour(np.isin(lb, (1, 2, 4, 5, 6)), [0.5], colors="y", linewidths=0.6)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
