"""Session-state keys and typed accessors.

Everything patient-related lives in *this session's* ``st.session_state``: never in
``st.cache_data``, never in logs. Results computed *from* a case are also kept in the
process-wide :mod:`deepoxymap.ui.inference` store, under the blake2b hash of the case's
whole content: only a session that holds the very same case can reach them, and a second
session opening it re-uses the first one's work (:func:`cached`).

Widget keys are deleted by Streamlit when the user switches pages, so values
that must survive a page switch are kept in plain (non-widget) keys; the
``sticky_*`` helpers in :mod:`deepoxymap.ui.widgets` copy widget values there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st

from deepoxymap.case import Case

T = TypeVar("T")

# plain session keys (all prefixed "dox_")
CASE = "dox_case"
CASE_TOKEN = "dox_case_token"
CASE_SOURCE = "dox_case_source"
SERIES = "dox_series"
LOAD_ISSUES = "dox_load_issues"
MODEL_PATH = "dox_model_path"
RESULTS = "dox_results"  # per-case cache of predictions, CAMs, panels
CASE_HASH = "dox_case_hash"  # (token, content hash) of the case
AUDIT = "dox_audit"
QUIZ = "dox_quiz"
FLASH = "dox_flash"

_COUNTER = itertools.count(1)


@dataclass(frozen=True)
class LoadedCase:
    """The case of this session and where it came from.

    Attributes:
        case: the assembled case.
        token: unique per load (cache key; a reload of the same files gets a new token).
        source: ``"demo:<class>"``, ``"upload"`` or ``"cohort:<subject>"``.
    """

    case: Case
    token: str
    source: str


def set_case(case: Case, source: str, *, series: list[Any] | None = None, issues: list[Any] | None = None) -> str:
    """Make ``case`` this session's case; clears the per-case result cache. Returns the new token."""
    token = f"{case.case_id}#{next(_COUNTER)}"
    st.session_state[CASE] = case
    st.session_state[CASE_TOKEN] = token
    st.session_state[CASE_SOURCE] = source
    st.session_state[SERIES] = list(series) if series is not None else list(case.series)
    st.session_state[LOAD_ISSUES] = list(issues or [])
    st.session_state[RESULTS] = {}
    st.session_state.pop(CASE_HASH, None)
    _prefetch(LoadedCase(case, token, source))
    return token


def _prefetch(lc: LoadedCase) -> None:
    """Start the new case's Feature-maps work in the background (:func:`deepoxymap.ui.analysis.prefetch`)."""
    from deepoxymap.ui import analysis

    analysis.prefetch(lc)


def replace_case(case: Case, series: list[Any] | None = None) -> None:
    """Swap the case after a role override (new token: cached results are stale)."""
    source = st.session_state.get(CASE_SOURCE, "upload")
    series = series if series is not None else st.session_state.get(SERIES)
    issues = st.session_state.get(LOAD_ISSUES)
    set_case(case, source, series=series, issues=issues)


def clear_case() -> None:
    """Forget this session's case and everything computed from it."""
    for k in (CASE, CASE_TOKEN, CASE_SOURCE, SERIES, LOAD_ISSUES, RESULTS, CASE_HASH):
        st.session_state.pop(k, None)


def current() -> LoadedCase | None:
    """This session's case, or ``None``."""
    case = st.session_state.get(CASE)
    if case is None:
        return None
    return LoadedCase(case, st.session_state.get(CASE_TOKEN, case.case_id), st.session_state.get(CASE_SOURCE, ""))


def case_hash(token: str) -> str | None:
    """The content hash of this session's case if ``token`` is its token (:func:`deepoxymap.ui.inference.case_key`)."""
    case = st.session_state.get(CASE)
    if case is None or st.session_state.get(CASE_TOKEN, case.case_id) != token:
        return None
    got = st.session_state.get(CASE_HASH)
    if got is not None and got[0] == token:
        return str(got[1])
    from deepoxymap.ui import inference

    h = inference.case_key(case)
    st.session_state[CASE_HASH] = (token, h)
    return h


def cached(token: str, key: Hashable, compute: Callable[[], T], *, limit: int = 256) -> T:
    """Per-case memo: ``compute()`` once per ``(token, key)`` in this session, once per case content in the process.

    The session keeps its own references in ``st.session_state`` (cleared when a new case is
    loaded; ``limit`` bounds it). A miss looks in the process-wide store under the case's
    content hash (:func:`case_hash`), where another session of the same case may already
    have computed it or be computing it (then this one waits for that result). Values are
    shared: never mutate one.
    """
    store: dict[Any, Any] = st.session_state.setdefault(RESULTS, {})
    full = (token, key)
    if full in store:
        return store[full]  # type: ignore[no-any-return]
    h = case_hash(token)
    if h is None:
        value = compute()
    else:
        from deepoxymap.ui import inference

        value = inference.shared(h, key, compute)
    if len(store) >= limit:
        store.pop(next(iter(store)))
    store[full] = value
    return value


def results_store() -> dict[Any, Any]:
    """The per-case result store of this session (read-only use)."""
    return st.session_state.get(RESULTS, {})  # type: ignore[no-any-return]


def peek(token: str, key: Hashable) -> Any:
    """A cached per-case value, or ``None`` if it has not been computed."""
    return st.session_state.get(RESULTS, {}).get((token, key))


def flash(message: str, kind: str = "success") -> None:
    """Queue a message to show once on the next page render."""
    st.session_state[FLASH] = (kind, message)


def pop_flash() -> tuple[str, str] | None:
    """The queued message, removed."""
    return st.session_state.pop(FLASH, None)
