"""The presentation helpers of deepoxymap.ui: figures, export, series table (no Streamlit session needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from app_helpers import make_tiny_case

from deepoxymap.case import Role
from deepoxymap.ui import export, figures, loading


def test_bullseye_has_17_segments_in_aha_layout() -> None:
    """Segment 1 at 12 o'clock, counter-clockwise; missing segments are grey, not dropped."""
    fig = figures.bullseye({1: 0.5, 2: 0.1, 17: 0.9}, title="t")
    bars = [t for t in fig.data if t.type == "barpolar"]
    segs = [int(c[0]) for t in bars for c in t.customdata]
    assert sorted(segs) == list(range(1, 18))
    assert fig.layout.polar.angularaxis.rotation == 0  # angles counter-clockwise from 3 o'clock
    assert fig.layout.polar.angularaxis.direction == "counterclockwise"
    valued = next(t for t in bars if t.marker.colorscale is not None)
    thetas = {int(c[0]): th for c, th in zip(valued.customdata, valued.theta, strict=True)}
    assert thetas[1] == 90 and thetas[2] == 150  # 12 o'clock, then 60 degrees counter-clockwise


def test_faded_colorscale_is_transparent_at_zero() -> None:
    """CAM overlays leave the image visible where the map is zero."""
    cs = figures.faded("Jet")
    assert cs[0][1].endswith(",0.000)") and cs[-1][1].endswith(",1.000)")


def test_contour_is_a_polyline_on_mm_axes() -> None:
    """The threshold iso-line is sent as one Scatter polyline in millimetres."""
    case = make_tiny_case()
    g = case.series[0].stack.geometry
    field = np.zeros(g.shape, np.float32)
    field[10:20, 10:20] = 1.0
    fig = figures.image_figure(field, g)
    figures.add_contour(fig, field, g, level=0.5)
    line = fig.data[-1]
    assert line.type == "scatter" and line.mode == "lines"
    xs = [v for v in line.x if v is not None]
    assert min(xs) >= 9 * g.pixel_spacing[1] and max(xs) <= 20 * g.pixel_spacing[1]


def test_crop_keeps_millimetre_axes() -> None:
    """A crop sends fewer pixels but hover positions stay those of the full image."""
    case = make_tiny_case()
    g = case.series[0].stack.geometry
    crop = figures.crop_of(g, (10.0, 40.0, 20.0, 60.0))
    assert crop is not None
    fig = figures.image_figure(case.series[0].stack.image(0), g, crop=crop)
    hm = fig.data[0]
    assert hm.z.shape == (crop[1] - crop[0], crop[3] - crop[2])
    assert abs(hm.x0 - crop[2] * g.pixel_spacing[1]) < 1e-5 and hm.dx == g.pixel_spacing[1]


def test_view_png_and_numbers_csv() -> None:
    """Export: a PNG of the panels and a long CSV of every number."""
    img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    png = export.view_png(
        [
            export.ViewPanel("OS", img, (0, 1), overlay=img, contour=img),
            export.ViewPanel("LGE", None, (0, 1), note="none"),
        ],
        suptitle="test",
    )
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    csv = export.numbers_csv(
        {"distance": {"LGE": 1.5}, "segments": pd.DataFrame({"segment": [1], "T1 (ms)": [1000.0]})}
    )
    text = csv.decode()
    assert "section,item,quantity,value" in text and "LGE" in text and "T1 (ms)" in text


def test_series_rows_have_no_identifiers_and_roles_can_change() -> None:
    """Series table columns; a role override rebuilds the case and keeps its ground truth."""
    case = make_tiny_case()
    rows = loading.series_rows(case.series)
    assert {r["role"] for r in rows} == {"OS-CMR", "LGE", "T1 map", "T2 map"}
    banned = ("patient", "name", "birth", "id")
    assert not [k for k in rows[0] if k != "uid" and any(b in k.lower() for b in banned)]  # uid is never displayed
    t2 = case.first(Role.T2_MAP)
    rebuilt, _ = loading.with_roles(case, list(case.series), {t2.uid: Role.T1_MAP})
    assert len(rebuilt.by_role(Role.T1_MAP)) == 2 and rebuilt.masks


def test_reproduction_statement_checks_the_card_cis() -> None:
    """The Model page's re-run sentence: inside/outside is computed from the card's own CIs."""
    import json
    from pathlib import Path

    from deepoxymap.ui.modelinfo import card_sections, reproduction_statement

    card = {
        "metrics": {
            "test": {"accuracy": {"value": 0.5, "ci": [0.4, 0.7]}, "macro_auc": {"value": 0.8, "ci": [0.7, 0.9]}}
        },
        "training": {
            "reproduction": {
                "date": "2026-11-24",
                "test": {
                    "accuracy": {"value": 0.6, "ci": [0.4, 0.8]},
                    "macro_auc": {"value": 0.85, "ci": [0.8, 0.9]},
                },
            }
        },
    }
    s = reproduction_statement(card)
    assert s is not None and "accuracy 0.60" in s and "macro AUC 0.85" in s and "inside this card's 95% CIs" in s
    card["training"]["reproduction"]["test"]["accuracy"] = {"value": 0.75, "ci": [0.6, 0.9]}
    assert "NOT inside" in reproduction_statement(card)
    assert reproduction_statement({"training": {}}) is None
    shipped = json.loads((Path(__file__).resolve().parents[2] / "assets/models/deepoxymap_vgg19.json").read_text())
    assert "inside this card's 95% CIs" in card_sections(shipped)["reproduction"]

    # the class-prior correction is shown when the card has one, and "none" for an older card
    def item(card: dict, name: str) -> str:
        ov = card_sections(card)["overview"]
        return str(ov.loc[ov["item"] == name, "value"].item())

    assert item({}, "class-prior correction").startswith("none")
    dec = {"log_prior_offset": {"healthy": 0.3, "edema": -0.3}, "fitted_on": "validation", "fitted_on_subjects": 120}
    line = item({"decision": dec}, "class-prior correction")
    assert "healthy +0.30" in line and "edema -0.30" in line and "120 validation subjects" in line


def test_app_bullseye_draws_the_core_aha_layout() -> None:
    """The page's plotly bullseye and the audit's bullseye data share one geometry (segment 1 at 12 o'clock)."""
    from deepoxymap.cardiac.bullseye import plotly_bullseye_data

    values = {s: float(s) for s in range(1, 18)}
    fig = figures.bullseye(values, title="t")
    core = plotly_bullseye_data(values)["trace"]
    drawn = {}
    for tr in fig.data:
        if tr.type == "barpolar":
            for seg, th, b, w in zip((c[0] for c in tr.customdata), tr.theta, tr.base, tr.width, strict=True):
                drawn[int(seg)] = (float(th), float(b), float(w))
    expected = {
        s: (float(t), float(b), float(w))
        for s, t, b, w in zip(core["customdata"], core["theta"], core["base"], core["width"], strict=True)
    }
    assert drawn == expected
    assert drawn[1][0] == 90.0 and fig.layout.polar.angularaxis.rotation == 0


def test_load_record_reads_each_case_once_per_process(tmp_path, monkeypatch) -> None:
    """Sessions opening one record share one Case (one read, one copy); a changed record is read again."""
    import os
    import threading

    from deepoxymap.cohort import SubjectRecord

    reads: list[str] = []

    def fake_load(record: SubjectRecord) -> object:
        reads.append(record.subject)
        return object()

    monkeypatch.setattr(loading.cohort, "load_case", fake_load)
    monkeypatch.setattr(loading, "_RECORDS", type(loading._RECORDS)(max_cases=loading.RECORDS_KEPT, max_entries=1))
    folder = tmp_path / "S1"
    folder.mkdir()
    rec = SubjectRecord("S1", "ischemic", folder)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(loading.load_record(rec))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads == ["S1"]
    assert all(g is got[0] for g in got)
    st = folder.stat()
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the case was regenerated
    again = loading.load_record(rec)
    assert reads == ["S1", "S1"] and again is not got[0]
    for i in range(loading.RECORDS_KEPT + 1):  # bounded: the oldest is dropped
        (tmp_path / f"T{i}").mkdir()
        loading.load_record(SubjectRecord(f"T{i}", "healthy", tmp_path / f"T{i}"))
    assert len(loading._RECORDS) == loading.RECORDS_KEPT


def test_segment_and_agreement_tables_are_converted_once() -> None:
    """The Feature-maps tables reach st.dataframe as one cached pyarrow Table per result."""
    import pyarrow as pa

    from deepoxymap.ui.segment_view import Agreement

    agr = Agreement(pd.DataFrame([{"figure": "pointing game", "Grad-CAM": 1.0}]), {"pointing game": 1.0})
    first = agr.arrow
    assert isinstance(first, pa.Table) and first is agr.arrow
    assert first.column_names == ["figure", "Grad-CAM"] and first.num_rows == 1
