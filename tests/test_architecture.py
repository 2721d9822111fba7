"""House rules that keep the core UI-free and the pages thin."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_streamlit() -> None:
    """Only deepoxymap/ui may import streamlit."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "deepoxymap").rglob("*.py")
        if "ui" not in p.relative_to(ROOT / "deepoxymap").parts[:1] and "streamlit" in _imports(p)
    ]
    assert offenders == []


def test_pages_hold_no_science() -> None:
    """Pages never call TensorFlow, pydicom, scipy or nibabel directly."""
    banned = {"tensorflow", "keras", "pydicom", "scipy", "nibabel", "tf_keras_vis"}
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & banned)
        for p in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]
        if p.exists() and _imports(p) & banned
    }
    assert offenders == {}
