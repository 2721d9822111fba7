"""Read anything a user gives (DICOM files, folders, zips, uploads, NIfTI) into series.

Public API::

    from deepoxymap.io import load, build_case, override_role, series_table

    result = load(["study.zip", "extra/", ("upload.dcm", data)])
    result.series   # list[Series], one stack each, slices base -> apex
    result.issues   # list[LoadIssue]: every skipped file and why
    case = build_case(result.series, "case-001")

``LoadIssue.severity`` is ``"error"`` (file skipped), ``"warning"`` (loaded
with a caveat, e.g. a no-geometry stack) or ``"info"`` (auxiliary file
ignored). ``series_table(series)`` gives one dict per series for tables
(``pandas.DataFrame(series_table(s))``); ``format_report(result)`` the text that
``deepoxymap info`` prints, with every file name escaped by
``printable_name`` (control characters, ANSI escapes, bidi overrides).

Every input is bounded before it is expanded (zip and gzip streams, deflated
DICOM, decoded image sizes, frame counts, stacks): see
:mod:`~deepoxymap.io.limits`.

Files sharing a SOPInstanceUID: an identical copy is dropped (info); a copy
with different content is loaded as its own series ``<uid>#dupN`` (warning). A
DICOMDIR is ignored with an info line. DICOM SEG files are not decoded as
images: :func:`deepoxymap.io.seg.load` (``load`` plus the SEG step) maps them
onto their series as label maps.

Modules: :mod:`~deepoxymap.io.loader` (:func:`load`, :func:`build_case`, the report),
:mod:`~deepoxymap.io.sources` (paths, folders, zips, uploads, bounded gzip/deflate),
:mod:`~deepoxymap.io.limits` (the limits and the running totals of one load),
:mod:`~deepoxymap.io.dicom` (DICOM: ``header``, ``frames``, ``inventory``, ``values``,
``pixels``, ``isolated`` (GDCM decodes in a worker process), ``assembly``),
:mod:`~deepoxymap.io.nifti` (NIfTI), :mod:`~deepoxymap.io.seg` (DICOM SEG import),
:mod:`~deepoxymap.io.roles` (the documented role rule table),
:mod:`~deepoxymap.io.contours` (Sunnybrook manual contours ->
``Stack(role=MASK)``; ``sunnybrook_case(real_data_dir)``); the ``deepoxymap info``
command is :mod:`deepoxymap.cli.info`.
"""

from __future__ import annotations

from deepoxymap.io.loader import (
    LoadIssue,
    LoadResult,
    build_case,
    format_report,
    load,
    override_role,
    printable_name,
    series_table,
)
from deepoxymap.io.roles import RULES, RoleEvidence, infer_role, parse_timepoint

__all__ = [
    "RULES",
    "LoadIssue",
    "LoadResult",
    "RoleEvidence",
    "build_case",
    "format_report",
    "infer_role",
    "load",
    "override_role",
    "parse_timepoint",
    "printable_name",
    "series_table",
]
