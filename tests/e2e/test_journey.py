"""The main journey in a real browser: open a demo case, classify, Feature maps, change the slice."""

from __future__ import annotations

from pathlib import Path

import journey
import pytest

from deepoxymap.config import settings
from deepoxymap.ui import panels

pytestmark = pytest.mark.e2e


def _shot(page: object, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_main_journey(app_url: str, browser: object, screenshots: Path) -> None:
    """Home -> demo case -> Viewer -> Classify -> Feature maps (slice change) -> other pages; screenshots."""
    s = settings()
    if not (s.demo_dir / "manifest.csv").is_file():
        pytest.skip("demo cases not generated: run `make demo`")
    if not s.model_path.is_file():
        pytest.skip(f"no model at {s.model_path}: run `make model`")
    page = browser.new_page(viewport={"width": 1600, "height": 2400})  # type: ignore[attr-defined]
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_text("Open a demo case").first.wait_for(timeout=60_000)
        journey.wait_idle(page)
        _shot(page, screenshots, "01_home")

        journey.open_demo(page, "ischemic")
        page.get_by_text("Series found").first.wait_for(timeout=60_000)
        _shot(page, screenshots, "02_load_case")

        journey.goto_page(page, "Viewer")
        page.locator(".st-key-view_image .js-plotly-plot").first.wait_for(timeout=60_000)
        _shot(page, screenshots, "03_viewer")

        journey.goto_page(page, "Classify")
        page.get_by_text("Case-level call").first.wait_for(timeout=120_000)
        journey.wait_idle(page)
        _shot(page, screenshots, "04_classify")

        journey.goto_page(page, "Feature maps")
        for key in ("fm_panel_os", "fm_panel_lge", "fm_panel_t1-map", "fm_panel_t2-map"):
            page.locator(f".st-key-{key} img").first.wait_for(timeout=120_000)
        journey.wait_idle(page)
        # what the browser shows: the composed pictures, decoded from the page itself
        os_png = journey.panel_png(page, "fm_panel_os")
        f_os = panels.colour_fractions(os_png, colormap="gray")
        assert f_os["other"] > 0.01, f"OS-CMR panel lacks the CAM overlay: {f_os}"
        assert f_os["contour"] > 0.0, f"OS-CMR panel lacks the CAM contour: {f_os}"
        for key, cmap in (("fm_panel_t1-map", "lipari"), ("fm_panel_t2-map", "navia")):
            rgb = journey.panel_png(page, key)
            f = panels.colour_fractions(rgb, colormap=cmap, image_width=rgb.shape[1] - panels.BAR_WIDTH)
            assert f["other"] == 0.0 and f["colormap"] > 0.8, (key, f)
        assert panels.colour_fractions(journey.panel_png(page, "fm_panel_lge"), colormap="gray")["other"] < 0.01
        shown = page.locator(".st-key-fm_panel_os img").first.bounding_box()
        assert shown and shown["width"] > 300 and shown["height"] > 300, f"OS-CMR panel drawn too small: {shown}"
        for key in ("fm_panel_lge", "fm_panel_t1-map", "fm_panel_t2-map"):
            assert "mm" in journey.panel_title(page, key), f"{key}: no matching distance shown"
        page.locator(".st-key-fm_agree_bars img").first.wait_for(timeout=120_000)
        assert " vs " in journey.panel_title(page, "fm_agree_bars")
        assert journey.chart_png(page, "fm_agree_bars").std() > 5, "blank agreement bars"
        bulls = page.locator("[class*='st-key-fm_bull_'] img").count()
        assert bulls >= 2, "bullseyes missing"
        for i in range(bulls):  # each a decoded, non-blank picture under its visible title
            assert journey.panel_title(page, f"fm_bull_{i}"), f"fm_bull_{i}: no title"
            assert journey.chart_png(page, f"fm_bull_{i}").std() > 10, f"fm_bull_{i}: blank"
        assert journey.plotly_count(page) == 0, "Feature maps drew a plotly chart (plotly.js not needed there)"
        _shot(page, screenshots, "05a_feature_maps_first_slice")
        before = journey.panel_title(page, "fm_panel_os")
        seconds = journey.slice_change_seconds(page)
        after = journey.panel_title(page, "fm_panel_os")
        assert before != after
        print(f"\nfeature-maps slice change (cold for that slice): {seconds:.2f} s")
        assert panels.colour_fractions(journey.panel_png(page, "fm_panel_os"), colormap="gray")["contour"] > 0.0
        _shot(page, screenshots, "05b_feature_maps_after_slice_change")
        for key, magic in (("fm_png", b"\x89PNG"), ("fm_csv", b"section,item")):
            with page.expect_download(timeout=60_000) as dl:
                page.locator(f".st-key-{key} button").first.click()
            data = Path(dl.value.path()).read_bytes()
            assert data.startswith(magic), key
            dl.value.save_as(str(screenshots / ("export_view.png" if key == "fm_png" else "export_numbers.csv")))

        journey.goto_page(page, "Teaching")
        _shot(page, screenshots, "06_teaching")
        journey.goto_page(page, "Cohort audit")
        _shot(page, screenshots, "07_cohort_audit")
        journey.goto_page(page, "Model")
        _shot(page, screenshots, "08_model")
        errors = page.locator('[data-testid="stException"]').count()
        assert errors == 0
    finally:
        page.close()
        print(f"\nscreenshots: {screenshots}")


def test_upload_with_a_bad_file(app_url: str, browser: object, screenshots: Path, tmp_path: Path) -> None:
    """Upload a demo subject's DICOM files as a zip plus a bad file: series table and load report appear."""
    import zipfile

    s = settings()
    if not (s.demo_dir / "manifest.csv").is_file():
        pytest.skip("demo cases not generated: run `make demo`")
    subject = min(p for p in s.demo_dir.iterdir() if (p / "dicom").is_dir())
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted((subject / "dicom").rglob("*.dcm")):
            zf.write(f, f.relative_to(subject))
    bad = tmp_path / "notes.dcm"
    bad.write_text("this is not a DICOM file")
    page = browser.new_page(viewport={"width": 1600, "height": 2400})  # type: ignore[attr-defined]
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_text("Open a demo case").first.wait_for(timeout=60_000)
        journey.goto_page(page, "Load case")
        page.locator(".st-key-load_files input[type='file']").set_input_files([str(archive), str(bad)])
        page.locator(".st-key-load_go button").first.click(timeout=60_000)
        page.get_by_text("Series found").first.wait_for(timeout=120_000)
        journey.wait_idle(page)
        page.get_by_text("notes.dcm").first.wait_for(timeout=10_000)
        _shot(page, screenshots, "09_upload_report")
        assert page.locator("[data-testid='stDataFrame']").count() >= 2  # series table and load report
    finally:
        page.close()
