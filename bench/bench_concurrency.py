"""Concurrency benchmark: N browser sessions open a demo case, then Feature maps, at the same moment.

One app server (``streamlit run app.py``) serves every session. Each session is a
separate process driving its own Debian Chromium (Playwright, sync API): it opens
the ischemic demo case, waits at a barrier with the others, clicks Feature maps
and records the time until the OS-CMR panel is drawn and the script run is idle.
For N = 1, 3 and 6 the median and 95th percentile of that time are printed,
with their ratio to the single-session time measured in the same run, and the
server's peak resident memory (VmHWM of the server process).

Target (issue 15): with 6 concurrent sessions the 95th percentile is at most 3x
the single-session time, and peak server RSS stays under 2 GB.

Every session opens the *same* case there, so the server's per-case result store
(:mod:`deepoxymap.ui.inference`: one computation per case content, shared) does most
of the work once. A second table is therefore printed, not part of the target:
sessions open *different* demo cases (session ``i`` the ``i``-th case of the
manifest, round robin: 6 sessions over the 4 demo cases), each N on a fresh server
whose model warm-up has finished (its CPU idle) and which has computed no case yet,
against one session on a fresh server opening one case.

Run: ``.venv/bin/python -m bench concurrency`` (minutes; needs the demo cases,
the shipped model and /usr/bin/chromium).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

COUNTS = (1, 3, 6)
TARGET_P95_RATIO = 3.0
TARGET_RSS_GB = 2.0


def _session(url: str, barrier: Any, out: Any, label: str = "ischemic") -> None:
    """One browser session: demo case ``label``, barrier, Feature maps; puts (seconds or error text) on ``out``."""
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import conftest as e2e
    import journey
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=e2e.CHROMIUM, args=e2e.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.goto(url)
            page.get_by_text("Open a demo case").first.wait_for(timeout=180_000)
            journey.wait_idle(page, timeout=300)
            journey.open_demo(page, label)
            barrier.wait(timeout=600)
            t0 = time.perf_counter()
            journey.nav_link(page, "Feature maps").click()
            page.locator(".st-key-fm_panel_os").first.wait_for(timeout=600_000)
            journey.wait_idle(page, timeout=600)
            out.put(time.perf_counter() - t0)
            browser.close()
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        out.put(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            barrier.abort()


def _peak_rss_gb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_cpu_idle(pid: int, timeout: float = 180.0, window: float = 1.5, busy: float = 0.1) -> float:
    """Wait until process ``pid`` used under ``busy`` CPU seconds in ``window`` s; returns the seconds waited."""
    t0 = time.perf_counter()
    last = _cpu_s(pid)
    while time.perf_counter() - t0 < timeout:
        time.sleep(window)
        now = _cpu_s(pid)
        if now - last < busy:
            return time.perf_counter() - t0
        last = now
    return time.perf_counter() - t0


def _open_home(url: str, out: Any) -> None:
    """A session that only opens the app (its first script run starts the model warm-up)."""
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import conftest as e2e
    import journey
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=e2e.CHROMIUM, args=e2e.CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            page.get_by_text("Open a demo case").first.wait_for(timeout=180_000)
            journey.wait_idle(page, timeout=300)
            browser.close()
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        out.put(f"{type(exc).__name__}: {exc}")


def _round(url: str, n: int, labels: list[str] | None = None) -> list[float | str]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    names = labels or ["ischemic"]
    procs = [ctx.Process(target=_session, args=(url, barrier, out, names[i % len(names)])) for i in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return results


def _p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(0.95 * (len(s) - 1))))]


def _distinct_cases(labels: list[str]) -> tuple[dict[int, list[float]], float, list[str]]:
    """Each N on a fresh, warmed server; session ``i`` opens ``labels[i % len]``: times, peak RSS, errors."""
    import conftest as e2e

    table: dict[int, list[float]] = {}
    errors: list[str] = []
    rss = 0.0
    for n in COUNTS:
        port = e2e.free_port()
        proc = e2e.start_streamlit(ROOT / "app.py", port)
        try:
            url = f"http://127.0.0.1:{port}"
            e2e.wait_healthy(url, timeout=120)
            ctx = mp.get_context("spawn")
            out = ctx.Queue()
            opener = ctx.Process(target=_open_home, args=(url, out))
            opener.start()
            if (got := out.get(timeout=600)) != "ok":
                errors.append(str(got))
            opener.join(timeout=60)
            _wait_cpu_idle(proc.pid)  # the model is loaded and traced; no case computed yet
            res = _round(url, n, labels)
            table[n] = [r for r in res if isinstance(r, float)]
            errors += [str(r) for r in res if not isinstance(r, float)]
            rss = max(rss, _peak_rss_gb(proc.pid))
        finally:
            e2e.stop(proc)
    return table, rss, errors


def _print_table(table: dict[int, list[float]], single: float) -> None:
    print("N sessions | median s | p95 s | p95 / single")
    for n in COUNTS:
        med, p95 = statistics.median(table[n]), _p95(table[n])
        print(f"{n:10d} | {med:8.2f} | {p95:5.2f} | {p95 / single:5.2f}")


def main() -> int:
    """Run N = 1, 3, 6 against one server; print medians, p95, ratios and peak RSS; 0 if the targets are met.

    Then the different-cases table (reported, not judged).
    """
    import conftest as e2e

    from deepoxymap.config import settings
    from deepoxymap.ui import loading

    s = settings()
    if not (s.demo_dir / "manifest.csv").is_file() or not s.model_path.is_file():
        print("needs the demo cases (`make demo`) and the shipped model")
        return 1
    if not Path(e2e.CHROMIUM).exists():
        print(f"needs Chromium at {e2e.CHROMIUM}")
        return 1
    port = e2e.free_port()
    proc = e2e.start_streamlit(ROOT / "app.py", port)
    table: dict[int, list[float]] = {}
    errors: list[str] = []
    try:
        e2e.wait_healthy(f"http://127.0.0.1:{port}", timeout=120)
        url = f"http://127.0.0.1:{port}"
        _round(url, 1)  # warm-up: model load and TensorFlow start-up are not what is measured
        for n in COUNTS:
            res = _round(url, n)
            table[n] = [r for r in res if isinstance(r, float)]
            errors += [str(r) for r in res if not isinstance(r, float)]
        rss = _peak_rss_gb(proc.pid)
    finally:
        e2e.stop(proc)
    if errors or any(not v for v in table.values()):
        print("sessions failed:", *errors[:3], sep="\n  ")
        return 1
    single = statistics.median(table[1])
    print("every session opens the ischemic demo case (one server, after a warm-up session):")
    _print_table(table, single)
    print(f"single-session time to panels (anchor): {single:.2f} s; peak server RSS {rss:.2f} GB")
    ratio6 = _p95(table[COUNTS[-1]]) / single
    ok = ratio6 <= TARGET_P95_RATIO and rss < TARGET_RSS_GB
    print(
        f"target: p95 at N={COUNTS[-1]} <= {TARGET_P95_RATIO:.0f}x single ({ratio6:.2f}x) and RSS < "
        f"{TARGET_RSS_GB:.0f} GB ({rss:.2f}) -> {'met' if ok else 'MISSED'}"
    )

    labels = [r.label for r in loading.demo_cases()]
    dtable, drss, derrors = _distinct_cases(labels)
    if derrors or any(not v for v in dtable.values()):
        print("different-cases sessions failed:", *derrors[:3], sep="\n  ")
        return 1
    dsingle = statistics.median(dtable[1])
    print(
        f"\nsessions open different demo cases ({len(labels)} cases, round robin; each N on a fresh warmed server "
        "that has computed no case):"
    )
    _print_table(dtable, dsingle)
    print(
        f"single-session time to panels (anchor): {dsingle:.2f} s; peak server RSS {drss:.2f} GB (reported, not judged)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
