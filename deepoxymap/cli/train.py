r"""``deepoxymap train``: train a classifier on a cohort manifest (writes ``.keras`` + model card).

The shipped model was made with (its card's ``training.command``; 27.5 min of fitting on 2 CPU cores)::

    deepoxymap train --manifest data/study/manifest.csv --arch vgg19 --weights none --conv-bn --frame-jitter 2 \
        --out assets/models --input-size 96 --crop-mm 120 \
        --epochs 45 --lr 3e-4 --lr-patience 4 --batch-size 16 --patience 12 --augment rot20 --seed 0 --max-minutes 42

Progress: a line per epoch and one every ``--progress-every`` seconds within an epoch on stderr
(slices/s, loss, accuracy, ETA), and ``OUT/NAME.progress.json`` for tools (status, epoch, step,
fraction, best val loss, elapsed and ETA seconds).

Stop and resume: Ctrl-C (SIGINT) or SIGTERM, or creating ``OUT/STOP`` (every run writing to OUT)
or ``OUT/NAME.STOP``, stops after the current batch. The unfinished epoch is dropped, the best
model so far is evaluated and saved with its card (``training.complete: false``), the exit code
is 3, and ``OUT/NAME.resume/`` keeps the last completed epoch. Running the same command again
(or with ``--resume``, which also fails when there is nothing to resume) continues from there
with the same optimizer state, learning-rate schedule, early-stopping counters, best-model
tracking and data order, and ends with the model the uninterrupted run would have made. A
checkpoint from another config or other data is refused, naming what differs; ``--fresh``
discards it. A second Ctrl-C aborts at once (the last checkpoint stays valid).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepoxymap.model.augment import PRESETS, AugmentSpec
from deepoxymap.model.preprocess import CHANNELS, FRAME_RULES, SCALINGS, TIMEPOINTS, PreprocessSpec

if TYPE_CHECKING:
    from deepoxymap.model.train import TrainConfig

DEFAULTS = PreprocessSpec()


def add_recipe_arguments(parser: Any) -> None:
    """Register the training recipe's options (shared with ``deepoxymap evaluate --cv``).

    ``parser`` is an ``argparse.ArgumentParser`` or an argument group. Everything that decides
    what a trained model is goes here, so a cross-validation runs exactly the recipe that
    ``train`` runs.
    """
    parser.add_argument(
        "--arch",
        default="vgg19",
        choices=["vgg19", "resnet50", "efficientnetb0", "tinycnn"],
        help="tinycnn: a tiny flat CNN for pipeline checks, never shipped",
    )
    parser.add_argument(
        "--weights",
        default="none",
        help="'none' (from scratch), 'imagenet' (Keras download/cache ~/.keras/models) or a local weights file",
    )
    parser.add_argument("--input-size", type=int, default=DEFAULTS.input_size, help="model input, pixels")
    parser.add_argument("--crop-mm", type=float, default=DEFAULTS.crop_mm, help="LV-centred crop side, mm")
    parser.add_argument("--timepoint", default=DEFAULTS.timepoint, choices=TIMEPOINTS)
    parser.add_argument("--frame-rule", default=DEFAULTS.frame_rule, choices=FRAME_RULES)
    parser.add_argument(
        "--channels",
        default=DEFAULTS.channels,
        choices=CHANNELS,
        help="grey: one frame (the study); dynamics: base frame, --timepoint frame and their registered "
        "percent signal change (the OS-dynamics model)",
    )
    parser.add_argument(
        "--base-timepoint",
        default=DEFAULTS.base_timepoint,
        choices=TIMEPOINTS,
        help="reference time point of --channels dynamics (default bh-start)",
    )
    parser.add_argument(
        "--scaling", default=None, choices=SCALINGS, help="input convention (default: by architecture and weights)"
    )
    parser.add_argument("--augment", default="rot20", choices=sorted(PRESETS), help="rotation preset (+ flip p=0.5)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-clock cap for fitting (per model)")
    parser.add_argument(
        "--head-epochs", type=int, default=0, help="phase 1: train only the head (base frozen) for this many epochs"
    )
    parser.add_argument("--head-lr", type=float, default=1e-3, help="phase-1 learning rate")
    parser.add_argument(
        "--conv-bn",
        action="store_true",
        help="train VGG19 with BatchNorm after every conv, folded into the convs before saving "
        "(the saved model is the plain VGG19 graph); --weights none only",
    )
    parser.add_argument(
        "--frame-jitter",
        type=int,
        default=0,
        metavar="K",
        help="train on the end-systolic frame or one of its K neighbours each side, drawn per slice per epoch "
        "(validation, test and inference use the ES frame)",
    )
    parser.add_argument(
        "--lr-patience",
        type=int,
        default=0,
        metavar="N",
        help="multiply the learning rate by 0.3 after N epochs without a val-loss improvement (0: constant)",
    )
    parser.add_argument(
        "--lr-cosine",
        action="store_true",
        help="decay the learning rate along half a cosine to lr/100 over --epochs (by epoch index, so a "
        "fixed-length run anneals); exclusive with --lr-patience",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("--manifest", type=Path, required=True, help="cohort manifest CSV")
    parser.add_argument("--out", type=Path, default=Path("assets/models"), help="output folder")
    parser.add_argument("--name", default=None, help="file stem (default deepoxymap_<arch>)")
    add_recipe_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", default="holdout", choices=["holdout", "fold", "site", "manifest"])
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--train-site", default=None)
    parser.add_argument("--test-site", default=None)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default <manifest dir>/.cache")
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes preparing (rendering, for generated rows) the subjects"
    )
    parser.add_argument("--n-boot", type=int, default=1000)
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue the stopped run from OUT/NAME.resume (an error when there is none); without this "
        "flag a matching checkpoint is resumed too",
    )
    group.add_argument("--fresh", action="store_true", help="discard any checkpoint of this run and start again")
    parser.add_argument(
        "--progress-every", type=float, default=30.0, metavar="S", help="seconds between within-epoch progress lines"
    )


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` that the recipe options in ``args`` describe.

    Resolves the weights first, so an offline ``--weights imagenet`` or a missing file fails
    fast. ``overrides`` replace config fields (e.g. ``out``, ``name``, ``protocol``).
    """
    from deepoxymap.model.architectures import ARCHS, resolve_weights
    from deepoxymap.model.train import TrainConfig, command_line

    info = ARCHS[args.arch]
    weights = resolve_weights(args.weights, args.arch)  # fails fast (offline ImageNet, missing file)
    scaling = args.scaling or (info.scratch_scaling if weights is None else info.imagenet_scaling)
    spec = PreprocessSpec(
        input_size=args.input_size,
        crop_mm=args.crop_mm,
        timepoint=args.timepoint,
        frame_rule=args.frame_rule,
        channels=args.channels,
        scaling=scaling,
        base_timepoint=args.base_timepoint,
    )
    fields: dict[str, Any] = {
        "manifest": args.manifest,
        "arch": args.arch,
        "weights": str(args.weights),
        "spec": spec,
        "augment": AugmentSpec(args.augment),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "patience": args.patience,
        "seed": args.seed,
        "max_minutes": args.max_minutes,
        "cache_dir": args.cache_dir,
        "jobs": getattr(args, "jobs", 1),
        "n_boot": args.n_boot,
        "head_epochs": args.head_epochs,
        "head_lr": args.head_lr,
        "conv_bn": args.conv_bn,
        "frame_jitter": args.frame_jitter,
        "lr_patience": args.lr_patience,
        "lr_cosine": args.lr_cosine,
        "command": command_line(),
    }
    fields.update(overrides)
    return TrainConfig(**fields)


def run(args: argparse.Namespace) -> int:
    """Train and report."""
    from deepoxymap.model.train import train

    cfg = config_from_args(
        args,
        out=args.out,
        name=args.name,
        protocol=args.protocol,
        fold=args.fold,
        folds=args.folds,
        train_site=args.train_site,
        test_site=args.test_site,
    )
    mode = "require" if getattr(args, "resume", False) else "never" if getattr(args, "fresh", False) else "auto"
    res = train(cfg, resume=mode, progress_every_s=getattr(args, "progress_every", 30.0))
    m = res.card["metrics"]["test"]
    print(f"model: {res.model_path}")
    print(f"card:  {res.model_path.with_suffix('.json')}")
    print(f"test subjects: {m['n']}")
    for k in ("accuracy", "macro_precision", "macro_recall", "macro_auc", "ece"):
        lo, hi = m[k]["ci"]
        print(f"  {k:16s} {m[k]['value']:.3f}  [{lo:.3f}, {hi:.3f}]")
    for c, v in m["auc"].items():
        lo, hi = v["ci"]
        print(f"  AUC {c:12s} {v['value']:.3f}  [{lo:.3f}, {hi:.3f}]")
    if not res.complete:
        print(f"INCOMPLETE: {res.stop_reason}; the model above is the best so far. Run the same command to resume.")
        return 3
    return 0
