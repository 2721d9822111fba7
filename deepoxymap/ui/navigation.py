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
   ``app.py`` runs ``app.py`` in its place, in the same script run.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from deepoxymap.config import ROOT

_LOG = logging.getLogger("deepoxymap.ui")

NAV_KEY = "dox_nav"
"""Streamlit key of the sidebar container holding the links (CSS class ``st-key-dox_nav``)."""

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
    """Call first in every page: a page that Streamlit ran without ``app.py`` is run inside ``app.py``.

    That happens only in Streamlit's legacy ``pages/`` mode (see the module doc). ``app.py`` is
    then executed here, in this same script run: its ``st.navigation`` switches the legacy mode
    off for the process and runs this page again, inside the app (layout, sidebar, navigation),
    with this run's widget values, button clicks included. The page's own top-level run then
    ends (``st.stop``): nothing of it has been drawn yet.
    """
    if _IN_APP.get():
        return
    _LOG.info("a page ran without app.py (Streamlit's legacy pages/ mode); running it inside app.py")
    main = _main_script()
    code = compile(main.read_text(encoding="utf-8"), str(main), "exec")
    exec(code, {"__name__": "__main__", "__file__": str(main)})  # noqa: S102 - the app's own entry point
    st.stop()


def _main_script() -> Path:
    """``app.py`` of the running app (Streamlit's main script; the repository's as a fallback)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    main = getattr(getattr(ctx, "pages_manager", None), "main_script_path", None)
    return Path(main) if main else ROOT / "app.py"
