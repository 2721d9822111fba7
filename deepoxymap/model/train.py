"""Train a classifier on a cohort manifest and write ``.keras`` + model card.

One call of :func:`train` = one split (the study's 80/20 hold-out by default,
or one fold of the stratified 5-fold CV, or a site-to-site split):

1. read the manifest, split **subjects** (:mod:`deepoxymap.model.splits`);
2. preprocess every subject with the shared
   :func:`~deepoxymap.model.preprocess.preprocess_case` (cached);
3. fit with Adam, class weights (balanced over training slices), augmentation
   on training batches only, early stopping on validation loss keeping the
   best epoch's weights, and an optional wall-clock cap;
4. evaluate the best weights on the held-out **test subjects** (case call =
   mean of slice probabilities, 95% bootstrap CIs over subjects);
5. save the model without optimizer state, then its card (with the file's sha256).
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepoxymap import CLASSES, __version__
from deepoxymap.case import Case
from deepoxymap.cohort import SubjectRecord, manifest_sha256, read_manifest
from deepoxymap.errors import CaseError
from deepoxymap.model.augment import AugmentSpec
from deepoxymap.model.card import library_versions, sha256_file, write_card
from deepoxymap.model.data import SliceData, build_slices, make_dataset
from deepoxymap.model.metrics import aggregate_cases, bootstrap_metrics
from deepoxymap.model.preprocess import PreprocessSpec
from deepoxymap.model.splits import Split, assert_disjoint, holdout_split, kfold_splits, site_split

__all__ = ["TrainConfig", "TrainResult", "default_model_name", "evaluate_split", "make_split", "train"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (recorded in the card).

    Attributes:
        manifest: cohort manifest CSV.
        arch: ``vgg19`` | ``resnet50`` | ``efficientnetb0``.
        weights: ``"none"`` (scratch), ``"imagenet"`` or a weights file path.
        out: output folder for ``<name>.keras`` and ``<name>.json``.
        name: file stem; default ``deepoxymap_<arch>``.
        spec: preprocessing spec.
        augment: augmentation spec.
        epochs: maximum epochs.
        batch_size: slices per batch.
        lr: Adam learning rate.
        patience: early-stopping patience (epochs without a val-loss improvement).
        seed: seeds the split, initialisation, shuffling and augmentation.
        protocol: ``"holdout"`` | ``"fold"`` | ``"site"`` | ``"manifest"`` (the manifest's ``split`` column).
        fold / folds: fold index and count for ``"fold"``.
        train_site / test_site: for ``"site"``.
        test_fraction / val_fraction: hold-out fractions (per class).
        max_minutes: stop after the epoch that would cross this wall-clock budget.
        cache_dir: preprocessed-slice cache; default ``<manifest dir>/.cache``.
        jobs: worker processes preparing (or rendering, for generated rows) the subjects' slices.
        dense_units / dropout: head.
        n_boot: bootstrap resamples for CIs.
        command: the command line that launched the run (for the card).
        head_epochs: if > 0, phase 1 trains only the head (base frozen) for this
            many epochs at ``head_lr``; phase 2 then trains the whole network at
            ``lr`` for the remaining epochs. Best val-loss weights over both phases
            are kept. (Session 1's shipped VGG19 came from phase 1 on a frozen random
            base, because plain VGG19 collapsed end to end; ``conv_bn`` trains the base.)
        head_lr: phase-1 learning rate.
        conv_bn: train the plain-conv architecture (VGG19) in its conv-BN form
            (:func:`~deepoxymap.model.architectures.build_conv_bn_model`) and fold
            every BatchNorm into its conv before saving, so the saved model is the
            plain ``keras.applications`` graph. Scratch weights only.
        frame_jitter: K > 0 trains on the end-systolic frame or one of its K
            neighbours on either side (cyclic), drawn at random per slice per
            epoch: same tissue, same label, new noise and a slightly different
            cardiac phase. Validation, test and inference use the ES frame only.

        lr_patience: N > 0 multiplies the learning rate by 0.3 after N epochs
            without a validation-loss improvement (Keras ``ReduceLROnPlateau``,
            floor lr / 100); 0 keeps it constant.
    """

    manifest: Path
    arch: str = "vgg19"
    weights: str = "none"
    out: Path = Path("assets/models")
    name: str | None = None
    spec: PreprocessSpec = field(default_factory=PreprocessSpec)
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-4
    patience: int = 8
    seed: int = 0
    protocol: str = "holdout"
    fold: int = 0
    folds: int = 5
    train_site: str | None = None
    test_site: str | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.15
    max_minutes: float | None = None
    cache_dir: Path | None = None
    jobs: int = 1
    dense_units: int = 256
    dropout: float = 0.5
    n_boot: int = 1000
    command: str = ""
    head_epochs: int = 0
    head_lr: float = 1e-3
    conv_bn: bool = False
    frame_jitter: int = 0
    lr_patience: int = 0


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        model_path: the saved ``.keras`` file.
        card: the card written beside it.
        model: the trained Keras model (best weights).
        history: per-epoch metrics.
    """

    model_path: Path
    card: dict[str, Any]
    model: Any
    history: dict[str, list[float]]


def default_model_name(arch: str) -> str:
    """``deepoxymap_<arch>``."""
    return f"deepoxymap_{arch.lower()}"


def make_split(cfg: TrainConfig, records: Sequence[SubjectRecord]) -> Split:
    """The subject split a config asks for."""
    ids = [r.subject for r in records]
    labels = [r.label for r in records]
    if cfg.protocol == "holdout":
        return holdout_split(ids, labels, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction, seed=cfg.seed)
    if cfg.protocol == "fold":
        return kfold_splits(ids, labels, k=cfg.folds, val_fraction=cfg.val_fraction, seed=cfg.seed)[cfg.fold]
    if cfg.protocol == "site":
        if not cfg.train_site or not cfg.test_site:
            raise ValueError("protocol 'site' needs train_site and test_site")
        sites = [r.site for r in records]
        return site_split(
            ids, labels, sites, cfg.train_site, cfg.test_site, val_fraction=cfg.val_fraction, seed=cfg.seed
        )
    if cfg.protocol == "manifest":
        by = {k: tuple(r.subject for r in records if r.split == k) for k in ("train", "val", "test")}
        if not by["train"] or not by["val"]:
            raise CaseError(
                "protocol 'manifest' needs a split column with train and val subjects",
                source=str(cfg.manifest),
                hint="set split to train/val/test per row",
            )
        return Split("manifest", by["train"], by["val"], by["test"])
    raise ValueError(f"unknown protocol {cfg.protocol!r}")


def evaluate_split(
    model: Any, data: SliceData, *, n_boot: int = 1000, seed: int = 0
) -> tuple[dict[str, Any], list[str], np.ndarray, np.ndarray]:
    """Case-level metrics of a model on the slices of some subjects.

    Returns:
        ``(metrics with CIs, subjects, y [n_subj], case_probs [n_subj, C])``.
    """
    from deepoxymap.model.predict import predict_array

    probs = predict_array(model, data.x)
    subjects, case_probs = aggregate_cases(probs, data.subjects)
    ymap = dict(zip(data.subjects, data.y.tolist(), strict=True))
    y = np.array([ymap[s] for s in subjects], dtype=int)
    return bootstrap_metrics(y, case_probs, n_boot=n_boot, seed=seed), subjects, y, case_probs


class _BestAndBudget:
    """Keras callback factory: keep the best val-loss weights; stop on patience or wall-clock budget."""

    @staticmethod
    def make(patience: int, max_minutes: float | None, log: Callable[[str], None]) -> Any:
        import keras

        class Cb(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.best = np.inf
                self.best_epoch = -1
                self.best_weights: list[Any] | None = None
                self.wait = 0
                self.t0 = time.perf_counter()
                self.t_epoch = time.perf_counter()
                self.stop_reason = "max epochs"

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self.t_epoch = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                logs = logs or {}
                vl = float(logs.get("val_loss", np.inf))
                dt = time.perf_counter() - self.t_epoch
                el = time.perf_counter() - self.t0
                log(
                    f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f} acc {logs.get('accuracy', float('nan')):.3f} "
                    f"val_loss {vl:.4f} val_acc {logs.get('val_accuracy', float('nan')):.3f} ({dt:.0f} s, total {el / 60:.1f} min)"
                )
                if vl < self.best - 1e-4:
                    self.best, self.best_epoch, self.wait = vl, epoch, 0
                    self.best_weights = self.model.get_weights()
                else:
                    self.wait += 1
                    if self.wait >= patience:
                        self.stop_reason = f"early stopping (no val-loss improvement for {patience} epochs)"
                        self.model.stop_training = True
                if max_minutes is not None and el + dt > max_minutes * 60:
                    self.stop_reason = f"wall-clock budget of {max_minutes} min"
                    self.model.stop_training = True

            def on_train_end(self, logs: Any = None) -> None:
                if self.best_weights is not None:
                    self.model.set_weights(self.best_weights)

        return Cb()


def train(
    cfg: TrainConfig,
    *,
    loader: Callable[[Path], Case] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Run one training (see module doc); returns the saved model and its card.

    Args:
        cfg: the run's configuration.
        loader: ``path -> Case`` for the manifest's subject folders
            (default ``deepoxymap.phantom.load_subject``).
        log: progress sink (default: stderr).
    """
    import keras

    from deepoxymap.model.architectures import (
        ARCHS,
        BN_MOMENTUM,
        HEAD_LAYERS,
        build_conv_bn_model,
        build_model,
        fold_conv_bn,
    )

    say = log or logger.info
    t_start = time.perf_counter()
    manifest = Path(cfg.manifest)
    records = read_manifest(manifest)
    split = make_split(cfg, records)
    assert_disjoint(split)
    say(f"{split.name}: {len(split.train)} train / {len(split.val)} val / {len(split.test)} test subjects")

    cache = cfg.cache_dir if cfg.cache_dir is not None else manifest.parent / ".cache"
    by_id = {r.subject: r for r in records}
    used = [by_id[s] for s in (*split.train, *split.val, *split.test)]
    t0 = time.perf_counter()
    offsets = [0] + [o for k in range(1, cfg.frame_jitter + 1) for o in (-k, k)]
    data = build_slices(used, cfg.spec, loader=loader, cache_dir=cache, frame_offsets=offsets, jobs=cfg.jobs)
    t_pre = time.perf_counter() - t0
    tr, va, te = data.select(split.train), data.select(split.val), data.select(split.test)
    assert_disjoint(split, data.subjects)
    if set(tr.subjects) & (set(va.subjects) | set(te.subjects)) or set(va.subjects) & set(te.subjects):
        raise AssertionError("a subject's slices straddle splits")
    say(f"slices: {len(tr)} train / {len(va)} val / {len(te)} test (preprocessing {t_pre:.0f} s)")

    keras.utils.set_random_seed(cfg.seed)
    scratch = str(cfg.weights).lower() in ("none", "", "scratch")
    if cfg.conv_bn:
        if not scratch:
            raise ValueError("conv_bn (BatchNorm-folded training) is for --weights none only")
        model = build_conv_bn_model(
            cfg.arch,
            cfg.spec.input_size,
            dense_units=cfg.dense_units,
            dropout=cfg.dropout,
            seed=cfg.seed,
            zero_logits=True,
        )
    else:
        model = build_model(
            cfg.arch,
            cfg.spec.input_size,
            cfg.weights,
            dense_units=cfg.dense_units,
            dropout=cfg.dropout,
            seed=cfg.seed,
            zero_logits=True,
        )
    if scratch:
        # base BatchNorms (ResNet50, EfficientNetB0, conv-BN VGG19) track the weights closely: see BN_MOMENTUM
        for layer in model.layers:
            if type(layer).__name__ == "BatchNormalization" and layer.name not in HEAD_LAYERS:
                layer.momentum = BN_MOMENTUM
    counts = np.bincount(tr.y, minlength=len(CLASSES)).astype(np.float64)
    class_weight = {
        k: float(len(tr) / (len(CLASSES) * counts[k])) if counts[k] > 0 else 0.0 for k in range(len(CLASSES))
    }
    ds_tr = make_dataset(
        tr.x, tr.y, batch_size=cfg.batch_size, augment=cfg.augment, shuffle=True, seed=cfg.seed, x_frames=tr.x_frames
    )
    ds_va = make_dataset(va.x, va.y, batch_size=64)
    cb = _BestAndBudget.make(cfg.patience, cfg.max_minutes, say)
    t0 = time.perf_counter()
    head_names = {"head_gap", "head_bn", "head_drop1", "head_dense", "head_drop2", "logits", "probs"}
    history: dict[str, list[float]] = {}
    phases: list[dict[str, Any]] = []
    done = 0
    for phase, (n_ep, lr, head_only) in enumerate(
        [(cfg.head_epochs, cfg.head_lr, True), (cfg.epochs - cfg.head_epochs, cfg.lr, False)]
    ):
        if n_ep <= 0:
            continue
        for layer in model.layers:
            layer.trainable = (layer.name in head_names) if head_only else True
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=lr), loss="categorical_crossentropy", metrics=["accuracy"]
        )
        cb.wait = 0
        say(f"phase {phase + 1}: {'head only (base frozen)' if head_only else 'whole network'}, Adam lr {lr}")
        h = model.fit(
            ds_tr,
            validation_data=ds_va,
            epochs=done + n_ep,
            initial_epoch=done,
            class_weight=class_weight,
            callbacks=[cb, *_plateau(cfg.lr_patience, lr)],
            verbose=0,
        )
        ran = len(h.history.get("loss", []))
        phases.append({"phase": phase + 1, "head_only": head_only, "lr": lr, "epochs_run": ran})
        done += ran
        for k, v in h.history.items():
            history.setdefault(k, []).extend(float(x) for x in v)
        if cb.stop_reason.startswith("wall"):
            break
    for layer in model.layers:
        layer.trainable = True

    hist = types.SimpleNamespace(history=history)
    t_fit = time.perf_counter() - t0
    say(
        f"training stopped: {cb.stop_reason}; best epoch {cb.best_epoch + 1} (val_loss {cb.best:.4f}); {t_fit / 60:.1f} min"
    )

    # the saved graph has no optimizer state (and, for conv_bn, no BatchNorm in the base):
    # build it fresh, move the weights in, and evaluate THAT graph, which is what ships
    clean = build_model(cfg.arch, cfg.spec.input_size, None, dense_units=cfg.dense_units, dropout=cfg.dropout)
    folding: dict[str, Any] | None = None
    if cfg.conv_bn:
        n_fold = fold_conv_bn(model, clean)
        from deepoxymap.model.predict import predict_array

        probe = te.x[: min(len(te), 64)]
        dp = float(np.abs(predict_array(model, probe) - predict_array(clean, probe)).max()) if len(probe) else 0.0
        folding = {"batchnorm_layers_folded": n_fold, "max_abs_prob_change_on_test_slices": dp}
        say(f"folded {n_fold} BatchNorm layers into their convs; max |delta p| on {len(probe)} test slices {dp:.2e}")
    else:
        clean.set_weights(model.get_weights())
    model = clean

    val_m, *_ = evaluate_split(model, va, n_boot=cfg.n_boot, seed=cfg.seed)
    test_m, test_subj, test_y, test_p = evaluate_split(model, te, n_boot=cfg.n_boot, seed=cfg.seed)
    say(
        f"TEST ({len(test_subj)} subjects): acc {test_m['accuracy']['value']:.3f} "
        f"{_ci(test_m['accuracy'])}, macro AUC {test_m['macro_auc']['value']:.3f} {_ci(test_m['macro_auc'])}"
    )

    # save without optimizer state: copy the weights into a fresh, uncompiled graph
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.name or default_model_name(cfg.arch)
    model_path = out / f"{name}.keras"
    model.save(model_path)
    info = ARCHS[cfg.arch.lower()]
    weights_desc = (
        "none: trained from scratch (random initialisation), no ImageNet weights"
        if str(cfg.weights).lower() in ("none", "", "scratch")
        else str(cfg.weights)
    )
    cfg_d = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
    cfg_d["spec"] = cfg.spec.to_dict()
    cfg_d["augment"] = cfg.augment.to_dict()
    card: dict[str, Any] = {
        "name": name,
        "arch": cfg.arch.lower(),
        "classes": list(CLASSES),
        "output": "softmax probabilities [n, 4] in the order of 'classes'; layer 'logits' precedes the softmax",
        "input": {
            "shape": [None, cfg.spec.input_size, cfg.spec.input_size, 3],
            "dtype": "float32",
            "layout": "NHWC",
            "mm_per_pixel": cfg.spec.mm_per_pixel,
        },
        "preprocessing": cfg.spec.to_dict(),
        "preprocessing_function": "deepoxymap.model.preprocess.preprocess_case",
        "case_aggregation": "mean of slice probabilities",
        "gradcam_layer": info.last_conv,
        "weights": weights_desc,
        "intended_use": (
            "Research demonstration only; not a medical device. Trained on SYNTHETIC phantom OS-CMR images "
            "(deepoxymap generate), never on patient data: its numbers say nothing about real patients."
        ),
        "training": {
            "command": cfg.command,
            "config": cfg_d,
            "manifest": str(manifest),
            "manifest_sha256": manifest_sha256(manifest),
            "n_subjects": len(records),
            "class_counts": {c: sum(r.label == c for r in records) for c in CLASSES},
            "seed": cfg.seed,
            "split": split.to_dict(),
            "n_slices": {"train": len(tr), "val": len(va), "test": len(te)},
            "class_weight": {CLASSES[k]: v for k, v in class_weight.items()},
            "optimizer": (
                f"Adam(lr={cfg.lr})" if not cfg.head_epochs else f"Adam: head {cfg.head_lr}, then all {cfg.lr}"
            )
            + (f"; lr x0.3 after {cfg.lr_patience} epochs without val-loss improvement" if cfg.lr_patience else ""),
            "phases": phases,
            "initialisation": (
                "He-normal ReLU conv kernels, zero biases; logits kernel zero (uniform start)"
                if scratch
                else "pretrained base; logits kernel zero (uniform start)"
            ),
            "training_form": (
                "conv-BN: every ReLU conv trained as Conv2D(linear, no bias) -> BatchNormalization -> ReLU, "
                "then each BatchNorm folded into its conv kernel and bias (exact up to float32 rounding); "
                "the saved file is the plain keras.applications graph"
                if cfg.conv_bn
                else "the saved graph itself"
            ),
            "batchnorm_folding": folding,
            "loss": "categorical cross-entropy",
            "epochs_run": len(hist.history.get("loss", [])),
            "best_epoch": cb.best_epoch + 1,
            "stop_reason": cb.stop_reason,
            "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
            "wall_time_s": {"preprocessing": round(t_pre, 1), "fit": round(t_fit, 1)},
        },
        "metrics": {
            "note": "case level (mean of slice probabilities); 95% percentile bootstrap CI over subjects",
            "validation": val_m,
            "test": test_m,
            "test_predictions": {
                s: {"y": CLASSES[int(yy)], "probs": [round(float(v), 6) for v in pp]}
                for s, yy, pp in zip(test_subj, test_y, test_p, strict=True)
            },
        },
        "library_versions": library_versions(),
        "deepoxymap_version": __version__,
    }
    card["training"]["wall_time_s"]["total"] = round(time.perf_counter() - t_start, 1)
    card["file"] = {"name": model_path.name, "sha256": sha256_file(model_path), "bytes": model_path.stat().st_size}
    write_card(model_path.with_suffix(".json"), card)
    say(f"saved {model_path} ({model_path.stat().st_size / 1e6:.1f} MB) and its card")
    return TrainResult(model_path=model_path, card=card, model=model, history=dict(hist.history))


def _plateau(patience: int, lr: float) -> list[Any]:
    """``[ReduceLROnPlateau]`` on val loss (factor 0.3, floor lr/100), or ``[]`` when ``patience`` is 0."""
    if patience <= 0:
        return []
    import keras

    return [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=patience, min_lr=lr / 100)]


def _ci(m: dict[str, Any]) -> str:
    lo, hi = m["ci"]
    return f"[{lo:.3f}, {hi:.3f}]"


def command_line(argv: Sequence[str] | None = None) -> str:
    """The current command line, shell-quoted, as ``deepoxymap ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "deepoxymap " + " ".join(shlex.quote(a) for a in args)
