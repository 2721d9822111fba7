"""``deepoxymap predict PATH``: per-slice probabilities and the case call.

PATH is a case folder, DICOM files or a zip, read by :func:`deepoxymap.cohort.load_paths`
(a phantom subject folder with its ground truth).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deepoxymap.case import Case


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("paths", type=Path, nargs="+", help="case folder, DICOM files or a zip")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--mc", type=int, default=0, help="MC-dropout samples (0: off)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def load_any_case(paths: list[Path]) -> Case:
    """:func:`deepoxymap.cohort.load_paths`, with the reader's issues as warnings on stderr."""
    from deepoxymap.cohort import load_paths

    case, issues = load_paths(paths)
    for text in issues:
        print(f"warning: {text}", file=sys.stderr)
    return case


def run(args: argparse.Namespace) -> int:
    """Predict and print."""
    from deepoxymap.model.loading import load_model
    from deepoxymap.model.predict import predict_case

    loaded = load_model(args.model)
    case = load_any_case(list(args.paths))
    pred = predict_case(loaded, case, mc_samples=args.mc)
    if args.json:
        print(json.dumps(pred.to_dict(), indent=1))
        return 0
    cls = pred.classes
    print(f"case {pred.case_id} ({loaded.path.name}, time point {pred.preprocessed.timepoint})")
    print("slice frame  " + "  ".join(f"{c:>12s}" for c in cls) + ("  entropy" if pred.mc_entropy is not None else ""))
    for i, (k, f) in enumerate(zip(pred.preprocessed.slice_indices, pred.preprocessed.frames, strict=True)):
        row = "  ".join(f"{v:12.3f}" for v in pred.slice_probs[i])
        ent = f"  {pred.mc_entropy[i]:7.3f}" if pred.mc_entropy is not None else ""
        print(f"{k:5d} {f:5d}  {row}{ent}")
    print("case         " + "  ".join(f"{v:12.3f}" for v in pred.case_probs))
    print(f"call: {pred.call} (p = {pred.confidence:.3f}; mean of slice probabilities)")
    if case.label:
        print(f"truth: {case.label}")
    for n in pred.notes:
        print(f"note: {n}")
    return 0
