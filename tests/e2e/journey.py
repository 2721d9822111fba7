"""Browser steps shared by the e2e test and ``bench/bench_app.py``."""

from __future__ import annotations

import time
from typing import Any

RUNNING = '[data-testid="stStatusWidget"], [data-testid="stSkeleton"], [data-stale="true"]'


def wait_idle(page: Any, timeout: float = 120.0, settle: float = 0.25) -> None:
    """Wait until Streamlit has finished the current script run (no "Running" widget for ``settle`` s)."""
    deadline = time.perf_counter() + timeout
    quiet_since = None
    while time.perf_counter() < deadline:
        running = page.evaluate(
            "(sel) => Array.from(document.querySelectorAll(sel)).some(e => e.offsetParent !== null)", RUNNING
        )
        now = time.perf_counter()
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= settle:
            return
        page.wait_for_timeout(50)
    raise TimeoutError("the app kept running")


PAGE_HEADINGS = {"Home": "DeepOxyMap"}


NAV_LINKS = ".st-key-dox_nav a"
"""The app's own page links in the sidebar (``deepoxymap.ui.navigation.links_ui``)."""


def nav_link(page: Any, title: str) -> Any:
    """The app's sidebar link to the page ``title`` (page titles are distinct words)."""
    return page.locator(NAV_LINKS, has_text=title).first


def goto_page(page: Any, title: str) -> None:
    """Click a page in the app's sidebar navigation (keeps the session)."""
    nav_link(page, title).click()
    page.get_by_role("heading", name=PAGE_HEADINGS.get(title, title), exact=True).first.wait_for(timeout=120_000)
    page.wait_for_timeout(300)
    wait_idle(page)


def choose_option(page: Any, key: str, text: str, attempts: int = 6) -> None:
    """Pick the option containing ``text`` in the selectbox keyed ``key``, and check the choice took.

    A script rerun still in flight can swallow the click that opens the list, or re-render the list (the
    option detaches under the pointer), so each attempt opens the list, clicks with a short timeout and
    reads back the value the selectbox's input shows; a failed attempt closes the list and waits for the app.
    """
    from playwright.sync_api import Error as PlaywrightError

    container = page.locator(f".st-key-{key}").first
    box = container.locator("input").first
    box.wait_for(state="visible", timeout=30_000)
    for _ in range(attempts):
        wait_idle(page)
        try:
            box.click(timeout=5_000)
            option = page.locator('[role="option"]', has_text=text).first
            option.wait_for(state="visible", timeout=5_000)
            option.click(timeout=5_000)
        except PlaywrightError:
            page.keyboard.press("Escape")
            continue
        wait_idle(page)
        if text in (box.input_value() or ""):
            return
    raise AssertionError(f"could not choose {text!r} in the selectbox {key!r}: it shows {box.input_value()!r}")


def open_demo(page: Any, label: str) -> None:
    """Load case page -> Demo cases tab -> the button whose label starts with ``label``."""
    goto_page(page, "Load case")
    page.get_by_role("tab", name="Demo cases").click()
    page.locator("[class*='st-key-load_demo_'] button", has_text=label).first.click()
    page.get_by_text("Series found").first.wait_for(timeout=120_000)
    wait_idle(page)


def prepare_exports(page: Any, wait_for: str = "report") -> None:
    """Feature maps: switch on "Prepare the report and DICOM exports" (off by default), wait for a download button."""
    page.locator(".st-key-_w_dox_fm_exports label").first.click(timeout=240_000)
    page.locator(f".st-key-fm_dl_{wait_for} button").wait_for(timeout=240_000)
    wait_idle(page)


def plot_title(page: Any, key: str) -> str:
    """Text of the plotly title inside the element with Streamlit key ``key``."""
    loc = page.locator(f".st-key-{key} .gtitle")
    return loc.first.text_content() if loc.count() else ""


_PANEL_JS = """(k) => {
  const el = document.querySelector('.st-key-' + k);
  if (!el) return null;
  const t = el.querySelector('.gtitle') || el.querySelector('[data-testid="stMarkdownContainer"]');
  const imgs = Array.from(el.querySelectorAll('img'));
  return {
    title: t ? t.textContent : '',
    src: imgs.map(i => i.src.length + ':' + i.src.slice(-64)).join(','),
    ready: imgs.every(i => i.complete && i.naturalWidth > 0),
  };
}"""


def panel_title(page: Any, key: str) -> str:
    """The title of the panel keyed ``key``: a Feature-maps panel's heading, or a plotly chart's title."""
    got = page.evaluate(_PANEL_JS, key)
    return str(got["title"]) if got else ""


def panel_png(page: Any, key: str) -> Any:
    """The picture of the Feature-maps panel keyed ``key`` as drawn, uint8 ``[H, W, 3]`` (its ``img`` data URI)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    src = page.locator(f".st-key-{key} img").first.get_attribute("src")
    if not src or not src.startswith("data:image/png;base64,"):
        raise AssertionError(f"{key}: no PNG image drawn (src {str(src)[:40]!r})")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def chart_png(page: Any, key: str) -> Any:
    """The picture of the server-drawn chart keyed ``key`` (a Feature-maps bullseye or the agreement bars),
    uint8 ``[H, W, 3]``, decoded from its ``img`` data URI (:data:`deepoxymap.ui.charts.CHART_URI_PREFIX`)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from deepoxymap.ui import charts

    loc = page.locator(f".st-key-{key} img").first
    loc.wait_for(timeout=60_000)
    src = loc.get_attribute("src")
    if not src or not src.startswith(charts.CHART_URI_PREFIX):
        raise AssertionError(f"{key}: no chart picture drawn (src {str(src)[:40]!r})")
    if not loc.evaluate("i => i.complete && i.naturalWidth > 0"):
        raise AssertionError(f"{key}: the browser did not decode the chart picture")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def plotly_count(page: Any) -> int:
    """Number of plotly charts drawn on the page now."""
    return int(page.locator(".js-plotly-plot").count())


def trace_count(page: Any, key: str) -> int:
    """Number of plotly traces in the chart with Streamlit key ``key``."""
    return int(
        page.evaluate(
            "(k) => { const el = document.querySelector('.st-key-' + k + ' .js-plotly-plot');"
            " return el && el.data ? el.data.length : 0; }",
            key,
        )
    )


def slider_input(page: Any, key: str) -> Any:
    """The range input of the Streamlit slider with key ``key``."""
    return page.locator(f".st-key-{key} input[type='range']").first


def slider_state(page: Any, key: str) -> tuple[int, int]:
    """``(value, max)`` of a slider."""
    v, m = slider_input(page, key).evaluate("e => [e.value, e.max]")
    return int(float(v)), int(float(m))


def press_slider(page: Any, key: str, times: int = 1, arrow: str = "ArrowRight") -> None:
    """Move the slider with Streamlit key ``key`` with the keyboard (one rerun per release)."""
    handle = slider_input(page, key)
    handle.focus()
    for _ in range(times):
        handle.press(arrow)


def slice_change_seconds(page: Any, panel_key: str = "fm_panel_os", slider_key: str = "_w_dox_fm_slice") -> float:
    """Seconds from a slice-slider key press to the panel showing the new slice.

    Done when the panel's title (a plotly title or the panel heading) or its image changed and
    every image in it is loaded and decoded (``complete``, ``naturalWidth > 0``), and the
    script run is over.
    """
    before = page.evaluate(_PANEL_JS, panel_key)
    mark = (before["title"] + "|" + before["src"]) if before else ""
    value, vmax = slider_state(page, slider_key)
    arrow = "ArrowLeft" if value == vmax else "ArrowRight"
    page.evaluate(f"() => {{ window.__doxPanel = {_PANEL_JS}; }}")
    t0 = time.perf_counter()
    press_slider(page, slider_key, 1, arrow)
    page.wait_for_function(
        "([k, b]) => { const s = window.__doxPanel(k); return s && s.ready && (s.title + '|' + s.src) !== b; }",
        arg=[panel_key, mark],
        timeout=60_000,
    )
    wait_idle(page, settle=0.05)
    return time.perf_counter() - t0
