"""Step 2b: every file's frames, with duplicates sorted out and every problem recorded.

Files sharing a SOPInstanceUID are compared by their pixel bytes (SHA-1),
transfer syntax and placement records. An identical copy is dropped with an
info line; a conflicting copy is kept, moved to the series
``<SeriesInstanceUID>#dupN`` (the N-th copy), with a warning that names both
files, so that neither silently replaces the other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from deepoxymap.errors import DeepOxyMapError, DicomReadError
from deepoxymap.io.dicom.frames import Frame, frames_of
from deepoxymap.io.dicom.header import DicomHeader
from deepoxymap.io.dicom.values import tag_text

__all__ = ["DicomProblem", "all_frames"]

log = logging.getLogger(__name__)


@dataclass
class DicomProblem:
    """One file (or stack) that could not be used, or was used with a caveat.

    Attributes:
        source: display name of the file concerned (the first file of a stack).
        error: what is wrong, naming the file.
        severity: ``"error"`` (skipped), ``"warning"`` (used with a caveat) or
            ``"info"`` (ignored duplicate).
    """

    source: str
    error: DeepOxyMapError
    severity: str


def _content_key(h: DicomHeader, frames: list[Frame]) -> tuple[Any, ...]:
    """What two files sharing a SOPInstanceUID must agree on to be the same image: pixel bytes and placement."""
    pix = next((t for t in (0x7FE00010, 0x7FE00008, 0x7FE00009) if t in h.ds), None)
    value = h.ds[pix].value if pix is not None else b""
    digest = hashlib.sha1(value if isinstance(value, bytes | bytearray) else repr(value).encode()).hexdigest()
    placement = tuple(dataclasses.astuple(dataclasses.replace(fr, file=0)) for fr in frames)
    return (digest, str(h.ds.file_meta.get("TransferSyntaxUID", "")), repr(placement))


def all_frames(headers: list[DicomHeader], problems: list[DicomProblem]) -> list[Frame]:
    """Frames of every header; duplicates and unreadable attributes go to ``problems``.

    A file repeating an earlier file's SOPInstanceUID with the same content is
    dropped with an info line; with different content it is kept, moved to
    the series ``<SeriesInstanceUID>#dupN`` (N-th copy), with a warning that
    names both files.
    """
    frames: list[Frame] = []
    seen_sop: dict[str, list[tuple[int, list[Frame]]]] = {}
    for i, h in enumerate(headers):
        try:
            mine = frames_of(h, i)
        except Exception as exc:  # noqa: BLE001 - malformed attribute values of any kind
            problems.append(
                DicomProblem(
                    h.name, DicomReadError(f"image attributes could not be read ({exc})", source=h.name), "error"
                )
            )
            continue
        if not mine:  # pragma: no cover - frames_of gives one record per frame, n_frames >= 1
            problems.append(DicomProblem(h.name, DicomReadError("holds no frame", source=h.name), "error"))
            continue
        sop_uid = tag_text(h.ds, "SOPInstanceUID") or ""
        earlier = seen_sop.setdefault(sop_uid, []) if sop_uid else []
        if earlier:
            mine = _duplicate(h, mine, headers, earlier, sop_uid, problems)
            if not mine:
                continue
        if sop_uid:
            earlier.append((i, mine))
        frames.extend(mine)
    return frames


def _duplicate(
    h: DicomHeader,
    mine: list[Frame],
    headers: list[DicomHeader],
    earlier: list[tuple[int, list[Frame]]],
    sop_uid: str,
    problems: list[DicomProblem],
) -> list[Frame]:
    """Frames to keep of ``h``, whose SOPInstanceUID earlier files already have (see :func:`all_frames`)."""
    try:
        key = _content_key(h, mine)
        same = next((j for j, fr in earlier if _content_key(headers[j], fr) == key), None)
    except Exception as exc:  # noqa: BLE001 - unreadable deferred pixel data: keep it, it fails later if bad
        log.debug("duplicate %s could not be compared (%s)", h.name, exc)
        same = None
    first = headers[earlier[0][0]].name
    if same is not None:
        problems.append(
            DicomProblem(
                h.name,
                DicomReadError(
                    f"identical copy of {headers[same].name} (same SOPInstanceUID and content); ignored",
                    source=h.name,
                ),
                "info",
            )
        )
        return []
    dup_uid = f"{mine[0].series_uid}#dup{len(earlier)}"
    problems.append(
        DicomProblem(
            h.name,
            DicomReadError(
                f"has the same SOPInstanceUID ({sop_uid}) as {first} but different content (pixel data or "
                f"placement); neither replaces the other: {h.name} is loaded as the separate series "
                f"'{dup_uid}' - check which one is correct",
                source=h.name,
            ),
            "warning",
        )
    )
    return [dataclasses.replace(fr, series_uid=dup_uid) for fr in mine]
