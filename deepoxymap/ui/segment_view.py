"""Per-segment values (bullseyes), agreement figures and reference-lesion outlines for the pages.

The numbers come from the core: :func:`deepoxymap.audit.prepare_reference` (reference
masks, AHA segment maps and transmurality on the OS-CMR grid, from the same
preprocessed input the prediction and the CAMs use) and
:func:`deepoxymap.audit.case_metrics` (pointing game, energy, Dice/IoU, kappa,
CAM energy and lesion transmurality per segment); T1/T2 per segment with
:func:`deepoxymap.compare.segment_means` on the slice-matched maps. This
module only calls them, caches the results in the session and arranges them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from deepoxymap.audit import CaseReference, case_metrics, prepare_reference
from deepoxymap.automasks import is_automatic
from deepoxymap.case import Role, Stack
from deepoxymap.compare import Panel, segment_means
from deepoxymap.errors import Unavailable
from deepoxymap.ui import analysis, figures, modelinfo, state
from deepoxymap.ui.analysis import SliceCam

NEEDS_MASK = (
    "Per-segment values and agreement need a myocardium label map on the OS-CMR series "
    "(synthetic cases carry one; for your own data, load a mask series with the images)."
)

AGREEMENT_ROWS = {
    "pointing": "Pointing game (hit within 5 mm)",
    "pointing_myo": "Pointing game, myocardium only",
    "ebpg": "Energy inside the lesion",
    "ebpg_myo": "Energy inside the lesion, myocardium only",
    "dice": "Dice of thresholded map",
    "iou": "IoU of thresholded map",
    "dice_myo": "Dice, myocardium only",
    "iou_myo": "IoU, myocardium only",
    "kappa": "Segment agreement (Cohen's kappa)",
    "energy_in_myocardium": "Energy in the myocardium",
    "peak_in_myocardium": "Peak inside the myocardium",
    "area50_mm2": "Area holding half the energy (mm²)",
    "segment_entropy": "Spread over segments (normalised entropy)",
}
"""Figures shown, in order, with their clinician-facing names."""

HEADLINE = {
    "pointing": "pointing game",
    "ebpg": "energy in lesion",
    "ebpg_myo": "energy in lesion (myo)",
    "dice": "Dice",
    "dice_myo": "Dice (myo)",
    "kappa": "segment κ",
    "energy_in_myocardium": "energy in myocardium",
}


@dataclass(frozen=True)
class BullseyeSpec:
    """How to draw one bullseye."""

    values: dict[int, float]
    colorscale: str | list[list[Any]] = "Inferno"
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

    @functools.cached_property
    def arrow(self) -> Any:
        """:attr:`table` as a ``pyarrow.Table``, converted once (what ``st.dataframe`` sends)."""
        return _arrow(self.table)


@dataclass(frozen=True)
class Agreement:
    """Agreement of a CAM with the reference lesion."""

    table: pd.DataFrame
    headline: dict[str, float]
    reference_name: str = "reference lesion"
    extra: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def arrow(self) -> Any:
        """:attr:`table` as a ``pyarrow.Table``, converted once (what ``st.dataframe`` sends)."""
        return _arrow(self.table)


def _arrow(table: pd.DataFrame) -> Any:
    """``table`` as a ``pyarrow.Table``. Results are cached and shared, so each is converted once,
    not by every session on every run (Streamlit's pandas -> Arrow step is most of ``st.dataframe``'s cost).
    """
    import pyarrow as pa

    return pa.Table.from_pandas(table, preserve_index=False)


def reference_lesion(lc: state.LoadedCase, stack: Stack, k: int, frame: int = 0) -> NDArray[np.float32] | None:
    """The reference lesion of OS-CMR slice ``k`` at ``frame`` (1 inside), or ``None`` if there is none."""
    return analysis.reference_lesion(lc.case, stack.series_uid, k, frame)


def panel_reference(p: Panel) -> NDArray[np.float32] | None:
    """The reference lesion of a matched LGE/T1/T2 panel (already on the OS-CMR grid)."""
    return p.labels if p.labels is not None and np.nanmax(p.labels) > 0.5 else None


def case_maps(lc: state.LoadedCase) -> CaseReference:
    """:func:`~deepoxymap.audit.prepare_reference` for this case and model (cached), on the shared preprocessed input."""
    if not lc.case.masks:
        raise Unavailable(NEEDS_MASK)
    loaded = modelinfo.loaded_model()
    return state.cached(
        lc.token,
        ("casemaps", modelinfo.model_key()),
        lambda: prepare_reference(lc.case, analysis.preprocessed(lc, loaded)),
    )


def _metrics(lc: state.LoadedCase, cams: Sequence[SliceCam], key: Any, tau: float) -> dict[str, Any]:
    cm = case_maps(lc)
    return state.cached(
        lc.token,
        ("metrics", modelinfo.model_key(), key, round(tau, 3)),
        lambda: case_metrics(cm, [c.source for c in cams], tau=tau, tau_myo=tau, tau_segment=tau),
    )


def _as_map(values: Sequence[Any] | NDArray[Any], scale: float = 1.0) -> dict[int, float]:
    return {i + 1: float(v) * scale for i, v in enumerate(values) if v is not None and np.isfinite(float(v))}


def _map_means(lc: state.LoadedCase, ref: Stack, cm: CaseReference, role: Role) -> dict[int, float]:
    """Per-segment mean of a slice-matched map (T1/T2) over the OS-CMR slices' segment maps (cached per case)."""

    def compute() -> dict[int, float]:
        pairs = [(analysis.panel(lc, ref, sd.slice_index, role).image, sd.seg_map) for sd in cm.slices]
        kept = [(im, sm) for im, sm in pairs if im is not None]
        return segment_means([im for im, _ in kept], [sm for _, sm in kept])

    return state.cached(lc.token, ("map_means", modelinfo.model_key(), ref.series_uid, role.value), compute)


def segment_values(
    lc: state.LoadedCase, ref: Stack, cams: Sequence[SliceCam] | None, *, key: Any = None, tau: float = 0.5
) -> SegmentValues:
    """CAM energy per AHA segment beside lesion transmurality, T1 and T2 per segment (cached per case and settings)."""
    return state.cached(
        lc.token,
        ("segment_values", modelinfo.model_key(), ref.series_uid, key, round(tau, 3), cams is None),
        lambda: _segment_values(lc, ref, cams, key=key, tau=tau),
    )


def _segment_values(
    lc: state.LoadedCase, ref: Stack, cams: Sequence[SliceCam] | None, *, key: Any, tau: float
) -> SegmentValues:
    cm = case_maps(lc)
    maps: dict[str, BullseyeSpec] = {}
    if cams is not None:
        met = _metrics(lc, cams, key, tau)
        maps["CAM energy (% of the map)"] = BullseyeSpec(
            _as_map(met["seg_cam_energy"], 100.0), "Inferno", 0.0, None, "%", ".0f"
        )
        lesion_title = "LGE transmurality (%)" if cm.lesion_kind != "edema" else "Edema transmural extent (%)"
        maps[lesion_title] = BullseyeSpec(_as_map(met["seg_lesion"], 100.0), "Hot", 0.0, 100.0, "%", ".0f")
    for role, title, cmap in ((Role.T1_MAP, "T1 (ms)", "lipari"), (Role.T2_MAP, "T2 (ms)", "navia")):
        if lc.case.first(role) is not None:
            vals = _map_means(lc, ref, cm, role)
            if vals:  # the relaxation maps' own colour maps (Fuderer et al. 2024), as on the panels
                maps[title] = BullseyeSpec(vals, figures.colorscale(cmap), None, None, "ms", ".0f")
    rows: dict[int, dict[str, float]] = {}
    for title, spec in maps.items():
        for s, v in spec.values.items():
            rows.setdefault(s, {})[title] = round(v, 2)
    table = pd.DataFrame([{"segment": s, **rows[s]} for s in sorted(rows)])
    levels = ", ".join(f"slice {sd.slice_index + 1}: {sd.level}" for sd in cm.slices)
    source = "automatic" if is_automatic(lc.case.mask_for(ref.series_uid)) else "reference"
    note = f"AHA levels: {levels}. Segments from the RV insertion points on the {source} label map."
    if cams is None:
        note += " CAM energy and agreement need the classifier."
    return SegmentValues(maps, table, note)


def agreement(lc: state.LoadedCase, cams: Sequence[SliceCam], *, key: Any, tau: float, method: str) -> Agreement:
    """Pointing game, energy inside the lesion, Dice/IoU at threshold ``tau``, segment kappa (or the spread for healthy).

    Cached per case and settings.
    """
    return state.cached(
        lc.token,
        ("agreement", modelinfo.model_key(), key, round(tau, 3), method),
        lambda: _agreement(lc, cams, key=key, tau=tau, method=method),
    )


def _agreement(lc: state.LoadedCase, cams: Sequence[SliceCam], *, key: Any, tau: float, method: str) -> Agreement:
    cm = case_maps(lc)
    met = _metrics(lc, cams, key, tau)
    rows = []
    for k, name in AGREEMENT_ROWS.items():
        v = met.get(k)
        if isinstance(v, (int, float)) and np.isfinite(v):
            rows.append({"figure": name, method or "value": round(float(v), 3)})
    headline = {
        name: float(np.clip(met[k], 0, 1))
        for k, name in HEADLINE.items()
        if isinstance(met.get(k), (int, float)) and np.isfinite(met[k])
    }
    ref_name = {"scar": "LGE scar", "edema": "T2 edema"}.get(cm.lesion_kind, "no lesion (healthy)")
    if cm.lesion_kind not in ("scar", "edema") and not lc.case.label:
        ref_name = "no reference lesion (a study without a class: only the spread figures apply)"
    return Agreement(pd.DataFrame(rows), headline, ref_name, {"lesion_kind": cm.lesion_kind})
