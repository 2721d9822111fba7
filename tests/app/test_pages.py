"""Every page runs (no case, a tiny case, each demo case) and its key widgets respond (AppTest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from app_helpers import PAGES, feature_panels, make_cohort_zip, new_app, write_tiny_model

from deepoxymap import io
from deepoxymap.case import Case
from deepoxymap.config import settings
from deepoxymap.ui import audit_view


def _with_case(case: Case | None, model: Path | None = None, source: str = "demo:test") -> Any:
    at = new_app()
    if case is not None:
        at.session_state["dox_case"] = case
        at.session_state["dox_case_token"] = f"{case.case_id}#test"
        at.session_state["dox_case_source"] = source
    if model is not None:
        at.session_state["dox_model_path"] = str(model)
    return at


def _run(at: Any, page: str) -> Any:
    at.switch_page(PAGES[page])
    at.run()
    return at


def _ok(at: Any) -> None:
    """No uncaught exception, and no internal error caught by a page section."""
    assert not at.exception, [e.value for e in at.exception]
    internal = [e.value for e in at.error if "Internal error" in e.value]
    assert not internal, internal


def _plots(at: Any) -> list[dict[str, Any]]:
    """Plotly figures in page order (parsed JSON specs)."""
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def _titles(at: Any) -> list[str]:
    return [((s.get("layout") or {}).get("title") or {}).get("text", "") for s in _plots(at)]


def _chart(at: Any, key: str) -> tuple[str, Any]:
    """A Feature-maps chart drawn as a picture: (its visible title, its RGB pixels) from the container keyed ``key``."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from deepoxymap.ui import charts

    box = at.get_by_key(key)
    title = " ".join(m.value.strip("*") for m in box.markdown)
    (src,) = [u for img in box.image for u in img.value]
    assert src.startswith(charts.CHART_URI_PREFIX), src[:40]
    rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
    return title, rgb


def _texts(at: Any) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


# ---------------------------------------------------------------------------
# every page, no case / tiny case / demo cases
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", list(PAGES))
def test_page_without_case(page: str) -> None:
    """Each page runs with no case loaded and says what it needs."""
    at = _run(_with_case(None), page)
    _ok(at)
    if page in ("viewer", "classify", "features"):
        assert "Load a case first" in _texts(at)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_with_tiny_case(page: str, tiny_case: Case, tiny_model: Path) -> None:
    """Each page runs with a small in-memory case and a tiny model."""
    at = _run(_with_case(tiny_case, tiny_model), page)
    _ok(at)


@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("label", ["healthy", "ischemic", "non-ischemic", "edema"])
def test_page_with_demo_case(page: str, label: str, demo_cases: dict[str, Case]) -> None:
    """Each page runs with each demo case and the shipped model (or says it needs the model)."""
    if label not in demo_cases:
        pytest.skip(f"no {label} demo case")
    at = _run(_with_case(demo_cases[label]), page)
    _ok(at)
    if page == "features":
        drawn = feature_panels(at)
        assert "OS-CMR + CAM" in drawn, list(drawn)
        assert "LGE" in drawn and "mm" in drawn["LGE"][0], list(drawn)
        if settings().model_path.is_file():
            title, rgb = _chart(at, "fm_bull_0")  # the per-segment CAM bullseye, a picture
            assert "CAM energy" in title and rgb.std() > 10, title
            assert not at.get("plotly_chart"), "Feature maps must draw no plotly chart (plotly.js stays unloaded)"
            note = (json.loads(settings().model_card_path.read_text()).get("training") or {}).get("note")
            if note:  # the card's caveat (e.g. an untrained conv base) is shown beside the maps
                assert note[:60] in _texts(at)
    if page == "viewer":
        assert any(t.startswith("ΔSI %") for t in _titles(at)), "no OS response map"
    if page == "classify" and settings().model_path.is_file():
        assert at.metric, "no case-level call"
    if page == "model" and settings().model_path.is_file():
        from deepoxymap.ui.modelinfo import reproduction_statement

        rep = reproduction_statement(json.loads(settings().model_card_path.read_text()))
        if rep:  # the card's recorded re-run is shown under the test metrics
            assert rep in _texts(at)


# ---------------------------------------------------------------------------
# key widgets respond
# ---------------------------------------------------------------------------


def test_feature_maps_slice_method_class(tiny_case: Case, tiny_model: Path) -> None:
    """Changing the slice, the method and the target class re-renders the panels."""
    at = _run(_with_case(tiny_case, tiny_model), "features")
    _ok(at)
    first_title, first_png = feature_panels(at)["OS-CMR + CAM"]
    at.slider(key="_w_dox_fm_slice").set_value(3).run()
    _ok(at)
    second_title, second_png = feature_panels(at)["OS-CMR + CAM"]
    assert first_title != second_title and "slice 3" in second_title
    assert first_png.shape != second_png.shape or (first_png != second_png).any()
    at.selectbox(key="_w_dox_fm_method").set_value("gradcam++").run()
    _ok(at)
    assert "gradcam++" in _texts(at)
    at.selectbox(key="_w_dox_fm_target").set_value("edema").run()
    _ok(at)
    assert "of **edema**" in _texts(at)
    plain_png = feature_panels(at)["OS-CMR + CAM"][1]
    at.toggle(key="_w_dox_fm_contrast").set_value(True).run()  # edema minus healthy: a contrastive map
    _ok(at)
    assert "of **edema** against healthy" in _texts(at)
    assert (feature_panels(at)["OS-CMR + CAM"][1] != plain_png).any()
    at.selectbox(key="_w_dox_fm_method").set_value("smoothgrad").run()  # no contrast for saliency: switched off
    _ok(at)
    assert at.toggle(key="_w_dox_fm_contrast").disabled and "against healthy" not in _texts(at)
    at.selectbox(key="_w_dox_fm_method").set_value("gradcam++").run()
    # the slice survives a page switch (plain session key)
    _run(at, "viewer")
    _run(at, "features")
    assert at.slider(key="_w_dox_fm_slice").value == 3


def test_feature_maps_exports_wait_for_their_switch(
    tiny_case: Case, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No export analysis is built and no download offered until the user switches the exports on (sticky)."""
    from deepoxymap.ui import dicom_export

    built: list[str] = []
    real = dicom_export._analysis

    def spy(lc: Any, ctl: Any, cams: Any) -> Any:
        built.append(lc.case.case_id)
        return real(lc, ctl, cams)

    monkeypatch.setattr(dicom_export, "_analysis", spy)

    def downloads(at: Any) -> set[str]:
        ids = {el.proto.id for el in at.get("download_button")}
        return {k for k in ("report", "parametric_map", "seg_cam", "sr") if any(f"fm_dl_{k}" in i for i in ids)}

    at = _run(_with_case(tiny_case, tiny_model), "features")
    _ok(at)
    assert not downloads(at) and not built
    assert "switch on to prepare them" in _texts(at)
    at.toggle(key="_w_dox_fm_exports").set_value(True).run()
    _ok(at)
    assert downloads(at) == {"report", "parametric_map", "seg_cam", "sr"} and built
    _run(at, "viewer")
    _run(at, "features")
    assert at.toggle(key="_w_dox_fm_exports").value and downloads(at)


def test_feature_maps_overlay_and_contours(tiny_case: Case, tiny_model: Path) -> None:
    """The OS-CMR panel carries the CAM overlay and its contour; LGE/T1/T2 show their distance and the contour.

    Read from the pictures sent to the browser: with opacity 0 the OS-CMR panel is greyscale
    plus the cyan contour; at the default opacity the overlay tints it.
    """
    from deepoxymap.ui import panels

    at = _run(_with_case(tiny_case, tiny_model), "features")
    p = feature_panels(at)
    f = panels.colour_fractions(p["OS-CMR + CAM"][1], colormap="gray")
    assert f["other"] > 0.01, f  # the CAM overlay blends colour into the greyscale slice
    assert f["contour"] > 0.0, f
    assert panels.colour_fractions(p["LGE"][1], colormap="gray")["contour"] > 0.0  # CAM contour on LGE too
    for name in ("LGE", "T1 map", "T2 map"):
        assert "Δ" in p[name][0] and "mm" in p[name][0], p[name][0]
    at.slider(key="_w_dox_fm_opacity").set_value(0.0).run()
    f0 = panels.colour_fractions(feature_panels(at)["OS-CMR + CAM"][1], colormap="gray")
    assert f0["other"] == 0.0 and f0["contour"] > 0.0, f0


def test_feature_maps_draw_no_plotly(tiny_case: Case, tiny_model: Path) -> None:
    """Feature maps sends no plotly chart (the browser never loads plotly.js there): bullseyes and bars are pictures."""
    at = _run(_with_case(tiny_case, tiny_model), "features")
    _ok(at)
    assert not at.get("plotly_chart"), [el.key for el in at.get("plotly_chart")]
    title, rgb = _chart(at, "fm_bull_0")
    assert "CAM energy" in title and rgb.ndim == 3, title
    title, _ = _chart(at, "fm_agree_bars")
    assert title.startswith("gradcam vs "), title
    at.toggle(key="_w_dox_fm_raw").set_value(True).run()  # the raw channels too
    _ok(at)
    assert not at.get("plotly_chart")
    _, grid = _chart(at, "fm_raw_grid")
    assert grid.std() > 5


def test_feature_maps_charts_show_the_tables_numbers(demo_cases: dict[str, Case]) -> None:
    """The bullseye and bar pictures carry the numbers of the tables under them (ischemic demo case).

    Each bullseye segment is filled with its value's colour on that bullseye's scale (the
    per-segment table's value, to within one colour step of the table's rounding), segments
    without a value are grey; each agreement bar is as tall as the agreement table's value.
    """
    import numpy as np

    from deepoxymap.ui import charts, figures
    from deepoxymap.ui.segment_view import AGREEMENT_ROWS, HEADLINE

    if "ischemic" not in demo_cases or not settings().model_path.is_file():
        pytest.skip("needs the ischemic demo case (`make demo`) and the shipped model")
    at = _run(_with_case(demo_cases["ischemic"]), "features")
    _ok(at)
    assert not at.get("plotly_chart")
    seg_table = next(df.value for df in at.dataframe if "segment" in df.value.columns)
    scales = {  # title start -> (colour scale, zmin, zmax), as the page declares them
        "CAM energy": ("Inferno", 0.0, None),
        "LGE transmurality": ("Hot", 0.0, 100.0),
        "T1": (figures.colorscale("lipari"), None, None),
        "T2": (figures.colorscale("navia"), None, None),
    }
    titles = [c for c in seg_table.columns if c != "segment"]
    assert len(titles) == 4, titles
    for i, col in enumerate(titles):
        title, rgb = _chart(at, f"fm_bull_{i}")
        assert title == col, (title, col)
        assert rgb.shape == (charts.BULLSEYE_SIZE, charts.BULLSEYE_SIZE + 74, 3)
        scale, zmin, zmax = next(v for k, v in scales.items() if title.startswith(k))
        values = {int(s): float(v) for s, v in zip(seg_table["segment"], seg_table[col], strict=True) if np.isfinite(v)}
        assert len(values) >= 16, values
        lo, hi = charts.value_range(values, zmin, zmax)
        table = charts.colour_table(scale)
        for seg in range(1, 18):
            px = rgb[charts.segment_pixel(seg)]
            if seg not in values:
                assert tuple(px) == charts.NAN_RGB, (title, seg, px)
                continue
            idx = int(np.clip((values[seg] - lo) / (hi - lo) * 255.0, 0, 255))
            assert (table[max(0, idx - 1) : idx + 2] == px).all(axis=1).any(), (title, seg, values[seg], px)
    title, bars = _chart(at, "fm_agree_bars")
    assert title == "gradcam vs LGE scar", title
    agree = next(df.value for df in at.dataframe if "figure" in df.value.columns)
    shown = dict(zip(agree["figure"], agree["gradcam"], strict=True))
    heads = [
        (AGREEMENT_ROWS[k], float(np.clip(shown[AGREEMENT_ROWS[k]], 0, 1)))
        for k in HEADLINE
        if AGREEMENT_ROWS[k] in shown
    ]
    boxes = charts.bar_boxes(len(heads), [v for _, v in heads], width=bars.shape[1], height=bars.shape[0])
    for (name, v), (x0, y0, x1, y1) in zip(heads, boxes, strict=True):
        tall = int((bars[:, (x0 + x1) // 2] == charts.BAR_RGB).all(axis=1).sum())
        assert abs(tall - (y1 - y0)) <= 2, (name, v, tall, y1 - y0)
    assert max(v for _, v in heads) > 0.1  # some bar is drawn at all


def test_viewer_controls(tiny_case: Case) -> None:
    """Slice, frame, time point and series switches re-render the image."""
    at = _run(_with_case(tiny_case), "viewer")
    _ok(at)
    at.slider(key="_w_dox_view_slice").set_value(1).run()
    at.slider(key="_w_dox_view_frame").set_value(3).run()
    at.selectbox(key="_w_dox_view_tp").set_value("hv-end").run()
    _ok(at)
    assert any("hv-end" in t and "slice 1/3" in t for t in _titles(at)), _titles(at)
    at.radio(key="_w_dox_view_kind").set_value("T1 map").run()
    _ok(at)
    spec = _plots(at)[0]
    assert "ms" in spec["data"][0]["hovertemplate"]
    at.radio(key="_w_dox_view_kind").set_value("OS-CMR").run()
    at.toggle(key="view_cine").set_value(True).run()
    _ok(at)
    cine = _plots(at)[0]
    assert len(cine.get("frames", [])) == 4


def test_classify_mc_dropout(tiny_case: Case, tiny_model: Path) -> None:
    """MC-dropout adds an uncertainty figure."""
    at = _run(_with_case(tiny_case, tiny_model), "classify")
    _ok(at)
    assert at.metric[0].value in ("healthy", "ischemic", "non-ischemic", "edema")
    at.toggle(key="cls_mc").set_value(True).run()
    _ok(at)
    assert any("Uncertainty" in m.label for m in at.metric)


def test_load_case_table_and_role_override(tiny_case: Case) -> None:
    """The series table lists every series without identifiers; a role override rebuilds the case."""
    from deepoxymap.case import Role
    from deepoxymap.ui import loading

    at = _run(_with_case(tiny_case, source="upload"), "load")
    _ok(at)
    assert "Series found" in " ".join(h.value for h in at.subheader)
    rows = loading.series_rows(tiny_case.series)
    assert len(rows) == len(tiny_case.series)
    assert {"role", "size (rows x cols)", "slices x frames", "spacing (mm)", "description"} <= set(rows[0])
    assert not any("patient" in k.lower() for k in rows[0])
    lge = tiny_case.first(Role.LGE)
    rebuilt, _ = loading.with_roles(tiny_case, list(tiny_case.series), {lge.uid: Role.UNKNOWN})
    assert rebuilt.first(Role.LGE) is None
    assert rebuilt.label == tiny_case.label and rebuilt.masks
    # through the page: the LGE series becomes "Unknown", the table and the case follow
    idx = [s.uid for s in tiny_case.series].index(lge.uid)
    at.selectbox(key=f"load_role_{idx}").set_value("Unknown").run()
    at.button(key="load_apply_roles").click().run()
    _ok(at)
    assert at.session_state["dox_case"].first(Role.LGE) is None
    assert at.selectbox(key=f"load_role_{idx}").value == "Unknown"
    assert any("Applied 1 role change" in s.value for s in at.success)


def test_model_page_bad_file_keeps_current(tmp_path: Path, tiny_model: Path) -> None:
    """A bad model file gives a clear error and the session keeps its model."""
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a model")
    at = _run(_with_case(None, tiny_model), "model")
    _ok(at)
    at.text_input(key="model_new_path").set_value(str(bad)).run()
    at.button(key="model_load").click().run()
    _ok(at)
    assert any("cannot be used" in e.value or "could not be loaded" in e.value for e in at.error)
    assert at.session_state["dox_model_path"] == str(tiny_model)
    # a good one is accepted
    at.text_input(key="model_new_path").set_value(str(tiny_model)).run()
    at.button(key="model_load").click().run()
    _ok(at)
    assert not at.error


def test_demo_button_opens_case(demo_dir: Path) -> None:
    """One click on a demo case loads it (Load case page)."""
    at = _run(_with_case(None), "load")
    buttons = [b for b in at.button if b.key and b.key.startswith("load_demo_")]
    assert len(buttons) >= 4
    buttons[0].click().run()
    _ok(at)
    assert at.session_state["dox_case"] is not None
    assert "Series found" in " ".join(h.value for h in at.subheader)


def test_teaching_quiz_flow(demo_dir: Path, tiny_model: Path) -> None:
    """Answer, reveal (model call, CAM, LGE), next case; the score is kept."""
    at = _run(_with_case(None, tiny_model), "teaching")
    _ok(at)
    radio = next(r for r in at.radio if r.key and r.key.startswith("quiz_answer_"))
    radio.set_value("healthy").run()
    at.button(key="quiz_check").click().run()
    _ok(at)
    assert "Model call" in _texts(at)
    assert at.metric[0].value.endswith("/ 1")
    at.button(key="quiz_next").click().run()
    _ok(at)
    assert at.metric[1].value.startswith("2 of")


def test_cohort_audit_on_demo(demo_dir: Path, tiny_model: Path) -> None:
    """A registered cohort (the demo) is picked from a list, not typed as a path; results download as CSV and JSON."""
    at = _run(_with_case(None, tiny_model), "audit")
    _ok(at)
    assert not at.text_input, "the audit must not take a free-form server path"
    assert "demo" in at.selectbox(key="audit_cohort").options
    at.selectbox(key="audit_cohort").set_value("demo").run()
    at.button(key="audit_run").click().run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    titles = [s["layout"].get("xaxis", {}).get("title", {}).get("text", "") for s in _plots(at)]
    assert "model call" in titles and "1 - specificity" in titles
    assert len(at.dataframe) >= 2
    assert "registered cohort 'demo'" in _texts(at)
    result = at.session_state["dox_audit"]
    doc = json.loads(audit_view.results_json(result))
    assert doc["n_cases"] == result.n_cases and len(doc["cases"]) == len(result.cases)
    assert doc["cohort"] == "registered cohort 'demo'" and len(doc["confusion"]["matrix"]) == len(doc["classes"])
    csv = audit_view.results_csv(result).decode()
    assert csv.splitlines()[0].startswith("subject,reference") and len(csv.splitlines()) == len(result.cases) + 1
    keys = {el.proto.id for el in at.get("download_button")}
    assert any("audit_csv" in k for k in keys) and any("audit_json" in k for k in keys), keys


def test_cohort_audit_from_an_uploaded_zip(demo_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    """A cohort zip (manifest.csv + two subject folders, inside a top folder) is unpacked for the session and audited."""
    rows = (demo_dir / "manifest.csv").read_text().splitlines()
    keep = [rows[0], *[r for r in rows[1:] if r.split(",")[1] in ("healthy", "ischemic")]]
    archive = make_cohort_zip(tmp_path / "cohort.zip", "\n".join(keep) + "\n", demo_dir, top="my-cohort")
    at = _run(_with_case(None, tiny_model), "audit")
    at.radio(key="audit_source").set_value("Upload a cohort (zip)").run()
    _ok(at)
    at.file_uploader(key="audit_zip").upload("cohort.zip", archive.read_bytes(), "application/zip").run()
    _ok(at)
    upload = at.session_state["dox_audit_upload"]
    assert upload.n_subjects == 2 and upload.manifest.is_file()
    at.button(key="audit_run").click().run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    result = at.session_state["dox_audit"]
    assert result.manifest == "uploaded cohort 'cohort.zip'" and result.n_cases == 2
    assert not any(str(upload.root) in n for n in result.notes), result.notes


def test_cohort_audit_upload_pointing_outside_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    """A manifest in an uploaded zip whose path leaves the upload is refused with a message; nothing is audited."""
    manifest = "subject,class,path\nS1,healthy,/etc\n"
    archive = make_cohort_zip(tmp_path / "evil.zip", manifest, None)
    at = _run(_with_case(None, tiny_model), "audit")
    at.radio(key="audit_source").set_value("Upload a cohort (zip)").run()
    at.file_uploader(key="audit_zip").upload("evil.zip", archive.read_bytes(), "application/zip").run()
    _ok(at)
    assert any("outside the uploaded cohort" in e.value for e in at.error), [e.value for e in at.error]
    assert "dox_audit_upload" not in at.session_state
    assert at.button(key="audit_run").disabled


@pytest.mark.realdata
def test_pages_with_a_real_cine_without_masks(real_data_dir: Path, tiny_model: Path) -> None:
    """A real cine (Sunnybrook, no OS-CMR, no LGE/T1/T2, no masks): each page runs and says what it lacks."""
    from deepoxymap.ui import loading

    folder = real_data_dir / "sunnybrook"
    if not folder.is_dir():
        pytest.skip("no Sunnybrook sample")
    res = loading.load_sources([folder])
    case = io.build_case(res.series, loading.upload_case_id(res.series))
    for page in ("load", "viewer", "classify", "features"):
        at = _with_case(case, tiny_model, source="upload")
        at.session_state["dox_series"] = list(res.series)
        at.session_state["dox_load_issues"] = list(res.issues)
        _run(at, page)
        _ok(at)
        if page == "features":
            text = _texts(at)
            assert "No LGE series" in text and "label map" in text


def test_feature_maps_localise_each_stack_once(
    tiny_case: Case, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One Feature-maps view (prediction, every slice's CAM, bullseyes, agreement) localises the LV once per stack.

    Prediction, feature maps and the reference masks share one preprocessed input;
    before they did, the page ran the localisation three times on the OS-CMR stack.
    """
    from deepoxymap.cardiac import localize, phase
    from deepoxymap.model import preprocess

    stacks: list[str] = []
    slices: list[int] = []
    real_centers, real_cine = localize.find_lv_centers, localize.find_lv_center_cine

    def counting_centers(stack: Any) -> Any:
        stacks.append(stack.series_uid)
        return real_centers(stack)

    def counting_cine(*args: Any, **kwargs: Any) -> Any:
        slices.append(1)
        return real_cine(*args, **kwargs)

    for mod in (localize, phase, preprocess):
        monkeypatch.setattr(mod, "find_lv_centers", counting_centers)
    monkeypatch.setattr(localize, "find_lv_center_cine", counting_cine)
    at = _run(_with_case(tiny_case, tiny_model), "features")
    _ok(at)
    title, _ = _chart(at, "fm_bull_0")
    assert "energy" in title.lower(), title  # the per-segment CAM bullseye was drawn
    assert stacks, "the page never localised the LV"
    assert len(stacks) == len(set(stacks)), f"LV localised more than once for a stack: {stacks}"
    os_stack = next(s for s in tiny_case.series if s.uid == stacks[0]).stack
    assert len(slices) == os_stack.n_slices * len(stacks)


def test_sidebar_model_menu_switches_every_page(tmp_path, monkeypatch) -> None:
    """Two shipped models: the sidebar menu lists both (study replica first, the default) and pages follow it."""
    import shutil

    from deepoxymap.config import settings as _settings
    from deepoxymap.ui import modelinfo

    made = write_tiny_model(tmp_path / "make")
    shipped = tmp_path / "models"
    shipped.mkdir()
    for stem, channels in (("deepoxymap_vgg19", "grey"), ("deepoxymap_vgg19_dynamics", "dynamics")):
        shutil.copy(made, shipped / f"{stem}.keras")
        card = json.loads(made.with_suffix(".json").read_text())
        card["name"] = stem
        card["preprocessing"]["channels"] = channels
        (shipped / f"{stem}.json").write_text(json.dumps(card))
    monkeypatch.setenv("DEEPOXYMAP_MODEL_PATH", str(shipped / "deepoxymap_vgg19.keras"))
    _settings.cache_clear()
    modelinfo._scan_models.cache_clear()
    try:
        labels = [lab for _, lab in modelinfo.shipped_models()]
        assert labels == [
            "deepoxymap_vgg19 (study replica, default)",
            "deepoxymap_vgg19_dynamics (OS dynamics, beyond the study)",
        ]
        at = _run(new_app(), "model")
        _ok(at)
        menu = next(sb for sb in at.sidebar.selectbox if sb.label == "Model")
        assert menu.value == str(shipped / "deepoxymap_vgg19.keras")
        assert any("`deepoxymap_vgg19.keras`" in m.value for m in at.markdown)
        menu.set_value(str(shipped / "deepoxymap_vgg19_dynamics.keras")).run()
        _ok(at)
        assert at.session_state["dox_model_path"] == str(shipped / "deepoxymap_vgg19_dynamics.keras")
        assert any("`deepoxymap_vgg19_dynamics.keras`" in m.value for m in at.markdown)  # the Model page follows
        at.switch_page(PAGES["classify"]).run()
        _ok(at)
        assert next(sb for sb in at.sidebar.selectbox if sb.label == "Model").value.endswith("_dynamics.keras")
        # back to the default: the session key goes, the shipped study replica is used again
        next(sb for sb in at.sidebar.selectbox if sb.label == "Model").set_value(
            str(shipped / "deepoxymap_vgg19.keras")
        ).run()
        assert "dox_model_path" not in at.session_state
    finally:
        monkeypatch.delenv("DEEPOXYMAP_MODEL_PATH")
        _settings.cache_clear()
        modelinfo._scan_models.cache_clear()
