"""The app's own navigation: one page list, drawn by the app, never Streamlit's ``pages/`` listing.

Streamlit treats a ``pages/`` folder beside ``st.navigation`` as a legacy multipage
app until ``app.py`` has called ``st.navigation`` once in the server process. In that
state it offers its own file-name links ("app, classify, ...") and runs a page file
*without* ``app.py`` (no wide layout, no sidebar, no case status) when one of them is
clicked or a page URL is the first request the server gets. Three things keep the app
itself in every state:

1. ``client.showSidebarNavigation = false`` (``.streamlit/config.toml``): Streamlit never
   draws its file-name links.
2. ``app.py`` calls ``st.navigation(pages(), position="hidden")`` and the sidebar draws
   :func:`links_ui` (``st.page_link``), so every link the user sees is the app's own.
3. Every page starts with :func:`ensure_app`: a page file that Streamlit ran without
   ``app.py`` leaves the legacy mode and reruns itself through ``app.py``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import streamlit as st
from streamlit.navigation.page import StreamlitPage

_LOG = logging.getLogger("deepoxymap.ui")

NAV_KEY = "dox_nav"
"""Streamlit key of the sidebar container holding the links (CSS class ``st-key-dox_nav``)."""

_RECOVERING = "_dox_nav_recovering"
_IN_APP: contextvars.ContextVar[bool] = contextvars.ContextVar("dox_in_app", default=False)


@dataclass(frozen=True)
class PageSpec:
    """One page of the app: its file (relative to the repository root), title and icon."""

    path: str
    title: str
    icon: str
    default: bool = False


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/home.py", "Home", ":material/home:", default=True),
    PageSpec("pages/load_case.py", "Load case", ":material/upload_file:"),
    PageSpec("pages/viewer.py", "Viewer", ":material/visibility:"),
    PageSpec("pages/classify.py", "Classify", ":material/psychology:"),
    PageSpec("pages/feature_maps.py", "Feature maps", ":material/layers:"),
    PageSpec("pages/cohort_audit.py", "Cohort audit", ":material/fact_check:"),
    PageSpec("pages/teaching.py", "Teaching", ":material/school:"),
    PageSpec("pages/model_card.py", "Model", ":material/memory:"),
)
"""Every page, in menu order."""


def pages() -> list[StreamlitPage]:
    """The ``st.Page`` objects for ``st.navigation``."""
    return [st.Page(p.path, title=p.title, icon=p.icon, default=p.default) for p in PAGES]


@contextlib.contextmanager
def app_run() -> Iterator[None]:
    """Mark the body of ``app.py`` (sidebar and the page it runs): :func:`ensure_app` looks for it."""
    st.session_state.pop(_RECOVERING, None)  # app.py runs: any recovery below has worked
    token = _IN_APP.set(True)
    try:
        yield
    finally:
        _IN_APP.reset(token)


def links_ui() -> None:
    """The app's page links (in the sidebar), in a container keyed :data:`NAV_KEY`."""
    with st.container(key=NAV_KEY):
        for p in PAGES:
            st.page_link(p.path, label=p.title, icon=p.icon)


def ensure_app() -> None:
    """Call first in every page: rerun a page that Streamlit ran without ``app.py`` through ``app.py``.

    That happens only in Streamlit's legacy ``pages/`` mode (see the module doc): the page
    is then left at once (``st.rerun``) after the mode is switched off, exactly as
    ``st.navigation`` switches it off, so the rerun goes through ``app.py`` to the same page.
    If a rerun in this session already tried and the page still runs alone, it shows a
    link to the start page instead of looping.
    """
    if _IN_APP.get():
        return
    if st.session_state.get(_RECOVERING):
        st.session_state.pop(_RECOVERING, None)
        st.info("This page opened without the app around it: [open DeepOxyMap from its start page](./).")
        st.stop()
    _LOG.warning("a page ran without app.py (Streamlit's legacy pages/ mode); rerunning it through app.py")
    st.session_state[_RECOVERING] = True
    _leave_legacy_mode()
    st.rerun()


def _leave_legacy_mode() -> None:
    """Switch off Streamlit's ``pages/``-folder mode for this process, as ``st.navigation`` does."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the legacy mode: nothing to switch off
        return
    PagesManager.uses_pages_directory = False
