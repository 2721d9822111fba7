"""App benchmark, measured in a real browser (Debian Chromium via Playwright).

1. **Cold start**: from launching the server to the first page shown in
   the browser, for DeepOxyMap (served by :mod:`deepoxymap.ui.serve`, so its
   model warm-up runs meanwhile) and for a trivial one-line Streamlit page.
2. **First Feature-maps render**: after opening the ischemic demo case, the
   click on Feature maps to the OS-CMR panel drawn and the script run over
   (model load, every slice's maps, bullseyes, agreement). The server is
   started for this measurement as ``make run`` starts it
   (:mod:`deepoxymap.ui.serve`: the model's background warm-up,
   :func:`deepoxymap.ui.warmup.start`, begins at server start) and the page is
   opened the moment the server answers, so the warm-up and the case's prefetch
   (:func:`deepoxymap.ui.analysis.prefetch`) have only the time Streamlit takes
   to come up plus the time a user takes to open the case and click. The time
   from the first page view to that click is printed beside it.
3. **Warm Feature-maps slice change**: key press on the slice slider to the
   OS-CMR panel showing the new slice, its image loaded (every slice visited
   once before, so CAMs, resampled panels and panel images are cached),
   against a trivial page whose slider redraws one plotly heatmap of the same
   size.

The anchors run in the same process on the same machine; the ratios are
printed. Targets (issue 15): warm slice change <= 0.3 s median, first
Feature-maps render <= 3 s.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

TRIVIAL = """
import numpy as np
import plotly.graph_objects as go
import streamlit as st

st.title("trivial")
k = st.slider("slice", 1, 3, 2, key="trivial_slider")
z = np.random.default_rng(k).random((128, 112)).astype("float32")
fig = go.Figure(go.Heatmap(z=z, colorscale="Gray", showscale=False))
fig.update_layout(title=dict(text=f"slice {k}"), height=360)
st.plotly_chart(fig, key="trivial_plot")
"""

TARGET_WARM_S = 0.3
TARGET_FIRST_S = 3.0


def _cold_start(script: Path, text: str, browser: object) -> float:
    import conftest as e2e  # tests/e2e/conftest.py: server helpers

    port = e2e.free_port()
    t0 = time.perf_counter()
    proc = e2e.start_streamlit(script, port)
    try:
        e2e.wait_healthy(f"http://127.0.0.1:{port}", timeout=120)
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(f"http://127.0.0.1:{port}", wait_until="domcontentloaded")
        page.get_by_text(text).first.wait_for(timeout=120_000)
        dt = time.perf_counter() - t0
        page.close()
        return dt
    finally:
        e2e.stop(proc)


def _warm_changes(page: object, slider_key: str, panel_key: str, n_slices: int, repeats: int) -> list[float]:
    import journey

    # visit every slice once (cold compute), then time warm changes
    for _ in range(n_slices):
        journey.slice_change_seconds(page, panel_key, slider_key)
    return [journey.slice_change_seconds(page, panel_key, slider_key) for _ in range(repeats)]


def main() -> int:
    """Run the measurements; print figures and ratios; 0 if both Feature-maps targets are met."""
    import conftest as e2e
    import journey
    from playwright.sync_api import sync_playwright

    from deepoxymap.config import settings

    s = settings()
    if not (s.demo_dir / "manifest.csv").is_file():
        print("demo cases not generated: run `make demo`")
        return 1
    if not s.model_path.is_file():
        print(f"note: no model at {s.model_path}; Feature maps is measured without CAMs")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        trivial = Path(tmp) / "trivial.py"
        trivial.write_text(TRIVIAL)
        browser = pw.chromium.launch(executable_path=e2e.CHROMIUM, args=e2e.CHROMIUM_ARGS)
        try:
            cold_trivial = _cold_start(trivial, "trivial", browser)
            cold_app = _cold_start(ROOT / "app.py", "Open a demo case", browser)

            # trivial warm slider
            port = e2e.free_port()
            proc = e2e.start_streamlit(trivial, port)
            try:
                e2e.wait_healthy(f"http://127.0.0.1:{port}")
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}")
                page.locator(".st-key-trivial_plot .js-plotly-plot").first.wait_for(timeout=60_000)
                journey.wait_idle(page)
                warm_trivial = _warm_changes(page, "trivial_slider", "trivial_plot", 3, 7)
                page.close()
            finally:
                e2e.stop(proc)

            # the app: demo case -> Feature maps -> slice changes
            port = e2e.free_port()
            proc = e2e.start_streamlit(ROOT / "app.py", port)
            try:
                e2e.wait_healthy(f"http://127.0.0.1:{port}")
                page = browser.new_page(viewport={"width": 1600, "height": 1200})
                t_open = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}")
                page.get_by_text("Open a demo case").first.wait_for(timeout=60_000)
                journey.wait_idle(page)
                journey.open_demo(page, "ischemic")
                t_fm = time.perf_counter()
                lead = t_fm - t_open  # first page view -> click: the model warm-up's head start
                journey.goto_page(page, "Feature maps")
                page.locator(".st-key-fm_panel_os img").first.wait_for(timeout=180_000)
                journey.wait_idle(page)
                fm_first = time.perf_counter() - t_fm
                n = journey.slider_state(page, "_w_dox_fm_slice")[1]
                first = journey.slice_change_seconds(page)
                warm_app = _warm_changes(page, "_w_dox_fm_slice", "fm_panel_os", n, 7)
                page.close()
            finally:
                e2e.stop(proc)
        finally:
            browser.close()

    wt, wa = statistics.median(warm_trivial), statistics.median(warm_app)
    print(
        f"cold start to first page:   app {cold_app:6.2f} s   trivial {cold_trivial:6.2f} s   ratio {cold_app / cold_trivial:5.2f}"
    )
    print(f"Feature maps first render (model load, every slice's CAM, bullseyes, agreement): {fm_first:.2f} s")
    print(f"  (first page view to the Feature-maps click, while the model warm-up runs: {lead:.2f} s)")
    print(f"Feature-maps slice change:  first (cold slice) {first:.2f} s")
    print(
        f"warm slice change (median of {len(warm_app)}): app {wa:6.3f} s   trivial {wt:6.3f} s   ratio {wa / wt:5.2f}"
        f"   (app max {max(warm_app):.3f} s)"
    )
    ok_warm, ok_first = wa <= TARGET_WARM_S, fm_first <= TARGET_FIRST_S
    print(f"target: warm slice change <= {TARGET_WARM_S:.1f} s median -> {'met' if ok_warm else 'MISSED'}")
    print(f"target: first Feature-maps render <= {TARGET_FIRST_S:.0f} s -> {'met' if ok_first else 'MISSED'}")
    return 0 if ok_warm and ok_first else 1


if __name__ == "__main__":
    raise SystemExit(main())
