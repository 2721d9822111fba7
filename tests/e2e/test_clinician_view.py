"""In a real browser: the cine plays at the series' own timing, and a cohort zip is audited from an upload."""

from __future__ import annotations

import itertools
import json
import statistics
import zipfile
from pathlib import Path

import journey
import pytest

from deepoxymap.config import settings

pytestmark = pytest.mark.e2e

PLOT = ".st-key-view_image .js-plotly-plot"


def _demo_or_skip() -> Path:
    s = settings()
    if not (s.demo_dir / "manifest.csv").is_file():
        pytest.skip("demo cases not generated: run `make demo`")
    return s.demo_dir


def test_cine_plays_at_the_series_frame_timing(app_url: str, browser: object, screenshots: Path) -> None:
    """Viewer -> Cine playback -> Play: the frames change at the trigger-time step (79 ms in the demo), not 60 ms."""
    _demo_or_skip()
    page = browser.new_page(viewport={"width": 1600, "height": 1300})  # type: ignore[attr-defined]
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_text("Open a demo case").first.wait_for(timeout=60_000)
        journey.open_demo(page, "ischemic")
        journey.goto_page(page, "Viewer")
        page.locator(PLOT).first.wait_for(timeout=60_000)
        page.locator(".st-key-view_cine").get_by_text("Cine playback").click()
        page.wait_for_function(
            "(sel) => { const el = document.querySelector(sel);"
            " return el && el.layout && el.layout.meta && el.layout.meta.frame_ms; }",
            arg=PLOT,
            timeout=60_000,
        )
        journey.wait_idle(page)
        expected = page.evaluate(f"() => document.querySelector('{PLOT}').layout.meta.frame_ms")
        page.evaluate(
            f"() => {{ const el = document.querySelector('{PLOT}'); window.__frames = [];"
            " el.on('plotly_animatingframe', () => window.__frames.push(performance.now())); }"
        )
        page.locator(f"{PLOT} .updatemenu-button").first.click()  # "Play"
        page.wait_for_function("() => window.__frames.length >= 30", timeout=30_000)
        times = page.evaluate("() => window.__frames")
        page.screenshot(path=str(screenshots / "10_viewer_cine.png"))
    finally:
        page.close()  # type: ignore[attr-defined]
    steps = [b - a for a, b in itertools.pairwise(times[1:])]  # the first frame starts at once
    measured = statistics.median(steps)
    step = statistics.median(expected)
    print(f"\ncine: series step {step:.1f} ms, measured median {measured:.1f} ms over {len(steps)} frames")
    assert step > 65, f"demo trigger-time step {step} ms: too close to the old fixed 60 ms to tell them apart"
    assert 0.9 * step <= measured <= 3 * step, (measured, step)


def test_cohort_audit_from_an_uploaded_zip(app_url: str, browser: object, screenshots: Path, tmp_path: Path) -> None:
    """Cohort audit -> Upload a cohort (zip) -> Run audit: confusion and ROC appear; CSV and JSON download."""
    demo = _demo_or_skip()
    if not settings().model_path.is_file():
        pytest.skip(f"no model at {settings().model_path}: run `make model`")
    rows = (demo / "manifest.csv").read_text().splitlines()
    keep = [rows[0], *[r for r in rows[1:] if r.split(",")[1] in ("healthy", "ischemic")]]
    archive = tmp_path / "two_subjects.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cohort/manifest.csv", "\n".join(keep) + "\n")
        for row in keep[1:]:
            sub = demo / row.split(",")[-1]
            for f in sorted(sub.rglob("*")):
                if f.is_file():
                    zf.write(f, f"cohort/{sub.name}/{f.relative_to(sub).as_posix()}")
    page = browser.new_page(viewport={"width": 1600, "height": 1600})  # type: ignore[attr-defined]
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_text("Open a demo case").first.wait_for(timeout=60_000)
        journey.goto_page(page, "Cohort audit")
        assert page.locator(".st-key-audit_manifest").count() == 0, "a free-form manifest path is still offered"
        page.locator(".st-key-audit_source").get_by_text("Upload a cohort (zip)").click()
        page.locator(".st-key-audit_zip input[type='file']").set_input_files(str(archive))
        page.get_by_text("2 subject(s) to audit, unpacked for this session only").first.wait_for(timeout=120_000)
        journey.wait_idle(page)
        page.locator(".st-key-audit_run button").first.click()
        page.get_by_role("heading", name="Confusion matrix").first.wait_for(timeout=300_000)
        journey.wait_idle(page, timeout=300)
        page.get_by_text("uploaded cohort 'two_subjects.zip' · 2 cases").first.wait_for(timeout=10_000)
        page.screenshot(path=str(screenshots / "11_cohort_audit_upload.png"))
        got = {}
        for key in ("audit_csv", "audit_json"):
            with page.expect_download(timeout=60_000) as dl:
                page.locator(f".st-key-{key} button").first.click()
            got[key] = Path(dl.value.path()).read_bytes()
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()  # type: ignore[attr-defined]
    assert got["audit_csv"].decode().splitlines()[0].startswith("subject,reference")
    doc = json.loads(got["audit_json"])
    assert doc["n_cases"] == 2 and doc["cohort"] == "uploaded cohort 'two_subjects.zip'"
    assert sorted(c["subject"] for c in doc["cases"]) == ["SUBJECT001", "SUBJECT002"]
