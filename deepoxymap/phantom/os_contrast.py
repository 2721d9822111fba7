"""Lesion contrast at breath-hold end from the generated truth: does the OS response flip it?

Library only (no printing): :func:`lesion_contrast` works on one ``truth.json``,
:func:`cohort_contrast` summarises a cohort per class, :func:`format_contrast`
renders the table; ``python -m tools.os_contrast`` prints it.

For a lesion subject (ischemic, non-ischemic, edema), from the truth numbers alone:

* ``native`` (the T1/T2-driven bSSFP contrast of DOMAIN 6.3): ``S_lesion / S_remote - 1``
  with the MRXCAT steady-state signal (:func:`~deepoxymap.phantom.imaging.bssfp_signal`)
  of the lesion tissue (scar for ischemic and non-ischemic, edema for edema) and of
  remote myocardium, at the subject's flip angle and TE;
* ``os_ratio``: the lesion's OS factor over the remote factor at breath-hold end vs
  baseline, ``(1 + hv_L)(1 + bh_L) / ((1 + hv_R)(1 + bh_R))`` (percent / 100; the
  breath-hold-start jitter is common to both and cancels). The lesion region is the
  scar core for transmural ischemic scars, the lesion otherwise;
* ``net = (1 + native) * os_ratio - 1``, the lesion-vs-remote contrast of the
  breath-hold-end frame (blurring, texture and heterogeneity aside);
* ``flipped``: ``net`` and ``native`` have opposite signs.

Global edema has no remote myocardium in the image; it is reported apart
(against the sampled remote response) and left out of the ``edema`` row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from deepoxymap.phantom.imaging import RHO_EDEMA, RHO_MYO, bssfp_signal

__all__ = ["ClassContrast", "LesionContrast", "cohort_contrast", "format_contrast", "lesion_contrast"]


class LesionContrast(TypedDict):
    """One subject's lesion contrast (fractions, not percent).

    Attributes:
        subject / cls / subtype: ids.
        native: T1/T2-driven bSSFP lesion-vs-remote contrast.
        os_ratio: lesion / remote OS factor at breath-hold end vs baseline.
        net: lesion-vs-remote contrast of the breath-hold-end frame.
        bmore_contrast_pct: lesion minus remote B-MORE (BH end vs BH start), percent.
        flipped: ``net`` has the opposite sign of ``native``.
    """

    subject: str
    cls: str
    subtype: str
    native: float
    os_ratio: float
    net: float
    bmore_contrast_pct: float
    flipped: bool


class ClassContrast(TypedDict):
    """Summary of one class (or ``edema-global``).

    Attributes:
        n: subjects.
        flipped_fraction: share of subjects with ``flipped``.
        native_median / net_median: medians (fractions).
        bmore_contrast_median_pct / bmore_contrast_sd_pct: median and SD of the
            lesion-minus-remote B-MORE, percent.
    """

    n: int
    flipped_fraction: float
    native_median: float
    net_median: float
    bmore_contrast_median_pct: float
    bmore_contrast_sd_pct: float


def _factor(r: Mapping[str, float]) -> float:
    return (1.0 + float(r["hv_pct"]) / 100.0) * (1.0 + float(r["bh_pct"]) / 100.0)


def lesion_contrast(truth: Mapping[str, Any]) -> LesionContrast | None:
    """The lesion contrast of one subject's ``truth.json`` content; None for healthy subjects."""
    cls, subtype = str(truth["class"]), str(truth["subtype"])
    if cls == "healthy":
        return None
    tis = truth["anatomy"]["tissue"]
    scan = truth["scanner"]
    flip, te = float(scan["flip_deg"]), float(scan["te_ms"])
    remote = bssfp_signal(RHO_MYO, tis["t1_myo_ms"], tis["t2_myo_ms"], flip, te)
    if cls == "edema":
        lesion = bssfp_signal(RHO_EDEMA, tis["t1_edema_ms"], tis["t2_edema_ms"], flip, te)
    else:
        lesion = bssfp_signal(RHO_MYO, tis["t1_scar_ms"], tis["t2_scar_ms"], flip, te)
    osr = truth["os_response"]
    region = "core" if (cls == "ischemic" and subtype.endswith("transmural")) else "lesion"
    native = lesion / remote - 1.0
    ratio = _factor(osr[region]) / _factor(osr["remote"])
    net = (1.0 + native) * ratio - 1.0
    return {
        "subject": str(truth.get("subject", "")),
        "cls": cls,
        "subtype": subtype,
        "native": float(native),
        "os_ratio": float(ratio),
        "net": float(net),
        "bmore_contrast_pct": float(osr[region]["bh_pct"]) - float(osr["remote"]["bh_pct"]),
        "flipped": bool(np.sign(net) != np.sign(native)),
    }


def _summary(rows: list[LesionContrast]) -> ClassContrast:
    if not rows:
        nan = float("nan")
        return {
            "n": 0,
            "flipped_fraction": nan,
            "native_median": nan,
            "net_median": nan,
            "bmore_contrast_median_pct": nan,
            "bmore_contrast_sd_pct": nan,
        }
    bm = np.array([r["bmore_contrast_pct"] for r in rows])
    return {
        "n": len(rows),
        "flipped_fraction": float(np.mean([r["flipped"] for r in rows])),
        "native_median": float(np.median([r["native"] for r in rows])),
        "net_median": float(np.median([r["net"] for r in rows])),
        "bmore_contrast_median_pct": float(np.median(bm)),
        "bmore_contrast_sd_pct": float(np.std(bm, ddof=1)) if len(rows) > 1 else 0.0,
    }


def cohort_contrast(cohort_dir: Path | str) -> dict[str, ClassContrast]:
    """Per-class summaries over every ``*/truth/truth.json`` of a cohort folder.

    Keys: ``ischemic``, ``non-ischemic``, ``edema`` (focal and AAR), ``edema-global``.
    """
    groups: dict[str, list[LesionContrast]] = {k: [] for k in ("ischemic", "non-ischemic", "edema", "edema-global")}
    for tj in sorted(Path(cohort_dir).glob("*/truth/truth.json")):
        c = lesion_contrast(json.loads(tj.read_text()))
        if c is None:
            continue
        key = "edema-global" if (c["cls"] == "edema" and c["subtype"] == "global") else c["cls"]
        groups[key].append(c)
    return {k: _summary(v) for k, v in groups.items()}


def format_contrast(rep: Mapping[str, ClassContrast]) -> str:
    """Plain-text table of :func:`cohort_contrast` (percentages)."""
    head = f"{'class':<14}{'n':>4}{'flipped %':>11}{'native %':>10}{'net BH-end %':>14}"
    lines = [head + f"{'B-MORE L-R median %':>21}{'SD %':>7}"]
    for k, v in rep.items():
        lines.append(
            f"{k:<14}{v['n']:>4}{100 * v['flipped_fraction']:>11.1f}{100 * v['native_median']:>10.1f}"
            f"{100 * v['net_median']:>14.1f}{v['bmore_contrast_median_pct']:>21.1f}{v['bmore_contrast_sd_pct']:>7.1f}"
        )
    lines.append("flipped: net lesion contrast at breath-hold end opposite in sign to the T1/T2-driven bSSFP contrast")
    return "\n".join(lines)
