"""The classifier: which one this session uses, loading it once per process, its card.

The model is a shared, read-only resource (``st.cache_resource`` keyed by the
path string): it is loaded once per process and never mutated. Which model a
session uses is a plain session key, so "load another model" on the Model page
changes only that session.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

import streamlit as st

from deepoxymap.config import settings
from deepoxymap.errors import Unavailable
from deepoxymap.ui import state

NO_MODEL = (
    "No model found at `{path}`: run `make model` (the shipped classifier lives in `assets/models/`), "
    "or load another `.keras` model with its card on the **Model** page."
)


def current_path() -> Path:
    """The model path this session uses (default: the shipped model)."""
    p = st.session_state.get(state.MODEL_PATH)
    return Path(p) if p else settings().model_path


def shipped_models() -> list[tuple[Path, str]]:
    """Every shipped model (a ``.keras`` file with its card in the shipped model's folder): ``(path, label)``.

    The default (the study replica, :attr:`~deepoxymap.config.Settings.model_path`) comes
    first; the others follow by file name. The label is the card's ``display_name`` (or
    ``name``), and says "(beyond the study)" for a card whose ``input.channels`` is
    ``"dynamics"``. Parsed once per version of the folder (its mtime).
    """
    default = settings().model_path
    folder = default.parent
    try:
        mtime = folder.stat().st_mtime_ns
    except OSError:
        return []
    return list(_scan_models(str(folder), mtime, str(default), default.is_file()))


@functools.lru_cache(maxsize=2)
def _scan_models(folder: str, mtime_ns: int, default: str, default_exists: bool) -> tuple[tuple[Path, str], ...]:
    found: list[tuple[Path, str]] = []
    for mp in sorted(Path(folder).glob("*.keras"), key=lambda q: (str(q) != default, q.name)):
        card = read_card(mp)
        if card is not None:
            found.append((mp, model_label(mp, card)))
    return tuple(found)


def model_label(model_path: Path, card: dict[str, Any] | None) -> str:
    """A short, human name of a model for menus (from its card)."""
    card = card or {}
    name = str(card.get("display_name") or card.get("name") or model_path.stem)
    pre = card.get("preprocessing") or {}
    if isinstance(pre, dict) and pre.get("channels") == "dynamics":
        name += " (OS dynamics, beyond the study)"
    elif model_path == settings().model_path:
        name += " (study replica, default)"
    return name


def choice_ui() -> None:
    """The sidebar's model menu: the shipped models and any this session loaded; every page follows it.

    The choice is this session's :data:`~deepoxymap.ui.state.MODEL_PATH` (Classify,
    Feature maps, Teaching and Model read :func:`current_path`); the default is the
    shipped study replica. With a single model only its name is shown.
    """
    options = shipped_models()
    current = current_path()
    paths = [p for p, _ in options]
    labels = {str(p): lab for p, lab in options}
    if current not in paths and current.is_file():
        paths.append(current)
        labels[str(current)] = f"{current.name} (loaded on the Model page)"
    if len(paths) <= 1:
        if paths:
            st.caption(f"Model: {labels[str(paths[0])]}")
        return
    key = "dox_model_choice"
    # The menu always shows this session's model (the Model page may have changed it).
    st.session_state[key] = str(current) if current in paths else str(paths[0])
    st.selectbox(
        "Model",
        [str(p) for p in paths],
        format_func=lambda v: labels.get(v, Path(v).name),
        key=key,
        on_change=_apply_choice,
        args=(key,),
        help="Classify, Feature maps, Teaching and Model follow this choice (this session only).",
    )


def _apply_choice(key: str) -> None:
    """The menu's callback (runs before the script): make the chosen model this session's."""
    chosen = st.session_state.get(key)
    if not chosen:
        return
    if Path(chosen) == settings().model_path:
        st.session_state.pop(state.MODEL_PATH, None)
    else:
        st.session_state[state.MODEL_PATH] = str(chosen)


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
    from deepoxymap.model.loading import load_model

    return load_model(Path(path))


def loaded_model(path: Path | None = None) -> Any:
    """The ``LoadedModel`` for ``path`` (default: this session's), loaded once per process.

    Raises:
        Unavailable: no model file there (with what to do).
        ModelLoadError: the file or card is bad.
    """
    p = Path(path or current_path())
    if not p.is_file():
        raise Unavailable(NO_MODEL.format(path=_short(p)))
    return _load_model_cached(str(p.resolve()))


def model_key(path: Path | None = None) -> str:
    """A cache key for per-case results that depend on the model (path + mtime).

    Looked up many times per script run, so the resolved path and mtime are kept for
    :data:`KEY_TTL_S` seconds (a replaced model file is noticed within that time).
    """
    p = str(path or current_path())
    now = time.monotonic()
    got = _KEYS.get(p)
    if got is not None and now - got[0] < KEY_TTL_S:
        return got[1]
    q = Path(p)
    try:
        key = f"{q.resolve()}@{q.stat().st_mtime_ns}"
    except OSError:
        key = p
    _KEYS[p] = (now, key)
    return key


KEY_TTL_S = 1.0
_KEYS: dict[str, tuple[float, str]] = {}


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


def _value(m: Any) -> float | None:
    """A metric that may be ``{"value": v, "ci": [lo, hi]}`` or a bare number."""
    if isinstance(m, dict):
        m = m.get("value")
    return float(m) if isinstance(m, (int, float)) else None


def _ci(m: Any) -> str:
    if isinstance(m, dict) and isinstance(m.get("ci"), (list, tuple)) and len(m["ci"]) == 2:
        lo, hi = m["ci"]
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
            return f" (95% CI {lo:.2f}-{hi:.2f})"
    return ""


def training_statement(card: dict[str, Any]) -> str:
    """What the model was trained on, in one paragraph (from its card)."""
    tr = card.get("training") or {}
    if not isinstance(tr, dict):
        tr = {}
    parts = []
    n = tr.get("n_subjects")
    counts = tr.get("class_counts") or {}
    manifest = tr.get("manifest")
    if n:
        cc = ", ".join(f"{v} {k}" for k, v in counts.items()) if isinstance(counts, dict) else ""
        src = f" from `{Path(str(manifest)).parent.name}/{Path(str(manifest)).name}`" if manifest else ""
        parts.append(f"Trained on **{n} synthetic subjects**{src}" + (f" ({cc})" if cc else "") + ".")
    elif card.get("training_data") or card.get("trained_on"):
        parts.append(f"Trained on {card.get('training_data') or card.get('trained_on')}.")
    split = tr.get("split") or {}
    if isinstance(split, dict) and split:
        sizes = {k: len(v) for k, v in split.items() if isinstance(v, list)}
        if sizes:
            parts.append("Subject-level split: " + ", ".join(f"{k} {v}" for k, v in sizes.items()) + ".")
    pre = card.get("preprocessing") or {}
    if isinstance(pre, dict) and pre:
        parts.append(
            f"Input: the {pre.get('timepoint', '?')} OS-CMR frame ({pre.get('frame_rule', '?')}), "
            f"a {pre.get('crop_mm', '?')} mm LV-centred crop at {pre.get('input_size', '?')} px, "
            f"channels '{pre.get('channels', 'grey')}'."
        )
    if card.get("weights"):
        parts.append(f"Weights: {card['weights']}.")
    if not parts:
        return "The model card does not say what the model was trained on."
    return " ".join(parts)


def card_brief_ui(model_path: Path | None = None, *, link: bool = True) -> None:
    """The model card in brief (name, architecture, classes, training data, headline test metrics)."""
    mp = model_path or current_path()
    card = read_card(mp)
    if card is None:
        if not mp.is_file():
            st.info(NO_MODEL.format(path=_short(mp)))
        else:
            st.warning(f"The model `{_short(mp)}` has no card (`{card_path(mp).name}`); it cannot be validated.")
        return
    name = _get(card, "name", "model_name", default=mp.stem)
    arch = _get(card, "arch", "architecture", default="?")
    classes = _get(card, "classes", default=[])
    st.markdown(f"**{name}** · {arch}")
    if classes:
        st.caption("Classes: " + ", ".join(map(str, classes)))
    st.markdown(training_statement(card))
    test = (card.get("metrics") or {}).get("test") if isinstance(card.get("metrics"), dict) else None
    if isinstance(test, dict):
        cols = st.columns(2)
        for col, (key, label) in zip(
            cols, (("accuracy", "Test accuracy"), ("macro_auc", "Test macro AUC")), strict=True
        ):
            v = _value(test.get(key))
            if v is not None:
                col.metric(label, f"{v:.2f}", help=f"{label}{_ci(test.get(key))}, case level, synthetic test subjects")
    intended = _get(card, "intended_use", "limitations")
    if intended:
        st.caption(str(intended) if not isinstance(intended, list) else " ".join(map(str, intended)))
    if link:
        st.page_link("pages/model_card.py", label="Full model card", icon=":material/memory:")


def reproduction_statement(card: dict[str, Any]) -> str | None:
    """One sentence on the card's recorded re-run of its training command, or ``None`` if it has none.

    Reads ``training.reproduction.test`` (metrics in the card's own ``{"value", "ci"}`` form)
    and says whether each value falls inside the card's ``metrics.test`` 95% CI, computed here
    rather than taken from the card's wording.
    """
    rep = (card.get("training") or {}).get("reproduction")
    if not isinstance(rep, dict) or not isinstance(rep.get("test"), dict):
        return None
    test = (card.get("metrics") or {}).get("test") or {}
    parts, inside = [], []
    for key, label in (("accuracy", "accuracy"), ("macro_auc", "macro AUC")):
        v = _value(rep["test"].get(key))
        if v is None:
            continue
        parts.append(f"{label} {v:.2f}")
        ref = test.get(key)
        ci = ref.get("ci") if isinstance(ref, dict) else None
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            inside.append(ci[0] <= v <= ci[1])
    if not parts:
        return None
    verdict = ""
    if inside:
        verdict = "; inside this card's 95% CIs" if all(inside) else "; NOT inside this card's 95% CIs for every metric"
    when = f" ({rep['date']})" if rep.get("date") else ""
    return f"Re-running the training command from a fresh clone{when} gave {', '.join(parts)}{verdict}."


def _decision_text(dec: Any) -> str:
    """The card's ``decision`` entry in one line (``"none"`` for an older card)."""
    if not isinstance(dec, dict) or not dec.get("log_prior_offset"):
        return "none (arg-max of the mean slice probabilities)"
    off = ", ".join(f"{c} {float(v):+.2f}" for c, v in dec["log_prior_offset"].items())
    n = dec.get("fitted_on_subjects")
    return f"log-prior offsets {off}, fitted on {n} {dec.get('fitted_on', 'validation')} subjects"


def card_sections(card: dict[str, Any]) -> dict[str, Any]:
    """The card arranged for the Model page: overview, training, preprocessing and test-metric tables."""
    import pandas as pd

    overview = {
        "name": card.get("name"),
        "architecture": card.get("arch"),
        "weights": card.get("weights"),
        "output": card.get("output"),
        "case call": card.get("case_aggregation"),
        "class-prior correction": _decision_text(card.get("decision")),
        "default CAM layer": card.get("gradcam_layer"),
        "file": (card.get("file") or {}).get("name"),
        "sha256": str((card.get("file") or {}).get("sha256", ""))[:16] + "…",
    }
    tr = card.get("training") or {}
    training = {
        k: tr.get(k)
        for k in (
            "n_subjects",
            "class_counts",
            "seed",
            "n_slices",
            "optimizer",
            "loss",
            "epochs_run",
            "best_epoch",
            "stop_reason",
            "manifest",
        )
        if k in tr
    }
    pre = card.get("preprocessing") or {}
    test = ((card.get("metrics") or {}).get("test") or {}) if isinstance(card.get("metrics"), dict) else {}
    rows = []
    for key in ("accuracy", "macro_auc", "macro_precision", "macro_recall", "ece"):
        if key in test:
            rows.append(
                {
                    "metric": key.replace("_", " "),
                    "value": _value(test[key]),
                    "95% CI": _ci(test[key]).strip(" ()").replace("95% CI ", ""),
                }
            )
    for c, m in (test.get("auc") or {}).items():
        rows.append(
            {"metric": f"AUC {c} vs rest", "value": _value(m), "95% CI": _ci(m).strip(" ()").replace("95% CI ", "")}
        )
    return {
        "overview": pd.DataFrame(
            [{"item": k, "value": str(v)} for k, v in overview.items() if v not in (None, "", "…")]
        ),
        "training": pd.DataFrame([{"item": k.replace("_", " "), "value": str(v)} for k, v in training.items()]),
        "preprocessing": pd.DataFrame([{"item": k.replace("_", " "), "value": str(v)} for k, v in pre.items()]),
        "test": pd.DataFrame(rows),
        "confusion": test.get("confusion"),
        "command": tr.get("command"),
        "reproduction": reproduction_statement(card),
        "note": (card.get("metrics") or {}).get("note") if isinstance(card.get("metrics"), dict) else None,
    }


_RUNTIME_LIBS = (
    "python",
    "deepoxymap",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "tf-keras-vis",
    "numpy",
    "scipy",
    "streamlit",
    "plotly",
    "pydicom",
    "nibabel",
    "pandas",
)


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
