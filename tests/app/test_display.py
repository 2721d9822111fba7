"""What a clinician sees: T1/T2 windows in ms by field strength, Crameri colour maps, cine timing, panel layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_helpers import PAGES, feature_panels, make_tiny_case, new_app

from deepoxymap import display
from deepoxymap.case import Case, Role
from deepoxymap.ui import featureview, figures, panels, views


def _rgb(table_row: Any) -> str:
    return "rgb({},{},{})".format(*(round(float(v) * 255) for v in table_row))


# ---------------------------------------------------------------------------
# deepoxymap.display (pure)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, 1.5), (1.494, 1.5), (3.0, 3.0), (2.89362, 3.0), (15000, 1.5), (30000, 3.0), (0.55, None), (7.0, None)],
)
def test_field_strength_classes(value: float, expected: float | None) -> None:
    """MagneticFieldStrength in tesla (or gauss) falls in the 1.5 T or 3 T table; others have none."""
    assert display.field_class(display.field_strength_t({"MagneticFieldStrength": value})) == expected


def test_field_strength_missing_or_bad() -> None:
    """No, empty or nonsense values give ``None``."""
    for meta in (
        None,
        {},
        {"MagneticFieldStrength": ""},
        {"MagneticFieldStrength": "n/a"},
        {"MagneticFieldStrength": -1},
    ):
        assert display.field_strength_t(meta) is None


def test_map_windows_hold_normal_myocardium_low_and_lesions_high() -> None:
    """Each default window holds the normal range in its lower half and tops out above it (DOMAIN.md section 4)."""
    for (kind, field), (lo, hi) in display.MAP_WINDOWS.items():
        nlo, nhi = display.NORMAL_RANGES[(kind, field)]
        assert lo < nlo < nhi < (lo + hi) / 2 + 0.1 * (hi - lo), (kind, field)
    assert display.MAP_WINDOWS[("T1", 3.0)][1] > 1750  # 3 T chronic scar 1500-1750 ms stays inside
    assert display.MAP_WINDOWS[("T1", 1.5)][1] > 1250  # 1.5 T scar 1100-1250 ms
    assert display.MAP_COLORMAPS == {"T1": "lipari", "T2": "navia"}


def test_display_window_by_role_and_field() -> None:
    """T1/T2 maps: window in ms from the field and lipari/navia; LGE and OS-CMR: robust greyscale."""
    case = make_tiny_case()
    t1, t2, lge = (case.first(r).stack for r in (Role.T1_MAP, Role.T2_MAP, Role.LGE))
    w = display.display_window(t1, 1.5)
    assert (w.lo, w.hi, w.colormap, w.units, w.assumed_field) == (700.0, 1500.0, "lipari", "ms", False)
    w = display.display_window(t2, None)
    assert (w.lo, w.hi, w.colormap, w.assumed_field) == (25.0, 85.0, "navia", True)
    g = display.display_window(lge, 3.0)
    c, width = display.robust_window(lge.data)
    assert g.colormap == "gray" and g.centre == pytest.approx(c) and g.width == pytest.approx(width)


def test_vendored_colour_tables() -> None:
    """lipari and navia: 256 RGB rows in [0, 1]; lipari runs dark to light (a sequential map)."""
    for name in ("lipari", "navia"):
        table = display.colormap_table(name)
        assert table.shape == (256, 3) and table.min() >= 0 and table.max() <= 1
        lum = table @ np.array([0.2126, 0.7152, 0.0722], np.float32)
        assert lum[-1] > lum[0] + 0.5
    with pytest.raises(ValueError, match="no vendored colour map"):
        display.colormap_table("../../etc/passwd")


def test_frame_durations_follow_trigger_times() -> None:
    """Steps of the trigger times; the last frame lasts the median step; unknown timing: one 1 s beat."""
    got = display.frame_durations_ms(np.array([0.0, 40.0, 80.0, 130.0]), 4)
    assert got.tolist() == [40.0, 40.0, 50.0, 40.0]
    assert display.frame_durations_ms(np.full(5, np.nan), 5).tolist() == [200.0] * 5
    assert display.frame_durations_ms(np.array([0.0, 0.0, 10.0]), 3).tolist() == pytest.approx([1000 / 3] * 3)
    assert display.frame_durations_ms(None, 1).tolist() == [1000.0]


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------


def test_plotly_scale_samples_the_vendored_table() -> None:
    """The plotly scale for lipari starts and ends on the table's first and last colours."""
    table = display.colormap_table("lipari")
    scale = figures.colorscale("lipari")
    assert scale[0] == [0.0, _rgb(table[0])] and scale[-1] == [1.0, _rgb(table[-1])]
    assert figures.colorscale("gray") == "Gray" and figures.colorscale("Inferno") == "Inferno"


def test_cam_overlay_defaults_to_a_perceptually_uniform_map() -> None:
    """Jet is no longer the default (it stays selectable for comparison)."""
    assert figures.DEFAULT_CAM_COLORMAP in figures.PERCEPTUAL
    assert figures.COLORMAPS[0] == figures.DEFAULT_CAM_COLORMAP and "Jet" in figures.COLORMAPS


def test_cine_plays_at_the_series_timing() -> None:
    """Play queues every frame with its own trigger-time step (no fixed 60 ms); speed scales it."""
    case = make_tiny_case()
    stack = case.series[0].stack  # 4 frames, 40 ms apart
    fig = figures.cine_figure(stack.data[0], stack.geometry, window=(250, 500), trigger_times=stack.trigger_times[0])
    names, opts = fig.layout.updatemenus[0].buttons[0].args
    assert list(names[:4]) == ["0", "1", "2", "3"] and len(names) % 4 == 0
    assert [f["duration"] for f in opts["frame"][:4]] == [40.0, 40.0, 40.0, 40.0]
    assert fig.layout.meta["frame_ms"] == [40.0, 40.0, 40.0, 40.0]
    slow = figures.cine_figure(
        stack.data[0], stack.geometry, window=(250, 500), trigger_times=stack.trigger_times[0], speed=0.5
    )
    assert slow.layout.meta["frame_ms"] == [80.0] * 4


def test_window_presets_for_maps_and_signal() -> None:
    """T1 map: 3 T (assumed) first, then 1.5 T, robust, full; LGE: robust first, full range, file window."""
    case = make_tiny_case()
    t1 = views.window_presets(case.first(Role.T1_MAP).stack)
    names = list(t1)
    assert names[0].startswith("T1 myocardium, 3 T") and names[1] == "T1 myocardium, 1.5 T"
    assert t1[names[0]] == (1300.0, 1000.0) and t1[names[1]] == (1100.0, 800.0)
    lge = views.window_presets(case.first(Role.LGE).stack)
    assert next(iter(lge)).startswith("Robust") and "Full range" in lge and "File (WindowCenter/Width)" in lge


def test_export_png_draws_maps_in_colour_with_a_bar(tmp_path: Path) -> None:
    """The view PNG takes the panels' colour maps and a 2 x 2 grid."""
    from deepoxymap.ui import export

    img = np.linspace(800, 1800, 32 * 32, dtype=np.float32).reshape(32, 32)
    panels = [
        export.ViewPanel("T1", img, (800.0, 1800.0), image_cmap="lipari", units="T1 (ms)"),
        export.ViewPanel("T2", img / 20, (25.0, 85.0), image_cmap="navia", units="T2 (ms)"),
        export.ViewPanel("LGE", img, (800.0, 1800.0)),
        export.ViewPanel("none", None, (0, 1), note="n/a"),
    ]
    png = export.view_png(panels, suptitle="t", ncols=2)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------
# pages
# ---------------------------------------------------------------------------


def _features(case: Case, model: Path) -> Any:
    at = new_app()
    at.session_state["dox_case"] = case
    at.session_state["dox_case_token"] = f"{case.case_id}#test"
    at.session_state["dox_case_source"] = "demo:test"
    at.session_state["dox_model_path"] = str(model)
    at.switch_page(PAGES["features"])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _bar(rgb: np.ndarray) -> int:
    """Width of the image part of a composed map panel (its colour bar is the last columns)."""
    return rgb.shape[1] - panels.BAR_WIDTH


def test_feature_maps_windows_colours_and_layout(tiny_model: Path) -> None:
    """T1/T2 panels in lipari/navia at the field's window in ms (user-adjustable); 2 x 2, 1 x 4 and one enlarged.

    Checked on the pictures the page sends: every pixel of a map panel's image part is a
    colour of its map (or the cyan CAM contour / yellow reference outline drawn over it).
    """
    case = make_tiny_case()
    at = _features(case, tiny_model)
    p = feature_panels(at)
    assert set(p) == set(featureview.PANEL_NAMES)
    t1, t2, lge, os_ = (p[k][1] for k in ("T1 map", "T2 map", "LGE", "OS-CMR + CAM"))
    for rgb, cmap in ((t1, "lipari"), (t2, "navia")):
        f = panels.colour_fractions(rgb, colormap=cmap, image_width=_bar(rgb))
        assert f["other"] == 0.0 and f["colormap"] > 0.8, (cmap, f)
    assert panels.colour_fractions(lge, colormap="gray")["other"] < 0.01  # greyscale, no colour bar
    f_os = panels.colour_fractions(os_, colormap="gray")
    assert f_os["other"] > 0.01 and f_os["contour"] > 0.0  # the CAM overlay (Inferno) and its contour
    # the T1 map's values in the default 3 T window (800-1800 ms): blood 1400 ms, myocardium 1000 ms
    table = panels.lut("lipari")
    colours = {tuple(c) for c in t1[:, : _bar(t1)].reshape(-1, 3)}
    assert tuple(table[int((1400 - 800) / 1000 * 255)]) in colours
    assert tuple(table[int((1000 - 800) / 1000 * 255)]) in colours
    assert any("T1: lipari, 800-1800 ms" in c.value for c in at.caption)
    assert {v[1].shape[0] for v in p.values()} == {featureview.HEIGHTS["2 × 2"]}
    at.slider(key="_w_dox_fm_win_t1_3").set_value((900.0, 1500.0)).run()
    t1b = feature_panels(at)["T1 map"][1]
    colours = {tuple(c) for c in t1b[:, : _bar(t1b)].reshape(-1, 3)}
    assert tuple(table[int((1400 - 900) / 600 * 255)]) in colours  # the user's window moves the colours
    assert any("T1: lipari, 900-1500 ms" in c.value for c in at.caption)
    at.radio(key="_w_dox_fm_layout").set_value("1 × 4").run()
    assert {v[1].shape[0] for v in feature_panels(at).values()} == {featureview.HEIGHTS["1 × 4"]}
    at.selectbox(key="_w_dox_fm_enlarge").set_value("T2 map").run()
    heights = {k: v[1].shape[0] for k, v in feature_panels(at).items()}
    assert heights["T2 map"] == featureview.HEIGHTS["large"]
    assert {heights[k] for k in ("OS-CMR + CAM", "LGE", "T1 map")} == {featureview.HEIGHTS["small"]}
    assert not at.exception


def test_viewer_presets_colour_maps_and_cine_timing() -> None:
    """Viewer: a W/L preset sets level and width; T1 in lipari with a ms colour bar; cine at the trigger times."""
    case = make_tiny_case()
    at = new_app()
    at.session_state["dox_case"] = case
    at.session_state["dox_case_token"] = f"{case.case_id}#test"
    at.session_state["dox_case_source"] = "upload"
    at.switch_page(PAGES["viewer"])
    at.run()
    at.radio(key="_w_dox_view_kind").set_value("T1 map").run()
    assert not at.exception, [e.value for e in at.exception]
    uid = case.first(Role.T1_MAP).uid
    assert (
        at.number_input(key=f"view_wl_{uid}_c").value == 1300 and at.number_input(key=f"view_wl_{uid}_w").value == 1000
    )
    img = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert img["colorscale"][0][1] == _rgb(display.colormap_table("lipari")[0]) and img["zmin"] == 800
    at.selectbox(key=f"view_wl_{uid}_preset").set_value("T1 myocardium, 1.5 T").run()
    assert (
        at.number_input(key=f"view_wl_{uid}_c").value == 1100 and at.number_input(key=f"view_wl_{uid}_w").value == 800
    )
    img = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert (img["zmin"], img["zmax"]) == (700, 1500)
    assert any("lipari" in c.value and "3 T assumed" in c.value for c in at.caption)
    at.toggle(key="_w_dox_view_grey").set_value(True).run()
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["colorscale"][0][1] in (
        "#000000",
        "rgb(0,0,0)",
        "rgb(0, 0, 0)",
    )
    at.radio(key="_w_dox_view_kind").set_value("OS-CMR").run()
    at.toggle(key="view_cine").set_value(True).run()
    assert not at.exception
    cine = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert cine["layout"]["meta"]["frame_ms"] == [40.0, 40.0, 40.0, 40.0]
    assert any("40 ms apart" in c.value for c in at.caption)
