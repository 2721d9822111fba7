"""The one-page case report (PDF): slice-matched panels, bullseyes, numbers, caveats, research-use banner.

:func:`report_pdf` draws one A4 portrait page with matplotlib's object API
(``Figure`` + ``PdfPages``, Agg backend; safe in a server thread) from a
:class:`~deepoxymap.export.analysis.CaseAnalysis`:

1. a red research-use banner;
2. the case id (never a patient identifier), the model (name and version), its
   call and the class probabilities;
3. the slice-matched panels of one OS-CMR slice: OS-CMR with the CAM, and LGE,
   T1 and T2 resampled onto the OS-CMR grid (the same panels as the
   Feature-maps page, :func:`deepoxymap.compare.match_panel`), cyan CAM
   threshold contour, dashed yellow reference lesion;
4. the AHA bullseyes of :data:`~deepoxymap.export.analysis.SEGMENT_QUANTITIES`;
5. the agreement figures and lesion burden;
6. the model's caveats (from its card) and what could not be computed.

The PDF carries no creation date, so the same analysis gives the same bytes.
"""

from __future__ import annotations

import io
import textwrap
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Case, Role
from deepoxymap.export.analysis import AGREEMENT_FIGURES, SEGMENT_QUANTITIES, CaseAnalysis

__all__ = ["BANNER", "report_pdf", "report_slice"]

BANNER = (
    "RESEARCH USE ONLY - not a medical device. Not for diagnosis or treatment decisions. "
    "The classifier was trained on synthetic phantoms only."
)

_A4 = (8.27, 11.69)  # inches
_BULLSEYE_STYLE = {
    "cam_energy": ("magma", 0.0, None, "{:.0f}"),
    "transmurality": ("Reds", 0.0, 100.0, "{:.0f}"),
    "t1_ms": ("viridis", None, None, "{:.0f}"),
    "t2_ms": ("viridis", None, None, "{:.0f}"),
    "os_response": ("RdBu_r", None, None, "{:.1f}"),
}


def report_slice(analysis: CaseAnalysis) -> int:
    """The row shown in the panels: the row whose CAM holds the most energy (ties: the middle row)."""
    n = len(analysis.cams)
    if n == 0:
        return 0
    energy = np.array([float(np.sum(c)) for c in analysis.cams])
    mid = n // 2
    best = int(np.argmax(energy))
    return mid if energy[best] <= energy[mid] else best


def _window(img: NDArray[Any]) -> tuple[float, float]:
    finite = img[np.isfinite(img)]
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(finite, [1.0, 99.0])
    return (float(lo), float(hi) if hi > lo else float(lo) + 1.0)


def _panel(
    ax: Any,
    img: NDArray[Any] | None,
    title: str,
    box: tuple[int, int, int, int],
    aspect: float,
    *,
    cam: NDArray[Any] | None = None,
    contour: NDArray[Any] | None = None,
    level: float = 0.5,
    reference: NDArray[Any] | None = None,
    note: str = "",
) -> None:
    ax.set_facecolor("black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    if img is None:
        ax.text(
            0.5,
            0.5,
            "\n".join(textwrap.wrap(note or "not available", 22)),
            color="white",
            ha="center",
            va="center",
            fontsize=6,
            transform=ax.transAxes,
        )
        return
    lo, hi = _window(np.asarray(img, dtype=np.float64))
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
    if cam is not None:
        ax.imshow(
            np.ma.masked_less(cam, 0.05),
            cmap="jet",
            vmin=0,
            vmax=1,
            alpha=0.45,
            aspect=aspect,
            interpolation="bilinear",
        )
    if contour is not None and float(np.nanmax(contour)) >= level:
        ax.contour(contour, levels=[level], colors=["#00e5ff"], linewidths=0.8)
    if reference is not None and float(np.nanmax(reference)) > 0.5:
        ax.contour(reference, levels=[0.5], colors=["#ffd400"], linewidths=0.7, linestyles="dashed")
    r0, r1, c0, c1 = box
    ax.set_xlim(c0 - 0.5, c1 - 0.5)
    ax.set_ylim(r1 - 0.5, r0 - 0.5)


def _panels(fig: Any, analysis: CaseAnalysis, case: Case, rect: tuple[float, float, float, float]) -> None:
    from deepoxymap.compare import match_panel, reference_lesion
    from deepoxymap.config import settings

    s = settings()
    i = report_slice(analysis)
    k, f = analysis.slice_indices[i], analysis.frames[i]
    stack = analysis.stack
    cam = analysis.cams[i]
    box = (
        analysis.crop_boxes[i]
        if i < len(analysis.crop_boxes)
        else (0, stack.geometry.shape[0], 0, stack.geometry.shape[1])
    )
    aspect = stack.geometry.pixel_spacing[0] / stack.geometry.pixel_spacing[1]
    x0, y0, w, h = rect
    pw = w / 4.0
    ref = reference_lesion(case, stack.series_uid, k, f)
    level = f" ({analysis.levels[i]})" if i < len(analysis.levels) and analysis.levels[i] else ""
    ax = fig.add_axes((x0, y0, pw * 0.96, h))
    _panel(
        ax,
        stack.image(k, f),
        f"OS-CMR + {analysis.method} · slice {k + 1}{level}",
        box,
        aspect,
        cam=cam,
        contour=cam,
        level=analysis.threshold,
        reference=ref,
    )
    for j, role in enumerate((Role.LGE, Role.T1_MAP, Role.T2_MAP), start=1):
        p = match_panel(case, stack, k, role, tol_deg=s.slice_match_tol_deg, max_mm=s.slice_match_max_mm)
        title = role.label if p.distance_mm is None or p.image is None else f"{role.label} · Δ {p.distance_mm:.1f} mm"
        ax = fig.add_axes((x0 + j * pw, y0, pw * 0.96, h))
        _panel(
            ax,
            p.image,
            title,
            box,
            aspect,
            contour=cam,
            level=analysis.threshold,
            reference=p.labels,
            note=p.message or "",
        )


def _bullseyes(fig: Any, analysis: CaseAnalysis, rect: tuple[float, float, float, float]) -> None:
    from deepoxymap.cardiac.bullseye import bullseye_figure

    x0, y0, w, h = rect
    keys = list(SEGMENT_QUANTITIES)
    bw = w / len(keys)
    for j, key in enumerate(keys):
        name, unit = SEGMENT_QUANTITIES[key]
        ax = fig.add_axes((x0 + j * bw, y0, bw * 0.94, h), projection="polar")
        values = analysis.segments.get(key)
        if values is None or not np.isfinite(values).any():
            ax.set_axis_off()
            ax.set_title(f"{name} ({unit})", fontsize=7)
            ax.text(0.5, 0.5, "not available", ha="center", va="center", fontsize=6, transform=ax.transAxes)
            continue
        cmap, vmin, vmax, fmt = _BULLSEYE_STYLE[key]
        if key == "os_response":
            lim = float(np.nanmax(np.abs(values))) or 1.0
            vmin, vmax = -lim, lim
        bullseye_figure(values, title=f"{name} ({unit})", label=unit, cmap=cmap, vmin=vmin, vmax=vmax, fmt=fmt, ax=ax)
        ax.title.set_fontsize(7)
        for t in ax.texts:
            t.set_fontsize(4.5)


def _numbers(analysis: CaseAnalysis) -> tuple[list[str], list[str]]:
    """``(agreement lines, lesion-burden lines)`` of the report."""
    agree = []
    for key, (name, unit) in AGREEMENT_FIGURES.items():
        if key in analysis.agreement:
            v = analysis.agreement[key]
            agree.append(f"{name}: {v:.0f} mm²" if unit == "mm2" else f"{name}: {v:.3f}")
    if not agree:
        agree.append("Agreement: not available (no reference label map on the OS-CMR series).")
    burden = [
        f"{les.kind.capitalize()} ({les.series.role.label}): {les.percent_of_myocardium:.1f} % of the myocardium "
        f"[{les.method}]"
        for les in (analysis.scar, analysis.edema)
        if les is not None
    ]
    return agree, burden


def report_pdf(analysis: CaseAnalysis, case: Case, *, generated_by: str = "DeepOxyMap") -> bytes:
    """The one-page PDF report of a case (see the module doc).

    Args:
        analysis: from :func:`~deepoxymap.export.analysis.analyse_case`.
        case: the same case (its LGE/T1/T2 series and label maps for the panels).
        generated_by: software name printed in the footer.

    Returns:
        the PDF file's bytes (A4 portrait, one page).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=_A4)
    fig.patches.append(Rectangle((0.0, 0.955), 1.0, 0.045, transform=fig.transFigure, color="#b00020", zorder=0))
    fig.text(
        0.5,
        0.977,
        "\n".join(textwrap.wrap(BANNER, 110)),
        color="white",
        ha="center",
        va="center",
        fontsize=8.5,
        weight="bold",
    )
    fig.text(0.05, 0.93, f"DeepOxyMap case report · case {analysis.case_id}", fontsize=13, weight="bold")
    ref = f"; reference class: {analysis.label}" if analysis.label else ""
    about = (
        f"Model {analysis.model_name} (version {analysis.model_version}); OS-CMR series "
        f"'{analysis.stack.description or analysis.series.uid}'{ref}"
    )
    fig.text(0.05, 0.912, "\n".join(textwrap.wrap(about, 95)), fontsize=7, va="top")
    fig.text(0.05, 0.872, f"Case call: {analysis.call}", fontsize=11, weight="bold")
    ax = fig.add_axes((0.74, 0.858, 0.21, 0.048))
    probs = analysis.probabilities()
    names = list(probs)
    ax.barh(
        range(len(names)),
        [probs[n] for n in names],
        color=["#d62728" if n == analysis.call else "#7f7f7f" for n in names],
    )
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_xlim(0, 1)
    ax.tick_params(axis="x", labelsize=5.5)
    ax.invert_yaxis()
    for j, n in enumerate(names):
        ax.text(min(probs[n] + 0.02, 0.85), j, f"{probs[n]:.2f}", va="center", fontsize=5.5)
    ax.set_title("class probabilities (mean over slices)", fontsize=6)
    target = sorted(set(analysis.explained))
    fig.text(
        0.05,
        0.845,
        f"Feature map: {analysis.method}, layer {analysis.layer or 'default'}, explaining "
        f"{', '.join(target)}; threshold {analysis.threshold:.2f} of the maximum (cyan). Dashed yellow: "
        "reference lesion.",
        fontsize=7,
    )
    _panels(fig, analysis, case, (0.05, 0.60, 0.90, 0.23))
    fig.text(
        0.05, 0.575, "Per AHA segment (bullseyes viewed from the apex; grey: no data)", fontsize=8.5, weight="bold"
    )
    _bullseyes(fig, analysis, (0.03, 0.385, 0.94, 0.18))
    fig.text(0.05, 0.345, "Agreement with the reference lesion and lesion burden", fontsize=8.5, weight="bold")
    agree, burden = _numbers(analysis)
    half = (len(agree) + 1) // 2
    y = 0.327
    for j, line in enumerate(agree):
        col, row = (0, j) if j < half else (1, j - half)
        fig.text(0.06 + 0.46 * col, y - 0.0135 * row, line, fontsize=6.8, va="top")
    y -= 0.0135 * half + 0.004
    for line in burden:
        fig.text(0.06, y, line, fontsize=6.8, va="top")
        y -= 0.0135
    y -= 0.012
    fig.text(0.05, y, "Caveats", fontsize=8.5, weight="bold")
    y -= 0.017
    caveats = [
        *analysis.caveats,
        "Feature maps show where the network looked, not where disease is; they are not a segmentation.",
        "Per-segment values use the case's label maps; T1/T2 are slice-matched by patient position.",
        *[f"Not computed: {n}" for n in analysis.notes],
    ]
    for c in caveats:
        for line in textwrap.wrap(c, 140):
            if y < 0.04:
                break
            fig.text(0.06, y, line, fontsize=6.5)
            y -= 0.012
    fig.text(0.05, 0.015, f"Generated by {generated_by}. {BANNER}", fontsize=5.5, color="#555555")
    buf = io.BytesIO()
    with PdfPages(
        buf,
        metadata={"Title": f"DeepOxyMap case report {analysis.case_id}", "CreationDate": None, "Creator": generated_by},
    ) as pdf:
        pdf.savefig(fig)
    return buf.getvalue()
