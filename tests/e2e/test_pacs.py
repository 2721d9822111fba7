"""A real PACS (Orthanc + DICOMweb on loopback): push, QIDO, WADO through the app's loader, STOW of the exports.

The session's ``orthanc`` fixture (tests/conftest.py) starts a throwaway Orthanc;
everything skips with a reason where Orthanc or its DICOMweb plugin is absent.
The browser test drives the app's "From PACS" tab and the Feature-maps downloads.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import journey
import numpy as np
import pacs_server
import pydicom
import pytest
from server import free_port, start_streamlit, stop, wait_healthy

from deepoxymap.dicomweb import PacsClient
from deepoxymap.errors import PacsError
from deepoxymap.export import export_names

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def app_with(env: dict[str, str]) -> Iterator[str]:
    """The app on a server process of its own, with extra environment (the PACS settings); stopped after."""
    port = free_port()
    proc = start_streamlit(ROOT / "app.py", port, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        stop(proc)


def _client(orthanc: pacs_server.OrthancServer, *, trusted: bool) -> PacsClient:
    return PacsClient(orthanc.dicomweb, username=orthanc.username, password=orthanc.password, trusted=trusted)


@pytest.fixture(scope="module")
def seeded(orthanc: pacs_server.OrthancServer, known_subject: Path) -> Path:
    """The known-identifier subject stored on the PACS as it is (a trusted push: the PACS holds the real study)."""
    datasets = [pydicom.dcmread(f) for f in sorted((known_subject / "dicom").rglob("*.dcm"))]
    res = _client(orthanc, trusted=True).store(datasets)
    assert not res.deidentified and len(res.stored) == len(datasets)
    return known_subject


def test_push_find_and_pull_back_through_the_loader(orthanc: pacs_server.OrthancServer, seeded: Path) -> None:
    """QIDO finds the study by patient ID and by accession; WADO gives the loader identical geometry and pixels."""
    from deepoxymap.io import load

    client = _client(orthanc, trusted=False)
    client.check()
    by_id = client.search_studies(patient_id=pacs_server.KNOWN_ID)
    by_acc = client.search_studies(accession=pacs_server.KNOWN_ACCESSION)
    assert len(by_id) == 1 and [h.study_uid for h in by_acc] == [by_id[0].study_uid]
    local = load([str(seeded / "dicom")])
    assert by_id[0].n_instances == sum(len(s.files) for s in local.series)
    pulled = load(client.retrieve_study(by_id[0].study_uid))
    assert [i for i in pulled.issues if i.severity == "error"] == []
    mine = {s.uid: s for s in local.series}
    theirs = {s.uid: s for s in pulled.series}
    assert set(mine) == set(theirs) and len(mine) >= 7
    for uid, a in mine.items():
        b = theirs[uid]
        assert b.role == a.role and b.stack.timepoint == a.stack.timepoint, uid
        ga, gb = a.stack.geometry, b.stack.geometry
        np.testing.assert_array_equal(ga.slice_origins, gb.slice_origins)
        np.testing.assert_array_equal(ga.row_cosine, gb.row_cosine)
        np.testing.assert_array_equal(ga.col_cosine, gb.col_cosine)
        assert (ga.pixel_spacing, ga.shape, ga.frame_of_reference_uid) == (gb.pixel_spacing, gb.shape,
                                                                            gb.frame_of_reference_uid)  # fmt: skip
        np.testing.assert_array_equal(a.stack.data, b.stack.data)
        np.testing.assert_array_equal(a.stack.trigger_times, b.stack.trigger_times)


@pytest.mark.slow
def test_exports_are_stored_and_found_again(orthanc: pacs_server.OrthancServer, seeded: Path) -> None:
    """STOW of the exports to an untrusted PACS de-identifies them; QIDO finds them under their new study."""
    from deepoxymap.config import settings
    from deepoxymap.export import SourceIndex, analyse_case, push_exports
    from deepoxymap.model.loading import load_model
    from deepoxymap.phantom import load_subject

    if not settings().model_path.is_file():
        pytest.skip("no model: run `make model`")
    case = load_subject(seeded)
    analysis = analyse_case(case, load_model())
    client = _client(orthanc, trusted=False)
    res = push_exports(client, analysis, SourceIndex.from_case_paths([seeded]))
    assert res.deidentified and len(res.stored) == 6 and res.failed == ()
    (study_uid,) = res.study_uids
    found = client.search_studies(study_uid=study_uid)
    assert len(found) == 1
    series = client.search_series(study_uid)
    assert sorted(s["modality"] for s in series).count("SEG") == 4
    assert "SR" in {s["modality"] for s in series}
    stored = client.retrieve_study(study_uid)
    assert len(stored) == 6
    for name, data in stored:
        for s in (pacs_server.KNOWN_NAME, pacs_server.KNOWN_ID, pacs_server.KNOWN_ACCESSION):
            assert s.encode() not in data, name
    assert client.search_studies(patient_id=pacs_server.KNOWN_ID)[0].study_uid != study_uid


def test_unreachable_server_fails_fast() -> None:
    """A PACS that does not answer is named in a clear error within a second."""
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    t0 = time.perf_counter()
    with pytest.raises(PacsError, match="does not answer") as exc:
        PacsClient(url, timeout_s=5).check()
    assert time.perf_counter() - t0 < 2.0
    assert url in str(exc.value)


def test_wrong_credentials_are_named(orthanc: pacs_server.OrthancServer) -> None:
    """HTTP 401 becomes "refused the credentials"; no PACS configured is its own message."""
    with pytest.raises(PacsError, match="refused the credentials"):
        PacsClient(orthanc.dicomweb, username="nobody", password="wrong").check()
    with pytest.raises(PacsError, match="no PACS configured"):
        PacsClient("")


@pytest.mark.e2e
@pytest.mark.slow
def test_browser_loads_from_the_pacs_then_downloads_the_exports(
    orthanc: pacs_server.OrthancServer, seeded: Path, browser: Any, screenshots: Path
) -> None:
    """Load case -> From PACS (search, retrieve) -> Feature maps -> PDF and DICOM downloads -> Send to PACS."""
    from deepoxymap.config import settings

    if not settings().model_path.is_file():
        pytest.skip("no model: run `make model`")
    env = {
        "DEEPOXYMAP_PACS_URL": orthanc.dicomweb,
        "DEEPOXYMAP_PACS_USERNAME": orthanc.username,
        "DEEPOXYMAP_PACS_PASSWORD": orthanc.password,
    }
    with app_with(env) as url:
        page = browser.new_page(viewport={"width": 1600, "height": 2600})
        try:
            _pacs_journey(page, url, orthanc, screenshots)
        finally:
            page.close()


def _pacs_journey(page: Any, url: str, orthanc: pacs_server.OrthancServer, screenshots: Path) -> None:
    """The browser steps of the PACS test."""
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text("Open a demo case").first.wait_for(timeout=60_000)
    journey.goto_page(page, "Load case")
    page.get_by_role("tab", name="From PACS").click()
    page.locator(".st-key-pacs_pid input").fill(pacs_server.KNOWN_ID)
    page.locator(".st-key-pacs_pid input").press("Enter")
    journey.wait_idle(page)
    page.locator(".st-key-pacs_search button").click()
    page.locator(".st-key-pacs_retrieve button").wait_for(timeout=60_000)
    journey.wait_idle(page)
    assert page.locator("[data-testid='stDataFrame']").count() >= 1  # the studies found
    page.screenshot(path=str(screenshots / "10_pacs_search.png"), full_page=True)
    page.locator(".st-key-pacs_retrieve button").click()
    page.get_by_text("Series found").first.wait_for(timeout=120_000)
    journey.wait_idle(page)
    assert pacs_server.KNOWN_NAME not in page.content()
    journey.goto_page(page, "Feature maps")
    journey.prepare_exports(page)
    page.screenshot(path=str(screenshots / "11_feature_maps_exports.png"), full_page=True)
    got: dict[str, bytes] = {}
    for kind in ("report", "parametric_map", "seg_cam", "seg_cam_fractional", "sr"):
        with page.expect_download(timeout=180_000) as dl:
            page.locator(f".st-key-fm_dl_{kind} button").first.click()
        got[kind] = Path(dl.value.path()).read_bytes()
        assert dl.value.suggested_filename.startswith("deepoxymap_pacs-"), dl.value.suggested_filename
    assert got["report"].startswith(b"%PDF")
    for kind in ("parametric_map", "seg_cam", "seg_cam_fractional", "sr"):
        assert got[kind][128:132] == b"DICM", kind
        assert pacs_server.KNOWN_NAME.encode() not in got[kind], kind
        assert pacs_server.KNOWN_ID.encode() not in got[kind], kind
    sr = pydicom.dcmread(io.BytesIO(got["sr"]))
    assert sr.Modality == "SR"
    before = len(orthanc.get("/studies"))  # type: ignore[arg-type]
    page.locator(".st-key-fm_send_pacs button").click()
    page.get_by_text("object(s) on the PACS, de-identified").first.wait_for(timeout=180_000)
    page.screenshot(path=str(screenshots / "12_sent_to_pacs.png"), full_page=True)
    assert len(orthanc.get("/studies")) == before + 1  # type: ignore[arg-type]
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.e2e
@pytest.mark.slow
def test_browser_demo_case_downloads_every_export(app_url: str, browser: Any, demo_dir: Path) -> None:
    """A demo case (read again from its folder) offers all seven downloads; scar and edema SEGs are valid SEGs."""
    from deepoxymap.config import settings

    if not settings().model_path.is_file():
        pytest.skip("no model: run `make model`")
    page = browser.new_page(viewport={"width": 1600, "height": 2600})
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_text("Open a demo case").first.wait_for(timeout=60_000)
        journey.open_demo(page, "ischemic")
        journey.goto_page(page, "Feature maps")
        journey.prepare_exports(page, "seg_scar")
        for kind in ("seg_scar", "seg_edema", "sr"):
            button = page.locator(f".st-key-fm_dl_{kind} button").first
            assert button.is_enabled(), kind
            with page.expect_download(timeout=180_000) as dl:
                button.click()
            ds = pydicom.dcmread(dl.value.path())
            assert ds.Modality == ("SR" if kind == "sr" else "SEG"), kind
            assert dl.value.suggested_filename == export_names("SUBJECT002")[kind]
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()
