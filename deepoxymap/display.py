"""What a clinician sees: display windows, colour maps and cine timing (pure; no UI).

* **Relaxation maps** (T1, T2 in ms) get a window in their own units, chosen from
  the field strength (1.5 T or 3 T; :data:`MAP_WINDOWS`), and the colour maps
  recommended for relaxometry: ``lipari`` for T1 and ``navia`` for T2
  (Fuderer et al. 2024).
* **Signal images** (LGE, cine, OS-CMR) stay greyscale with a robust window
  (:func:`deepoxymap.case.robust_window`: 1st-99th percentile of the stack).
* **Cine** plays at the series' own frame timing (:func:`frame_durations_ms`).

The windows are built from the reference values in ``shared/docs/DOMAIN.md``
section 4 (native T1 by MOLLI, T2 by GraSE / T2-prep SSFP):

==========  ==================  =====================  ==========================================
map, field  normal myocardium   lesion values           window (lo - hi)
==========  ==================  =====================  ==========================================
T1, 1.5 T   950 - 1020 ms       scar 1100 - 1250,      700 - 1500 ms (blood, ~1550, saturates)
                                edema 1050 - 1200
T1, 3 T     1050 - 1190 ms      edema 1250 - 1400,     800 - 1800 ms (blood, ~1900+, saturates)
                                scar 1500 - 1750
T2, 1.5 T   50 - 58 ms          edema +8 - 20 ms,      30 - 90 ms
                                acute MI 82 +/- 19
T2, 3 T     43 - 52 ms          edema +8 - 20 ms       25 - 85 ms
==========  ==================  =====================  ==========================================

Each window starts well below normal myocardium and ends just above the highest
lesion values, so normal myocardium sits in the lower-middle of the colour map,
edema and scar climb towards its bright end and the blood pool (longer T1 and T2)
saturates. Normal ranges are protocol- and vendor-specific (DOMAIN.md section 9,
caveat 5): these are starting points, and the user can change every window.

References:
    Fuderer M, et al. Color-map recommendation for MR relaxometry maps.
    Magn Reson Med 2024 (ISMRM/ESMRMB; recommends "lipari" for T1/R1 and
    "navia" for T2/T2*/R2/R2*).
    Crameri F. Scientific colour maps, version 8.0 (2023), zenodo 8035877 (MIT);
    the two tables are vendored under ``assets/colormaps`` from ``cmcrameri`` 1.10.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Case, Role, Stack, robust_window
from deepoxymap.config import ROOT

__all__ = [
    "COLORMAP_DIR",
    "MAP_COLORMAPS",
    "MAP_WINDOWS",
    "NORMAL_RANGES",
    "DisplayWindow",
    "colormap_table",
    "display_window",
    "field_class",
    "field_strength_t",
    "frame_durations_ms",
    "map_kind",
    "series_field_t",
]

COLORMAP_DIR = ROOT / "assets" / "colormaps"
"""Vendored colour tables (256 RGB rows in [0, 1], one ``<name>.txt`` each)."""

MAP_COLORMAPS: Mapping[str, str] = {"T1": "lipari", "T2": "navia"}
"""Colour map per relaxation map (Fuderer et al. 2024)."""

NORMAL_RANGES: Mapping[tuple[str, float], tuple[float, float]] = {
    ("T1", 1.5): (950.0, 1020.0),
    ("T1", 3.0): (1050.0, 1190.0),
    ("T2", 1.5): (50.0, 58.0),
    ("T2", 3.0): (43.0, 52.0),
}
"""Normal myocardium, ms, by (map, field class in tesla): DOMAIN.md section 4."""

MAP_WINDOWS: Mapping[tuple[str, float], tuple[float, float]] = {
    ("T1", 1.5): (700.0, 1500.0),
    ("T1", 3.0): (800.0, 1800.0),
    ("T2", 1.5): (30.0, 90.0),
    ("T2", 3.0): (25.0, 85.0),
}
"""Default display window ``(lo, hi)`` in ms by (map, field class): see the module table."""

DEFAULT_FIELD_T = 3.0
"""Field class assumed when a map's field strength is unknown (recent OS-CMR work is mostly 3 T: DOMAIN.md 2.6)."""

_ROLE_KIND = {Role.T1_MAP: "T1", Role.T2_MAP: "T2"}


@dataclass(frozen=True)
class DisplayWindow:
    """How to show one stack.

    Attributes:
        lo: value drawn at the bottom of the colour map (units of the stack).
        hi: value drawn at the top.
        colormap: ``"gray"`` or a vendored table name (``"lipari"``, ``"navia"``).
        units: ``"ms"`` for relaxation maps, ``""`` for signal.
        source: how the window was chosen, for a caption (e.g. ``"T1 at 3 T"``).
        field_t: the field class used (1.5 or 3.0), ``None`` for signal images.
        assumed_field: ``True`` when the field strength was unknown and
            :data:`DEFAULT_FIELD_T` was used.
    """

    lo: float
    hi: float
    colormap: str = "gray"
    units: str = ""
    source: str = ""
    field_t: float | None = None
    assumed_field: bool = False

    @property
    def centre(self) -> float:
        """Window centre (level)."""
        return (self.lo + self.hi) / 2.0

    @property
    def width(self) -> float:
        """Window width."""
        return self.hi - self.lo

    @property
    def centre_width(self) -> tuple[float, float]:
        """``(centre, width)``, the DICOM convention used by the figures."""
        return (self.centre, self.width)


def field_strength_t(meta: Mapping[str, Any] | None) -> float | None:
    """MagneticFieldStrength (0018,0087) of a series' metadata in tesla, or ``None``.

    Some older files give the field in gauss (e.g. 15000): values above 100 are divided by 10 000.
    """
    if not meta:
        return None
    raw = meta.get("MagneticFieldStrength")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return value / 10_000.0 if value > 100 else value


def field_class(field_t: float | None) -> float | None:
    """The reference table a field strength falls in: 1.5 (1.0-2.0 T), 3.0 (2.0-3.5 T), else ``None``.

    Siemens "3 T" systems report 2.89 T; anything outside 1.0-3.5 T (0.55 T, 7 T) has no table here.
    """
    if field_t is None or not math.isfinite(field_t):
        return None
    if 1.0 <= field_t < 2.0:
        return 1.5
    if 2.0 <= field_t <= 3.5:
        return 3.0
    return None


def map_kind(stack: Stack) -> str | None:
    """``"T1"`` or ``"T2"`` for a relaxation map in ms, else ``None``."""
    kind = _ROLE_KIND.get(stack.role)
    return kind if kind is not None and stack.units == "ms" else None


def display_window(stack: Stack, field_t: float | None = None) -> DisplayWindow:
    """The default window and colour map of ``stack``.

    Args:
        stack: any stack; relaxation maps are recognised by role (T1/T2 map) and ``units == "ms"``.
        field_t: the series' field strength in tesla (:func:`field_strength_t`), ``None`` if unknown.

    Returns:
        For a T1/T2 map, :data:`MAP_WINDOWS` at the field class (3 T when unknown or outside
        the tables) with ``lipari``/``navia``; for anything else (LGE, cine, OS-CMR) a greyscale
        :func:`~deepoxymap.case.robust_window` of the whole stack (the file's own window, often
        its full range, stays available as ``Stack.window``).
    """
    kind = map_kind(stack)
    if kind is not None:
        fc = field_class(field_t)
        assumed = fc is None
        use = DEFAULT_FIELD_T if fc is None else fc
        lo, hi = MAP_WINDOWS[(kind, use)]
        label = f"{kind} at {use:g} T" + (" (field strength unknown: 3 T assumed)" if assumed else "")
        return DisplayWindow(lo, hi, MAP_COLORMAPS[kind], "ms", label, use, assumed)
    c, w = robust_window(stack.data)
    units = stack.units if stack.units != "label" else ""
    return DisplayWindow(c - w / 2.0, c + w / 2.0, "gray", units, "robust window (1st-99th percentile)")


@functools.cache
def _table(path: Path) -> NDArray[np.float32]:
    table = np.loadtxt(path, dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 3 or not np.all((table >= 0) & (table <= 1)):
        raise ValueError(f"{path}: expected rows of three RGB values in [0, 1], got shape {table.shape}")
    table.setflags(write=False)
    return table


def colormap_table(name: str) -> NDArray[np.float32]:
    """The RGB table of a vendored colour map, float32 ``[256, 3]`` in [0, 1] (read-only, cached).

    Raises:
        ValueError: no such vendored map (``name`` must be a file stem in :data:`COLORMAP_DIR`).
    """
    path = COLORMAP_DIR / f"{name}.txt"
    if not name.isidentifier() or not path.is_file():
        known = sorted(p.stem for p in COLORMAP_DIR.glob("*.txt") if p.stem.isidentifier() and p.stem.islower())
        raise ValueError(f"no vendored colour map {name!r} (known: {known})")
    return _table(path)


def frame_durations_ms(
    trigger_times: NDArray[Any] | None, n_frames: int, *, rr_fallback_ms: float = 1000.0
) -> NDArray[np.float64]:
    """How long each cine frame is shown, in ms, from the series' trigger times.

    Frame ``i`` lasts until frame ``i + 1`` (the trigger-time step); the last frame lasts the
    median step, so a loop keeps the series' own rhythm. Trigger times that are missing, not
    finite or not increasing fall back to an even split of ``rr_fallback_ms`` (one R-R interval
    of 60 beats per minute) over the frames.

    Args:
        trigger_times: ms after the R wave per frame (``Stack.trigger_times[k]``), or ``None``.
        n_frames: number of frames.
        rr_fallback_ms: assumed R-R interval when the timing is unknown.

    Returns:
        float64 ``[n_frames]``, every value > 0.
    """
    n = int(n_frames)
    if n <= 0:
        return np.zeros(0, np.float64)
    even = np.full(n, float(rr_fallback_ms) / n, np.float64)
    if trigger_times is None or n == 1:
        return even
    t = np.asarray(trigger_times, dtype=np.float64).reshape(-1)
    if t.size != n or not np.all(np.isfinite(t)):
        return even
    steps = np.diff(t)
    if steps.size == 0 or not np.all(steps > 0):
        return even
    return np.append(steps, float(np.median(steps)))


def series_field_t(case: Case, series_uid: str) -> float | None:
    """Field strength (tesla) of the series ``series_uid`` of ``case``, else of any series of the case.

    One exam is one scanner, so a series without the attribute (a NIfTI map, say) takes the
    field of the exam's other series. ``None`` when no series says.
    """
    own = [s for s in case.series if series_uid in (s.uid, s.stack.series_uid)]
    for s in [*own, *case.series]:
        value = field_strength_t(s.meta)
        if value is not None:
            return value
    return None
