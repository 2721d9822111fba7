"""Label-map outlines over an image (Viewer), and where the case's label maps came from.

Only calls :func:`deepoxymap.ui.figures.add_contour` on the 0.5 edge of each
structure's mask; no science lives here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepoxymap.automasks import is_automatic
from deepoxymap.case import Case, Stack
from deepoxymap.ui import figures

__all__ = ["OUTLINES", "add_outlines", "mask_caption"]

OUTLINES: dict[str, tuple[tuple[int, ...], str, str]] = {
    "LV blood pool (endocardium)": ((1,), "#ff4d4d", "red"),
    "LV epicardium": ((1, 2, 4, 5, 6), "#33d17a", "green"),
    "RV blood pool": ((3,), "#62a0ea", "blue"),
}
"""Outline name -> (phantom label values inside it, line colour, colour name). The myocardium's inner
edge is the blood-pool outline; its outer edge is the outline of blood pool plus wall."""


def _labels(mask: Stack, k: int, f: int) -> np.ndarray[Any, Any]:
    data = np.asarray(mask.data)
    return np.rint(data[min(k, data.shape[0] - 1), min(f, data.shape[1] - 1)]).astype(np.int64)


def add_outlines(fig: Any, case: Case, stack: Stack, k: int, f: int) -> bool:
    """Draw the label-map outlines of slice ``k``, frame ``f`` of ``stack`` on ``fig``.

    Returns whether the stack has a label map (``False``: nothing drawn).
    """
    mask = case.mask_for(stack.series_uid)
    if mask is None:
        return False
    lab = _labels(mask, k, f)
    for name, (values, colour, _) in OUTLINES.items():
        inside = np.isin(lab, values)
        if inside.any():
            figures.add_contour(fig, inside.astype(np.float32), stack.geometry, level=0.5, color=colour, name=name)
    return True


def mask_caption(case: Case, stack: Stack, k: int = 0, f: int = 0) -> str:
    """One line saying whether the stack's label map is automatic, supplied, or absent (at slice ``k``, frame ``f``)."""
    mask = case.mask_for(stack.series_uid)
    if mask is None:
        return "No label map on this series."
    if is_automatic(mask) and not _labels(mask, k, f).any():
        return f"No outline on this frame: the {mask.description.split(' of ')[0]} covers other frames."
    legend = " · ".join(f"{said} {name}" for name, (_, _, said) in OUTLINES.items())
    if is_automatic(mask):
        return (
            "Outlines from the automatic segmentation (check them; upload your own label map on the Load page "
            f"to replace them). {legend}"
        )
    return f"Outlines from the label map supplied with the case. {legend}"
