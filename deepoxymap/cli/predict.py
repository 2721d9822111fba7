"""``deepoxymap predict PATH`` or ``deepoxymap predict --manifest M``: per-slice probabilities and the case call.

PATH is a case folder, DICOM files or a zip, read by :func:`deepoxymap.cohort.load_paths`
(a phantom subject folder with its ground truth).

With ``--manifest``, every row of a cohort manifest (:func:`deepoxymap.cohort.read_manifest`)
is classified, one task per subject, in ``--jobs`` spawned worker processes (one model
each; default: the CPU count, at most 4; ``--jobs 1``: in this process) or on a Dask
cluster (``--scheduler ADDRESS``); the numbers are the same. It writes
``OUT/predictions.json`` (``{"model", "n", "predictions": [...], "failed": [...]}``, each
prediction ``CasePrediction.to_dict()`` plus the row's ``subject``, ``line`` and
``class``), ``OUT/predictions.csv`` (one row per subject: ``subject,line,class,call,p(...)``)
and ``OUT/failed.csv``. Per-subject results are kept under ``OUT/.cache`` (a rerun
computes only what is missing). A bad row is reported and the others still run; the
exit code is then 3.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from deepoxymap.case import Case
from deepoxymap.parallel import EXIT_SOME_FAILED, add_parallel_arguments, jobs_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("paths", type=Path, nargs="*", help="case folder, DICOM files or a zip")
    parser.add_argument("--manifest", type=Path, default=None, help="classify every row of this cohort manifest")
    parser.add_argument("--out", type=Path, default=Path("predict_out"), help="output folder (with --manifest)")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--mc", type=int, default=0, help="MC-dropout samples (0: off)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--quiet", action="store_true", help="no progress lines (with --manifest)")
    add_parallel_arguments(parser.add_argument_group("cohort runs (with --manifest)"))


def load_any_case(paths: list[Path]) -> Case:
    """:func:`deepoxymap.cohort.load_paths`, with the reader's issues as warnings on stderr."""
    from deepoxymap.cohort import load_paths

    case, issues = load_paths(paths)
    for text in issues:
        print(f"warning: {text}", file=sys.stderr)
    return case


def _write_cohort(out: Path, model: str, preds: list[dict[str, Any]], failed: list[dict[str, Any]]) -> None:
    from deepoxymap import CLASSES

    out.mkdir(parents=True, exist_ok=True)
    doc = {"model": model, "n": len(preds), "predictions": preds, "failed": failed}
    (out / "predictions.json").write_text(json.dumps(doc, indent=1) + "\n")
    with (out / "predictions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "line", "class", "call", *(f"p({c})" for c in CLASSES)])
        for p in preds:
            w.writerow(
                [p["subject"], p["line"], p["class"], p["call"], *(f"{p['case_probs'][c]:.6f}" for c in CLASSES)]
            )
    with (out / "failed.csv").open("w", newline="") as fh:
        fw = csv.DictWriter(fh, fieldnames=["subject", "line", "error"])
        fw.writeheader()
        fw.writerows(failed)


def run_manifest(args: argparse.Namespace) -> int:
    """Classify every row of ``--manifest`` and write the cohort files."""
    import time

    from deepoxymap.cohort import read_manifest_rows
    from deepoxymap.model.evaluate import predict_records
    from deepoxymap.model.loading import load_model
    from deepoxymap.parallel import Pool, row_failures

    loaded = load_model(args.model)
    records, row_errors = read_manifest_rows(args.manifest)
    t0 = time.perf_counter()

    def progress(done: int, total: int, message: str) -> None:
        if not args.quiet:
            print(f"[{done}/{total}] {message} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    with Pool(jobs_from_args(args), args.scheduler) as pool:
        preds, failed, cached = predict_records(
            loaded, records, mc_samples=args.mc, pool=pool, progress=progress,
            result_cache=None if args.no_cache else args.out / ".cache",
        )  # fmt: skip
    failed[:0] = row_failures(row_errors)
    _write_cohort(args.out, loaded.path.name, preds, failed)
    if args.json:
        print(json.dumps({"predictions": preds, "failed": failed}, indent=1))
    else:
        for p in preds:
            print(f"{p['subject']}: {p['call']} (p = {max(p['case_probs'].values()):.3f}; truth {p['class']})")
    if cached and not args.quiet:
        print(f"{len(cached)} subjects read from {args.out / '.cache'}", file=sys.stderr)
    print(f"wrote {args.out / 'predictions.json'}, {args.out / 'predictions.csv'}", file=sys.stderr)
    for f in failed:
        print(f"error: manifest {f['error']}", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0


def run(args: argparse.Namespace) -> int:
    """Predict and print."""
    if args.manifest is not None:
        if args.paths:
            print("error: give PATH... or --manifest, not both", file=sys.stderr)
            return 2
        return run_manifest(args)
    if not args.paths:
        print("error: give a case PATH (or --manifest M)", file=sys.stderr)
        return 2
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
