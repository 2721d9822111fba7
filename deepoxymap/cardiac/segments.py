"""RV insertion points and the AHA 17-segment model, anchored on anatomy.

Angles
------
*Screen angle* ``theta``: degrees counter-clockwise on the displayed image
from the ``+col`` direction (3 o'clock), computed in millimetres
(``atan2(-drow * row_spacing, dcol * col_spacing)``).

*Anatomical angle* ``phi`` (the phantom's convention, ``phantom/anatomy.py``):
0 lateral, 90 anterior, 180 septal (the midpoint of the RV-LV contact), 270
inferior, increasing counter-clockwise *as viewed from the apex* (the standard
SAX display: anterior up, septum on the viewer's left).

Segments follow DOMAIN.md 5.2 option 2 (septal-midpoint anchored, as in
``baiwenjia/ukbb_cardiac``, and as the phantom assigns its lesion segments):
basal/mid 60-degree sectors with segment 1 (7) on ``phi`` in [60, 120), 2 (8) on
[120, 180), ... 6 (12) on [0, 60); apical 90-degree sectors 13 [45, 135),
14 [135, 225), 15 [225, 315), 16 [315, 45); slices with myocardium but no
cavity are the apical cap (17). ``convention="insertion"`` instead splits the
septal arc between the two insertion points into two equal segments and the
free wall into four (option 1 with the septal arc rescaled).

Why this survives rotation and flips
------------------------------------
``phi`` is measured from the septal midpoint found from the RV in the label
map, so an in-plane rotation moves the segments with the heart. A flip
mirrors the heart: the sense of rotation ("counter-clockwise as viewed from
the apex") is then reversed. It is taken from the slice geometry
(:func:`handedness`: the image normal against the base-to-apex direction), or
given by the caller who flipped an array; with neither, the standard display
(viewed from the apex) is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from deepoxymap.cardiac.masks import PHANTOM, LabelScheme, masks_from_labels
from deepoxymap.errors import CaseError

__all__ = [
    "LEVELS",
    "SEGMENT_NAMES",
    "TERRITORY",
    "InsertionPoints",
    "anatomical_angle",
    "find_insertion_points",
    "fixed_insertion_points",
    "handedness",
    "has_full_ring",
    "level_segments",
    "screen_angle",
    "segment_energy_fraction",
    "segment_map",
    "segment_mean",
    "segment_of_angle",
    "segment_sums",
    "slice_levels",
]

LEVELS = ("basal", "mid", "apical", "apex")
SEGMENT_NAMES: dict[int, str] = {
    1: "basal anterior", 2: "basal anteroseptal", 3: "basal inferoseptal", 4: "basal inferior",
    5: "basal inferolateral", 6: "basal anterolateral", 7: "mid anterior", 8: "mid anteroseptal",
    9: "mid inferoseptal", 10: "mid inferior", 11: "mid inferolateral", 12: "mid anterolateral",
    13: "apical anterior", 14: "apical septal", 15: "apical inferior", 16: "apical lateral", 17: "apex",
}  # fmt: skip
"""AHA segment names (Cerqueira 2002)."""
TERRITORY: dict[int, str] = {
    **{s: "LAD" for s in (1, 2, 7, 8, 13, 14, 17)},
    **{s: "RCA" for s in (3, 4, 9, 10, 15)},
    **{s: "LCx" for s in (5, 6, 11, 12, 16)},
}
"""Standard coronary territory per segment (DOMAIN.md 5.3)."""

Convention = Literal["septal-midpoint", "insertion"]


def level_segments(level: str) -> tuple[int, ...]:
    """Segment ids of one level (``basal`` 1-6, ``mid`` 7-12, ``apical`` 13-16, ``apex`` 17)."""
    return {"basal": (1, 2, 3, 4, 5, 6), "mid": (7, 8, 9, 10, 11, 12), "apical": (13, 14, 15, 16), "apex": (17,)}[level]


def handedness(geometry: Any, slice_index: int = 0, apex_direction: Sequence[float] | None = None) -> int:
    """+1 if the displayed image is viewed from the apex (standard), -1 if mirrored.

    The viewer of a displayed image (rows down, columns right) looks along
    the normal ``row_cosine x col_cosine``; viewed from the apex means looking
    from apex to base, i.e. against the base-to-apex direction.

    Args:
        geometry: a :class:`~deepoxymap.case.Geometry`.
        slice_index: unused (all slices of a stack share the orientation); kept for symmetry.
        apex_direction: base-to-apex direction in LPS; default ``(1, -1, -1)/sqrt(3)``
            (left, anterior, inferior), as :func:`~deepoxymap.case.sort_base_to_apex` assumes.

    Returns:
        ``+1`` or ``-1`` (``+1`` when the geometry is missing or the plane is
        parallel to the assumed long axis).
    """
    if geometry is None or not getattr(geometry, "has_geometry", False):
        return 1
    d = np.asarray(apex_direction if apex_direction is not None else (1.0, -1.0, -1.0), dtype=np.float64)
    d = d / np.linalg.norm(d)
    dot = float(np.asarray(geometry.normal) @ d)
    if abs(dot) < 1e-3:
        return 1
    return 1 if dot < 0 else -1


def screen_angle(
    shape: tuple[int, int], centre: tuple[float, float], pixel_spacing: tuple[float, float] = (1.0, 1.0)
) -> NDArray[np.float64]:
    """Screen angle (deg, [0, 360)) of every pixel around ``centre`` (row, col), measured in mm."""
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    dy = -(rr - centre[0]) * pixel_spacing[0]
    dx = (cc - centre[1]) * pixel_spacing[1]
    return np.degrees(np.arctan2(dy, dx)) % 360.0


@dataclass(frozen=True)
class InsertionPoints:
    """RV insertion points of one slice.

    Attributes:
        centre: LV centre ``(row, col)``, pixels (centroid of blood pool + myocardium).
        anterior: anterior insertion point ``(row, col)`` on the epicardium, pixels.
        inferior: inferior insertion point ``(row, col)``, pixels.
        anterior_deg: screen angle of the anterior insertion point.
        inferior_deg: screen angle of the inferior insertion point.
        septal_deg: screen angle of the septal midpoint (the anatomical 180 deg).
        septal_arc_deg: angular width of the RV-LV contact, degrees.
        sense: +1 if anatomical angles increase counter-clockwise on screen
            (viewed from the apex), -1 if mirrored.
    """

    centre: tuple[float, float]
    anterior: tuple[float, float]
    inferior: tuple[float, float]
    anterior_deg: float
    inferior_deg: float
    septal_deg: float
    septal_arc_deg: float
    sense: int


def _centroid(mask: NDArray[np.bool_]) -> tuple[float, float]:
    rr, cc = np.nonzero(mask)
    return float(rr.mean()), float(cc.mean())


def _point_at(
    angle: float, centre: tuple[float, float], myo: NDArray[np.bool_], ps: tuple[float, float]
) -> tuple[float, float]:
    """The outermost myocardium pixel along a ray from the centre (the epicardial insertion point)."""
    rr, cc = np.nonzero(myo)
    th = screen_angle(myo.shape, centre, ps)[rr, cc]
    diff = np.abs((th - angle + 180.0) % 360.0 - 180.0)
    near = diff <= max(2.0, float(diff.min()) + 1.0)
    dist = np.hypot((rr[near] - centre[0]) * ps[0], (cc[near] - centre[1]) * ps[1])
    k = int(np.argmax(dist))
    return float(rr[near][k]), float(cc[near][k])


def find_insertion_points(
    labels: NDArray[Any],
    *,
    scheme: LabelScheme = PHANTOM,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    sense: int | None = None,
    geometry: Any = None,
    max_gap_mm: float = 5.0,
) -> InsertionPoints:
    """RV insertion points of one slice from a label map (LV myocardium + RV).

    The RV pixels within ``max_gap_mm`` of the LV myocardium are the RV-LV
    contact; their screen angles around the LV centre form one arc whose two
    ends are the insertion points. Which end is anterior follows from the
    sense of rotation: viewed from the apex, walking counter-clockwise from
    the anterior insertion point crosses the septum.

    Args:
        labels: ``[rows, cols]`` label map.
        scheme: label values of myocardium, LV blood and RV.
        pixel_spacing: ``(row, col)`` mm.
        sense: +1 (viewed from apex) or -1 (mirrored); default from ``geometry``
            via :func:`handedness`, else +1.
        geometry: the slice's :class:`~deepoxymap.case.Geometry` (optional).
        max_gap_mm: RV pixels further than this from the myocardium do not count.

    Returns:
        :class:`InsertionPoints`.

    Raises:
        CaseError: no myocardium, or no RV next to it.
    """
    from scipy import ndimage as ndi

    m = masks_from_labels(labels, scheme)
    if m.myocardium.sum() < 10:
        raise CaseError("no LV myocardium in the label map: cannot place AHA segments")
    if not m.rv.any():
        raise CaseError(
            "no RV in the label map: the RV insertion points anchor the AHA segments",
            hint="supply a label map with the RV, or give the insertion points by hand",
        )
    ps = (float(pixel_spacing[0]), float(pixel_spacing[1]))
    centre = _centroid(m.myocardium | m.lv_blood)
    dist = ndi.distance_transform_edt(~m.myocardium, sampling=ps)
    contact = m.rv & (dist <= max_gap_mm)
    if contact.sum() < 2:
        raise CaseError(f"the RV does not touch the LV myocardium (within {max_gap_mm} mm)")
    th = np.sort(screen_angle(labels.shape, centre, ps)[contact])
    gaps = np.diff(np.concatenate([th, [th[0] + 360.0]]))
    g = int(np.argmax(gaps))
    start = float(th[(g + 1) % th.size])  # arc runs counter-clockwise from start to end
    end = float(th[g])
    arc = (end - start) % 360.0
    if sense is None:
        sense = handedness(geometry)
    septal = (start + arc / 2.0) % 360.0
    ant, inf = (start, end) if sense > 0 else (end, start)
    myo = m.myocardium
    return InsertionPoints(
        centre=centre,
        anterior=_point_at(ant, centre, myo, ps),
        inferior=_point_at(inf, centre, myo, ps),
        anterior_deg=ant,
        inferior_deg=inf,
        septal_deg=septal,
        septal_arc_deg=arc,
        sense=int(sense),
    )


def fixed_insertion_points(
    labels: NDArray[Any],
    *,
    scheme: LabelScheme = PHANTOM,
    septal_deg: float = 180.0,
    arc_deg: float = 120.0,
    sense: int = 1,
) -> InsertionPoints:
    """Insertion points placed by convention, for label maps without an RV (e.g. EMIDEC).

    The septal midpoint is put at screen angle ``septal_deg`` (180 = the
    viewer's left, the standard display) with a septal arc of ``arc_deg``.
    This is an image-axis fallback, **not** anatomy: it is only right for
    images in the standard orientation.
    """
    m = masks_from_labels(labels, scheme)
    if not (m.myocardium | m.lv_blood).any():
        raise CaseError("no LV in the label map")
    centre = _centroid(m.myocardium | m.lv_blood)
    a = (septal_deg - sense * arc_deg / 2.0) % 360.0
    b = (septal_deg + sense * arc_deg / 2.0) % 360.0
    return InsertionPoints(centre, centre, centre, a, b, septal_deg % 360.0, arc_deg, int(sense))


def anatomical_angle(
    shape: tuple[int, int],
    ip: InsertionPoints,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    *,
    convention: Convention = "septal-midpoint",
) -> NDArray[np.float64]:
    """Anatomical angle ``phi`` (deg, [0, 360)) of every pixel (see module doc).

    With ``convention="insertion"`` the septal arc (anterior to inferior
    insertion point) is stretched onto [120, 240) and the free wall onto the
    remaining 240 degrees, so both insertion points sit on segment boundaries.
    """
    th = screen_angle(shape, ip.centre, pixel_spacing)
    rel = (ip.sense * (th - ip.septal_deg)) % 360.0  # 0 at septal midpoint, increasing towards inferior
    rel = np.where(rel >= 180.0, rel - 360.0, rel)  # (-180, 180]
    if convention == "insertion":
        half = max(ip.septal_arc_deg / 2.0, 1e-3)
        free = max(180.0 - half, 1e-3)
        rel = np.where(
            np.abs(rel) <= half, rel * 60.0 / half, np.sign(rel) * (60.0 + (np.abs(rel) - half) * 120.0 / free)
        )
    return (180.0 + rel) % 360.0


def segment_of_angle(phi: NDArray[Any] | float, level: str) -> NDArray[np.int64]:
    """AHA segment id of anatomical angle(s) on a level (``apex`` gives 17)."""
    t = np.asarray(phi, dtype=np.float64) % 360.0
    if level == "apex":
        return np.full(t.shape, 17, dtype=np.int64)
    if level == "apical":
        return (13 + np.floor(((t - 45.0) % 360.0) / 90.0)).astype(np.int64)
    if level not in ("basal", "mid"):
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    base = 1 if level == "basal" else 7
    return (base + np.floor(((t - 60.0) % 360.0) / 60.0)).astype(np.int64)


def segment_map(
    labels: NDArray[Any],
    level: str,
    *,
    scheme: LabelScheme = PHANTOM,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    insertion: InsertionPoints | None = None,
    sense: int | None = None,
    geometry: Any = None,
    region: Literal["myocardium", "all"] | NDArray[np.bool_] = "myocardium",
    convention: Convention = "septal-midpoint",
) -> NDArray[np.int64]:
    """AHA segment id of every pixel of one slice.

    Args:
        labels: ``[rows, cols]`` label map with LV myocardium and RV (the RV is
            not needed when ``insertion`` is given or ``level == "apex"``).
        level: ``"basal"``, ``"mid"``, ``"apical"`` or ``"apex"`` (see :func:`slice_levels`).
        scheme: label values.
        pixel_spacing: ``(row, col)`` mm.
        insertion: precomputed insertion points (else found from ``labels``).
        sense / geometry: orientation, see :func:`find_insertion_points`.
        region: where segments are assigned: ``"myocardium"``, ``"all"`` (every
            pixel gets its angular sector) or a boolean mask.
        convention: ``"septal-midpoint"`` (default) or ``"insertion"``.

    Returns:
        int64 ``[rows, cols]``: 1-17 inside the region, 0 elsewhere.
    """
    lab = np.asarray(labels)
    if isinstance(region, str):
        if region == "all":
            roi = np.ones(lab.shape, dtype=bool)
        else:
            roi = masks_from_labels(lab, scheme).myocardium
    else:
        roi = np.asarray(region, dtype=bool)
    out = np.zeros(lab.shape, dtype=np.int64)
    if level == "apex":
        out[roi] = 17
        return out
    ip = insertion or find_insertion_points(
        lab, scheme=scheme, pixel_spacing=pixel_spacing, sense=sense, geometry=geometry
    )
    phi = anatomical_angle(lab.shape, ip, pixel_spacing, convention=convention)
    seg = segment_of_angle(phi, level)
    out[roi] = seg[roi]
    return out


def has_full_ring(labels: NDArray[Any], scheme: LabelScheme = PHANTOM, *, min_blood_px: int = 5) -> bool:
    """Whether a slice shows a closed myocardial ring around an LV cavity (DOMAIN.md 5.1)."""
    m = masks_from_labels(labels, scheme)
    if m.myocardium.sum() < 10 or m.lv_blood.sum() < min_blood_px:
        return False
    centre = _centroid(m.lv_blood)
    th = screen_angle(labels.shape, centre)[m.myocardium]
    bins = np.unique(np.floor(th / 10.0).astype(int))
    return bins.size == 36


def slice_levels(
    n_slices: int, valid: Sequence[bool] | None = None, apex_cap: Sequence[bool] | None = None
) -> list[str]:
    """AHA level of each slice, slices ordered base to apex.

    The slices with a full myocardial ring (``valid``) are split into thirds
    (``ceil(n/3)``, ``ceil(2n/3)``, as ukbb_cardiac does): basal, mid, apical.
    Slices flagged ``apex_cap`` (myocardium but no cavity) beyond the last
    valid slice are ``"apex"``; other invalid slices are ``"none"``.

    Args:
        n_slices: number of slices.
        valid: per slice, whether it has a full ring (default: all).
        apex_cap: per slice, whether it is an apical cap.

    Returns:
        list of ``"basal" | "mid" | "apical" | "apex" | "none"``.
    """
    ok = list(valid) if valid is not None else [True] * n_slices
    cap = list(apex_cap) if apex_cap is not None else [False] * n_slices
    idx = [i for i in range(n_slices) if ok[i]]
    n = len(idx)
    out = ["none"] * n_slices
    b1, b2 = math.ceil(n / 3), math.ceil(2 * n / 3)
    for j, i in enumerate(idx):
        out[i] = "basal" if j < b1 else ("mid" if j < b2 else "apical")
    last = idx[-1] if idx else -1
    for i in range(n_slices):
        if not ok[i] and cap[i] and i > last:
            out[i] = "apex"
    return out


def segment_sums(values: NDArray[Any], seg_map: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Sum of ``values`` and pixel count per segment.

    Args:
        values: ``[rows, cols]`` (or any shape equal to ``seg_map``), e.g. a heatmap.
        seg_map: segment ids 0-17 of the same shape (0 ignored).

    Returns:
        ``(sums float64 [17], counts int64 [17])``, index ``s - 1`` for segment ``s``.
    """
    v = np.asarray(values, dtype=np.float64)
    s = np.asarray(seg_map, dtype=np.int64)
    if v.shape != s.shape:
        raise ValueError(f"values {v.shape} and segment map {s.shape} differ in shape")
    sel = s > 0
    sums = np.bincount(s[sel] - 1, weights=v[sel], minlength=17)[:17].astype(np.float64)
    counts = np.bincount(s[sel] - 1, minlength=17)[:17].astype(np.int64)
    return sums, counts


def segment_mean(values: NDArray[Any], seg_map: NDArray[Any]) -> NDArray[np.float64]:
    """Mean of ``values`` per segment; float64 ``[17]`` with NaN for absent segments."""
    sums, counts = segment_sums(values, seg_map)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def segment_energy_fraction(values: NDArray[Any], seg_map: NDArray[Any]) -> NDArray[np.float64]:
    """Share of the total (non-negative) energy of ``values`` inside the segments, per segment.

    Returns:
        float64 ``[17]`` summing to 1 over present segments (0 where a segment has
        no energy, NaN where it is absent; all 0 when there is no energy).
    """
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    sums, counts = segment_sums(v, seg_map)
    total = sums.sum()
    frac = sums / total if total > 0 else np.zeros(17)
    return np.where(counts > 0, frac, np.nan)
