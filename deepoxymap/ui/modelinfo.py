"""The classifier: which one this session uses, loading it once per process, its card.

The model is a shared, read-only resource (``st.cache_resource`` keyed by the
path string): it is loaded once per process and never mutated. Which model a
session uses is a plain session key, so "load another model" on the Model page
changes only that session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from deepoxymap.config import settings
from deepoxymap.ui import state
from deepoxymap.ui.core import Missing, need_any

NO_MODEL = (
    "No model found at `{path}`: run `make model` (the shipped classifier lives in `assets/models/`), "
    "or load another `.keras` model with its card on the **Model** page."
)


def current_path() -> Path:
    """The model path this session uses (default: the shipped model)."""
    p = st.session_state.get(state.MODEL_PATH)
    return Path(p) if p else settings().model_path


def card_path(model_path: Path) -> Path:
    """The card JSON beside a model file."""
    return model_path.with_suffix(".json")


def read_card(model_path: Path | None = None) -> dict[str, Any] | None:
    """The model card of ``model_path`` (default: this session's model), or ``None`` if absent."""
    mp = model_path or current_path()
    cp = card_path(mp)
    if not cp.is_file():
        return None
    with cp.open() as fh:
        card = json.load(fh)
    return card if isinstance(card, dict) else {"card": card}


@st.cache_resource(show_spinner="Loading the classifier (once per server process)…", max_entries=4)
def _load_model_cached(path: str) -> Any:
    load_model = need_any([("deepoxymap.model", "load_model"), ("deepoxymap.model.loading", "load_model")], "The classifier")
    return load_model(Path(path))


def loaded_model(path: Path | None = None) -> Any:
    """The ``LoadedModel`` for ``path`` (default: this session's), loaded once per process.

    Raises:
        Missing: no model file there (with what to do).
        ModelLoadError: the file or card is bad.
    """
    p = Path(path or current_path())
    if not p.is_file():
        raise Missing(NO_MODEL.format(path=_short(p)))
    return _load_model_cached(str(p.resolve()))


def model_key(path: Path | None = None) -> str:
    """A cache key for per-case results that depend on the model (path + mtime)."""
    p = Path(path or current_path())
    try:
        return f"{p.resolve()}@{p.stat().st_mtime_ns}"
    except OSError:
        return str(p)


def _short(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(settings().model_path.parent.parent.parent))
    except ValueError:
        return str(p)


def _get(card: dict[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        cur: Any = card
        ok = True
        for part in n.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                ok = False
                break
        if ok and cur not in (None, "", [], {}):
            return cur
    return default


def training_statement(card: dict[str, Any]) -> str:
    """One paragraph: what the model was trained on (from its card)."""
    data = _get(card, "training_data", "trained_on", "data", "dataset", "training.data")
    if isinstance(data, dict):
        parts = [f"{k.replace('_', ' ')}: {v}" for k, v in data.items() if not isinstance(v, (dict, list))]
        data = "; ".join(parts)
    text = f"Trained on {data}." if data else "The model card does not say what the model was trained on."
    return text


def card_brief_ui(model_path: Path | None = None) -> None:
    """The model card in brief (name, architecture, classes, training data, headline metrics)."""
    mp = model_path or current_path()
    card = read_card(mp)
    if card is None:
        if not mp.is_file():
            st.info(NO_MODEL.format(path=_short(mp)))
        else:
            st.warning(f"The model `{_short(mp)}` has no card (`{card_path(mp).name}`); it cannot be validated.")
        return
    name = _get(card, "name", "model_name", default=mp.stem)
    arch = _get(card, "architecture", "backbone", "model.architecture", default="?")
    classes = _get(card, "classes", "class_names", default=[])
    st.markdown(f"**{name}** · {arch}")
    if classes:
        st.caption("Classes: " + ", ".join(map(str, classes)))
    st.markdown(training_statement(card))
    metrics = _get(card, "metrics", "evaluation", "test_metrics")
    if isinstance(metrics, dict):
        flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        if flat:
            cols = st.columns(min(4, len(flat)))
            for col, (k, v) in zip(cols, list(flat.items())[:4], strict=False):
                col.metric(k.replace("_", " "), f"{v:.2f}" if isinstance(v, float) else v)
    intended = _get(card, "intended_use", "limitations")
    if intended:
        st.caption(str(intended) if not isinstance(intended, list) else " ".join(map(str, intended)))
    st.page_link("pages/model_card.py", label="Full model card", icon=":material/memory:")


_RUNTIME_LIBS = ("python", "deepoxymap", "tensorflow-cpu", "tensorflow", "keras", "tf-keras-vis", "numpy", "scipy",
                 "streamlit", "plotly", "pydicom", "nibabel", "pandas")


def versions_table(card: dict[str, Any] | None) -> Any:
    """Library versions running now, beside those recorded in the model card at training."""
    import importlib.metadata as md
    import platform

    import pandas as pd

    trained = (card or {}).get("library_versions") or (card or {}).get("versions") or {}
    rows = []
    for name in _RUNTIME_LIBS:
        if name == "python":
            now = platform.python_version()
        else:
            try:
                now = md.version(name)
            except md.PackageNotFoundError:
                now = ""
        if not now and name not in trained:
            continue
        rows.append({"library": name, "running": now, "model trained with": str(trained.get(name, ""))})
    return pd.DataFrame(rows)
