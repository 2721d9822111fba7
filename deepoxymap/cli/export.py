"""``deepoxymap export PATH --out DIR``: the Parametric Map, the SEGs, the SR and the PDF report of a case.

PATH is a case folder, DICOM files or a zip, read by :func:`deepoxymap.cohort.load_paths`
(a phantom subject folder with its ground truth). The files are named as the
app's download buttons (:func:`deepoxymap.export.export_names`) and are
de-identified unless ``--keep-identifiers`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from deepoxymap import CLASSES
from deepoxymap.errors import ExplainError

if TYPE_CHECKING:
    from deepoxymap.case import Case
    from deepoxymap.export import CaseAnalysis


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("paths", type=Path, nargs="+", help="case folder, DICOM files or a zip")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument(
        "--keep-identifiers",
        action="store_true",
        help="keep the source's patient and study identifiers (default: de-identify)",
    )
    add_cam_arguments(parser)


def add_cam_arguments(parser: argparse.ArgumentParser) -> None:
    """The feature-map options shared with ``deepoxymap report``."""
    parser.add_argument("--method", default="gradcam", help="CAM method (default: gradcam, as the app)")
    parser.add_argument("--layer", default=None, help="convolutional layer (default: the method's default)")
    parser.add_argument("--class", dest="target", default=None, help="class to explain (default: predicted)")
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="CAM threshold, fraction of the maximum (default 0.5, as the app)"
    )


def target_index(value: str | None) -> int | None:
    """A class name or index -> index (``None``: the predicted class).

    Raises:
        ExplainError: unknown class.
    """
    if value is None:
        return None
    if value.isdigit() and int(value) < len(CLASSES):
        return int(value)
    if value in CLASSES:
        return CLASSES.index(value)
    raise ExplainError(f"unknown class {value!r}", hint=f"use one of {list(CLASSES)} or an index")


def analyse(args: argparse.Namespace) -> tuple[Case, CaseAnalysis]:
    """``(case, analysis)`` of the command's PATH with its model and CAM options."""
    from deepoxymap.cli.predict import load_any_case
    from deepoxymap.export import analyse_case
    from deepoxymap.model.loading import load_model

    loaded = load_model(args.model)
    case = load_any_case(list(args.paths))
    analysis = analyse_case(
        case, loaded, method=args.method, layer=args.layer, target=target_index(args.target), threshold=args.threshold
    )
    return case, analysis


def run(args: argparse.Namespace) -> int:
    """Analyse, build and write every export; print one line per file."""
    from deepoxymap.export import SourceIndex, export_case, write_bundle

    case, analysis = analyse(args)
    index = SourceIndex.from_case_paths(list(args.paths))
    bundle = export_case(analysis, case, index, keep_identifiers=args.keep_identifiers)
    paths = write_bundle(bundle, args.out)
    state = "de-identified" if bundle.deidentified else "WITH the source's identifiers"
    print(f"case {analysis.case_id}: call {analysis.call}; {len(paths)} file(s) in {args.out} ({state})")
    for p in paths:
        print(f"  {p.name}")
    for note in bundle.notes:
        print(f"note: {note}")
    return 0
