"""A small 2D U-Net trained on random-appearance phantom images (:mod:`.synth`).

Training never sees a real image: the real labelled samples (Sunnybrook, CineMyoPS,
EMIDEC) stay a clean test (``python -m tools.segment_check --method unet``).

Inference on one image:

1. resample it to the network grid (:data:`~.synth.SIZE` x :data:`~.synth.SIZE` at
   :data:`~.synth.GRID_MM` mm) around the LV centre, linearly, and normalise it
   like the training images (1st-99.5th percentiles of the valid samples);
2. predict class probabilities, averaged over the four mirror images (test-time
   augmentation);
3. map the probabilities back to the image's own grid (linear) and take the most
   probable label; keep the LV (blood pool + myocardium) component nearest the centre,
   holes filled, and the RV component with the most pixels within about 6 mm of it;
   where there is none, the classical method's RV (``rv_fallback``);
4. on bright-blood cine and OS-CMR, move the endocardium out to the compact myocardium,
   so trabeculae and papillary muscles count as blood pool
   (:func:`deepoxymap.segmentation.endocardium.include_trabeculae`).

The model file is a Keras ``.keras`` file; :data:`DEFAULT_MODEL` is the shipped one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from deepoxymap.config import Settings, settings
from deepoxymap.model.card import sha256_file
from deepoxymap.segmentation.endocardium import BRIGHT_BLOOD_KINDS, include_trabeculae
from deepoxymap.segmentation.synth import (
    GRID_MM,
    SIZE,
    AppearanceRanges,
    BankVariation,
    normalise,
    synth_batch,
    tissue_bank,
)

__all__ = [
    "DEFAULT_MODEL",
    "SegmenterConfig",
    "SegmenterUnavailable",
    "build_unet",
    "ensemble",
    "load_segmenter",
    "predict_probs",
    "segment_unet",
    "train_segmenter",
    "verify_segmenter",
]

DEFAULT_MODEL = Settings().segmenter_path
"""The shipped segmenter (trained by ``python -m deepoxymap.segmentation.learned``); the
process's ``settings().segmenter_path`` (``DEEPOXYMAP_SEGMENTER_PATH``) takes precedence."""
N_CLASSES = 4


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything that defines a segmenter training run.

    Attributes:
        base_filters: filters of the first level (doubled per level).
        depth: pooling levels.
        bank_subjects: phantom subjects in the tissue bank (x 3 slices x 3 contractions).
        steps: optimiser steps; batch: images per step (generated afresh for every step).
        lr: Adam learning rate (cosine decay to 5 % of it).
        seed: seed of the bank and of the batches.
    """

    base_filters: int = 16
    depth: int = 4
    bank_subjects: int = 300
    steps: int = 3000
    batch: int = 12
    lr: float = 2e-3
    seed: int = 0


def build_unet(base_filters: int = 16, depth: int = 4) -> Any:
    """A U-Net for ``[batch, SIZE, SIZE, 1]`` inputs with a 4-class softmax output."""
    import keras
    from keras import layers

    def block(x: Any, f: int, name: str) -> Any:
        for i in (1, 2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
            x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
        return x

    inp = keras.Input((SIZE, SIZE, 1), name="image")
    x, skips = inp, []
    for d in range(depth):
        x = block(x, base_filters * 2**d, f"down{d}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{d}")(x)
    x = block(x, base_filters * 2**depth, "bottom")
    for d in reversed(range(depth)):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{d}")(x)
        x = layers.Concatenate(name=f"cat{d}")([x, skips[d]])
        x = block(x, base_filters * 2**d, f"dec{d}")
    out = layers.Conv2D(N_CLASSES, 1, activation="softmax", name="labels")(x)
    return keras.Model(inp, out, name="segmenter_unet")


def _loss() -> Callable[[Any, Any], Any]:
    import keras
    from keras import ops

    ce = keras.losses.SparseCategoricalCrossentropy()

    def loss(y_true: Any, y_pred: Any) -> Any:
        oh = ops.one_hot(ops.cast(ops.squeeze(y_true, -1), "int32"), N_CLASSES)
        inter = ops.sum(oh * y_pred, axis=(1, 2))
        den = ops.sum(oh + y_pred, axis=(1, 2))
        dice = (2.0 * inter[:, 1:] + 1.0) / (den[:, 1:] + 1.0)
        return ce(y_true, y_pred) + (1.0 - ops.mean(dice))

    return loss


def train_segmenter(
    out: Path,
    config: SegmenterConfig | None = None,
    *,
    appearance: AppearanceRanges | None = None,
    variation: BankVariation | None = None,
    log: Callable[[str], None] = print,
    checkpoint_every: int = 250,
    command: str = "",
) -> Path:
    """Train the segmenter on generated images and write ``out`` (``.keras``) and its card.

    Resumable: a checkpoint ``out.with_suffix('.ckpt.keras')`` and ``.ckpt.json`` are
    written every ``checkpoint_every`` steps, and a rerun with the same ``out``, config and
    appearance continues from the last one (optimiser state and schedule included; the
    batches of the remaining steps are the same as uninterrupted). ``train_seconds`` in
    the card counts the last session only.

    Args:
        out: the model file to write.
        config / appearance: the run (defaults: :class:`SegmenterConfig`, :class:`AppearanceRanges`).
        variation: the tissue bank's anatomy spread (default :class:`~.synth.BankVariation`).
        log: progress lines (every 50 steps).
        checkpoint_every: steps between checkpoints.
        command: the command line, recorded in the card.

    Returns:
        ``out``; the card ``out.with_suffix('.json')`` holds the config, the command and the loss curve.
    """
    import keras

    cfg = config or SegmenterConfig()
    app = appearance or AppearanceRanges()
    var = variation or BankVariation()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt, ckpt_meta = out.with_suffix(".ckpt.keras"), out.with_suffix(".ckpt.json")
    t0 = time.perf_counter()
    bank = tissue_bank(cfg.bank_subjects, cfg.seed, variation=var)
    log(f"tissue bank: {bank.shape[0]} maps in {time.perf_counter() - t0:.0f} s")
    schedule = keras.optimizers.schedules.CosineDecay(cfg.lr, cfg.steps, alpha=0.05)
    start, history = 0, []
    if ckpt.exists() and ckpt_meta.exists():
        meta = json.loads(ckpt_meta.read_text())
        same = meta.get("config") == asdict(cfg) and meta.get("appearance") == json.loads(json.dumps(asdict(app)))
        if same and meta.get("variation", json.loads(json.dumps(asdict(BankVariation())))) == json.loads(
            json.dumps(asdict(var))
        ):
            model = keras.models.load_model(ckpt, custom_objects={"loss": _loss()}, compile=True)
            start, history = int(meta["step"]), list(meta["history"])
            log(f"resuming at step {start}")
    if start == 0:
        keras.utils.set_random_seed(cfg.seed)
        model = build_unet(cfg.base_filters, cfg.depth)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=_loss())
    t1, run = time.perf_counter(), []
    for step in range(start, cfg.steps):
        x, y = synth_batch(bank, np.random.default_rng([cfg.seed, step]), cfg.batch, app)
        run.append(float(model.train_on_batch(x, y[..., None])))
        if (step + 1) % 50 == 0:
            history.append([step + 1, float(np.mean(run))])
            rate = (step + 1 - start) / max(time.perf_counter() - t1, 1e-9)
            log(f"step {step + 1}/{cfg.steps} loss {np.mean(run):.4f} ({rate:.2f} steps/s)")
            run = []
        if (step + 1) % checkpoint_every == 0 or step + 1 == cfg.steps:
            # weights first, then the step that names them; each replaced atomically
            tmp = ckpt.with_name(ckpt.stem + ".tmp.keras")
            model.save(tmp)
            os.replace(tmp, ckpt)
            meta_tmp = ckpt_meta.with_name(ckpt_meta.name + ".tmp")
            meta_tmp.write_text(
                json.dumps(
                    {
                        "config": asdict(cfg),
                        "appearance": asdict(app),
                        "variation": asdict(var),
                        "step": step + 1,
                        "history": history,
                    }
                )
            )
            os.replace(meta_tmp, ckpt_meta)
    shipped = build_unet(cfg.base_filters, cfg.depth)  # the weights only, without the optimiser's state
    shipped.set_weights(model.get_weights())
    shipped.save(out)
    card = {
        "what": "LV blood / LV myocardium / RV blood segmenter, 2D U-Net on random-appearance phantom images",
        "labels": {"0": "background", "1": "LV blood pool", "2": "LV myocardium", "3": "RV blood pool"},
        "grid": {"size": SIZE, "pixel_mm": GRID_MM},
        "command": command,
        "config": asdict(cfg),
        "appearance": asdict(app),
        "variation": asdict(var),
        "history": history,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "trained_on": "generated phantom tissue maps only (no real image)",
        "sha256": sha256_file(out),
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=1))
    for f in (ckpt, ckpt_meta):
        f.unlink(missing_ok=True)
    return out


def verify_segmenter(path: Path) -> str:
    """Check a segmenter file against the sha256 in its card; returns a one-line summary.

    Raises:
        ValueError: no card, a card without ``sha256``, or a hash that does not match.
    """
    p = Path(path)
    card_path = p.with_suffix(".json")
    if not card_path.is_file():
        raise ValueError(f"{p}: no model card {card_path.name} beside it")
    card = json.loads(card_path.read_text())
    want = card.get("sha256")
    if not want:
        raise ValueError(f"{card_path}: the card records no sha256")
    got = sha256_file(p)
    if got != want:
        raise ValueError(f"{p}: sha256 {got[:12]}... does not match its card ({str(want)[:12]}...)")
    return f"{p.name} sha256 {got[:12]}... matches its card; {card.get('what', 'segmenter')}"


class SegmenterUnavailable(OSError):
    """No usable segmenter model: the file is missing, or Keras cannot load it."""


_CACHE: dict[str, Any] = {}


def load_segmenter(path: Path | None = None) -> Any:
    """The Keras segmenter at ``path`` (default ``settings().segmenter_path``), cached per path.

    Raises:
        SegmenterUnavailable: no model file there, or one Keras cannot load (corrupt,
            truncated, a Git LFS pointer); the message names the file and the training command.
    """
    p = Path(path or settings().segmenter_path)
    key = str(p.resolve())
    if key not in _CACHE:
        hint = f"train one with `python -m deepoxymap.segmentation.learned --out {p}` or use method='polar'"
        if not p.is_file():
            raise SegmenterUnavailable(f"no segmenter model at {p}; {hint}")
        import keras

        try:
            _CACHE[key] = keras.models.load_model(p, compile=False)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise SegmenterUnavailable(f"{p}: Keras could not load it ({exc}); {hint}") from None
    return _CACHE[key]


def _grid_coords(
    center_rc: tuple[float, float], ps: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Native (row, col) pixel coordinates, each ``[SIZE, SIZE]``, of the network-grid pixels around ``center_rc``."""
    off = (np.arange(SIZE, dtype=np.float64) - (SIZE - 1) / 2.0) * GRID_MM
    rows, cols = np.meshgrid(center_rc[0] + off / ps[0], center_rc[1] + off / ps[1], indexing="ij")
    return rows, cols


def predict_probs(
    images: NDArray[Any],
    pixel_spacing_mm: tuple[float, float],
    centers_rc: list[tuple[float, float]],
    model: Any,
    *,
    tta: bool = True,
) -> NDArray[np.float32]:
    """Class probabilities of 2D images on their own grid.

    Args:
        images: ``[n, rows, cols]`` intensities, any units.
        pixel_spacing_mm: ``(row, col)`` spacing in mm, shared by the images.
        centers_rc: LV centre ``(row, col)`` of each image, pixels.
        model: from :func:`load_segmenter`.
        tta: average over the four mirror images.

    Returns:
        float32 ``[n, rows, cols, 4]`` probabilities (0 background, 1 LV blood,
        2 myocardium, 3 RV blood); outside the network's field of view background is 1.
    """
    imgs = np.asarray(images, dtype=np.float64)
    n, R, C = imgs.shape
    ps = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    x = np.zeros((n, SIZE, SIZE, 1), np.float32)
    for i in range(n):
        img = np.nan_to_num(imgs[i], nan=float(np.nanmin(imgs[i])) if np.isfinite(imgs[i]).any() else 0.0)
        rows, cols = _grid_coords(centers_rc[i], ps)
        valid = (rows >= 0) & (rows <= R - 1) & (cols >= 0) & (cols <= C - 1)
        g = ndi.map_coordinates(img, [rows, cols], order=1, mode="nearest")
        x[i, ..., 0] = normalise(g, valid)
        x[i, ..., 0][~valid] = 0.0
    flips = [(False, False), (True, False), (False, True), (True, True)] if tta else [(False, False)]
    prob = np.zeros((n, SIZE, SIZE, N_CLASSES), np.float32)
    for fr, fc in flips:
        xi = x[:, ::-1] if fr else x
        xi = xi[:, :, ::-1] if fc else xi
        p = np.asarray(model.predict(np.ascontiguousarray(xi), batch_size=16, verbose=0), np.float32)
        p = p[:, ::-1] if fr else p
        prob += p[:, :, ::-1] if fc else p
    prob /= len(flips)
    # back to the native grid: native pixel -> network-grid coordinate
    out = np.zeros((n, R, C, N_CLASSES), np.float32)
    rr, cc = np.mgrid[0:R, 0:C].astype(np.float64)
    half = (SIZE - 1) / 2.0
    for i in range(n):
        gi = (rr - centers_rc[i][0]) * ps[0] / GRID_MM + half
        gj = (cc - centers_rc[i][1]) * ps[1] / GRID_MM + half
        inside = (gi >= 0) & (gi <= SIZE - 1) & (gj >= 0) & (gj <= SIZE - 1)
        for k in range(N_CLASSES):
            out[i, ..., k] = ndi.map_coordinates(prob[i, ..., k], [gi, gj], order=1, mode="nearest")
        out[i][~inside] = np.eye(N_CLASSES, dtype=np.float32)[0]
    return out


def _clean(labels: NDArray[np.uint8], center_rc: tuple[float, float], ps: tuple[float, float]) -> NDArray[np.uint8]:
    """Keep the LV (blood + myocardium) component nearest the centre, holes filled, and the
    RV component with the most contact with it (none when no RV component touches it)."""
    lv = (labels == 1) | (labels == 2)
    comp, n = ndi.label(lv)
    out = np.zeros_like(labels)
    if n == 0:
        return out
    rr, cc = np.mgrid[0 : labels.shape[0], 0 : labels.shape[1]]
    d = np.hypot((rr - center_rc[0]) * ps[0], (cc - center_rc[1]) * ps[1])
    best = min(range(1, n + 1), key=lambda k: float(d[comp == k].min()))
    keep = ndi.binary_fill_holes(comp == best)
    blood = keep & (labels == 1)
    blood = ndi.binary_fill_holes(blood)
    out[keep] = 2
    out[blood] = 1
    comp, n = ndi.label((labels == 3) & ~keep)
    if n:
        near = ndi.binary_dilation(keep, iterations=max(1, round(RV_CONTACT_MM / min(ps))))
        contact = np.bincount(comp[near].ravel(), minlength=n + 1)
        contact[0] = 0
        if contact.max() > 0:
            out[comp == int(np.argmax(contact))] = 3
    return out


RV_CONTACT_MM = 6.0
"""An RV blood component counts when it comes within this of the LV."""


def segment_unet(
    images: NDArray[Any],
    pixel_spacing_mm: tuple[float, float],
    centers_rc: list[tuple[float, float]],
    *,
    kind: str = "cine",
    model: Any | None = None,
    rv_fallback: bool = True,
    trabeculae_to_blood: bool = True,
) -> NDArray[np.uint8]:
    """Label maps of 2D images around their LV centres (see the module doc).

    Args:
        images: ``[n, rows, cols]`` intensities, any units.
        pixel_spacing_mm: ``(row, col)`` spacing in mm.
        centers_rc: one LV centre ``(row, col)`` per image, pixels.
        kind: the image contrast (the RV fallback and the endocardial pass use it).
        model: a loaded segmenter (default :func:`load_segmenter`).
        rv_fallback: where the network finds no RV next to the LV, take the RV of the
            classical method (:func:`deepoxymap.segmentation.polar.segment_polar`: the
            bright region outside the LV with the widest epicardial contact) outside the
            network's LV; insertion points, and so AHA segments, need an RV.
        trabeculae_to_blood: on bright-blood kinds (cine, OS-CMR), move the endocardium
            out to the compact myocardium
            (:func:`deepoxymap.segmentation.endocardium.include_trabeculae`).

    Returns:
        uint8 ``[n, rows, cols]``: 0 background, 1 LV blood, 2 myocardium, 3 RV blood.

    Raises:
        ValueError: not ``[n, rows, cols]``, a non-positive spacing, or not one centre per image.
    """
    imgs = np.asarray(images)
    if imgs.ndim != 3 or min(imgs.shape[1:]) < 8:
        raise ValueError(f"expected [n, rows, cols] images of at least 8 x 8 pixels, got shape {imgs.shape}")
    ps = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    if not (np.isfinite(ps).all() and min(ps) > 0):
        raise ValueError(f"pixel spacing {ps} must be positive")
    if len(centers_rc) != imgs.shape[0]:
        raise ValueError(f"{len(centers_rc)} LV centres for {imgs.shape[0]} images")
    m = model if model is not None else load_segmenter()
    prob = predict_probs(imgs, ps, list(centers_rc), m)
    lab = np.argmax(prob, axis=-1).astype(np.uint8)
    out = np.stack([_clean(lab[i], centers_rc[i], ps) for i in range(lab.shape[0])])
    if trabeculae_to_blood and kind in BRIGHT_BLOOD_KINDS:
        out = np.stack([include_trabeculae(imgs[i], out[i], ps) for i in range(out.shape[0])])
    if rv_fallback:
        from deepoxymap.segmentation.polar import segment_polar

        for i in range(out.shape[0]):
            if (out[i] == 3).any() or not (out[i] == 2).any():
                continue
            rv = segment_polar(imgs[i], ps, centers_rc[i], kind=kind).labels == 3
            out[i][rv & (out[i] == 0)] = 3
    return out


def ensemble(members: list[Path], out: Path) -> Path:
    """One model file whose output is the mean of the members' probabilities; writes ``out``
    and its card (the members' cards, and sha256)."""
    import keras

    models = []
    cards = []
    for i, p in enumerate(members):
        card = json.loads(Path(p).with_suffix(".json").read_text())
        m = build_unet(card["config"]["base_filters"], card["config"]["depth"])
        m.set_weights(keras.models.load_model(p, compile=False).get_weights())
        m.name = f"unet_{i}"
        models.append(m)
        cards.append(card)
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    mean = keras.layers.Average(name="labels")([m(inp) for m in models])
    keras.Model(inp, mean, name="segmenter_ensemble").save(out)
    card = {
        "what": f"mean of {len(models)} U-Nets trained on random-appearance phantom images",
        "labels": cards[0]["labels"],
        "grid": cards[0]["grid"],
        "members": cards,
        "trained_on": "generated phantom tissue maps only (no real image)",
        "sha256": sha256_file(out),
    }
    Path(out).with_suffix(".json").write_text(json.dumps(card, indent=1))
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m deepoxymap.segmentation.learned [--out F] [--steps N] [...]``: train one
    U-Net; ``--ensemble A.keras B.keras --out F``: average trained ones into one file."""
    import argparse
    import shlex
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help=f"model file to write (the shipped one: {DEFAULT_MODEL})")
    d, da = SegmenterConfig(), AppearanceRanges()
    for name in ("base_filters", "depth", "bank_subjects", "steps", "batch", "seed"):
        ap.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--tissue-field", type=float, default=da.tissue_field, help="AppearanceRanges.tissue_field")
    dv = BankVariation()
    ap.add_argument("--trabeculae", type=int, default=dv.trabeculae, help="BankVariation.trabeculae")
    ap.add_argument(
        "--trabecula-depth-mm", type=float, nargs=2, default=dv.trabecula_depth_mm, help="BankVariation range"
    )
    ap.add_argument(
        "--trabecula-radius-mm", type=float, nargs=2, default=dv.trabecula_radius_mm, help="BankVariation range"
    )
    ap.add_argument("--ensemble", nargs="+", type=Path, metavar="MODEL", help="average these trained models")
    a = ap.parse_args(argv)
    if a.ensemble:
        ensemble(list(a.ensemble), a.out)
        print(f"wrote {a.out}")
        return 0
    cfg = SegmenterConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(SegmenterConfig)})
    app = dataclasses.replace(da, tissue_field=a.tissue_field)
    var = BankVariation(
        trabeculae=a.trabeculae,
        trabecula_depth_mm=(a.trabecula_depth_mm[0], a.trabecula_depth_mm[1]),
        trabecula_radius_mm=(a.trabecula_radius_mm[0], a.trabecula_radius_mm[1]),
    )
    shown = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "deepoxymap.segmentation.learned", *shown])
    train_segmenter(a.out, cfg, appearance=app, variation=var, log=lambda s: print(s, flush=True), command=command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
