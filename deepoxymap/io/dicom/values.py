"""Fast readers of DICOM element values and small numeric helpers.

The element readers take the raw value of a text-VR element (no pydicom
conversion or validation, which otherwise dominates the load time of large
series). Vectors are plain tuples of floats: per-frame numpy arrays cost more
than they save.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

__all__ = [
    "dot",
    "dt_time",
    "finite_float",
    "first_value",
    "float_vec",
    "iop_ok",
    "parse_tm",
    "tag_number",
    "tag_numbers",
    "tag_text",
]

_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UT"}


@functools.lru_cache(maxsize=256)
def _tag_vr(keyword: str) -> tuple[int, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:  # pragma: no cover - programming error
        raise KeyError(keyword)
    return int(tag), dictionary_VR(tag)


def tag_text(ds: Dataset, keyword: str) -> str | None:
    """Fast string value of a text-VR element (raw bytes decoded, no validation), ``None`` if absent.

    Multi-valued elements keep DICOM's ``\\`` separator. Reading raw values
    avoids pydicom's per-value conversion and validation, which otherwise
    dominates the load time of large series.
    """
    tag, vr = _tag_vr(keyword)
    elem = ds.get_item(tag)
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes) and vr in _STRING_VRS:
        return value.decode("latin-1").strip("\x00 ")
    if value is None:
        return None
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return "\\".join(str(x) for x in value)
    return str(value).strip()


def tag_numbers(ds: Dataset, keyword: str) -> list[float] | None:
    """Numbers of a DS/IS element (fast path of :func:`tag_text`), ``None`` if absent or unreadable."""
    t = tag_text(ds, keyword)
    if not t:
        return None
    try:
        return [float(x) for x in t.split("\\") if x.strip()]
    except ValueError:
        return None


def tag_number(ds: Dataset, keyword: str) -> float | None:
    """First number of a DS/IS element if finite, else ``None``."""
    v = tag_numbers(ds, keyword)
    return finite_float(v[0]) if v else None


def finite_float(v: Any) -> float | None:
    """``float(v)`` if that is finite, else ``None`` (also for values that are not numbers)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def first_value(v: Any) -> Any:
    """First item of a multi-valued element value (``None`` if empty); single values unchanged."""
    if isinstance(v, str | bytes) or not hasattr(v, "__len__"):
        return v
    return v[0] if len(v) else None


def float_vec(v: Any, n: int) -> tuple[float, ...] | None:
    """``n`` finite floats, or ``None`` (plain tuples: per-frame numpy arrays cost more than they save)."""
    if v is None:
        return None
    try:
        a = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        return None
    if len(a) != n or not all(math.isfinite(x) for x in a):
        return None
    return a


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    """Dot product of two equally long float sequences."""
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def parse_tm(value: Any) -> float | None:
    """DICOM TM (``HHMMSS.FFFFFF``, also ``HH:MM:SS``) -> seconds after midnight, or ``None``."""
    if value is None:
        return None
    s = str(value).strip().replace(":", "")
    if not s:
        return None
    try:
        hh = int(s[0:2])
        mm = int(s[2:4]) if len(s) >= 4 else 0
        ss = float(s[4:]) if len(s) > 4 else 0.0
    except ValueError:
        return None
    return hh * 3600.0 + mm * 60.0 + ss


def dt_time(value: Any) -> float | None:
    """Time of day of a DICOM DT (``YYYYMMDDHHMMSS.FFFFFF``), seconds after midnight, or ``None``."""
    s = str(value or "").strip()
    return parse_tm(s[8:]) if len(s) > 8 else None


def iop_ok(iop: Sequence[float] | None) -> bool:
    """Row and column cosines present, of sensible length and roughly orthogonal."""
    if iop is None:
        return False
    r, c = iop[:3], iop[3:]
    nr, nc = math.sqrt(dot(r, r)), math.sqrt(dot(c, c))
    if nr < 0.5 or nc < 0.5:
        return False
    return abs(dot(r, c) / (nr * nc)) < 0.05
