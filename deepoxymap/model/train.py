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

import logging
import shlex
import sys
import time
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
from deepoxymap.model.train_control import (
    Checkpoint,
    ProgressFile,
    ResumeError,
    StopRequest,
    TrainingStopped,
    arrays_sha256,
    config_fingerprint,
    stop_requests,
)
from deepoxymap.model.train_loop import (
    ITERATORS_PER_EPOCH,
    RESUME_IGNORED,
    RESUME_MODES,
    _assign,
    _budget_spent,
    _f,
    _make_cosine,
    _make_loop_callback,
    _make_plateau,
    _mismatch,
    _StopNow,
    checkpoint_dir,
    config_dict,
    default_model_name,
    progress_path,
    stop_files,
)

__all__ = [
    "RESUME_MODES",
    "ResumeError",
    "TrainConfig",
    "TrainResult",
    "TrainingStopped",
    "checkpoint_dir",
    "config_dict",
    "default_model_name",
    "evaluate_split",
    "make_split",
    "progress_path",
    "stop_files",
    "train",
]

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
        max_minutes: stop after the epoch that would cross this wall-clock budget (fitting time of
            every session). The checkpoint stays, so ``resume`` with a larger budget continues the fit.
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
        lr_cosine: decay the learning rate of the whole-network phase along half a
            cosine from ``lr`` to ``lr / 100`` over its epochs
            (:func:`~deepoxymap.model.train_loop.cosine_lr`), by epoch index, so a
            run of a fixed epoch count anneals whether or not a plateau is seen.
            Exclusive with ``lr_patience``.
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
    lr_cosine: bool = False

    def __post_init__(self) -> None:
        if self.lr_cosine and self.lr_patience:
            raise ValueError("lr_cosine and lr_patience are two learning-rate schedules: choose one")


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        model_path: the saved ``.keras`` file.
        card: the card written beside it.
        model: the trained Keras model (best weights).
        history: per-epoch metrics (over every session of a resumed run).
        complete: ``False`` when the run was stopped by request (the model is then the best
            so far and the checkpoint is kept for ``resume``). A fit ended by ``max_minutes`` is
            complete, and its card says ``resumable: true``: the checkpoint is kept too.
        stop_reason: why fitting ended.
    """

    model_path: Path
    card: dict[str, Any]
    model: Any
    history: dict[str, list[float]]
    complete: bool = True
    stop_reason: str = ""


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
    model: Any, data: SliceData, *, n_boot: int = 1000, seed: int = 0, offset: np.ndarray | None = None
) -> tuple[dict[str, Any], list[str], np.ndarray, np.ndarray]:
    """Case-level metrics of a model on the slices of some subjects.

    Args:
        offset: the case-level class-prior correction (:mod:`deepoxymap.model.calibrate`), or ``None``.

    Returns:
        ``(metrics with CIs, subjects, y [n_subj], case_probs [n_subj, C])``.
    """
    from deepoxymap.model.calibrate import apply_offset

    subjects, y, raw = split_case_probs(model, data)
    case_probs = apply_offset(raw, offset)
    return bootstrap_metrics(y, case_probs, n_boot=n_boot, seed=seed), subjects, y, case_probs


def split_case_probs(model: Any, data: SliceData) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(subjects, y [n_subj], raw case probabilities [n_subj, C])``: one forward pass over the split."""
    from deepoxymap.model.predict import predict_array

    subjects, case_probs = aggregate_cases(predict_array(model, data.x), data.subjects)
    ymap = dict(zip(data.subjects, data.y.tolist(), strict=True))
    return subjects, np.array([ymap[s] for s in subjects], dtype=int), case_probs


def train(
    cfg: TrainConfig,
    *,
    loader: Callable[[Path], Case] | None = None,
    log: Callable[[str], None] | None = None,
    resume: str = "auto",
    progress_every_s: float = 30.0,
) -> TrainResult:
    """Run one training (see module doc); returns the saved model and its card.

    Progress goes to ``log`` (a line per epoch, and one every ``progress_every_s`` seconds
    within an epoch: slices/s, loss, accuracy, ETA) and to ``OUT/NAME.progress.json``
    (:func:`progress_path`). After every epoch the run's whole state is checkpointed in
    ``OUT/NAME.resume/`` (:func:`checkpoint_dir`): the training graph's variables (weights,
    BatchNorm statistics, dropout seed states), the optimizer's (Adam moments, step count,
    learning rate), the learning-rate schedule's and early stopping's counters, the best
    weights and the history. The first SIGINT/SIGTERM, or a STOP file (:func:`stop_files`),
    stops the run after the current batch: the unfinished epoch is dropped, the best model so
    far is evaluated and saved with its card (``training.complete: false``) and the checkpoint is
    kept; the checkpoint is removed when a run completes.

    Args:
        cfg: the run's configuration.
        loader: ``path -> Case`` for the manifest's subject folders
            (default ``deepoxymap.phantom.load_subject``).
        log: progress sink (default: the package logger at INFO, stderr in the CLI).
        resume: one of :data:`RESUME_MODES`. A checkpoint is resumed only when the config
            (but :data:`RESUME_IGNORED`), the manifest's bytes and the training and
            validation slices hash as they did; otherwise :class:`ResumeError` says what
            differs. The resumed run then continues exactly where the straight run would be.
        progress_every_s: seconds between within-epoch progress lines.

    Raises:
        ResumeError: see ``resume``.
        TrainingStopped: stopped before the first epoch completed (nothing to save).
    """
    if resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
    say = log or logger.info
    ckpt = Checkpoint(checkpoint_dir(cfg))
    progress = ProgressFile(progress_path(cfg))
    name = cfg.name or default_model_name(cfg.arch)
    if resume == "require" and not ckpt.exists():
        raise ResumeError(
            "nothing to resume: this run has no checkpoint",
            source=str(ckpt.folder),
            hint="run the command without --resume to start training",
        )
    progress.update(
        force=True,
        status="preparing",
        epoch=0,
        epochs=cfg.epochs,
        fraction=0.0,
        percent=0.0,
        model=str(Path(cfg.out) / f"{name}.keras"),
        checkpoint=str(ckpt.folder),
    )
    try:
        return _train(cfg, loader=loader, say=say, resume=resume, ckpt=ckpt, progress=progress, every=progress_every_s)
    except TrainingStopped as exc:
        progress.update(force=True, status="stopped", stop_reason=str(exc))
        raise
    except BaseException as exc:
        progress.update(force=True, status="failed", stop_reason=f"{type(exc).__name__}: {exc}")
        raise


def _train(
    cfg: TrainConfig,
    *,
    loader: Callable[[Path], Case] | None,
    say: Callable[[str], None],
    resume: str,
    ckpt: Checkpoint,
    progress: ProgressFile,
    every: float,
) -> TrainResult:
    import keras

    from deepoxymap.model.architectures import (
        ARCHS,
        BN_MOMENTUM,
        HEAD_LAYERS,
        build_conv_bn_model,
        build_model,
        fold_conv_bn,
    )

    t_start = time.perf_counter()
    wall_start = time.time()
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

    # ------------------------------------------------------------------ the run's fingerprint; resume?
    cfg_d = config_dict(cfg)
    cfg_fp = {k: v for k, v in cfg_d.items() if k not in RESUME_IGNORED}
    data_sha = arrays_sha256([tr.x, tr.y, tr.x_frames, va.x, va.y])
    manifest_sha = manifest_sha256(manifest)
    fingerprint = config_fingerprint(cfg_fp, data_sha, manifest_sha)
    resumed: tuple[dict[str, Any], dict[str, list[Any]]] | None = None
    if ckpt.exists():
        if resume == "never":
            say(f"discarding the checkpoint {ckpt.folder} (--fresh)")
            ckpt.remove()
        else:
            st = ckpt.read_state()
            if st.get("fingerprint") != fingerprint:
                raise ResumeError(
                    "refusing to resume: the checkpoint was made by another config or data ("
                    + _mismatch(st, cfg_fp, data_sha, manifest_sha)
                    + ")",
                    source=str(ckpt.folder),
                    hint=f"resume with the original command ({st.get('original_command') or '?'}), or start again: "
                    f"deepoxymap train --fresh, or delete {ckpt.folder}",
                )
            if _budget_spent(st, cfg.max_minutes):
                raise ResumeError(
                    f"this run was ended by its wall-clock budget after {float(st.get('fit_elapsed_s', 0)) / 60:.1f} min "
                    f"of fitting (epoch {st.get('epoch')}), and a budget of {cfg.max_minutes} min leaves no room "
                    "for another epoch",
                    source=str(ckpt.folder),
                    hint="continue it with a larger --max-minutes (the budget counts every session's fitting), "
                    f"or start again: deepoxymap train --fresh, or delete {ckpt.folder}",
                )
            resumed = ckpt.load()
    stop = StopRequest(files=stop_files(cfg), since=wall_start)
    for f in stop.stale_files():
        say(f"ignoring {f}: it is older than this run (delete it; touch it again to stop this run)")

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
    steps = max(1, -(-len(tr) // cfg.batch_size))
    head_names = {"head_gap", "head_bn", "head_drop1", "head_dense", "head_drop2", "logits", "probs"}
    plan = [(cfg.head_epochs, cfg.head_lr, True), (cfg.epochs - cfg.head_epochs, cfg.lr, False)]
    plateau: Any = None

    def snapshot(m: Any) -> dict[str, Any]:
        return {
            "model": [v.numpy() for v in m.variables],
            "optimizer": [v.numpy() for v in m.optimizer.variables],
            "best": [] if loop.best_weights is None else list(loop.best_weights),
        }

    loop = _make_loop_callback(
        cfg,
        n_train=len(tr),
        steps=steps,
        say=say,
        progress=progress,
        ckpt=ckpt,
        stop=stop,
        snapshot=lambda m: snapshot(m),
        progress_every_s=every,
    )
    ckpt_meta = {
        "fingerprint": fingerprint,
        "config": cfg_fp,
        "data_sha256": data_sha,
        "manifest_sha256": manifest_sha,
        "command": cfg.command,
        "keras": keras.__version__,
        "iterators_per_epoch": ITERATORS_PER_EPOCH,
        "variables": [list(v.shape) for v in model.variables],  # paths carry Keras' per-process name counters
    }
    sessions: list[dict[str, Any]] = []
    start_phase = 0
    rstate: dict[str, Any] = {}
    if resumed is not None:
        rstate, arrays = resumed
        if rstate.get("variables") != ckpt_meta["variables"]:
            raise ResumeError(
                "the checkpoint's variables are not this model's",
                source=str(ckpt.folder),
                hint="pass --fresh to discard the checkpoint",
            )
        if rstate.get("keras") != keras.__version__ or rstate.get("iterators_per_epoch") != ITERATORS_PER_EPOCH:
            say(
                f"warning: the checkpoint was written under Keras {rstate.get('keras')} (now {keras.__version__}): "
                "the resumed run's data order may differ from an uninterrupted run's"
            )
        _assign(model.variables, arrays["model"], "model", ckpt.folder)
        loop.restore(rstate, list(arrays["best"]) or None)
        start_phase = loop.phase
        sessions = list(rstate.get("sessions", []))
        # advance the dataset's shuffle / jitter / augmentation streams past the completed epochs
        for _ in range(ITERATORS_PER_EPOCH * loop.epochs_done):
            iter(ds_tr)
        say(
            f"resuming from the checkpoint after epoch {loop.epochs_done} (phase {loop.phase + 1}; best val_loss "
            f"{_f(loop.best)} at epoch {loop.best_epoch + 1}; {loop.prior_elapsed / 60:.1f} min of fitting so far)"
        )
    sessions.append({"from_epoch": loop.epochs_done, "command": cfg.command})
    ckpt_meta["sessions"] = sessions
    ckpt_meta["original_command"] = rstate.get("original_command", cfg.command)
    base_state = loop.state

    def full_state() -> dict[str, Any]:
        st = {**ckpt_meta, **base_state()}
        st["plateau"] = plateau.state() if plateau is not None else None
        return st

    loop.state = full_state
    progress.update(
        force=True,
        status="training",
        epoch=loop.epochs_done,
        steps=steps,
        resumed_from_epoch=(loop.epochs_done if resumed is not None else None),
    )

    stopped: str | None = None
    loop.t0 = time.perf_counter()
    with stop_requests(stop, say):
        for phase, (n_ep, lr, head_only) in enumerate(plan):
            if n_ep <= 0 or phase < start_phase:
                continue
            here = resumed is not None and phase == start_phase
            if here and loop.stop_reason.startswith("wall"):
                # the budget ended the last session mid-phase (never set with early stopping, see
                # _make_loop_callback); the new budget has room (checked above): the phase goes on
                say(f"continuing after the last session's {loop.stop_reason}")
                loop.stop_reason, loop.phase_over = "max epochs", False
            if here and loop.phase_over:
                continue  # this phase ended (early stopping) at the checkpoint's epoch
            if not here:
                loop.phase, loop.phase_start, loop.phase_over, loop.wait = phase, loop.epochs_done, False, 0
            end = loop.phase_start + n_ep
            if loop.epochs_done >= end:
                continue
            for layer in model.layers:
                layer.trainable = (layer.name in head_names) if head_only else True
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=lr),
                loss="categorical_crossentropy",
                metrics=["accuracy"],
            )
            model.optimizer.build(model.trainable_variables)
            if here:
                _assign(model.optimizer.variables, resumed[1]["optimizer"], "optimizer", ckpt.folder)  # type: ignore[index]
            plateau = _make_plateau(cfg.lr_patience, lr, rstate.get("plateau") if here else None)
            schedule = _make_cosine(n_ep, loop.phase_start, lr) if cfg.lr_cosine and not head_only else None
            say(
                f"phase {phase + 1}: {'head only (base frozen)' if head_only else 'whole network'}, Adam lr "
                f"{float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)):.3g}, epochs "
                f"{loop.epochs_done + 1}-{end} of {cfg.epochs}, {steps} batches of {cfg.batch_size} per epoch"
            )
            if stop.poll() is not None:
                stopped = stop.reason
                break
            try:
                model.fit(
                    ds_tr,
                    validation_data=ds_va,
                    epochs=end,
                    initial_epoch=loop.epochs_done,
                    class_weight=class_weight,
                    callbacks=[*(c for c in (plateau, schedule) if c is not None), loop],
                    verbose=0,
                )
            except _StopNow:
                stopped = stop.reason or "stop requested"
                break
            if loop.stop_reason.startswith("wall"):
                break
    for layer in model.layers:
        layer.trainable = True

    history = loop.history
    phases = [
        {"phase": p + 1, "head_only": plan[p][2], "lr": plan[p][1], "epochs_run": n}
        for p, n in sorted(loop.phase_epochs.items())
    ]
    t_fit = loop.elapsed()
    if stopped is not None:
        resume_cmd = cfg.command if "--resume" in cfg.command else f"{cfg.command} --resume"
        if loop.best_weights is None and loop.epochs_done == 0:
            raise TrainingStopped(
                f"stopped ({stopped}) before the first epoch completed: nothing to save",
                hint="start the command again",
            )
        stop_reason = f"stopped by request ({stopped}) after epoch {loop.epochs_done} of {cfg.epochs}; resumable"
        say(f"{stop_reason}: the checkpoint stays in {ckpt.folder}; resume with: {resume_cmd}")
    else:
        stop_reason = loop.stop_reason
    # a fit ended by its wall-clock budget is complete as asked but can go on: its checkpoint stays
    by_budget = stopped is None and loop.stop_reason.startswith("wall")
    if loop.best_weights is not None:
        model.set_weights(loop.best_weights)
    say(
        f"training {'stopped' if stopped else 'ended'}: {stop_reason}; best epoch {loop.best_epoch + 1} "
        f"(val_loss {_f(loop.best)}); {t_fit / 60:.1f} min of fitting"
    )
    progress.update(force=True, status="evaluating")

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

    from deepoxymap.model.calibrate import (
        CASE_CALL_CORRECTED,
        apply_offset,
        decision_card,
        fit_log_prior_offset,
        mean_nll,
        not_fitted_card,
        too_few_to_fit,
    )

    _, val_y, val_p = split_case_probs(model, va)  # one forward pass per split
    test_subj, test_y, raw_test_p = split_case_probs(model, te)
    why_not = too_few_to_fit(val_y)
    # the class-prior correction is chosen on validation subjects only; the test set is never seen
    offset = None if why_not else fit_log_prior_offset(val_p, val_y)
    test_p = apply_offset(raw_test_p, offset)

    def boot(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
        return bootstrap_metrics(y, p, n_boot=cfg.n_boot, seed=cfg.seed)

    raw_val_m, raw_test_m = boot(val_y, val_p), boot(test_y, raw_test_p)
    val_m = boot(val_y, apply_offset(val_p, offset)) if offset is not None else raw_val_m
    test_m = boot(test_y, test_p) if offset is not None else raw_test_m
    if offset is None:
        decision = not_fitted_card(str(why_not))
        say(f"no class-prior correction: {why_not}")
    else:
        decision = decision_card(offset, val_p, val_y)
        say(
            f"class-prior correction fitted on {decision['fitted_on_subjects']} validation subjects: "
            + ", ".join(f"{c} {v:+.2f}" for c, v in decision["log_prior_offset"].items())
            + f" (validation NLL {mean_nll(val_p, val_y):.3f} -> {mean_nll(val_p, val_y, offset):.3f}; "
            f"accuracy {raw_val_m['accuracy']['value']:.3f} -> {val_m['accuracy']['value']:.3f})"
        )
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
        "case_aggregation": CASE_CALL_CORRECTED if offset is not None else "mean of slice probabilities",
        "decision": decision,
        "gradcam_layer": info.last_conv,
        "weights": weights_desc,
        "intended_use": (
            "Research demonstration only; not a medical device. Trained on SYNTHETIC phantom OS-CMR images "
            "(deepoxymap generate), never on patient data: its numbers say nothing about real patients."
        ),
        "training": {
            "command": ckpt_meta["original_command"],
            "config": cfg_d,
            "complete": stopped is None,
            "resumable": stopped is not None or by_budget,
            "sessions": sessions,
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
            + (f"; lr x0.3 after {cfg.lr_patience} epochs without val-loss improvement" if cfg.lr_patience else "")
            + ("; cosine decay to lr/100 over the whole-network phase's epochs" if cfg.lr_cosine else ""),
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
            "epochs_run": len(history.get("loss", [])),
            "best_epoch": loop.best_epoch + 1,
            "stop_reason": stop_reason,
            "history": {k: [float(v) for v in vs] for k, vs in history.items()},
            "wall_time_s": {"preprocessing": round(t_pre, 1), "fit": round(t_fit, 1)},
        },
        "metrics": {
            "note": "case level (mean of slice probabilities); 95% percentile bootstrap CI over subjects",
            "validation": val_m,
            "test": test_m,
            "without_prior_correction": {"validation": raw_val_m, "test": raw_test_m},
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
    if stopped is None:
        if by_budget:
            say(
                f"the checkpoint stays in {ckpt.folder}: continue this fit with --resume and a larger --max-minutes "
                "(the budget counts every session's fitting)"
            )
        else:
            ckpt.remove()
        progress.update(
            force=True, status="done", epoch=loop.epochs_done, step=0, fraction=1.0, percent=100.0, eta_s=0.0,
            stop_reason=stop_reason,
        )  # fmt: skip
    else:
        say(f"the model above is the best so far (epoch {loop.best_epoch + 1}); its card says complete: false")
        progress.update(force=True, status="stopped", stop_reason=stop_reason, eta_s=None)
    return TrainResult(
        model_path=model_path,
        card=card,
        model=model,
        history={k: list(v) for k, v in history.items()},
        complete=stopped is None,
        stop_reason=stop_reason,
    )


def _ci(m: dict[str, Any]) -> str:
    lo, hi = m["ci"]
    return f"[{lo:.3f}, {hi:.3f}]"


def command_line(argv: Sequence[str] | None = None) -> str:
    """The current command line, shell-quoted, as ``deepoxymap ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "deepoxymap " + " ".join(shlex.quote(a) for a in args)
