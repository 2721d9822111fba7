"""Session-state keys and typed accessors.

Everything patient-related lives in *this session's* ``st.session_state`` only:
never in ``st.cache_data`` (shared between users), never in logs.

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
    return token


def replace_case(case: Case, series: list[Any] | None = None) -> None:
    """Swap the case after a role override (new token: cached results are stale)."""
    source = st.session_state.get(CASE_SOURCE, "upload")
    series = series if series is not None else st.session_state.get(SERIES)
    issues = st.session_state.get(LOAD_ISSUES)
    set_case(case, source, series=series, issues=issues)


def clear_case() -> None:
    """Forget this session's case and everything computed from it."""
    for k in (CASE, CASE_TOKEN, CASE_SOURCE, SERIES, LOAD_ISSUES, RESULTS):
        st.session_state.pop(k, None)


def current() -> LoadedCase | None:
    """This session's case, or ``None``."""
    case = st.session_state.get(CASE)
    if case is None:
        return None
    return LoadedCase(case, st.session_state.get(CASE_TOKEN, case.case_id), st.session_state.get(CASE_SOURCE, ""))


def cached(token: str, key: Hashable, compute: Callable[[], T], *, limit: int = 256) -> T:
    """Per-case, per-session memo: ``compute()`` once per ``(token, key)``.

    Stored in ``st.session_state`` (never a cross-user cache). The store is
    cleared whenever a new case is loaded; ``limit`` bounds its size.
    """
    store: dict[Any, Any] = st.session_state.setdefault(RESULTS, {})
    full = (token, key)
    if full in store:
        return store[full]  # type: ignore[no-any-return]
    value = compute()
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
