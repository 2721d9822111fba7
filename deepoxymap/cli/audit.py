"""``deepoxymap audit``: agreement of feature maps with lesion masks over a cohort manifest.

Default cohort: the test split recorded in the model card (thresholds chosen
on the card's validation split, then frozen); ``--subjects all``: every
manifest subject not used for validation (nor in the card's training split).
Writes ``per_case.csv``, ``summary.csv``, ``summary.md``, ``summary.json``
(``{"default": {...}, "all": [...]}``, see :func:`deepoxymap.audit.summary_json`),
``sanity.csv``, ``thresholds.json``, ``bullseye/*.png``, ``bullseye_data.json``
and ``failed.csv`` into ``--out`` and prints the markdown summary. See
:mod:`deepoxymap.audit` for the metrics.

The subjects run in ``--jobs`` spawned worker processes (one model each; default:
the CPU count, at most 4; ``--jobs 1``: in this process) or on a Dask cluster
(``--scheduler ADDRESS``); the numbers are the same. Per-subject results are kept
under ``OUT/.cache``: a rerun (after an interruption) computes only the subjects
that are missing, and a changed model, option or subject recomputes. A bad
manifest row is reported (stderr, ``failed.csv``) and the others still run; the
exit code is then 3.

Example::

    deepoxymap audit --manifest data/study/manifest.csv --subjects all --out data/audit \
        --methods gradcam,hirescam,layercam --layers block4_conv4,block3_conv4+block5_conv4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from deepoxymap.parallel import EXIT_SOME_FAILED, add_parallel_arguments, jobs_from_args


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("--manifest", type=Path, default=None, help="cohort manifest (default: the model card's)")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--out", type=Path, default=Path("audit_out"), help="output folder")
    parser.add_argument(
        "--methods", type=_csv, default=("gradcam", "gradcam++"), help="comma list (default gradcam,gradcam++)"
    )
    parser.add_argument(
        "--layers",
        type=_csv,
        default=("",),
        help="comma list of conv layers (default: the last conv); join layers with '+' to fuse them",
    )
    parser.add_argument(
        "--subjects",
        type=_csv,
        default=None,
        help="test subjects, or 'all' (every subject not used for validation); default: the card's test split",
    )
    parser.add_argument(
        "--default-method",
        default=None,
        help="the app's default method, summary.json's 'default' entry (default: explain.methods.DEFAULT_METHOD)",
    )
    parser.add_argument(
        "--default-layer",
        default=None,
        help="its layer ('+' to fuse; default: explain.methods.default_layer, the last conv)",
    )
    parser.add_argument(
        "--validation",
        type=_csv,
        default=None,
        help="subjects that choose the thresholds (default: the card's val split)",
    )
    parser.add_argument("--thresholds", type=Path, default=None, help="frozen thresholds.json from an earlier run")
    parser.add_argument(
        "--target", choices=("label", "predicted"), default="label", help="class explained (default: the true class)"
    )
    parser.add_argument(
        "--contrast",
        default=None,
        metavar="CLASS",
        help="subtract this class's logit from the explained one's (contrastive maps, e.g. healthy; gradient CAMs)",
    )
    parser.add_argument("--tolerance-mm", type=float, default=5.0, help="pointing-game tolerance, mm")
    parser.add_argument("--sanity-cases", type=int, default=4, help="cases for randomisation/deletion checks (0: skip)")
    parser.add_argument("--max-n", type=int, default=16, help="Score-CAM: most activation maps")
    parser.add_argument("--no-bullseyes", action="store_true", help="skip the PNG bullseyes")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_parallel_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the audit and print the summary table."""
    from deepoxymap.audit import AuditConfig, audit_manifest, write_audit
    from deepoxymap.model.loading import load_model

    cfg = AuditConfig(
        methods=tuple(args.methods),
        layers=tuple(lyr or None for lyr in args.layers) or (None,),
        target=args.target,
        contrast=args.contrast,
        tolerance_mm=args.tolerance_mm,
        sanity_cases=args.sanity_cases,
        max_n=args.max_n,
        bullseyes=not args.no_bullseyes,
        default_method=args.default_method,
        default_layer=args.default_layer or None,
    )
    thresholds = json.loads(Path(args.thresholds).read_text()) if args.thresholds else None
    t0 = time.perf_counter()

    def progress(done: int, total: int, message: str) -> None:
        if not args.quiet:
            print(f"[{done}/{total}] {message} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    subjects = "all" if args.subjects == ("all",) else args.subjects
    res = audit_manifest(
        args.manifest,
        load_model(args.model),
        cfg,
        subjects=subjects,
        validation=args.validation,
        thresholds=thresholds,
        progress=progress,
        jobs=jobs_from_args(args),
        scheduler=args.scheduler,
        cache_dir=None if args.no_cache else args.out / ".cache",
    )
    write_audit(res, args.out)
    print(res.markdown)
    if res.cached and not args.quiet:
        print(f"{len(res.cached)} results read from {args.out / '.cache'}", file=sys.stderr)
    print(f"wrote {len(res.files)} files to {args.out}", file=sys.stderr)
    for f in res.failed:
        print(f"error ({f['phase']}): manifest {f['error']}", file=sys.stderr)
    if res.failed:
        print(f"{len(res.failed)} subjects failed (listed in {args.out / 'failed.csv'})", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0
