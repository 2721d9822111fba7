"""``deepoxymap info PATH...``: the series table and the load report (no patient identifiers).

File names and descriptions come from the user's files and may hold newlines,
ANSI escape sequences or bidirectional overrides (U+202E) that would spoof the
terminal: the text output escapes every non-printable character
(:func:`deepoxymap.io.printable_name`, applied by ``format_report``), and the
``--json`` output is pure ASCII (``json.dumps`` escapes them as ``\\uXXXX``).
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``deepoxymap info``."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files, folders, .zip or .nii/.nii.gz")
    parser.add_argument("--json", action="store_true", help="print the table and report as JSON")


def run(args: argparse.Namespace) -> int:
    """Load the paths and print what was found; exit code 1 when nothing loaded."""
    from deepoxymap.io.loader import format_report, series_table
    from deepoxymap.io.seg import load  # DICOM SEG files listed as label maps on their series

    result = load(list(args.paths))
    if args.json:
        doc = {
            "series": series_table(result.series),
            "issues": [{"file": i.file, "severity": i.severity, "message": i.message} for i in result.issues],
            "n_files": result.n_files,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=True))
    else:
        print(format_report(result))
    return 0 if result.series else 1
