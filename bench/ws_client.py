"""A minimal Streamlit websocket client: drives the app as a browser's script runs would, without a browser.

It speaks Streamlit's own protocol on ``/_stcore/stream`` (protobuf ``BackMsg`` out,
``ForwardMsg`` in, the classes shipped in ``streamlit.proto``): a page change is a
``rerun_script`` with that page's script hash, a button click is a ``rerun_script``
whose widget states hold the button's trigger. A run is over when the server reports
the session idle (``session_status_changed`` with ``script_is_running`` false) after a
``script_finished`` that was not cut short for a rerun. The media the run drew (the
PNG panels of ``st.image``) are then fetched over HTTP, as a browser would.

What this leaves out is the browser's own work (parsing and laying out the page,
decoding the images): the time measured is the server's, plus the transfer. That is
the point: in use each session's browser runs on its user's machine, while in a
browser benchmark on one box six Chromiums share the server's cores.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass
class Run:
    """What one script run (and its reruns) sent: button ids by label and key, media URLs, errors."""

    buttons: dict[str, str] = field(default_factory=dict)
    """Widget id -> label of every button drawn."""
    media: list[str] = field(default_factory=list)
    """URLs of every image drawn, in order (``/media/...`` or inline ``data:``)."""
    exceptions: list[str] = field(default_factory=list)
    """Messages of ``st.exception`` elements (uncaught errors) drawn."""
    texts: list[str] = field(default_factory=list)
    """Markdown / heading bodies drawn (for sanity checks)."""
    messages: int = 0
    bytes: int = 0


def _walk_element(el: Any, run: Run) -> None:
    kind = el.WhichOneof("type")
    if kind == "button":
        run.buttons[el.button.id] = el.button.label
    elif kind == "imgs":
        run.media += [img.url for img in el.imgs.imgs if img.url]
    elif kind == "exception":
        run.exceptions.append(f"{el.exception.type}: {el.exception.message}")
    elif kind in ("markdown", "heading"):
        run.texts.append(getattr(el, kind).body)


class Session:
    """One websocket session against a Streamlit server at ``base`` (``http://host:port``)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.pages: dict[str, str] = {}
        """Page name (its title) -> page script hash, from the ``navigation`` message."""
        self.page_hash = ""
        self._ws: Any = None

    async def __aenter__(self) -> Self:
        import websockets

        url = self.base.replace("http://", "ws://", 1) + "/_stcore/stream"
        self._ws = await websockets.connect(url, subprotocols=["streamlit"], max_size=2**28)  # type: ignore[list-item]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._ws.close()

    async def rerun(
        self, page: str | None = None, widgets: list[tuple[str, bool]] | None = None, timeout: float = 600.0
    ) -> Run:
        """Rerun the script (on ``page`` if given), with button triggers ``widgets``; wait until idle."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if page is not None:
            self.page_hash = self.pages[page]
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = ""
        cs.page_script_hash = self.page_hash
        for wid, trig in widgets or []:
            w = cs.widget_states.widgets.add()
            w.id = wid
            w.trigger_value = trig
        await self._ws.send(msg.SerializeToString())
        run = Run()
        finished = False
        deadline = time.monotonic() + timeout
        while True:
            data = await asyncio.wait_for(self._ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
            fm = ForwardMsg()
            fm.ParseFromString(data)
            run.messages += 1
            run.bytes += len(data)
            kind = fm.WhichOneof("type")
            if kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                _walk_element(fm.delta.new_element, run)
            elif kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in fm.navigation.app_pages}
                self.page_hash = fm.navigation.page_script_hash or self.page_hash
            elif kind == "new_session":
                self.page_hash = self.page_hash or fm.new_session.page_script_hash
            elif kind == "script_finished":
                finished = fm.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN
            elif kind == "session_status_changed" and not fm.session_status_changed.script_is_running and finished:
                return run

    def fetch_media(self, run: Run) -> int:
        """GET every image of ``run`` that lives on the server (as the browser would); returns the bytes fetched.

        Images drawn inline (``data:`` URLs) came with the run's messages and are skipped.
        """
        total = 0
        for url in run.media:
            if url.startswith("data:"):
                continue
            full = url if url.startswith("http") else self.base + (url if url.startswith("/") else "/" + url)
            with urllib.request.urlopen(full, timeout=60) as r:
                total += len(r.read())
        return total


def button_id(run: Run, key_part: str, label: str) -> str:
    """Widget id of the button whose id contains ``key_part`` and whose label starts with ``label``."""
    for wid, lab in run.buttons.items():
        if key_part in wid and lab.startswith(label):
            return wid
    raise LookupError(f"no button with key containing {key_part!r} and label {label!r} among {len(run.buttons)}")
