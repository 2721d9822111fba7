"""Small reusable widgets: gates, error display, sticky controls.

``*_ui`` functions draw widgets and return their values.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import streamlit as st

from deepoxymap.errors import DeepOxyMapError, Unavailable
from deepoxymap.ui import state

T = TypeVar("T")
_LOG = logging.getLogger("deepoxymap.ui")

PAGE_LOAD = "pages/load_case.py"
PAGE_VIEWER = "pages/viewer.py"
PAGE_CLASSIFY = "pages/classify.py"
PAGE_FEATURES = "pages/feature_maps.py"
PAGE_MODEL = "pages/model_card.py"


@contextlib.contextmanager
def guard(what: str, *, missing: str = "info") -> Iterator[None]:
    """Run a section; show problems in that section only and let the page go on.

    * :class:`Unavailable` -> ``st.info`` with what is needed.
    * :class:`DeepOxyMapError` -> ``st.error`` with its message.
    * anything else -> ``st.error`` "Internal error while <what>" (type only; no data logged).
    """
    try:
        yield
    except Unavailable as exc:
        (st.info if missing == "info" else st.warning)(str(exc), icon=":material/extension:")
    except DeepOxyMapError as exc:
        st.error(f"Could not {what}: {exc}", icon=":material/error:")
    except Exception as exc:
        if type(exc).__name__ in ("StopException", "RerunException"):
            raise
        # Only the exception type goes to the log: messages may carry patient data.
        _LOG.error("internal error while %s: %s", what, type(exc).__name__)
        st.error(
            f"Internal error while {what} ({type(exc).__name__}). This is a problem in DeepOxyMap, "
            "not in your data; the rest of the page still works.",
            icon=":material/bug_report:",
        )


def require_case() -> state.LoadedCase:
    """This session's case, or a message with a link to Load case and ``st.stop()``."""
    loaded = state.current()
    if loaded is None:
        st.info("Load a case first: upload a study or open a demo case on the **Load case** page.")
        st.page_link(PAGE_LOAD, label="Go to Load case", icon=":material/upload_file:")
        st.stop()
    return loaded  # type: ignore[return-value]


def show_flash() -> None:
    """Show (once) a message queued by :func:`deepoxymap.ui.state.flash`."""
    msg = state.pop_flash()
    if msg:
        kind, text = msg
        getattr(st, kind, st.info)(text)


def case_caption(loaded: state.LoadedCase) -> None:
    """A one-line description of the loaded case (no identifiers)."""
    c = loaded.case
    roles = sorted({s.role.label for s in c.series})
    label = f" · reference class: **{c.label}**" if c.label and loaded.source.startswith(("demo", "cohort")) else ""
    st.caption(f"Case `{c.case_id}` · {len(c.series)} series ({', '.join(roles)}){label}")


def _sticky_key(key: str) -> str:
    return f"_w_{key}"


def _prime(key: str, default: Any, valid: Any = None) -> str:
    """Seed the widget key from the plain key (widget keys vanish on page switch)."""
    wkey = _sticky_key(key)
    value = st.session_state.get(key, default)
    if valid is not None and not valid(value):
        value = default
    if wkey not in st.session_state or (valid is not None and not valid(st.session_state[wkey])):
        st.session_state[wkey] = value
    return wkey


def sticky_slider(label: str, key: str, lo: int, hi: int, default: int, *, one_based: bool = False, **kw: Any) -> int:
    """An int slider whose value survives page switches (plain key ``key``, always 0-based).

    With ``one_based`` the user sees ``lo + 1 .. hi + 1`` (slice numbers as in the titles).
    """
    off = 1 if one_based else 0
    if hi <= lo:
        st.session_state[key] = lo
        return lo
    wkey = _sticky_key(key)
    stored = st.session_state.get(key, default)
    if not (isinstance(stored, int) and lo <= stored <= hi):
        stored = default
    cur = st.session_state.get(wkey)
    if not (isinstance(cur, int) and lo + off <= cur <= hi + off):
        st.session_state[wkey] = stored + off
    value = int(st.slider(label, lo + off, hi + off, key=wkey, **kw)) - off
    st.session_state[key] = value
    return value


def sticky_float(label: str, key: str, lo: float, hi: float, default: float, **kw: Any) -> float:
    """A float slider whose value survives page switches."""
    wkey = _prime(key, default, lambda v: isinstance(v, (int, float)) and lo <= v <= hi)
    value = st.slider(label, lo, hi, key=wkey, **kw)
    st.session_state[key] = value
    return float(value)


def sticky_range(
    label: str, key: str, lo: float, hi: float, default: tuple[float, float], **kw: Any
) -> tuple[float, float]:
    """A two-handle float slider ``(low, high)`` whose value survives page switches."""

    def valid(v: Any) -> bool:
        return (
            isinstance(v, tuple | list)
            and len(v) == 2
            and all(isinstance(x, int | float) for x in v)
            and lo <= v[0] <= v[1] <= hi
        )

    wkey = _prime(key, (float(default[0]), float(default[1])), valid)
    value = st.slider(label, float(lo), float(hi), key=wkey, **kw)
    st.session_state[key] = (float(value[0]), float(value[1]))
    return float(value[0]), float(value[1])


def _sticky_choice(widget: Any, label: str, key: str, options: Sequence[T], default: T | None, **kw: Any) -> T:
    """A choice widget (selectbox, radio) whose value survives page switches."""
    opts = list(options)
    dflt = default if default in opts else opts[0]
    wkey = _prime(key, dflt, lambda v: v in opts)
    value = widget(label, opts, key=wkey, **kw)
    st.session_state[key] = value
    return value  # type: ignore[no-any-return]


def sticky_select(label: str, key: str, options: Sequence[T], default: T | None = None, **kw: Any) -> T:
    """A selectbox whose value survives page switches."""
    return _sticky_choice(st.selectbox, label, key, options, default, **kw)


def sticky_radio(label: str, key: str, options: Sequence[T], default: T | None = None, **kw: Any) -> T:
    """A radio whose value survives page switches."""
    return _sticky_choice(st.radio, label, key, options, default, **kw)


def sticky_toggle(label: str, key: str, default: bool = False, **kw: Any) -> bool:
    """A toggle whose value survives page switches."""
    wkey = _prime(key, default, lambda v: isinstance(v, bool))
    value = st.toggle(label, key=wkey, **kw)
    st.session_state[key] = value
    return bool(value)


def research_notice() -> None:
    """The research-use-only notice."""
    st.warning(
        "**Research use only.** DeepOxyMap is not a medical device and must not be used for diagnosis "
        "or treatment decisions. The shipped model was trained on synthetic images only.",
        icon=":material/science:",
    )


def open_demo(row: Any, *, then: str | None = None) -> bool:
    """Load the demo case ``row`` (a :class:`~deepoxymap.cohort.SubjectRecord`) into this session.

    Returns ``True`` on success; on failure shows the reason and returns ``False``.
    With ``then``, switches to that page after loading.
    """
    from deepoxymap.ui import loading

    ok = False
    with guard(f"open the demo case {row.subject}"), st.spinner(f"Loading demo case {row.subject}…"):
        case = loading.load_record(row)
        state.set_case(case, f"demo:{row.label}")
        state.flash(f"Opened the demo **{row.label}** case `{case.case_id}`.")
        ok = True
    if ok:
        if then:
            st.switch_page(then)
        st.rerun()  # the sidebar shows the new case
    return ok


def demo_buttons_ui(key_prefix: str, *, then: str | None = None) -> None:
    """One button per demo case ("open a demo case" for each class)."""
    from deepoxymap.ui import loading

    rows = loading.demo_cases()
    if not rows:
        st.info("No demo cases yet: run `make demo` (writes one synthetic case per class to `data/demo`).")
        return
    cols = st.columns(len(rows))
    for col, row in zip(cols, rows, strict=True):
        tip = f"Synthetic case {row.subject}" + (f", sub-type {row.subtype}" if row.subtype else "")
        if col.button(
            row.label, key=f"{key_prefix}_{row.subject}", icon=":material/folder_open:", width="stretch", help=tip
        ):
            open_demo(row, then=then)
