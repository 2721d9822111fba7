"""The app stays itself when the browser clicks early: own navigation, wide layout, research-use sidebar.

Streamlit runs a ``pages/`` folder as a legacy multipage app until ``app.py`` has called
``st.navigation`` once in the server process, so each test here starts its own server:
the first session of a fresh process is the one that could fall into that state.
"""

from __future__ import annotations

from pathlib import Path

import journey
import pytest

from deepoxymap.ui.navigation import PAGES
from deepoxymap.ui.sidebar import RESEARCH_LINE

pytestmark = pytest.mark.e2e

# Records, from the first byte of the page on, whether Streamlit's own page list ever appeared.
WATCH_LEGACY_NAV = """
window.__legacyNav = 0;
new MutationObserver(() => {
  if (document.querySelector('[data-testid="stSidebarNav"], [data-testid="stSidebarNavItems"]')) {
    window.__legacyNav += 1;
  }
}).observe(document, {subtree: true, childList: true});
"""

CLICK_FIRST_VIEWER_LINK = """() => {
  window.__clicked = null;
  const grab = () => {
    const a = Array.from(document.querySelectorAll('[data-testid="stSidebar"] a')).find(a => /viewer/i.test(a.innerText));
    if (a && window.__clicked === null) { window.__clicked = a.innerText; a.click(); return true; }
    return false;
  };
  if (!grab()) {
    const o = new MutationObserver(() => { if (grab()) o.disconnect(); });
    o.observe(document, {subtree: true, childList: true});
  }
}"""


def _new_page(browser: object) -> object:
    page = browser.new_page(viewport={"width": 1600, "height": 1200})  # type: ignore[attr-defined]
    page.add_init_script(WATCH_LEGACY_NAV)
    return page


def _assert_app_shell(page: object, heading: str, where: str) -> None:
    """The app's own links, the wide layout and the research-use line are on screen; no Streamlit page list."""
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=60_000)  # type: ignore[attr-defined]
    nav = page.locator(journey.NAV_LINKS)  # type: ignore[attr-defined]
    nav.first.wait_for(timeout=20_000)
    labels = [t.strip() for t in nav.all_inner_texts()]
    assert len(labels) == len(PAGES), f"{where}: app links {labels}"
    for spec, label in zip(PAGES, labels, strict=True):
        assert label.endswith(spec.title), f"{where}: link {label!r} is not {spec.title!r}"
    sidebar = page.locator('[data-testid="stSidebar"]')  # type: ignore[attr-defined]
    sidebar.get_by_text(RESEARCH_LINE).first.wait_for(timeout=30_000)
    width = page.evaluate(  # type: ignore[attr-defined]
        "() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').getBoundingClientRect().width"
    )
    assert width > 1000, f"{where}: main column {width:.0f} px wide: not the wide layout"
    legacy = page.evaluate("() => window.__legacyNav")  # type: ignore[attr-defined]
    assert legacy == 0, f"{where}: Streamlit's file-name page list appeared"
    assert page.locator('[data-testid="stException"]').count() == 0, where  # type: ignore[attr-defined]


def test_sidebar_click_at_once_keeps_the_app(fresh_app: str, browser: object, screenshots: Path) -> None:
    """Open the app on a fresh server and click "Viewer" in the sidebar the moment a link is attached (no idle wait).

    Then click "Cohort audit": on both pages the app's own navigation, the wide layout and the
    research-use sidebar are there, and Streamlit's file-name page list never appeared.
    """
    page = _new_page(browser)
    try:
        page.goto(fresh_app, wait_until="commit")  # type: ignore[attr-defined]
        # Whatever sidebar link says "viewer" first (the app's, or Streamlit's file-name link if it
        # ever showed) is clicked by the page itself the moment it is attached: no idle wait, no
        # actionability wait. On the old layout this click always landed on Streamlit's "viewer".
        page.evaluate(CLICK_FIRST_VIEWER_LINK)  # type: ignore[attr-defined]
        page.wait_for_function("() => window.__clicked !== null", timeout=60_000)  # type: ignore[attr-defined]
        _assert_app_shell(page, "Viewer", "after the early click")
        clicked = page.evaluate("() => window.__clicked")  # type: ignore[attr-defined]
        assert clicked.strip().endswith("Viewer"), f"the early click hit {clicked!r}, not the app's link"
        assert page.url.rstrip("/").endswith("/viewer"), page.url  # type: ignore[attr-defined]
        page.screenshot(path=str(screenshots / "nav_01_after_early_click.png"))  # type: ignore[attr-defined]
        journey.nav_link(page, "Cohort audit").click()
        _assert_app_shell(page, "Cohort audit", "on the next page")
        page.screenshot(path=str(screenshots / "nav_02_next_page.png"))  # type: ignore[attr-defined]
    finally:
        page.close()  # type: ignore[attr-defined]


def test_page_url_as_first_request_keeps_the_app(fresh_app: str, browser: object, screenshots: Path) -> None:
    """A page URL (``/classify``) as the very first request of a fresh server still runs through ``app.py``.

    In Streamlit's legacy ``pages/`` mode that request runs ``pages/classify.py`` alone; the
    page's ``navigation.ensure_app()`` reruns it through ``app.py``. A second browser session
    then opens ``/feature_maps`` the same way.
    """
    page = _new_page(browser)
    try:
        page.goto(f"{fresh_app}/classify", wait_until="commit")  # type: ignore[attr-defined]
        _assert_app_shell(page, "Classify", "first request /classify")
        page.screenshot(path=str(screenshots / "nav_03_first_request_classify.png"))  # type: ignore[attr-defined]
    finally:
        page.close()  # type: ignore[attr-defined]
    other = _new_page(browser)
    try:
        other.goto(f"{fresh_app}/feature_maps", wait_until="commit")  # type: ignore[attr-defined]
        _assert_app_shell(other, "Feature maps", "second session /feature_maps")
        journey.nav_link(other, "Home").click()
        _assert_app_shell(other, "DeepOxyMap", "Home after /feature_maps")
    finally:
        other.close()  # type: ignore[attr-defined]
