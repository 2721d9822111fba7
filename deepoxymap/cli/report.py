"""``deepoxymap report CASE --out F.pdf``: the one-page case report, the same file the app downloads.

CASE is a case folder, DICOM files or a zip (:func:`deepoxymap.cohort.load_paths`).
The report names the case by its id only, never by a patient identifier.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepoxymap.errors import ExportError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    from deepoxymap.cli.export import add_cam_arguments

    parser.add_argument("paths", type=Path, nargs="+", help="case folder, DICOM files or a zip")
    parser.add_argument("--out", type=Path, required=True, help="the PDF file to write")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    add_cam_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Analyse the case and write its PDF report."""
    from deepoxymap.cli.export import analyse
    from deepoxymap.export.report import report_pdf

    case, analysis = analyse(args)
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(report_pdf(analysis, case))
    except OSError as exc:
        raise ExportError(f"cannot write the report ({exc.strerror})", source=str(out)) from None
    print(f"case {analysis.case_id}: call {analysis.call}; report written to {out}")
    return 0
