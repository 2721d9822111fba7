"""The launcher (`python -m deepoxymap.ui.serve`): warm-up first, then `streamlit run` with the house flags."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from deepoxymap.ui import serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Record the warm-up start and the argv Streamlit's CLI is handed, in order (nothing is served)."""
    from streamlit.web import cli as stcli

    from deepoxymap.ui import warmup

    got: list[tuple[str, object]] = []
    monkeypatch.setattr(warmup, "start", lambda: got.append(("warmup", None)))

    def fake_main() -> None:
        got.append(("streamlit", list(sys.argv)))
        raise SystemExit(0)

    monkeypatch.setattr(stcli, "main", fake_main)
    monkeypatch.setattr(sys, "argv", ["serve"])
    return got


def test_warmup_starts_before_streamlit_with_the_house_flags(calls: list[tuple[str, object]]) -> None:
    assert serve.main(["--port", "8765", "--server.maxUploadSize", "50"]) == 0
    assert [c[0] for c in calls] == ["warmup", "streamlit"]
    argv = calls[1][1]
    assert isinstance(argv, list)
    assert argv[:3] == ["streamlit", "run", str(ROOT / "app.py")]
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--server.port"] == "8765"
    assert flags["--server.fileWatcherType"] == "none"
    assert flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert argv[-2:] == ["--server.maxUploadSize", "50"]  # extras pass through, last


def test_no_warmup_and_exit_code_pass_through(calls: list[tuple[str, object]], monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.web import cli as stcli

    monkeypatch.setattr(stcli, "main", lambda: (_ for _ in ()).throw(SystemExit(2)))
    assert serve.main(["--no-warmup", "--script", "other.py"]) == 2
    assert calls == []  # neither the warm-up nor the recorded fake ran


def test_make_run_and_the_browser_tests_serve_through_the_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    make = (ROOT / "Makefile").read_text()
    run_recipe = re.search(r"^run:.*\n\t(.+)$", make, re.MULTILINE)
    assert run_recipe is not None
    assert "-m deepoxymap.ui.serve" in run_recipe.group(1)
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    try:
        import server as e2e_server
    finally:
        sys.path.pop(0)
    seen: list[list[str]] = []

    class FakePopen:
        def __init__(self, cmd: list[str], **_: object) -> None:
            seen.append(cmd)

    monkeypatch.setattr(e2e_server.subprocess, "Popen", FakePopen)
    e2e_server.start_streamlit(ROOT / "app.py", 1234)
    e2e_server.start_streamlit(ROOT / "bench" / "trivial.py", 1235)
    assert seen[0][1:] == ["-m", "deepoxymap.ui.serve", "--port", "1234"]
    assert seen[1][1:4] == ["-m", "streamlit", "run"] and "--server.port" in seen[1]
