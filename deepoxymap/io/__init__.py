"""Read anything a user gives (DICOM files, folders, zips, uploads, NIfTI) into series.

Public API::

    from deepoxymap.io import load, build_case, override_role, series_table

    result = load(["study.zip", "extra/", ("upload.dcm", data)])
    result.series   # list[Series], one stack each, slices base -> apex
    result.issues   # list[LoadIssue]: every skipped file and why
    case = build_case(result.series, "case-001")

Role rules: :mod:`deepoxymap.io.roles`; Sunnybrook contours:
:mod:`deepoxymap.io.contours`.
"""

from __future__ import annotations

from deepoxymap.io.loader import (
    LoadIssue,
    LoadResult,
    build_case,
    format_report,
    load,
    override_role,
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
    "series_table",
]
