"""The source DICOM instances behind a stack: what every exported object references.

A :class:`~deepoxymap.case.Stack` carries pixels and geometry, not the DICOM
headers it came from. Every export (Parametric Map, SEG, SR) must reference its
source images (Study, FrameOfReference, SOP instances), so the headers are read
again, without their Pixel Data, from the *same* sources the case was loaded
from (:class:`SourceIndex`), and each OS-CMR row the model saw is matched to
its instance (:meth:`SourceIndex.for_slices`):

1. through the loader's own layout, ``Series.meta["source_grid"]`` (the file
   name of every ``[slice][frame]``), when the series carries it;
2. otherwise by geometry: the instances of the series whose
   ImagePositionPatient projected on the slice normal lies within
   :data:`POSITION_TOL_MM` of the slice, ordered by TriggerTime (the loader's
   frame order), the ``frame``-th of them.

Only single-frame source images are supported (the phantom's and most MR
exports); a multi-frame (enhanced) source raises :class:`ExportError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from deepoxymap.case import Series
from deepoxymap.config import Settings
from deepoxymap.config import settings as current_settings
from deepoxymap.errors import DeepOxyMapError, ExportError
from deepoxymap.io.sources import Entry, Source, expand, is_nifti_name

__all__ = ["POSITION_TOL_MM", "SourceIndex"]

POSITION_TOL_MM = 0.5
"""An instance lies on a slice when its position along the normal is within this distance (mm)."""

_SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"


def _read_header(entry: Entry, settings: Settings) -> Dataset | None:
    """The header of one entry (Pixel Data deferred), or ``None`` when it is not a DICOM image.

    Read by the app's loader (:func:`deepoxymap.io.dicom.read_header`), so every size limit
    applies here too (deflated data sets inflate under ``max_image_bytes``).
    """
    from deepoxymap.io.dicom import read_header

    try:
        ds = read_header(entry, settings).ds
    except DeepOxyMapError:  # the loader already reported unreadable files
        return None
    if "SOPInstanceUID" not in ds or "Rows" not in ds or str(ds.get("SOPClassUID", "")) == _SEG_SOP:
        return None
    return ds


def _trigger(ds: Dataset) -> float:
    try:
        return float(ds.get("TriggerTime", "nan"))
    except (TypeError, ValueError):
        return float("nan")


def _instance(ds: Dataset) -> int:
    try:
        return int(ds.get("InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True, eq=False)
class SourceIndex:
    """Headers (no Pixel Data) of the DICOM images a case was loaded from.

    Attributes:
        by_name: display name (the loader's :class:`~deepoxymap.io.sources.Entry` name) -> header.
        origin: where the headers came from, for messages (a path, ``"upload"``, ``"PACS"``).
    """

    by_name: dict[str, Dataset] = field(default_factory=dict)
    origin: str = ""

    @classmethod
    def from_sources(
        cls, sources: Source | Iterable[Source], *, origin: str = "", settings: Settings | None = None
    ) -> SourceIndex:
        """Read the headers of every DICOM file of ``sources`` (the same list given to :func:`deepoxymap.io.load`).

        Names are those the loader gives, so ``Series.meta["source_grid"]`` resolves;
        files that are not DICOM images (NIfTI, SEG, text) are skipped silently
        (the loader reports them).
        """
        s = settings or current_settings()
        exp = expand(sources, s)
        out: dict[str, Dataset] = {}
        for entry in exp.entries:
            if is_nifti_name(entry.name):
                continue
            ds = _read_header(entry, s)
            if ds is not None:
                out[entry.name] = ds
        return cls(out, origin)

    @classmethod
    def from_case_paths(cls, paths: Sequence[str | Path], *, settings: Settings | None = None) -> SourceIndex:
        """The headers behind :func:`deepoxymap.cohort.load_paths` of the same paths.

        A generated subject folder is read from its ``dicom/`` sub-folder, as
        :func:`deepoxymap.phantom.load_subject` does, so the names match its series.
        """
        from deepoxymap.cohort import is_phantom_subject

        ps = [Path(p) for p in paths]
        if len(ps) == 1 and is_phantom_subject(ps[0]):
            ps = [ps[0] / "dicom"]
        return cls.from_sources([str(p) for p in ps], origin=", ".join(map(str, paths)), settings=settings)

    @classmethod
    def from_datasets(cls, datasets: Iterable[tuple[str, Dataset]], *, origin: str = "") -> SourceIndex:
        """An index over datasets already in memory (``(name, dataset)`` pairs)."""
        return cls({n: d for n, d in datasets if "SOPInstanceUID" in d}, origin)

    def __len__(self) -> int:
        return len(self.by_name)

    def series(self, series_uid: str) -> list[Dataset]:
        """Headers of one SeriesInstanceUID (a loader stack uid such as ``uid#2`` is cut at ``#``)."""
        base = series_uid.split("#", 1)[0]
        return [d for d in self.by_name.values() if str(d.get("SeriesInstanceUID", "")) == base]

    def for_slices(self, series: Series, slice_indices: Sequence[int], frames: Sequence[int]) -> list[Dataset]:
        """The source instance of each ``(slice, frame)`` of a series' stack.

        Args:
            series: the loaded series (its stack gives the geometry; its meta the loader's layout).
            slice_indices: stack slice per row (base -> apex indices).
            frames: stack frame per row (same length).

        Returns:
            one header per row, in row order.

        Raises:
            ExportError: an instance cannot be found, is multi-frame, or does not
                have the stack's matrix (the message names the series and slice).
        """
        if len(slice_indices) != len(frames):
            raise ExportError(f"{len(slice_indices)} slices but {len(frames)} frames", source=series.uid)
        grid = series.meta.get("source_grid")
        out: list[Dataset] = []
        candidates: list[Dataset] | None = None
        for k, f in zip(slice_indices, frames, strict=True):
            ds = None
            if grid is not None and k < len(grid) and f < len(grid[k]):
                name = str(grid[k][f])
                ds = self.by_name.get(name)
                if ds is None and "#" in name and name.rsplit("#", 1)[0] in self.by_name:
                    raise ExportError(
                        "multi-frame (enhanced) source images cannot be referenced by the exports yet",
                        source=name.rsplit("#", 1)[0],
                    )
            if ds is None:
                if candidates is None:
                    candidates = self.series(series.uid)
                ds = self._by_geometry(series, candidates, k, f)
            rows, cols = series.stack.geometry.shape
            if int(ds.Rows) != rows or int(ds.Columns) != cols:
                raise ExportError(
                    f"source instance of slice {k + 1} is {int(ds.Rows)} x {int(ds.Columns)}, "
                    f"the stack {rows} x {cols}",
                    source=series.uid,
                )
            out.append(ds)
        return out

    def _by_geometry(self, series: Series, candidates: list[Dataset], k: int, f: int) -> Dataset:
        """The ``f``-th instance by TriggerTime on slice ``k`` of ``series`` (see module doc).

        Raises:
            ExportError: no instance lies on the slice (the sources are not the case's files).
        """
        where = f"{self.origin or 'the sources'}"
        if not candidates:
            raise ExportError(
                f"none of the source files of {where} belongs to series {series.uid}",
                source=series.description or series.uid,
                hint="load the case again from its DICOM files in this session",
            )
        geom = series.stack.geometry
        p = float(geom.slice_origins[k] @ geom.normal)
        on_slice = []
        for d in candidates:
            if int(d.get("NumberOfFrames", 1) or 1) > 1:
                raise ExportError(
                    "multi-frame (enhanced) source images cannot be referenced by the exports yet",
                    source=str(d.get("SOPInstanceUID", series.uid)),
                )
            ipp = d.get("ImagePositionPatient")
            if ipp is None or len(ipp) != 3:
                continue
            if abs(float(np.asarray([float(v) for v in ipp]) @ geom.normal) - p) <= POSITION_TOL_MM:
                on_slice.append(d)
        if not on_slice:
            raise ExportError(f"no source instance lies on slice {k + 1} (position {p:.1f} mm)", source=series.uid)
        on_slice.sort(
            key=lambda d: (
                math.isnan(_trigger(d)),
                _trigger(d) if not math.isnan(_trigger(d)) else 0.0,
                _instance(d),
                str(d.SOPInstanceUID),
            )
        )
        return on_slice[min(f, len(on_slice) - 1)]
