"""Per-segment values (bullseyes), agreement figures and reference-lesion outlines for the pages.

The numbers come from the core (``deepoxymap.cardiac``, ``deepoxymap.audit``);
this module only calls them and arranges the results for display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from deepoxymap.case import Stack
from deepoxymap.ui import analysis, state
from deepoxymap.ui.analysis import Panel, SliceCam
from deepoxymap.ui.core import need

@dataclass(frozen=True)
class BullseyeSpec:
    """How to draw one bullseye."""

    values: dict[int, float]
    colorscale: str = "Inferno"
    zmin: float | None = None
    zmax: float | None = None
    units: str = ""
    fmt: str = ".2f"


@dataclass(frozen=True)
class SegmentValues:
    """Bullseyes by title, the same numbers as a table, and a note."""

    maps: dict[str, BullseyeSpec]
    table: pd.DataFrame
    note: str = ""


@dataclass(frozen=True)
class Agreement:
    """Agreement of a CAM with the reference lesion."""

    table: pd.DataFrame
    headline: dict[str, float]
    reference_name: str = "reference lesion"
    extra: dict[str, Any] = field(default_factory=dict)


def reference_lesion(lc: state.LoadedCase, stack: Stack, k: int, frame: int = 0) -> NDArray[np.float32] | None:
    """The reference lesion of OS-CMR slice ``k`` at ``frame`` (1 inside), or ``None`` if there is none."""
    return analysis.reference_lesion(lc.case, stack.series_uid, k, frame)


def panel_reference(p: Panel) -> NDArray[np.float32] | None:
    """The reference lesion of a matched LGE/T1/T2 panel (already on the OS-CMR grid)."""
    return p.labels if p.labels is not None and np.nanmax(p.labels) > 0.5 else None


def segment_values(lc: state.LoadedCase, ref_stack: Stack, cams: Sequence[SliceCam] | None) -> SegmentValues:
    """CAM energy per AHA segment, LGE transmurality, T1 and T2 per segment."""
    fn = need(
        "deepoxymap.audit",
        "bullseye_data",
        "Per-segment bullseyes",
        "They need `deepoxymap.audit.bullseye_data(case, stack, cams)` (CAM energy per AHA segment, "
        "LGE transmurality, T1 and T2 per segment).",
    )
    data = fn(lc.case, ref_stack, [c.source for c in cams] if cams is not None else None)
    return _arrange(data)


def _arrange(data: Any) -> SegmentValues:
    maps: dict[str, BullseyeSpec] = {}
    raw = dict(data) if isinstance(data, dict) else dict(getattr(data, "maps", {}) or {})
    styles = {
        "cam": ("CAM energy (% of total)", "Inferno", 0.0, None, "%", ".0f"),
        "lge": ("LGE transmurality (%)", "Hot", 0.0, 100.0, "%", ".0f"),
        "t1": ("T1 (ms)", "Viridis", None, None, "ms", ".0f"),
        "t2": ("T2 (ms)", "Viridis", None, None, "ms", ".0f"),
    }
    rows: dict[int, dict[str, float]] = {}
    for key, values in raw.items():
        title, cs, lo, hi, units, fmt = styles.get(str(key).lower(), (str(key), "Viridis", None, None, "", ".2f"))
        vals = {int(s): float(v) for s, v in dict(values).items()}
        maps[title] = BullseyeSpec(vals, cs, lo, hi, units, fmt)
        for s, v in vals.items():
            rows.setdefault(s, {})[title] = v
    table = pd.DataFrame([{"segment": s, **rows[s]} for s in sorted(rows)])
    return SegmentValues(maps, table, str(getattr(data, "note", "") or ""))


def agreement(lc: state.LoadedCase, ref_stack: Stack, cams: Sequence[SliceCam], *, method: str) -> Agreement:
    """Pointing game, energy inside the lesion, Dice/IoU of the thresholded CAM, segment agreement."""
    fn = need(
        "deepoxymap.audit",
        "case_agreement",
        "Agreement figures",
        "They need `deepoxymap.audit.case_agreement(case, stack, cams)` (pointing game, energy inside the "
        "reference lesion, Dice/IoU, segment kappa).",
    )
    res = fn(lc.case, ref_stack, [c.source for c in cams])
    metrics = dict(res) if isinstance(res, dict) else dict(getattr(res, "metrics", {}) or {})
    headline = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and 0 <= float(v) <= 1}
    table = pd.DataFrame({"metric": list(metrics), method or "value": [metrics[k] for k in metrics]})
    return Agreement(table, headline, str(getattr(res, "reference", "reference lesion")))
