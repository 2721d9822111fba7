"""Viewer helpers: which series to offer, captions, the OS response section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from deepoxymap.cardiac import os_response
from deepoxymap.case import Case, Role, Stack
from deepoxymap.ui import figures, state

TIMEPOINT_ORDER = ("baseline", "hv-end", "bh-start", "bh-end")
TIMEPOINT_LABELS = {
    "baseline": "baseline (free breathing)",
    "hv-end": "end of hyperventilation",
    "bh-start": "breath-hold start",
    "bh-end": "breath-hold end",
}
TIMEPOINT_HELP = "OS-CMR is acquired repeatedly through the breathing manoeuvre: " + ", ".join(
    f"{k} = {v}" for k, v in TIMEPOINT_LABELS.items()
)


def viewable_series(case: Case) -> dict[str, dict[str, Stack]]:
    """``{kind: {name: stack}}`` for the Viewer; OS-CMR keyed by manoeuvre time point."""
    out: dict[str, dict[str, Stack]] = {}
    tps = case.os_timepoints()
    if tps:
        out["OS-CMR"] = dict(tps)
    for role in (Role.CINE, Role.LGE, Role.T1_MAP, Role.T2_MAP, Role.UNKNOWN):
        found = case.by_role(role)
        if not found:
            continue
        names: dict[str, Stack] = {}
        for i, s in enumerate(found):
            name = s.description or f"{role.label} {i + 1}"
            while name in names:
                name += "'"
            names[name] = s.stack
        out[role.label if role != Role.UNKNOWN else "Other"] = names
    return out


def default_window(stack: Stack) -> tuple[float, float]:
    """The stack's display window ``(centre, width)``, or its full range."""
    if stack.window and stack.window[1] > 0:
        return float(stack.window[0]), float(stack.window[1])
    lo, hi = float(np.nanmin(stack.data)), float(np.nanmax(stack.data))
    return (lo + hi) / 2, max(hi - lo, 1.0)


def value_name(stack: Stack) -> str:
    """Hover label of the pixel value."""
    return {Role.T1_MAP: "T1", Role.T2_MAP: "T2"}.get(stack.role, "SI")


def slice_caption(stack: Stack, k: int, f: int) -> str:
    """Where the slice sits (mm along the normal) and when the frame was taken."""
    g = stack.geometry
    parts = []
    if g.has_geometry:
        parts.append(f"slice position {g.slice_positions[k]:.1f} mm along the normal")
    else:
        parts.append("no geometry: position unknown")
    t = stack.trigger_times[k, f] if stack.trigger_times.size else np.nan
    if np.isfinite(t):
        parts.append(f"trigger time {t:.0f} ms")
    if stack.acquisition_time_s is not None:
        parts.append(f"acquired at {stack.acquisition_time_s:.0f} s")
    parts.append(f"pixel {g.pixel_spacing[0]:.2f} × {g.pixel_spacing[1]:.2f} mm")
    return " · ".join(parts)


def os_timepoints(case: Case) -> list[str]:
    """Manoeuvre time points present, in acquisition order."""
    return list(case.os_timepoints())


def default_ref(tps: list[str]) -> int:
    """Index of the default reference (baseline)."""
    return tps.index("baseline") if "baseline" in tps else 0


def default_target(tps: list[str]) -> int:
    """Index of the default comparison (end of breath-hold)."""
    for t in ("bh-end", "bh-start", "hv-end"):
        if t in tps:
            return tps.index(t)
    return len(tps) - 1


def os_response_ui(loaded: state.LoadedCase, ref: str, tgt: str, k: int) -> None:
    """The OS response map (diverging scale over the reference image) and per-segment values."""
    resp = state.cached(
        loaded.token, ("os_response", ref, tgt, k), lambda: os_response(loaded.case, ref, tgt, slice_index=k)
    )
    stack = loaded.case.os_timepoints()[ref]
    pct = np.asarray(resp.percent)
    if pct.ndim == 3:
        pct = pct[k]
    frame = int(resp.frame or 0)
    per_seg = dict(resp.per_segment or {})
    limit = float(resp.display_limit or 20.0)
    left, right = st.columns([3, 2])
    with left:
        base = stack.image(k, min(frame, stack.n_frames - 1))
        fig = figures.image_figure(
            base,
            stack.geometry,
            window=default_window(stack),
            height=460,
            title=f"ΔSI % {tgt} vs {ref} · slice {k + 1}",
        )
        figures.add_overlay(
            fig,
            pct,
            stack.geometry,
            opacity=0.85,
            colorscale=figures.DIVERGING,
            zmin=-limit,
            zmax=limit,
            name="ΔSI",
            units=" %",
            base=base,
        )
        if getattr(resp, "mask_source", "") != "none":
            figures.zoom(fig, figures.box_around(pct, stack.geometry))
        st.plotly_chart(fig, key="view_os_map", config={"displaylogo": False})
    with right:
        glob = getattr(resp, "global_percent", None)
        if glob is not None and np.isfinite(glob):
            st.metric("Myocardial ΔSI (this slice)", f"{glob:+.1f} %")
        if per_seg:
            st.plotly_chart(
                figures.bullseye(
                    per_seg,
                    title="ΔSI % per AHA segment",
                    colorscale=figures.DIVERGING,
                    zmin=-limit,
                    zmax=limit,
                    units="%",
                    fmt="+.1f",
                ),
                key="view_os_bullseye",
                config={"displaylogo": False},
            )
            st.dataframe(
                pd.DataFrame({"segment": list(per_seg), "ΔSI %": [round(float(v), 2) for v in per_seg.values()]}),
                hide_index=True,
                key="view_os_table",
            )
        st.caption(
            f"Reference: {TIMEPOINT_LABELS.get(ref, ref)}; compared with: {TIMEPOINT_LABELS.get(tgt, tgt)}; "
            f"cine frame {frame} (end-systole) in both."
        )
        if getattr(resp, "mask_source", "") == "none":
            st.warning(
                "No myocardium label map: the map covers every bright pixel, not just the myocardium, "
                "and there are no global or per-segment values."
            )
