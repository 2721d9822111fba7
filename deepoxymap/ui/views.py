"""Viewer helpers: which series to offer, captions, the OS response section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from deepoxymap.cardiac import os_response
from deepoxymap.case import Case, Role, Stack, robust_window
from deepoxymap.display import MAP_WINDOWS, NORMAL_RANGES, display_window, map_kind, series_field_t
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


def default_window(stack: Stack, field_t: float | None = None) -> tuple[float, float]:
    """The stack's default display window ``(centre, width)`` (:func:`deepoxymap.display.display_window`).

    T1/T2 maps: the field-strength window in ms; LGE, cine, OS-CMR: the robust greyscale window.
    """
    return display_window(stack, field_t).centre_width


def window_presets(stack: Stack, field_t: float | None = None) -> dict[str, tuple[float, float]]:
    """Named W/L presets ``{label: (centre, width)}`` for the Viewer; the first is the default.

    Relaxation maps: the myocardial window at this field strength (and at the other one), then the
    robust and full ranges. Signal images: the robust window, the full range, and the file's own
    window where it has one.
    """
    win = display_window(stack, field_t)
    out: dict[str, tuple[float, float]] = {}
    kind = map_kind(stack)
    if kind is not None and win.field_t is not None:
        out[f"{kind} myocardium, {win.field_t:g} T" + (" (field assumed)" if win.assumed_field else "")] = (
            win.centre_width
        )
        for other in (1.5, 3.0):
            if other != win.field_t:
                lo, hi = MAP_WINDOWS[(kind, other)]
                out[f"{kind} myocardium, {other:g} T"] = ((lo + hi) / 2, hi - lo)
    c, w = robust_window(stack.data)
    out["Robust (1st-99th percentile)"] = (c, w)
    lo, hi = float(np.nanmin(stack.data)), float(np.nanmax(stack.data))
    out["Full range"] = ((lo + hi) / 2, max(hi - lo, 1e-3))
    if stack.window and stack.window[1] > 0:
        out["File (WindowCenter/Width)"] = (float(stack.window[0]), float(stack.window[1]))
    return out


def field_caption(case: Case, stack: Stack) -> str:
    """How a relaxation map is windowed and coloured (field strength, colour map, normal range); ``""`` otherwise."""
    kind = map_kind(stack)
    if kind is None:
        return ""
    win = display_window(stack, series_field_t(case, stack.series_uid))
    lo, hi = NORMAL_RANGES[(kind, win.field_t or 3.0)]
    field = "field strength unknown, 3 T assumed" if win.assumed_field else f"{win.field_t:g} T"
    return (
        f"{kind} in ms, colour map {win.colormap} (Fuderer et al. 2024) · {field} · typical normal myocardium "
        f"{lo:.0f}-{hi:.0f} ms (protocol-specific: compare with your site's reference range)"
    )


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


def window_ui(case: Case, stack: Stack) -> tuple[float, float]:
    """W/L preset selector plus window level and width inputs; returns ``(centre, width)``.

    Keys per series (``view_wl_<uid>_preset|_c|_w``): each series keeps its own window while the page is
    open; choosing a preset writes its values into the two inputs (which the user can then fine-tune).
    """
    presets = window_presets(stack, series_field_t(case, stack.series_uid))
    names = list(presets)
    base = f"view_wl_{stack.series_uid}"
    ck, wk, pk = f"{base}_c", f"{base}_w", f"{base}_preset"
    if ck not in st.session_state or wk not in st.session_state:
        c0, w0 = presets[names[0]]
        st.session_state[ck], st.session_state[wk] = float(round(c0)), float(max(1.0, round(w0)))

    def apply() -> None:
        c, w = presets[st.session_state[pk]]
        st.session_state[ck], st.session_state[wk] = float(round(c)), float(max(1.0, round(w)))

    st.selectbox(
        "W/L preset",
        names,
        key=pk,
        on_change=apply,
        help="Relaxation maps: myocardial windows for 1.5 T and 3 T (DOMAIN.md section 4). "
        "Signal images: robust (1st-99th percentile), full range, or the file's own window.",
    )
    step = float(max(1.0, round(st.session_state[wk] / 50)))
    c = st.number_input("Window level (centre)", format="%.0f", step=step, key=ck)
    w = st.number_input("Window width", min_value=1.0, format="%.0f", step=step, key=wk)
    return float(c), float(w)


SPEEDS = {"1× (series timing)": 1.0, "½×": 0.5, "¼×": 0.25}
"""Cine playback speeds offered (1 = the series' own trigger-time steps)."""


def cine_caption(stack: Stack, k: int, speed: float) -> str:
    """How the cine of slice ``k`` is timed (trigger times, or the assumed R-R interval)."""
    from deepoxymap.display import frame_durations_ms

    times = stack.trigger_times[k] if stack.trigger_times.size else None
    dur = frame_durations_ms(times, stack.n_frames)
    known = times is not None and bool(np.all(np.isfinite(times))) and bool(np.all(np.diff(times) > 0))
    rate = "" if speed == 1.0 else f", played at {speed:g}×"
    if known:
        return (
            f"{stack.n_frames} frames, {float(np.median(dur)):.0f} ms apart by the series' trigger times "
            f"(one cycle {float(dur.sum()):.0f} ms){rate}"
        )
    return f"{stack.n_frames} frames; no usable trigger times: one beat of {float(dur.sum()):.0f} ms assumed{rate}"
