"""The data model: geometry-carrying stacks, series and cases.

Every image array travels with its :class:`Geometry` (DICOM patient
coordinates, LPS, millimetres). Slice matching between OS-CMR and LGE/T1/T2,
resampling onto a common grid and mapping heatmaps back onto images are all
geometry operations in patient millimetres.

Conventions
-----------
* Pixel ``(r, c)`` of slice ``k`` sits at
  ``slice_origins[k] + c * col_spacing * row_cosine + r * row_spacing * col_cosine``
  (DICOM PS3.3 C.7.6.2.1.1; ``PixelSpacing`` is *row spacing, column spacing*).
* ``Stack.data`` is float32 ``[slice, frame, row, col]``.
* Slices are ordered base to apex once a case is assembled; along the normal
  this is the order of ``slice_positions`` chosen by :func:`sort_base_to_apex`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.errors import CaseError, GeometryError

__all__ = [
    "Case",
    "Geometry",
    "Role",
    "Series",
    "SliceMatch",
    "Stack",
    "Truth",
    "match_slices",
    "nearest_slice",
    "resample_slice",
    "robust_window",
    "sort_base_to_apex",
]


class Role(enum.StrEnum):
    """What a series is for. Inferred from DICOM attributes, overridable by the user."""

    OS_CMR = "os-cmr"
    CINE = "cine"
    LGE = "lge"
    T1_MAP = "t1-map"
    T2_MAP = "t2-map"
    MASK = "mask"
    UNKNOWN = "unknown"

    @property
    def label(self) -> str:
        """Human-readable name for tables and widgets."""
        return {
            "os-cmr": "OS-CMR",
            "cine": "Cine",
            "lge": "LGE",
            "t1-map": "T1 map",
            "t2-map": "T2 map",
            "mask": "Mask",
            "unknown": "Unknown",
        }[self.value]


def _unit(v: Sequence[float] | NDArray[Any]) -> NDArray[np.float64]:
    a = np.asarray(v, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(a))
    if not np.isfinite(n) or n < 1e-6:
        raise GeometryError(f"direction cosine {a.tolist()} has zero length")
    return a / n


@dataclass(frozen=True, eq=False)
class Geometry:
    """Where a stack of parallel 2D slices sits in patient space (LPS, mm).

    Attributes:
        slice_origins: ``(n_slices, 3)`` float64, ImagePositionPatient of the
            centre of the first (top-left) pixel of each slice, mm.
        row_cosine: ``(3,)`` direction of increasing column index (first row).
        col_cosine: ``(3,)`` direction of increasing row index (first column).
        pixel_spacing: ``(row_spacing, col_spacing)`` mm (DICOM order).
        shape: ``(rows, cols)`` of each slice.
        slice_thickness: nominal slice thickness in mm, or ``None``.
        frame_of_reference_uid: FrameOfReferenceUID, or ``None``.
        has_geometry: ``False`` when the source lacked position/orientation:
            the stack can be viewed but never slice-matched or resampled.
    """

    slice_origins: NDArray[np.float64]
    row_cosine: NDArray[np.float64]
    col_cosine: NDArray[np.float64]
    pixel_spacing: tuple[float, float]
    shape: tuple[int, int]
    slice_thickness: float | None = None
    frame_of_reference_uid: str | None = None
    has_geometry: bool = True

    def __post_init__(self) -> None:
        so = np.asarray(self.slice_origins, dtype=np.float64).reshape(-1, 3)
        object.__setattr__(self, "slice_origins", so)
        object.__setattr__(self, "row_cosine", _unit(self.row_cosine))
        object.__setattr__(self, "col_cosine", _unit(self.col_cosine))
        ps = (float(self.pixel_spacing[0]), float(self.pixel_spacing[1]))
        if not all(np.isfinite(ps)) or min(ps) <= 0:
            raise GeometryError(f"pixel spacing {ps} must be positive")
        object.__setattr__(self, "pixel_spacing", ps)
        object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))

    # -- constructors -----------------------------------------------------
    @classmethod
    def without_geometry(
        cls, n_slices: int, shape: tuple[int, int], pixel_spacing: tuple[float, float] = (1.0, 1.0)
    ) -> Geometry:
        """A flagged placeholder for images that carried no position/orientation.

        Slices are stacked 1 mm apart along +z with identity orientation so that
        viewing works; :attr:`has_geometry` is ``False`` and every geometric
        operation refuses it.
        """
        origins = np.zeros((n_slices, 3))
        origins[:, 2] = np.arange(n_slices, dtype=np.float64)
        return cls(origins, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), pixel_spacing, shape, None, None, False)

    @classmethod
    def from_affine(cls, affine: NDArray[np.float64], shape: tuple[int, int], n_slices: int) -> Geometry:
        """Build from a 4x4 voxel->patient(LPS) affine of a ``(row, col, slice)`` volume.

        ``affine @ [r, c, k, 1]`` gives the LPS position (mm) of voxel ``(r, c, k)``.
        """
        a = np.asarray(affine, dtype=np.float64)
        col_vec, row_vec, slc_vec = a[:3, 0], a[:3, 1], a[:3, 2]
        row_spacing, col_spacing = float(np.linalg.norm(col_vec)), float(np.linalg.norm(row_vec))
        origins = a[:3, 3][None, :] + np.arange(n_slices)[:, None] * slc_vec[None, :]
        return cls(
            origins,
            row_vec / col_spacing,
            col_vec / row_spacing,
            (row_spacing, col_spacing),
            shape,
            float(np.linalg.norm(slc_vec)),
        )

    # -- derived ------------------------------------------------------------
    @property
    def n_slices(self) -> int:
        """Number of slices."""
        return int(self.slice_origins.shape[0])

    @property
    def normal(self) -> NDArray[np.float64]:
        """Unit slice normal, ``row_cosine x col_cosine``."""
        n = np.cross(self.row_cosine, self.col_cosine)
        return n / np.linalg.norm(n)

    @property
    def slice_positions(self) -> NDArray[np.float64]:
        """``(n_slices,)`` position of each slice along :attr:`normal`, mm."""
        return self.slice_origins @ self.normal

    @property
    def slice_spacing(self) -> float | None:
        """Median distance between neighbouring slices (mm), ``None`` for one slice."""
        if self.n_slices < 2:
            return None
        return float(np.median(np.abs(np.diff(self.slice_positions))))

    def affine(self, slice_index: int = 0) -> NDArray[np.float64]:
        """4x4 matrix mapping ``[row, col, 0, 1]`` of one slice to LPS mm."""
        m = np.eye(4)
        m[:3, 0] = self.col_cosine * self.pixel_spacing[0]
        m[:3, 1] = self.row_cosine * self.pixel_spacing[1]
        m[:3, 2] = self.normal
        m[:3, 3] = self.slice_origins[slice_index]
        return m

    def pixel_to_patient(
        self, slice_index: int, rows: NDArray[Any] | float, cols: NDArray[Any] | float
    ) -> NDArray[np.float64]:
        """LPS position (mm) of pixel centres; returns ``(..., 3)``."""
        r = np.asarray(rows, dtype=np.float64)[..., None]
        c = np.asarray(cols, dtype=np.float64)[..., None]
        return (
            self.slice_origins[slice_index]
            + c * self.pixel_spacing[1] * self.row_cosine
            + r * self.pixel_spacing[0] * self.col_cosine
        )

    def patient_to_pixel(self, slice_index: int, points: NDArray[Any]) -> NDArray[np.float64]:
        """Inverse of :meth:`pixel_to_patient`: ``(..., 3)`` LPS -> ``(..., 3)`` (row, col, out-of-plane mm)."""
        d = np.asarray(points, dtype=np.float64) - self.slice_origins[slice_index]
        r = d @ self.col_cosine / self.pixel_spacing[0]
        c = d @ self.row_cosine / self.pixel_spacing[1]
        z = d @ self.normal
        return np.stack([r, c, z], axis=-1)

    def subset(self, indices: Sequence[int]) -> Geometry:
        """Geometry of the slices ``indices`` (in that order)."""
        return dataclasses.replace(self, slice_origins=self.slice_origins[list(indices)])

    def require(self, what: str) -> None:
        """Raise :class:`GeometryError` if this is a no-geometry placeholder."""
        if not self.has_geometry:
            raise GeometryError(
                f"cannot {what}: this stack has no geometry (ImagePositionPatient/ImageOrientationPatient missing)"
            )


@dataclass(frozen=True, eq=False)
class Stack:
    """A geometry-carrying image stack.

    Attributes:
        data: float32 ``[slice, frame, row, col]``; intensities after the
            modality LUT (RescaleSlope/Intercept), in :attr:`units`.
        geometry: where each slice sits.
        trigger_times: float64 ``[slice, frame]`` ms after the R wave (NaN if unknown).
        role: what the stack is for.
        units: ``"ms"`` for T1/T2 maps, ``"label"`` for masks, ``""`` for arbitrary signal.
        timepoint: manoeuvre time point of an OS-CMR stack (``"baseline"``,
            ``"hv-end"``, ``"bh-start"``, ``"bh-end"``) or ``None``.
        acquisition_time_s: AcquisitionTime in seconds after midnight (or after
            the manoeuvre start for synthetic data), ``None`` if absent.
        series_uid: SeriesInstanceUID the stack came from (or a file-derived id).
        description: SeriesDescription (may be empty).
        window: default display ``(centre, width)``.
    """

    data: NDArray[np.float32]
    geometry: Geometry
    trigger_times: NDArray[np.float64]
    role: Role = Role.UNKNOWN
    units: str = ""
    timepoint: str | None = None
    acquisition_time_s: float | None = None
    series_uid: str = ""
    description: str = ""
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        d = np.asarray(self.data)
        if d.ndim != 4:
            raise CaseError(f"stack data must be [slice, frame, row, col], got shape {d.shape}")
        if d.dtype != np.float32:
            d = d.astype(np.float32)
        object.__setattr__(self, "data", d)
        if d.shape[0] != self.geometry.n_slices or d.shape[2:] != self.geometry.shape:
            raise CaseError(
                f"stack data {d.shape} does not match geometry "
                f"({self.geometry.n_slices} slices of {self.geometry.shape})"
            )
        tt = np.asarray(self.trigger_times, dtype=np.float64)
        if tt.shape != d.shape[:2]:
            tt = np.broadcast_to(tt.reshape(-1) if tt.size == d.shape[1] else np.full(d.shape[1], np.nan), d.shape[:2])
        object.__setattr__(self, "trigger_times", np.array(tt, dtype=np.float64))

    @property
    def n_slices(self) -> int:
        """Number of slices."""
        return int(self.data.shape[0])

    @property
    def n_frames(self) -> int:
        """Number of cine frames (1 for maps and LGE)."""
        return int(self.data.shape[1])

    def image(self, slice_index: int, frame: int = 0) -> NDArray[np.float32]:
        """One 2D image ``[row, col]`` float32."""
        return self.data[slice_index, frame]

    def with_role(self, role: Role) -> Stack:
        """A copy with another role (the user's override)."""
        return dataclasses.replace(self, role=role)

    def subset(self, indices: Sequence[int]) -> Stack:
        """The slices ``indices`` (in that order)."""
        idx = list(indices)
        return dataclasses.replace(
            self, data=self.data[idx], geometry=self.geometry.subset(idx), trigger_times=self.trigger_times[idx]
        )


@dataclass(frozen=True, eq=False)
class Series:
    """One loaded series: its stack plus provenance (no patient identifiers).

    Attributes:
        uid: SeriesInstanceUID (or a synthetic id for NIfTI files).
        stack: the pixel data with geometry.
        role: the inferred or overridden role.
        role_reason: which rule of the role table decided it.
        files: source file names (display names, not necessarily paths).
        meta: whitelisted, non-identifying attributes (modality, field
            strength, TR/TE, manufacturer, SeriesDescription, ...).
    """

    uid: str
    stack: Stack
    role: Role
    role_reason: str = ""
    files: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """SeriesDescription (may be empty)."""
        return self.stack.description

    def with_role(self, role: Role, reason: str = "set by user") -> Series:
        """A copy with another role (user override)."""
        return dataclasses.replace(self, role=role, role_reason=reason, stack=self.stack.with_role(role))


@dataclass(frozen=True, eq=False)
class Truth:
    """Ground truth that came with a case (a generated subject, or a real one with annotations).

    Attributes:
        subtype: class sub-phenotype (``"transmural"``, ``"HCM"``...; ``""`` if unknown).
        levels: AHA level of every slice of the OS-CMR stack, base -> apex
            (``basal``, ``mid``, ``apical``, ``apex``, or other tags); empty if unknown.
        es_frame: the end-systolic cine frame index, or ``None``.
        edema_masks: full edema extent per series uid, bool ``[slice, rows, cols]``
            (OS-CMR series: end-systolic frame).
        annotated: ``(slice, frame)`` pairs a reader annotated (manual contours).
        myocardium_frames: those of :attr:`annotated` with a myocardium label.
        record: the generator's or annotator's full record, verbatim (JSON-ready,
            e.g. the phantom's ``truth.json``: anatomy, series, segments, OS response).
    """

    subtype: str = ""
    levels: tuple[str, ...] = ()
    es_frame: int | None = None
    edema_masks: Mapping[str, NDArray[np.bool_]] = field(default_factory=dict)
    annotated: tuple[tuple[int, int], ...] = ()
    myocardium_frames: tuple[tuple[int, int], ...] = ()
    record: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.subtype
            or self.levels
            or self.es_frame is not None
            or self.edema_masks
            or self.annotated
            or self.record
        )


@dataclass(frozen=True, eq=False)
class Case:
    """One subject's exam.

    Attributes:
        case_id: a non-identifying id (synthetic id, or a hash).
        series: every loaded series, any role.
        label: ground-truth class name if known (``healthy``, ``ischemic``,
            ``non-ischemic``, ``edema``).
        truth: ground truth that came with the case (:class:`Truth`; empty if none).
        masks: label-map stacks keyed by the series uid they lie on
            (values: 0 background, 1 LV blood, 2 myocardium, 3 RV, 4 scar, 5 edema, ...).
    """

    case_id: str
    series: tuple[Series, ...] = ()
    label: str | None = None
    truth: Truth = field(default_factory=Truth)
    masks: Mapping[str, Stack] = field(default_factory=dict)

    def by_role(self, role: Role) -> list[Series]:
        """Series of one role; OS-CMR ordered by acquisition time."""
        found = [s for s in self.series if s.role == role]
        return sorted(found, key=lambda s: (s.stack.acquisition_time_s is None, s.stack.acquisition_time_s or 0.0))

    def first(self, role: Role) -> Series | None:
        """The first series of a role, or ``None``."""
        found = self.by_role(role)
        return found[0] if found else None

    def os_timepoints(self) -> dict[str, Stack]:
        """OS-CMR stacks keyed by manoeuvre time point, in acquisition order."""
        out: dict[str, Stack] = {}
        for i, s in enumerate(self.by_role(Role.OS_CMR)):
            out[s.stack.timepoint or f"t{i}"] = s.stack
        return out

    def mask_for(self, series_uid: str) -> Stack | None:
        """The label-map stack on a series' grid, if any."""
        return self.masks.get(series_uid)

    def with_series(self, series: Iterable[Series]) -> Case:
        """A copy with another list of series (e.g. after a role override)."""
        return dataclasses.replace(self, series=tuple(series))


# ---------------------------------------------------------------------------
# geometry operations
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SliceMatch:
    """The slice of another stack nearest to a reference slice.

    Attributes:
        ref_index: slice index in the reference stack.
        other_index: nearest slice index in the other stack.
        distance_mm: distance between the two planes along the normal, mm.
    """

    ref_index: int
    other_index: int
    distance_mm: float


def _check_parallel(a: Geometry, b: Geometry, tol_deg: float) -> None:
    a.require("match slices")
    b.require("match slices")
    cosang = float(np.clip(abs(np.dot(a.normal, b.normal)), 0.0, 1.0))
    angle = float(np.degrees(np.arccos(cosang)))
    if angle > tol_deg:
        raise GeometryError(
            f"slice planes are not parallel: normals differ by {angle:.1f} deg (tolerance {tol_deg:.1f} deg)",
            hint="these series were acquired in different orientations and cannot be slice-matched",
        )
    if a.frame_of_reference_uid and b.frame_of_reference_uid and a.frame_of_reference_uid != b.frame_of_reference_uid:
        raise GeometryError(
            "series are in different frames of reference (FrameOfReferenceUID differs)",
            hint="positions of different exams cannot be compared",
        )


def nearest_slice(ref: Geometry, ref_index: int, other: Geometry, *, tol_deg: float = 10.0) -> SliceMatch:
    """Nearest slice of ``other`` to slice ``ref_index`` of ``ref``, along ``ref``'s normal.

    Raises:
        GeometryError: either stack has no geometry, or the planes are not
            parallel within ``tol_deg`` degrees.
    """
    _check_parallel(ref, other, tol_deg)
    n = ref.normal
    p = float(ref.slice_origins[ref_index] @ n)
    q = other.slice_origins @ n
    j = int(np.argmin(np.abs(q - p)))
    return SliceMatch(ref_index, j, float(abs(q[j] - p)))


def match_slices(ref: Geometry, other: Geometry, *, tol_deg: float = 10.0) -> list[SliceMatch]:
    """:func:`nearest_slice` for every slice of ``ref``."""
    return [nearest_slice(ref, i, other, tol_deg=tol_deg) for i in range(ref.n_slices)]


def resample_slice(
    image: NDArray[Any],
    src: Geometry,
    src_index: int,
    dst: Geometry,
    dst_index: int,
    *,
    order: int = 1,
    fill: float = 0.0,
) -> NDArray[np.float32]:
    """Resample one 2D slice onto another slice's pixel grid via the full affine.

    Each destination pixel centre is mapped to patient space, projected into
    the source plane, and interpolated there (in-plane rotation, spacing and
    offset differences are all handled; the out-of-plane distance is ignored:
    pair slices with :func:`nearest_slice` first).

    Args:
        image: ``[rows, cols]`` source image on ``src`` slice ``src_index``.
        order: spline order (0 nearest, for label maps; 1 linear).
        fill: value outside the source image (more than half a pixel beyond its outer pixel centres).

    Returns:
        float32 ``dst.shape``.
    """
    from scipy.ndimage import map_coordinates

    src.require("resample")
    dst.require("resample")
    rr, cc = np.mgrid[0 : dst.shape[0], 0 : dst.shape[1]]
    pts = dst.pixel_to_patient(dst_index, rr, cc)
    rc = src.patient_to_pixel(src_index, pts)
    # Pixels are areas: a point up to half a pixel beyond the outer pixel centres still lies on
    # the image (mode="nearest" there); further out it gets ``fill``. mode="constant" alone would
    # drop border pixels whose mapped coordinate is -1e-15 through rounding.
    r, c = rc[..., 0], rc[..., 1]
    out = map_coordinates(np.asarray(image, dtype=np.float32), [r, c], order=order, mode="nearest")
    h, w = src.shape
    outside = (r < -0.5) | (r > h - 0.5) | (c < -0.5) | (c > w - 0.5)
    out[outside] = fill
    return out.astype(np.float32)


def sort_base_to_apex(geometry: Geometry, *, apex_direction: NDArray[Any] | None = None) -> list[int]:
    """Order of slice indices from base to apex.

    The LV long axis points from base to apex roughly towards patient
    left-anterior-inferior (LPS: +x, -y, -z). Unless ``apex_direction`` is
    given, slices are ordered by increasing projection of their origin on
    ``(1, -1, -1)/sqrt(3)`` projected onto the normal's sign; with no geometry
    the input order is kept.
    """
    if not geometry.has_geometry or geometry.n_slices < 2:
        return list(range(geometry.n_slices))
    d = np.asarray(apex_direction if apex_direction is not None else [1.0, -1.0, -1.0], dtype=np.float64)
    n = geometry.normal
    sign = np.sign(float(n @ d)) or 1.0
    return [int(i) for i in np.argsort(sign * geometry.slice_positions, kind="stable")]


# ---------------------------------------------------------------------------
# display windowing
# ---------------------------------------------------------------------------


def robust_window(data: NDArray[Any]) -> tuple[float, float]:
    """Default display window of an image array from its 1st-99th percentile (on at most ~250k samples).

    Used for stacks whose files carry no WindowCenter/WindowWidth (DICOM) and
    for every non-label NIfTI stack. Non-finite values are ignored.

    Args:
        data: any shape, e.g. ``Stack.data`` float32 ``[slice, frame, row, col]``.

    Returns:
        ``(centre, width)`` in the units of ``data``, with width >= 1e-3;
        ``(0.0, 1.0)`` when there is no finite value.
    """
    flat = np.asarray(data).reshape(-1)
    step = max(1, flat.size // 250_000)
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(sample, [1.0, 99.0])
    return (float(lo + hi) / 2.0, max(float(hi - lo), 1e-3))
