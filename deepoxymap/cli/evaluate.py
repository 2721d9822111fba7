"""``deepoxymap evaluate``: score saved models on their own test subjects; optional k-fold CV.

Writes ``<out>/evaluation.json`` (top level: the first model's ``accuracy``,
``macro_auc`` and per-class ``auc``, each ``{"value", "ci"}`` with its 95%
bootstrap CI over subjects; then every result with per-site figures and
per-subject probabilities; see :func:`deepoxymap.model.evaluate.evaluation_json`),
``<out>/comparison.md`` (the study-style table) and ``<out>/roc.png``.

Examples::

    deepoxymap evaluate --manifest data/study/manifest.csv --model assets/models/deepoxymap_vgg19.keras
    deepoxymap evaluate --manifest data/study/manifest.csv --subjects all --model X.keras --out DIR
    deepoxymap evaluate --manifest data/study/manifest.csv --cv 5 --out data/cv_vgg19 \\
        --arch vgg19 --conv-bn --frame-jitter 2 --input-size 96 --crop-mm 120 --epochs 45 --lr 3e-4 \\
        --lr-patience 4 --batch-size 16 --patience 12 --augment rot20 --max-minutes 42

(the CV options are ``train``'s recipe options, so a CV can run the shipped model's recipe.)

The subjects are scored in ``--jobs`` spawned worker processes (one model each;
default: the CPU count, at most 4; ``--jobs 1``: in this process) or on a Dask
cluster (``--scheduler ADDRESS``); the numbers are the same. Per-subject results
are kept under ``OUT/.cache`` (a rerun computes only what is missing; a changed
model or subject recomputes). A subject that cannot be scored is listed in
``evaluation.json``'s ``failed`` (manifest line and error) and left out of the
figures; the others still count and the exit code is then 3.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepoxymap.cli.train import add_recipe_arguments
from deepoxymap.parallel import EXIT_SOME_FAILED, add_parallel_arguments, jobs_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("--manifest", type=Path, required=True, help="cohort manifest CSV")
    parser.add_argument(
        "--model", type=Path, action="append", default=[], help="a .keras file with its card (repeatable)"
    )
    parser.add_argument(
        "--subjects",
        default="test",
        choices=["test", "all"],
        help="the card's test split, or every subject it never saw",
    )
    parser.add_argument("--out", type=Path, default=Path("assets/models/eval"), help="output folder")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--no-baseline", action="store_true", help="skip the phantom's trivial baseline")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_parallel_arguments(parser.add_argument_group("where the subjects are scored"))
    cv = parser.add_argument_group(
        "cross-validation (trains one model per fold with the same recipe options as `deepoxymap train`)"
    )
    cv.add_argument("--cv", type=int, default=0, help="number of stratified folds (0: no CV)")
    add_recipe_arguments(cv)


def run(args: argparse.Namespace) -> int:
    """Evaluate and write the report files."""
    import sys
    import time

    from deepoxymap.model.evaluate import (
        comparison_markdown,
        cross_validate,
        evaluate_model,
        evaluation_json,
        plot_roc,
        trivial_baseline,
    )
    from deepoxymap.parallel import Pool

    t0 = time.perf_counter()

    def progress(done: int, total: int, message: str) -> None:
        if not args.quiet:
            print(f"[{done}/{total}] {message} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    results = []
    failed: list[dict[str, object]] = []
    with Pool(jobs_from_args(args), args.scheduler) as pool:
        for m in args.model:
            r = evaluate_model(
                m, args.manifest, subjects=args.subjects, n_boot=args.n_boot, seed=args.seed,
                cache_dir=args.cache_dir, pool=pool, progress=progress,
                result_cache=None if args.no_cache else args.out / ".cache",
            )  # fmt: skip
            results.append(r)
            failed += [{"model": r["name"], **f} for f in r["failed"]]
            d = r["max_abs_diff_vs_card"]
            print(f"{r['name']}: {r['split']} n={r['metrics']['n']}; max |p - card| = {d if d is None else f'{d:.2e}'}")
    if args.cv:
        from deepoxymap.cli.train import config_from_args

        cfg = config_from_args(args)
        results.append(cross_validate(cfg, k=args.cv, out_dir=args.out / "cv_models", n_boot=args.n_boot))
    if not results:
        print("nothing to evaluate: pass --model PATH and/or --cv K")
        return 2
    baseline = None if args.no_baseline else trivial_baseline(args.manifest)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = evaluation_json(results, baseline)
    doc["failed"] = failed
    (args.out / "evaluation.json").write_text(json.dumps(doc, indent=1, default=str, allow_nan=False) + "\n")
    md = comparison_markdown(results, baseline)
    (args.out / "comparison.md").write_text(md)
    plot_roc(results, args.out / "roc.png")
    print(md)
    for r in results:
        for site, m in (r.get("per_site") or {}).items():
            a = m["accuracy"]
            print(f"{r['name']} site {site}: n={m['n']} acc {a['value']:.3f} [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}]")
    print(f"wrote {args.out / 'evaluation.json'}, {args.out / 'comparison.md'}, {args.out / 'roc.png'}")
    for f in failed:
        print(f"error: {f['model']}: manifest {f['error']}", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0
