"""``deepoxymap calibrate``: fit a saved model's class-prior correction on its validation subjects.

``deepoxymap train`` fits the correction itself; this command does it for a model
saved without one, or again after its card changed. It scores the card's
**validation** split (never the test split) without the correction, fits the
log-prior offset of :mod:`deepoxymap.model.calibrate`, and writes it into the
card's ``decision`` entry (the ``.keras`` file and its hash are untouched). Run
``deepoxymap evaluate`` afterwards for the test figures.

Example::

    deepoxymap calibrate --model data/train/run64/deepoxymap_vgg19.keras \\
        --manifest data/train/manifest.csv --cache-dir data/train/cache
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepoxymap.parallel import add_parallel_arguments, jobs_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("--model", type=Path, required=True, help="a .keras file with its card")
    parser.add_argument("--manifest", type=Path, required=True, help="the manifest the model was trained from")
    parser.add_argument("--cache-dir", type=Path, default=None, help="preprocessed-slice cache")
    parser.add_argument("--dry-run", action="store_true", help="print the offset; do not write the card")
    parser.add_argument(
        "--min-per-class",
        type=int,
        default=None,
        help="fewest validation subjects of every class (default: deepoxymap.model.calibrate.MIN_PER_CLASS)",
    )
    add_parallel_arguments(parser.add_argument_group("where the subjects are scored"))


def run(args: argparse.Namespace) -> int:
    """Fit and write the correction; print it with the validation NLL and accuracy before and after."""
    import numpy as np

    from deepoxymap.cohort import read_manifest
    from deepoxymap.model.calibrate import (
        CASE_CALL_CORRECTED,
        MIN_PER_CLASS,
        apply_offset,
        decision_card,
        fit_log_prior_offset,
        too_few_to_fit,
    )
    from deepoxymap.model.card import card_path_for, read_card, write_card
    from deepoxymap.model.evaluate import score_records
    from deepoxymap.model.loading import load_model
    from deepoxymap.parallel import Pool

    loaded = load_model(args.model)
    val_ids = set(loaded.card.get("training", {}).get("split", {}).get("val", []))
    recs = [r for r in read_manifest(args.manifest) if r.subject in val_ids]
    if not recs:
        print(f"error: {args.manifest}: none of the card's {len(val_ids)} validation subjects are in it")
        return 2
    cache = args.cache_dir if args.cache_dir is not None else args.manifest.parent / ".cache"
    with Pool(jobs_from_args(args), args.scheduler) as pool:
        subj, y, p, failed, _ = score_records(loaded, recs, cache_dir=cache, pool=pool, prior_correction=False)
    for f in failed:
        print(f"warning: left out: {f['error']}")
    why_not = too_few_to_fit(y, min_per_class=MIN_PER_CLASS if args.min_per_class is None else args.min_per_class)
    if why_not:
        print(f"error: {args.model}: {why_not}")
        return 2
    offset = fit_log_prior_offset(p, y)
    dec = decision_card(offset, p, y, loaded.classes)
    acc0 = float(np.mean(p.argmax(1) == y))
    acc1 = float(np.mean(apply_offset(p, offset).argmax(1) == y))
    print(
        f"{len(subj)} validation subjects: offset "
        + ", ".join(f"{c} {v:+.3f}" for c, v in dec["log_prior_offset"].items())
        + f"; NLL {dec['validation_nll']['before']:.3f} -> {dec['validation_nll']['after']:.3f}"
        f"; accuracy {acc0:.3f} -> {acc1:.3f}"
    )
    if args.dry_run:
        return 0
    cp = card_path_for(Path(args.model))
    card = read_card(cp)
    card.pop("schema", None)
    card["decision"] = {**dec, "written_by": "deepoxymap calibrate"}
    card["case_aggregation"] = CASE_CALL_CORRECTED
    write_card(cp, card)
    print(f"wrote the decision entry of {cp}; its metrics.test predate it: run deepoxymap evaluate")
    return 0
