"""Concurrency benchmark: N sessions open a demo case, then Feature maps, at the same moment.

One app server (``streamlit run app.py``) serves every session. Each session is a
separate process. It connects, waits at a barrier with the others, opens the ischemic
demo case, goes to Feature maps and records the time from the click on the case until
the panels are there and the script run is idle. That is the journey of the issue
that asked for this benchmark (six sessions "each opening a demo case and then Feature
maps" waited 132-145 s for the panels, one session alone 7-10 s). For N = 1, 3 and 6
the median and 95th percentile of that time are printed, with their ratio to the
single-session time measured in the same run, and the server's peak resident memory
(VmHWM of the server process).

Every round runs on a fresh server whose model warm-up has finished (the first script
run starts it; the benchmark then waits for the server's CPU to go idle): model load
and TensorFlow start-up are a once-per-server cost and are not what is measured, but
no case has been computed yet. Sessions on the same case share its computation through
the server's per-case result store (:mod:`deepoxymap.ui.inference`: one computation
per case content; a session asking for work under way waits for it).

Target (issue 15): with 6 concurrent sessions the 95th percentile is at most 3x
the single-session time, and peak server RSS stays under 2 GB. Judged on the
websocket table above.

Two client kinds, each against its own single-session anchor:

* **websocket clients** (:mod:`bench.ws_client`, judged): each speaks Streamlit's
  protocol on ``/_stcore/stream`` as a browser tab's script runs would (page change,
  button click) and then fetches the run's PNG panels over HTTP. Time to panels is
  the server's work plus the transfer, which is what the server's design decides:
  in use each browser runs on its user's machine.
* **browser sessions** (reported): each drives its own Debian Chromium (Playwright)
  and waits until the OS-CMR panel is drawn and the page is idle. Here six Chromiums
  share the server's two cores, so the table also prints how the round's CPU time
  split between the server process and everything else (the browsers).

Two further tables per kind are printed, not judged:

* **warm**: one server, a warm-up session has already computed the ischemic case, and
  each session has the case open before the barrier; timed from the click on Feature
  maps. Every result is cached, so this is Streamlit's own cost of one page run per
  session. Those runs hold the GIL of the one server process, so they queue: the
  ratio grows about as ``N * W / (W + L)`` (``W`` the server's work per run, ``L`` the
  rest of the single-session time).
* **different cases**: session ``i`` opens the ``i``-th demo case of the manifest
  (round robin: 6 sessions over the 4 demo cases), cold as above. Here the server has
  four cases' work to do on its two cores, against one case for the anchor.

Run: ``.venv/bin/python -m bench concurrency`` (minutes; needs the demo cases,
the shipped model and, for the browser tables, /usr/bin/chromium).
``DEEPOXYMAP_BENCH_CLIENTS=ws`` runs only the websocket tables (``browser``: only the
browser ones).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

COUNTS = (1, 3, 6)
ROUNDS = 3
"""Rounds per N in the same-case tables; their times are pooled (the anchor is the median of 3 single sessions)."""
TARGET_P95_RATIO = 3.0
TARGET_RSS_GB = 2.0


def _ws_session(url: str, barrier: Any, out: Any, label: str = "ischemic", cold: bool = False) -> None:
    """One websocket session: demo case ``label``, barrier, Feature maps + its images; puts seconds or error text.

    ``cold``: the demo case is opened after the barrier, so the time runs from the click on the demo case
    to the Feature-maps panels (loading, prediction and every slice's maps included); otherwise it runs
    from the click on Feature maps with the case already open.
    """
    import asyncio

    sys.path.insert(0, str(ROOT))
    from bench.ws_client import Session, button_id

    async def journey() -> float:
        async with Session(url) as s:
            await s.rerun()
            load = await s.rerun("Load case")
            demo = button_id(load, "load_demo_", label)

            async def open_case() -> None:
                opened = await s.rerun(widgets=[(demo, True)])
                if not any("Series found" in t for t in opened.texts) or opened.exceptions:
                    raise RuntimeError(f"demo case {label!r} did not open: {opened.exceptions[:1]}")

            if not cold:
                await open_case()
            barrier.wait(timeout=600)
            t0 = time.perf_counter()
            if cold:
                await open_case()
            fm = await s.rerun("Feature maps")
            s.fetch_media(fm)
            dt = time.perf_counter() - t0
            if fm.exceptions or len(fm.media) < 4:
                raise RuntimeError(f"Feature maps drew {len(fm.media)} images, errors {fm.exceptions[:1]}")
            return dt

    try:
        out.put(asyncio.run(journey()))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        out.put(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            barrier.abort()


def _session(url: str, barrier: Any, out: Any, label: str = "ischemic", cold: bool = False) -> None:
    """One browser session: demo case ``label``, barrier, Feature maps; puts (seconds or error text) on ``out``.

    ``cold``: as in :func:`_ws_session`, the demo case is opened after the barrier, inside the timed journey.
    """
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
            if not cold:
                journey.open_demo(page, label)
            barrier.wait(timeout=600)
            t0 = time.perf_counter()
            if cold:
                journey.open_demo(page, label)
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


def _total_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (``/proc/stat``, all cores)."""
    import os

    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    """One round of N sessions: their times (or errors) and where the round's CPU time went."""

    times: list[float]
    errors: list[str]
    server_cpu_s: float
    total_cpu_s: float


def _round(
    url: str,
    n: int,
    kind: str,
    labels: list[str] | None = None,
    server_pid: int | None = None,
    cold: bool = False,
) -> Round:
    """N sessions at once (``labels`` round robin); ``cold``: each opens its case inside the timed journey."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    names = labels or ["ischemic"]
    target = _ws_session if kind == "ws" else _session
    procs = [ctx.Process(target=target, args=(url, barrier, out, names[i % len(names)], cold)) for i in range(n)]
    s0 = _cpu_s(server_pid) if server_pid else 0.0
    t0 = _total_cpu_s()
    for p in procs:
        p.start()
    results = [out.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    server = (_cpu_s(server_pid) - s0) if server_pid else float("nan")
    return Round(
        [r for r in results if isinstance(r, float)],
        [str(r) for r in results if not isinstance(r, float)],
        server,
        _total_cpu_s() - t0,
    )


def _p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(0.95 * (len(s) - 1))))]


def _warm_same_case(kind: str) -> tuple[dict[int, Round], float]:
    """One server, a warm-up session, then N = 1, 3, 6 sessions on the ischemic case: rounds, peak RSS."""
    import conftest as e2e

    port = e2e.free_port()
    proc = e2e.start_streamlit(ROOT / "app.py", port)
    table: dict[int, Round] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        e2e.wait_healthy(url, timeout=120)
        _round(url, 1, kind)  # warm-up: model load and TensorFlow start-up are not what is measured
        for n in COUNTS:
            table[n] = _pool([_round(url, n, kind, server_pid=proc.pid) for _ in range(ROUNDS)])
        rss = _peak_rss_gb(proc.pid)
    finally:
        e2e.stop(proc)
    return table, rss


def _ws_open_home(url: str, out: Any) -> None:
    """As :func:`_open_home`, over a websocket: one script run of the home page (starts the model warm-up)."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from bench.ws_client import Session

    async def home() -> None:
        async with Session(url) as s:
            await s.rerun()

    try:
        asyncio.run(home())
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        out.put(f"{type(exc).__name__}: {exc}")


def _pool(rounds: list[Round]) -> Round:
    """The rounds' times pooled, their CPU seconds averaged per round."""
    return Round(
        [t for r in rounds for t in r.times],
        [e for r in rounds for e in r.errors],
        sum(r.server_cpu_s for r in rounds) / len(rounds),
        sum(r.total_cpu_s for r in rounds) / len(rounds),
    )


def _cold_rounds(kind: str, labels: list[str], rounds: int) -> tuple[dict[int, Round], float]:
    """Cold journeys: each round of N sessions on a fresh server whose model warm-up has finished.

    The server has loaded and traced the model (its CPU is idle) but has computed no case, and each
    session opens its case (``labels[i % len]``) inside the timed journey. Returns the pooled rounds
    per N and the peak server RSS (GB).
    """
    import conftest as e2e

    table: dict[int, Round] = {}
    rss = 0.0
    for n in COUNTS:
        done: list[Round] = []
        for _ in range(rounds):
            port = e2e.free_port()
            proc = e2e.start_streamlit(ROOT / "app.py", port)
            try:
                url = f"http://127.0.0.1:{port}"
                e2e.wait_healthy(url, timeout=120)
                ctx = mp.get_context("spawn")
                out = ctx.Queue()
                opener = ctx.Process(target=_ws_open_home if kind == "ws" else _open_home, args=(url, out))
                opener.start()
                got = out.get(timeout=600)
                opener.join(timeout=60)
                _wait_cpu_idle(proc.pid)  # the model is loaded and traced; no case computed yet
                r = _round(url, n, kind, labels, server_pid=proc.pid, cold=True)
                if got != "ok":
                    r.errors.append(str(got))
                done.append(r)
                rss = max(rss, _peak_rss_gb(proc.pid))
            finally:
                e2e.stop(proc)
        table[n] = _pool(done)
    return table, rss


def _failed(table: dict[int, Round]) -> list[str]:
    return [e for r in table.values() for e in r.errors] + [
        f"N={n}: no session finished" for n, r in table.items() if not r.times
    ]


def _print_table(table: dict[int, Round], single: float) -> None:
    print("N sessions | median s | p95 s | p95 / single | server CPU s | other CPU s (clients) (CPU: per round)")
    for n in COUNTS:
        r = table[n]
        med, p95 = statistics.median(r.times), _p95(r.times)
        print(
            f"{n:10d} | {med:8.2f} | {p95:5.2f} | {p95 / single:12.2f} | {r.server_cpu_s:12.1f} | "
            f"{r.total_cpu_s - r.server_cpu_s:8.1f}"
        )


KIND_NAMES = {"ws": "websocket clients", "browser": "browser sessions (headless Chromium on the same cores)"}


def _show(title: str, table: dict[int, Round]) -> tuple[float, float] | None:
    """Print one table under ``title``; returns (single-session median, p95 ratio at the largest N), or None on errors."""
    if errs := _failed(table):
        print(f"{title}: failed:", *errs[:3], sep="\n  ")
        return None
    single = statistics.median(table[1].times)
    print(f"\n{title}:")
    _print_table(table, single)
    return single, _p95(table[COUNTS[-1]].times) / single


def main() -> int:
    """Per client kind: the cold same-case table (judged for websocket clients), then the two reported ones.

    Returns 0 if the websocket cold same-case table meets the target (and RSS stays under 2 GB).
    """
    import os

    import conftest as e2e

    from deepoxymap.config import settings
    from deepoxymap.ui import loading

    s = settings()
    if not (s.demo_dir / "manifest.csv").is_file() or not s.model_path.is_file():
        print("needs the demo cases (`make demo`) and the shipped model")
        return 1
    want = os.environ.get("DEEPOXYMAP_BENCH_CLIENTS", "all")
    kinds = [k for k in ("ws", "browser") if want in ("all", k)]
    if "browser" in kinds and not Path(e2e.CHROMIUM).exists():
        print(f"needs Chromium at {e2e.CHROMIUM} for the browser tables")
        return 1
    labels = [r.label for r in loading.demo_cases()]
    ok = True
    for kind in kinds:
        judged = kind == "ws"
        table, rss = _cold_rounds(kind, ["ischemic"], ROUNDS)
        got = _show(
            f"{KIND_NAMES[kind]}: every session opens the ischemic demo case, then Feature maps; timed from the "
            f"click on the case ({ROUNDS} rounds per N, each on a fresh server whose model warm-up has finished)",
            table,
        )
        if got is None:
            return 1
        single, ratio6 = got
        met = ratio6 <= TARGET_P95_RATIO and rss < TARGET_RSS_GB
        print(
            f"single-session time to panels (anchor): {single:.2f} s; peak server RSS {rss:.2f} GB\n"
            f"target: p95 at N={COUNTS[-1]} <= {TARGET_P95_RATIO:.0f}x single ({ratio6:.2f}x) and RSS < "
            f"{TARGET_RSS_GB:.0f} GB ({rss:.2f}) -> {'met' if met else 'MISSED'}"
            + ("" if judged else " (reported, not judged: the clients share the server's cores)")
        )
        ok &= met or not judged
        wtable, wrss = _warm_same_case(kind)
        if (
            w := _show(
                f"{KIND_NAMES[kind]}, warm: the case is already open and every result cached by a warm-up session; "
                "timed from the click on Feature maps (one server)",
                wtable,
            )
        ) is None:
            return 1
        print(f"single-session time (anchor): {w[0]:.2f} s; peak server RSS {wrss:.2f} GB (reported, not judged)")
        dtable, drss = _cold_rounds(kind, labels, 1)
        if (
            d := _show(
                f"{KIND_NAMES[kind]}, different cases: session i opens demo case i of {len(labels)} (round robin), "
                "then Feature maps; timed from the click on the case (each N on a fresh warmed server)",
                dtable,
            )
        ) is None:
            return 1
        print(f"single-session time (anchor): {d[0]:.2f} s; peak server RSS {drss:.2f} GB (reported, not judged)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
