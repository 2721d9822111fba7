"""``deepoxymap predict PATH``: per-slice probabilities and the case call.

PATH is a case folder, DICOM files or a zip. A phantom subject folder (with
``truth/``) is read with ``deepoxymap.phantom.load_subject``; anything else with
``deepoxymap.io.load`` + ``build_case``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deepoxymap.case import Case
from deepoxymap.errors import CaseError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("paths", type=Path, nargs="+", help="case folder, DICOM files or a zip")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--mc", type=int, default=0, help="MC-dropout samples (0: off)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def load_any_case(paths: list[Path]) -> Case:
    """A phantom subject folder via ``phantom.load_subject``, else ``io.load`` + ``io.build_case``."""
    if len(paths) == 1 and paths[0].is_dir() and (paths[0] / "truth").is_dir():
        from deepoxymap.phantom import load_subject

        return load_subject(paths[0])
    from deepoxymap.io import build_case, load

    res = load([str(p) for p in paths])
    for issue in res.issues:
        print(f"warning: {issue.file}: {issue.message}", file=sys.stderr)
    if not res.series:
        raise CaseError("no readable image series", source=", ".join(map(str, paths)))
    return build_case(res.series, paths[0].stem)


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
