"""Cohort audit from an uploaded cohort zip, in a real browser: upload, run, results, CSV/JSON/PNG downloads, Cancel.

The cohort is built here in a few seconds: generated phantom subjects (their truth is the
reference) and one image subject (its OS-CMR DICOM series and a NIfTI label map, no truth
folder), with relative paths; one subject folder holding no image (it fails when loaded: listed, the
others still run); and two rows whose paths leave the zip (listed at upload, never run).
The app runs on a server of its own with a tiny random model (``DEEPOXYMAP_MODEL_PATH``), so
a case takes well under a second: the test checks the plumbing, not the model.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import journey
import numpy as np
import pytest
from server import free_port, start_streamlit, stop, wait_healthy

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

PHANTOMS = [("G1", "healthy", "normal"), ("G3", "non-ischemic", "HCM"), ("G4", "edema", "AAR")]
IMAGE_SUBJECT = ("P2", "ischemic", "LAD-transmural")
BROKEN_ROW = "B1,edema,,broken/B1,"  # a folder with no image in it
BAD_ROWS = ["E1,healthy,,../../outside,", "E2,edema,,/etc,"]  # both leave the zip
N_GOOD = len(PHANTOMS) + 1


def _app_helpers() -> Any:
    """tests/app/app_helpers.py (the tiny model), loaded by path: tests/e2e does not have tests/app on sys.path."""
    if "app_helpers" in sys.modules:
        return sys.modules["app_helpers"]
    spec = importlib.util.spec_from_file_location("_e2e_app_helpers", ROOT / "tests" / "app" / "app_helpers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _image_subject(phantom: Path, out: Path) -> Path:
    """A subject of images only: the phantom's bh-end OS-CMR DICOM series, and its label map as NIfTI beside it.

    Returns the label map's path. The NIfTI is ``(row, col, slice, frame)`` with the series' own affine
    (LPS -> RAS), so the reader lays it on the DICOM grid.
    """
    import nibabel as nib

    from deepoxymap.io.nifti import RAS_TO_LPS
    from deepoxymap.phantom.load import load_subject

    case = load_subject(phantom)
    series = next(s for s in case.series if s.stack.timepoint == "bh-end")
    mask = case.masks[series.uid]
    g = mask.geometry
    affine = np.eye(4)
    affine[:3, 0] = g.col_cosine * g.pixel_spacing[0]
    affine[:3, 1] = g.row_cosine * g.pixel_spacing[1]
    affine[:3, 2] = g.slice_origins[1] - g.slice_origins[0]
    affine[:3, 3] = g.slice_origins[0]
    shutil.copytree(phantom / "dicom" / "os_bh-end", out / "dicom" / "os_bh-end")
    labels = out.with_name(f"{out.name}_labels.nii.gz")
    volume = np.transpose(mask.data, (2, 3, 0, 1)).astype(np.uint8)
    nib.save(nib.Nifti1Image(volume, RAS_TO_LPS @ affine), labels)
    return labels


def _cohort_zip(tmp: Path, gen: Path, copies: int = 1) -> Path:
    """``cohort.zip``: my-cohort/{manifest.csv, phantoms/G*, images/P2, images/P2_labels.nii.gz}, from ``gen``.

    ``copies`` > 1 repeats every good row under new subject ids (same folders): a longer run for Cancel.
    """
    src = tmp / "src" / "my-cohort"
    (src / "phantoms").mkdir(parents=True)
    for sid, _, _ in PHANTOMS:
        shutil.copytree(gen / sid, src / "phantoms" / sid)
    labels = _image_subject(gen / IMAGE_SUBJECT[0], src / "images" / IMAGE_SUBJECT[0])
    rows = ["subject,class,subtype,path,mask_labels"]
    for k in range(copies):
        tag = f"-{k}" if copies > 1 else ""
        rows += [f"{sid}{tag},{cls},{sub},phantoms/{sid}," for sid, cls, sub in PHANTOMS]
        rows.append(f"{IMAGE_SUBJECT[0]}{tag},{IMAGE_SUBJECT[1]},,images/{IMAGE_SUBJECT[0]},images/{labels.name}")
    (src / "broken" / "B1").mkdir(parents=True)
    (src / "broken" / "B1" / "readme.txt").write_text("the images were not exported")
    rows += [BROKEN_ROW, *BAD_ROWS]
    (src / "manifest.csv").write_text("\n".join(rows) + "\n")
    path = tmp / ("cohort.zip" if copies == 1 else "long-cohort.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.parent.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src.parent).as_posix())
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four generated subjects (one per class; about 2 s each), written once for the module."""
    from deepoxymap.phantom.generate import generate_subject

    gen = tmp_path_factory.mktemp("generated")
    for i, (sid, cls, sub) in enumerate([*PHANTOMS, IMAGE_SUBJECT]):
        generate_subject(gen, sid, cls, sub, "A", 20261202, i, n_frames=4)
    return gen


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory, generated: Path) -> Path:
    """The cohort zip of the first test (4 good rows, 2 bad)."""
    return _cohort_zip(tmp_path_factory.mktemp("cohort"), generated)


@pytest.fixture(scope="module")
def audit_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on its own server, with a tiny random model (a local fixture: the house one has the shipped model)."""
    model = _app_helpers().write_tiny_model(tmp_path_factory.mktemp("model"))
    port = free_port()
    proc = start_streamlit(ROOT / "app.py", port, env={"DEEPOXYMAP_MODEL_PATH": str(model)})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        stop(proc)


def _open_upload(browser: Any, url: str, zip_path: Path) -> Any:
    """A new page on the Cohort audit page with ``zip_path`` uploaded through the file input."""
    page = browser.new_page(viewport={"width": 1600, "height": 2200})
    page.goto(url, wait_until="domcontentloaded")
    journey.nav_link(page, "Cohort audit").wait_for(timeout=60_000)
    journey.wait_idle(page)
    journey.goto_page(page, "Cohort audit")
    source = page.locator(".st-key-audit_source")
    source.get_by_text("Upload a cohort (zip)").click()
    page.locator(".st-key-audit_zip input[type='file']").wait_for(state="attached", timeout=30_000)
    journey.wait_idle(page)
    page.locator(".st-key-audit_zip input[type='file']").set_input_files(str(zip_path))
    page.get_by_text("unpacked for this session only").first.wait_for(timeout=60_000)
    journey.wait_idle(page)
    return page


def _grid_rows(page: Any, key: str) -> int:
    """Data rows of the st.dataframe with key ``key`` (Glide's accessible grid: aria-rowcount counts the header)."""
    grid = page.locator(f".st-key-{key} [role='grid']").first
    grid.wait_for(state="attached", timeout=30_000)
    return int(grid.get_attribute("aria-rowcount")) - 1


def _download(page: Any, key: str) -> bytes:
    with page.expect_download(timeout=60_000) as dl:
        page.locator(f".st-key-{key} button").first.click()
    return Path(dl.value.path()).read_bytes()


def test_cohort_audit_from_an_uploaded_zip(audit_app: str, browser: Any, cohort: Path, screenshots: Path) -> None:
    """Upload -> bad rows listed -> Run audit -> confusion matrix, agreement, per-case table -> CSV, JSON, PNG."""
    from PIL import Image

    t0 = time.perf_counter()
    page = _open_upload(browser, audit_app, cohort)
    try:
        page.get_by_text(f"{N_GOOD + 1} subject(s) to audit").first.wait_for(timeout=10_000)
        listed = page.locator(".st-key-audit_rejected").inner_text()
        assert "2 row(s) of the manifest are left out" in listed, listed
        broken_line = N_GOOD + 2  # header is line 1
        n_rows = broken_line + 1
        assert f"cohort.zip:my-cohort/manifest.csv, line {n_rows}: subject E1: path points outside" in listed
        assert f"line {n_rows + 1}: subject E2: path points outside" in listed
        assert "deepoxymap-cohort-" not in listed, "the server's temporary folder is shown"

        page.locator(".st-key-audit_run button").click()
        page.get_by_text(f"Done: {N_GOOD} cases").first.wait_for(timeout=60_000)
        page.locator(".st-key-audit_confusion .js-plotly-plot").first.wait_for(timeout=30_000)
        journey.wait_idle(page)
        page.screenshot(path=str(screenshots / "10_cohort_audit_upload.png"), full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text(f"uploaded cohort 'cohort.zip' · {N_GOOD} cases").count() >= 1
        failed = page.locator(".st-key-audit_failed").inner_text()
        assert "1 subject(s) could not be audited" in failed, failed
        assert f"uploaded cohort 'cohort.zip', line {broken_line}: subject B1 (test): " in failed, failed

        counted = page.evaluate(  # plotly's decoded heatmap (the spec ships z as typed-array bytes)
            "() => { const el = document.querySelector('.st-key-audit_confusion .js-plotly-plot');"
            " if (!el || !el._fullData) return null; let s = 0;"
            " for (const row of el._fullData[0].z) for (const v of row) s += Number(v); return s; }"
        )
        assert counted == N_GOOD, f"the confusion matrix counts {counted} cases"
        assert page.locator(".st-key-audit_roc .js-plotly-plot").count() == 1
        assert _grid_rows(page, "audit_cases") == N_GOOD
        assert _grid_rows(page, "audit_agreement_table") >= 1

        table = list(csv.DictReader(io.StringIO(_download(page, "audit_csv").decode())))
        expected = {s for s, _, _ in PHANTOMS} | {IMAGE_SUBJECT[0]}
        assert {r["subject"] for r in table} == expected
        assert {r["subject"]: r["reference"] for r in table}[IMAGE_SUBJECT[0]] == "ischemic"
        assert all(r["model call"] and r["correct"] in ("True", "False") for r in table)

        doc = json.loads(_download(page, "audit_json"))
        assert doc["n_cases"] == N_GOOD and len(doc["cases"]) == N_GOOD
        assert doc["cohort"] == "uploaded cohort 'cohort.zip'" and len(doc["failed"]) == 1
        assert int(np.asarray(doc["confusion"]["matrix"]).sum()) == N_GOOD
        gradcam = [r for r in doc["agreement"] if r["method"] == "gradcam"]
        assert sum(r["cases"] for r in gradcam) == N_GOOD, doc["agreement"]
        ischemic = next(r for r in gradcam if r["class"] == "ischemic")  # the image subject: its NIfTI label map
        assert ischemic["cases"] == 1 and ischemic["pointing (myo)"] is not None

        png = _download(page, "audit_png")
        with Image.open(io.BytesIO(png)) as im:
            assert im.format == "PNG" and im.size == (1300, 1000)
            assert len(set(im.convert("L").getdata())) > 20, "the summary figure is blank"
        (screenshots / "cohort_audit_summary.png").write_bytes(png)
    finally:
        page.close()
    print(f"\ncohort audit from an uploaded zip, in the browser: {time.perf_counter() - t0:.1f} s")


def test_a_long_audit_shows_progress_and_cancel_stops_it(
    audit_app: str, browser: Any, generated: Path, tmp_path: Path, screenshots: Path
) -> None:
    """A 40-case audit: the progress bar counts cases; Cancel stops it within a case or two; no results kept."""
    copies = 10
    total_rows = copies * N_GOOD
    zip_path = _cohort_zip(tmp_path, generated, copies=copies)
    page = _open_upload(browser, audit_app, zip_path)
    try:
        page.get_by_text(f"{total_rows + 1} subject(s) to audit").first.wait_for(timeout=10_000)
        page.locator(".st-key-audit_run button").click()
        progress = page.locator('[data-testid="stProgress"]').first
        progress.wait_for(timeout=60_000)
        # Until the first case is counted (spawned workers load the model first; on a busy machine
        # that can take a minute). Read from the bar itself, not from any "2/" on the page.
        page.wait_for_function(
            """() => { const el = document.querySelector('[data-testid="stProgress"]');
                       const m = el && el.innerText.match(/^(\\d+)\\/(\\d+) cases/);
                       return !!m && Number(m[1]) >= 1; }""",
            timeout=180_000,
        )
        text = page.locator('[data-testid="stProgress"]').first.inner_text()
        done, total = (int(x) for x in text.split(" cases")[0].split("/"))
        assert 0 < done < total, text
        page.screenshot(path=str(screenshots / "11_cohort_audit_running.png"), full_page=True)
        page.locator(".st-key-audit_cancel button").first.click()
        t_cancel = time.perf_counter()
        page.get_by_text("The last audit was stopped before it finished").first.wait_for(timeout=30_000)
        stopped_s = time.perf_counter() - t_cancel
        journey.wait_idle(page)
        page.screenshot(path=str(screenshots / "12_cohort_audit_cancelled.png"), full_page=True)
        assert page.locator(".st-key-audit_cases").count() == 0, "a cancelled audit left results"
        assert page.locator('[data-testid="stProgress"]').count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        print(f"\ncancelled at {done}/{total} cases; the page said so {stopped_s:.1f} s after the click")
    finally:
        page.close()
