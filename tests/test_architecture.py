"""House rules: arrows point down, the core is UI-free, pages hold no science.

Each rule is a function over a source tree, so the tests below also prove,
on small fixture trees, that every rule fails on the violation it names.

* ``cardiac`` and ``explain`` never import ``model`` (or anything above them:
  ``audit``, ``cohort``, ``cli``, ``ui``).
* nothing in the core (``deepoxymap/`` outside ``ui/``) imports ``deepoxymap.ui``
  or ``streamlit``.
* pages (``app.py``, ``pages/``) hold no numpy math and no TensorFlow, Keras,
  pydicom, scipy or nibabel calls: they wire widgets to ``deepoxymap``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOWER_PACKAGES = ("cardiac", "explain")
"""Packages that sit below the classifier: they may use the data model, never ``model`` or what builds on it."""
ABOVE_LOWER = ("deepoxymap.model", "deepoxymap.audit", "deepoxymap.cohort", "deepoxymap.cli", "deepoxymap.ui")
PAGE_BANNED = ("numpy", "tensorflow", "keras", "pydicom", "scipy", "nibabel", "tf_keras_vis")


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every module a file imports, anywhere in it (lazy imports included), relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def _hits(mods: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(m for m in mods if any(m == b or m.startswith(b + ".") for b in banned))


def layering_violations(root: Path) -> dict[str, list[str]]:
    """``{file: [offending imports]}`` for the two core rules, over the ``deepoxymap`` package under ``root``."""
    pkg = root / "deepoxymap"
    out: dict[str, list[str]] = {}
    for p in sorted(pkg.rglob("*.py")):
        top = p.relative_to(pkg).parts[0]
        mods = imported_modules(p, root)
        bad: list[str] = []
        if top != "ui":
            bad += _hits(mods, ("deepoxymap.ui", "streamlit"))
        if top in LOWER_PACKAGES:
            bad += _hits(mods, ABOVE_LOWER)
        if bad:
            out[str(p.relative_to(root))] = sorted(set(bad))
    return out


def page_violations(root: Path) -> dict[str, list[str]]:
    """``{file: [what]}`` for pages that import or call science libraries or do array math."""
    files = [root / "app.py", *sorted((root / "pages").glob("*.py"))]
    out: dict[str, list[str]] = {}
    for p in files:
        if not p.exists():
            continue
        bad = _hits(imported_modules(p, root), PAGE_BANNED)
        tree = ast.parse(p.read_text(), filename=str(p))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("np", "numpy", "tf", "keras", "pydicom", "scipy", "ndi")
            ):
                bad.append(f"{node.value.id}.{node.attr}")
        if bad:
            out[str(p.relative_to(root))] = sorted(set(bad))
    return out


# ---------------------------------------------------------------------------
# the project obeys the rules
# ---------------------------------------------------------------------------


def test_core_layering() -> None:
    """cardiac/explain never import model (or above); the core never imports ui or streamlit."""
    assert layering_violations(ROOT) == {}


def test_pages_hold_no_science() -> None:
    """Pages never import or call numpy, TensorFlow, pydicom, scipy or nibabel."""
    assert page_violations(ROOT) == {}


# ---------------------------------------------------------------------------
# and each rule fails on the violation it names
# ---------------------------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    for d in [p for p in tmp_path.rglob("*") if p.is_dir() and "deepoxymap" in p.parts]:
        (d / "__init__.py").touch()
    return tmp_path


def test_rules_catch_each_violation(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "deepoxymap/case.py": "import numpy as np\n",
            "deepoxymap/cardiac/ok.py": "from deepoxymap.case import Stack\nfrom . import ok2\n",
            "deepoxymap/cardiac/ok2.py": "import numpy\n",
            "deepoxymap/cardiac/bad_model.py": "def f():\n    from deepoxymap.model.preprocess import PreprocessSpec\n",
            "deepoxymap/cardiac/bad_relative.py": "from ..model import predict\n",
            "deepoxymap/explain/bad_audit.py": "import deepoxymap.audit\n",
            "deepoxymap/explain/bad_cli.py": "from deepoxymap.cli import main\n",
            "deepoxymap/io/bad_ui.py": "from deepoxymap.ui import widgets\n",
            "deepoxymap/model/bad_streamlit.py": "import streamlit as st\n",
            "deepoxymap/model/ok_model.py": "from deepoxymap.cardiac import ok\n",
            "deepoxymap/ui/ok_ui.py": "import streamlit as st\nfrom deepoxymap.model import ok_model\n",
            "app.py": "import streamlit as st\nfrom deepoxymap.ui import ok_ui\n",
            "pages/ok_page.py": "from deepoxymap.ui import ok_ui\nok_ui.run()\n",
            "pages/bad_numpy.py": "import numpy as np\nx = np.mean([1, 2])\n",
            "pages/bad_math.py": "from deepoxymap.ui import ok_ui\nv = ok_ui.np.clip(1, 0, 2)\nw = np.sqrt(2)\n",
            "pages/bad_tf.py": "import tensorflow as tf\n",
            "pages/bad_pydicom.py": "from pydicom import dcmread\n",
        },
    )
    layering = layering_violations(root)
    assert set(layering) == {
        "deepoxymap/cardiac/bad_model.py",
        "deepoxymap/cardiac/bad_relative.py",
        "deepoxymap/explain/bad_audit.py",
        "deepoxymap/explain/bad_cli.py",
        "deepoxymap/io/bad_ui.py",
        "deepoxymap/model/bad_streamlit.py",
    }
    assert "deepoxymap.model.preprocess" in layering["deepoxymap/cardiac/bad_model.py"]
    assert "deepoxymap.model" in layering["deepoxymap/cardiac/bad_relative.py"]
    assert layering["deepoxymap/model/bad_streamlit.py"] == ["streamlit"]
    pages = page_violations(root)
    assert set(pages) == {"pages/bad_numpy.py", "pages/bad_math.py", "pages/bad_tf.py", "pages/bad_pydicom.py"}
    assert "np.sqrt" in pages["pages/bad_math.py"]
    assert "numpy" in pages["pages/bad_numpy.py"] and "np.mean" in pages["pages/bad_numpy.py"]
