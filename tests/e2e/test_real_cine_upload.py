"""In a real browser: a real cine uploaded as a zip with no label map gets an automatic segmentation, so the
Viewer draws its outlines and Feature maps shows per-segment values and agreement (skipped without the real data).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import journey
import numpy as np
import pytest

from deepoxymap.config import settings
from deepoxymap.ui import segment_view

ROOT = Path(__file__).resolve().parents[2]
SUNNYBROOK = ROOT.parent / "shared" / "data" / "real" / "sunnybrook" / "SCD0000101"

pytestmark = pytest.mark.realdata


def _trace_names(page: Any, key: str) -> list[str]:
    return page.evaluate(
        "(sel) => { const el = document.querySelector(sel); return el && el.data ? el.data.map(t => t.name || '') : []; }",
        f".st-key-{key} .js-plotly-plot",
    )


def test_real_cine_upload_segments_and_shows_segment_values(
    app_url: str, browser: object, screenshots: Path, tmp_path: Path
) -> None:
    if not SUNNYBROOK.is_dir():
        pytest.skip(f"no Sunnybrook sample at {SUNNYBROOK}")
    if not settings().model_path.is_file():
        pytest.skip(f"no model at {settings().model_path}: run `make model`")
    pytest.importorskip("playwright.sync_api")
    archive = tmp_path / "sunnybrook_cine.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(SUNNYBROOK.glob("*.dcm")):
            zf.write(f, f"SCD0000101/{f.name}")
    page = browser.new_page(viewport={"width": 1600, "height": 1400})  # type: ignore[attr-defined]
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_text("Open a demo case").first.wait_for(timeout=60_000)
        journey.goto_page(page, "Load case")
        page.locator(".st-key-load_files input[type='file']").set_input_files(str(archive))
        page.locator(".st-key-load_go button").first.click()
        page.get_by_text("Series found").first.wait_for(timeout=180_000)
        journey.wait_idle(page, timeout=180)
        # the user's one step: the cine is the OS-CMR series
        page.locator("summary", has_text="Change a series").first.click()
        journey.choose_option(page, "load_role_0", "OS-CMR")
        apply = page.locator(".st-key-load_apply_roles button").first
        if not apply.is_visible():  # the rerun after the choice may fold the expander
            page.locator("summary", has_text="Change a series").first.click()
        apply.click()
        page.get_by_text("Applied 1 role change(s).").first.wait_for(timeout=180_000)
        journey.wait_idle(page, timeout=180)

        journey.goto_page(page, "Viewer")
        names = _trace_names(page, "view_image")
        assert {"LV blood pool (endocardium)", "LV epicardium"} <= set(names), names
        page.get_by_text("Outlines from the automatic segmentation").first.wait_for(timeout=10_000)
        page.screenshot(path=str(screenshots / "13_real_cine_viewer_outlines.png"))

        journey.goto_page(page, "Feature maps")
        page.get_by_role("heading", name="Per AHA segment").first.wait_for(timeout=180_000)
        journey.wait_idle(page, timeout=300)
        page.get_by_text("Segments from the RV insertion points on the automatic label map").first.wait_for(
            timeout=60_000
        )
        assert page.get_by_text(segment_view.NEEDS_MASK).count() == 0
        assert "CAM energy" in journey.panel_title(page, "fm_bull_0")
        bull = journey.chart_png(page, "fm_bull_0")
        assert len(np.unique(bull.reshape(-1, 3), axis=0)) > 20, "blank bullseye picture"
        assert "no reference lesion" in journey.panel_title(page, "fm_agree_bars")
        assert journey.chart_png(page, "fm_agree_bars").std() > 5, "blank agreement bars"
        assert journey.plotly_count(page) == 0, "Feature maps drew a plotly chart"
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(screenshots / "14_real_cine_feature_maps.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(screenshots / "13_real_cine_failure.png"), full_page=True)
        raise
    finally:
        page.close()  # type: ignore[attr-defined]
