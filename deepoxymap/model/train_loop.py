"""Training-loop control for :func:`deepoxymap.model.train.train`: checkpoint paths, the per-epoch
callback (progress file, stop requests, checkpoint), the LR plateau schedule and the resume checks.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.model.train_control import (
    Checkpoint,
    ProgressFile,
    ResumeError,
    StopRequest,
)

if TYPE_CHECKING:
    from deepoxymap.model.train import TrainConfig


def default_model_name(arch: str) -> str:
    """``deepoxymap_<arch>``."""
    return f"deepoxymap_{arch.lower()}"


RESUME_MODES = ("auto", "require", "never")
"""``train(resume=...)``: ``auto`` resumes a matching checkpoint (and refuses a mismatching one),
``require`` (``--resume``) also fails when there is none, ``never`` (``--fresh``) discards it."""

RESUME_IGNORED = ("out", "name", "command", "n_boot", "jobs", "cache_dir", "max_minutes")
"""Config fields that may change between a run and its resumption: where the files go, the
command line, the bootstrap size of the final evaluation, the number of preprocessing workers,
the cache location (the data are hashed themselves) and the wall-clock budget."""

ITERATORS_PER_EPOCH = 2
"""Iterators Keras 3 (3.15) opens on the training dataset per completed epoch: one at the epoch's
start and one after its last batch (``EpochIterator._enumerate_iterator``). Each advances the
dataset's shuffle and augmentation seed streams, so a resumed run opens (and drops) this many per
completed epoch before it fits; ``tests/model/test_train_resume.py`` fails if Keras changes it."""


def checkpoint_dir(cfg: TrainConfig) -> Path:
    """``OUT/NAME.resume``: the resume checkpoint of the run ``cfg`` describes."""
    return Path(cfg.out) / f"{cfg.name or default_model_name(cfg.arch)}.resume"


def progress_path(cfg: TrainConfig) -> Path:
    """``OUT/NAME.progress.json`` (see :class:`~deepoxymap.model.train_control.ProgressFile`)."""
    return Path(cfg.out) / f"{cfg.name or default_model_name(cfg.arch)}.progress.json"


def stop_files(cfg: TrainConfig) -> tuple[Path, Path]:
    """``(OUT/STOP, OUT/NAME.STOP)``: creating either stops the run after the current batch."""
    out = Path(cfg.out)
    return out / "STOP", out / f"{cfg.name or default_model_name(cfg.arch)}.STOP"


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as a JSON-ready dict (recorded in the card and the checkpoint)."""
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
    d["spec"] = cfg.spec.to_dict()
    d["augment"] = cfg.augment.to_dict()
    return d


class _StopNow(Exception):
    """Raised inside ``fit`` to leave it at once when a stop was requested."""


def _make_loop_callback(
    cfg: TrainConfig,
    *,
    n_train: int,
    steps: int,
    say: Callable[[str], None],
    progress: ProgressFile,
    ckpt: Checkpoint,
    stop: StopRequest,
    snapshot: Callable[[Any], dict[str, Any]],
    progress_every_s: float,
) -> Any:
    """The one Keras callback that runs the loop's bookkeeping (it must come last in ``callbacks``).

    Per epoch: keeps the best val-loss weights, counts early-stopping patience, applies the
    wall-clock budget, records the history, writes the checkpoint (``snapshot(model)`` gives
    its extra state) and the progress file, and logs one line. Within an epoch: logs progress
    every ``progress_every_s`` seconds and leaves ``fit`` (:class:`_StopNow`) at the first
    batch end after a stop request, so only completed epochs are ever kept.
    """
    import keras

    class Loop(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = np.inf
            self.best_epoch = -1
            self.best_weights: list[Any] | None = None
            self.wait = 0
            self.stop_reason = "max epochs"
            self.phase_over = False
            self.phase = 0
            self.phase_start = 0
            self.phase_epochs: dict[int, int] = {}
            self.history: dict[str, list[float]] = {}
            self.epochs_done = 0
            self.prior_elapsed = 0.0
            self.epoch_times: list[float] = []
            self.t0 = time.perf_counter()
            self.t_epoch = self.t0
            self.t_said = self.t0
            self.step = 0

        # ------------------------------------------------------------------ timing helpers
        def elapsed(self) -> float:
            return self.prior_elapsed + time.perf_counter() - self.t0

        def eta(self, frac_in_epoch: float) -> float | None:
            if self.epoch_times:
                per = float(np.mean(self.epoch_times))
            elif frac_in_epoch > 0:
                per = (time.perf_counter() - self.t_epoch) / frac_in_epoch
            else:
                return None
            left = max(0.0, (cfg.epochs - self.epochs_done - frac_in_epoch) * per)
            if cfg.max_minutes is not None:
                left = min(left, max(0.0, cfg.max_minutes * 60 - self.elapsed()) + per)
            return left

        def fraction(self, frac_in_epoch: float) -> float:
            return min(1.0, (self.epochs_done + frac_in_epoch) / max(cfg.epochs, 1))

        # ------------------------------------------------------------------ Keras hooks
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t_epoch = self.t_said = time.perf_counter()
            self.step = 0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step = batch + 1
            if stop.poll() is not None:
                raise _StopNow(stop.reason)
            now = time.perf_counter()
            frac = self.step / steps
            rate = min(self.step * cfg.batch_size, n_train) / max(now - self.t_epoch, 1e-9)
            eta = self.eta(frac)
            progress.update(
                status="training",
                phase=self.phase + 1,
                epoch=self.epochs_done,
                step=self.step,
                steps=steps,
                fraction=round(self.fraction(frac), 4),
                percent=round(100 * self.fraction(frac), 1),
                slices_per_s=round(rate, 2),
                elapsed_s=round(self.elapsed(), 1),
                eta_s=None if eta is None else round(eta, 1),
            )
            if now - self.t_said >= progress_every_s and self.step < steps:
                self.t_said = now
                logs = logs or {}
                ep_left = (steps - self.step) / self.step * (now - self.t_epoch)
                say(
                    f"  epoch {self.epochs_done + 1}/{cfg.epochs} [{self.step}/{steps} batches, {100 * frac:.0f}%] "
                    f"{rate:.1f} slices/s, loss {_f(logs.get('loss'))} acc {_f(logs.get('accuracy'), 3)}; "
                    f"epoch ETA {ep_left:.0f} s, run ETA <= {_minutes(eta)}"
                )

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = dict(logs or {})
            now = time.perf_counter()
            dt = now - self.t_epoch
            self.epoch_times.append(dt)
            vl = float(logs.get("val_loss", np.inf))
            if vl < self.best - 1e-4:
                self.best, self.best_epoch, self.wait = vl, epoch, 0
                self.best_weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.wait >= cfg.patience:
                    self.stop_reason = f"early stopping (no val-loss improvement for {cfg.patience} epochs)"
                    self.model.stop_training = True
            el = self.elapsed()
            # early stopping, when it fires on the same epoch, is the reason: the phase is over;
            # a budget stop leaves the phase open for a resumed session with a larger budget
            if cfg.max_minutes is not None and el + dt > cfg.max_minutes * 60 and not self.model.stop_training:
                self.stop_reason = f"wall-clock budget of {cfg.max_minutes} min"
                self.model.stop_training = True
            self.phase_over = bool(self.model.stop_training)
            for k, v in logs.items():
                self.history.setdefault(k, []).append(float(v))
            self.epochs_done = epoch + 1
            self.phase_epochs[self.phase] = self.phase_epochs.get(self.phase, 0) + 1
            t_save = time.perf_counter()
            ckpt.save(self.state(), snapshot(self.model))
            t_save = time.perf_counter() - t_save
            eta = self.eta(0.0)
            rate = n_train / max(dt, 1e-9)
            progress.update(
                force=True,
                status="training",
                phase=self.phase + 1,
                epoch=self.epochs_done,
                step=0,
                steps=steps,
                fraction=round(self.fraction(0.0), 4),
                percent=round(100 * self.fraction(0.0), 1),
                best_val_loss=None if not np.isfinite(self.best) else round(self.best, 6),
                best_epoch=self.best_epoch + 1 if self.best_epoch >= 0 else None,
                last={k: round(float(v), 6) for k, v in logs.items()},
                slices_per_s=round(rate, 2),
                elapsed_s=round(el, 1),
                eta_s=None if eta is None else round(eta, 1),
            )
            say(
                f"epoch {epoch + 1}/{cfg.epochs}: loss {_f(logs.get('loss'))} acc {_f(logs.get('accuracy'), 3)} "
                f"val_loss {_f(vl)} val_acc {_f(logs.get('val_accuracy'), 3)} | {dt:.0f} s, {rate:.1f} slices/s | "
                f"best val_loss {_f(self.best)} (epoch {self.best_epoch + 1}) | {el / 60:.1f} min, "
                f"run ETA <= {_minutes(eta)} (checkpoint {t_save:.1f} s)"
            )
            if stop.poll() is not None:  # asked during validation: this epoch is saved, leave now
                raise _StopNow(stop.reason)

        # ------------------------------------------------------------------ checkpoint state
        def state(self) -> dict[str, Any]:
            return {
                "epoch": self.epochs_done,
                "phase": self.phase,
                "phase_start": self.phase_start,
                "phase_over": self.phase_over,
                "phase_epochs": {str(k): v for k, v in self.phase_epochs.items()},
                "best": None if not np.isfinite(self.best) else self.best,
                "best_epoch": self.best_epoch,
                "wait": self.wait,
                "stop_reason": self.stop_reason,
                "history": self.history,
                "fit_elapsed_s": self.elapsed(),
                "epoch_times_s": self.epoch_times,
            }

        def restore(self, st: dict[str, Any], best_weights: list[Any] | None) -> None:
            self.epochs_done = int(st["epoch"])
            self.phase, self.phase_start, self.phase_over = (
                int(st["phase"]),
                int(st["phase_start"]),
                bool(st["phase_over"]),
            )
            self.phase_epochs = {int(k): int(v) for k, v in st["phase_epochs"].items()}
            self.best = np.inf if st["best"] is None else float(st["best"])
            self.best_epoch, self.wait = int(st["best_epoch"]), int(st["wait"])
            self.stop_reason = str(st["stop_reason"])
            self.history = {k: [float(x) for x in v] for k, v in st["history"].items()}
            self.prior_elapsed = float(st["fit_elapsed_s"])
            self.epoch_times = [float(x) for x in st["epoch_times_s"]]
            self.best_weights = best_weights

    return Loop()


def _make_plateau(patience: int, lr: float, restore: dict[str, Any] | None) -> Any:
    """``ReduceLROnPlateau`` on val loss (factor 0.3, floor lr/100), or ``None`` when ``patience`` is 0.

    ``restore`` (``best``, ``wait``, ``cooldown_counter``) is applied after Keras' own reset at
    the start of ``fit``, so a resumed run continues the schedule where it stopped.
    """
    if patience <= 0:
        return None
    import keras

    class Plateau(keras.callbacks.ReduceLROnPlateau):
        def __init__(self, pending: dict[str, Any] | None, **kw: Any) -> None:
            super().__init__(**kw)
            self.pending = pending

        def on_train_begin(self, logs: Any = None) -> None:
            super().on_train_begin(logs)
            if self.pending is not None:
                self.best = self.pending["best"]
                self.wait = int(self.pending["wait"])
                self.cooldown_counter = int(self.pending["cooldown_counter"])
                self.pending = None

        def state(self) -> dict[str, Any]:
            best = None if self.best is None else float(self.best)
            return {"best": best, "wait": int(self.wait), "cooldown_counter": int(self.cooldown_counter)}

    return Plateau(restore, monitor="val_loss", factor=0.3, patience=patience, min_lr=lr / 100)


def cosine_lr(epoch: int, n_epochs: int, lr: float) -> float:
    """Learning rate of epoch ``epoch`` (0-based, within its phase) of an ``n_epochs`` cosine decay.

    Half a cosine from ``lr`` at epoch 0 to ``lr / 100`` at the phase's last epoch (SGDR without
    restarts: Loshchilov & Hutter 2017, arXiv:1608.03983). A function of the epoch index only, so
    a resumed fit continues it exactly and a fit cut short by its budget is already annealed in
    proportion to how far it got.
    """
    floor = lr / 100.0
    if n_epochs <= 1:
        return float(lr)
    t = min(max(epoch, 0), n_epochs - 1) / (n_epochs - 1)
    return float(floor + 0.5 * (lr - floor) * (1.0 + np.cos(np.pi * t)))


def _make_cosine(n_epochs: int, phase_start: int, lr: float) -> Any:
    """Keras ``LearningRateScheduler`` for :func:`cosine_lr` over a phase starting at ``phase_start``."""
    import keras

    return keras.callbacks.LearningRateScheduler(lambda epoch, _lr: cosine_lr(epoch - phase_start, n_epochs, lr))


def _f(v: Any, nd: int = 4) -> str:
    try:
        return f"{float(v):.{nd}f}"
    except (TypeError, ValueError):
        return "nan"


def _minutes(s: float | None) -> str:
    return "?" if s is None else f"{s / 60:.1f} min"


def _assign(variables: Sequence[Any], arrays: Sequence[NDArray[Any]], what: str, source: Path) -> None:
    """Assign checkpoint arrays to variables, checking count and shapes."""
    if len(variables) != len(arrays):
        raise ResumeError(
            f"the checkpoint holds {len(arrays)} {what} arrays, this run has {len(variables)}",
            source=str(source),
            hint="pass --fresh to discard the checkpoint",
        )
    for v, a in zip(variables, arrays, strict=True):
        if tuple(v.shape) != tuple(a.shape):
            raise ResumeError(
                f"{what} variable {v.path} has shape {tuple(v.shape)}, the checkpoint {tuple(a.shape)}",
                source=str(source),
                hint="pass --fresh to discard the checkpoint",
            )
        v.assign(a)


def _budget_spent(state: dict[str, Any], max_minutes: float | None) -> bool:
    """Whether a checkpoint ``state`` was ended by its wall-clock budget and ``max_minutes`` has no room left.

    "No room" is the per-epoch rule of the loop: the fitting so far (``fit_elapsed_s``, every
    session) plus the last epoch's time would cross ``max_minutes``. ``False`` for checkpoints
    of runs stopped by request, and without a budget.
    """
    if max_minutes is None or not str(state.get("stop_reason", "")).startswith("wall"):
        return False
    times = state.get("epoch_times_s") or [0.0]
    return float(state.get("fit_elapsed_s", 0.0)) + float(times[-1]) > max_minutes * 60


def _mismatch(state: dict[str, Any], cfg_now: dict[str, Any], data_now: str, manifest_now: str) -> str:
    """What differs between a checkpoint's run and this one, in words."""
    was = state.get("config", {})
    diffs = [
        f"{k}: {was.get(k)!r} in the checkpoint, {cfg_now.get(k)!r} now"
        for k in sorted(set(was) | set(cfg_now))
        if was.get(k) != cfg_now.get(k)
    ]
    if state.get("manifest_sha256") != manifest_now:
        diffs.append("the manifest file's contents differ")
    if state.get("data_sha256") != data_now:
        diffs.append("the training/validation slices differ (the data or their preprocessing changed)")
    return "; ".join(diffs) or "the run fingerprint differs"
