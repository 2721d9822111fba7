"""Experiment (issue 12): a VGG19 whose class evidence passes through a lesion map. Do its feature maps find the lesion?

Two findings motivate it. The seventh session's auxiliary 1x1 heads on ``block3_conv4`` /
``block4_conv4`` (:mod:`tools.lesion_supervision`) left the classifier's maps near chance, and
even the supervised head pointed at the lesion only 27 % of the time. Yet a small U-Net (3
levels, 16-128 filters) trained for 4.5 min on the same 64 px inputs of 480 generated subjects
points at the lesion on 0.90 / 0.80 / 0.35 of ischemic / non-ischemic / focal-edema validation
cases (chance 0.12 / 0.07 / 0.23; ``--arms unet``). So the lesion is visible in one native
frame at 64 px (focal edema least). The 1x1 heads were too weak a path, and the classifier had
no reason to use what they learned.

Arms, all on the same generated subjects (``synthetic_manifest`` stream ``--stream``, never the
study cohort or the demo seeds), each scored on generated *validation* subjects only:

* ``unet``: the upper bound. A small U-Net with a sigmoid lesion output and no class; its own
  map is scored.
* ``decoder``: the conv-BN VGG19 of the shipped recipe (``keras.applications`` topology) plus a
  U-Net-style decoder over ``block1_conv2`` .. ``block4_conv4`` with a sigmoid lesion output at
  the input's resolution (loss: binary cross-entropy + soft Dice against the reference lesion;
  global edema: the whole myocardium; healthy: empty). The class logits read the VGG head
  (GAP of ``block5_pool``) **and** the lesion evidence: the decoder features averaged under the
  lesion map (attention pooling) and the map's mean and maximum. So the class score's gradient
  flows through the lesion map, and a gradient CAM of a decoder layer is a readout of evidence
  the classifier uses.

Each arm reports case accuracy and macro AUC (classifier arms), the localisation of every
readout listed in ``--layers`` for Grad-CAM and HiResCAM (true class, normalised per case,
myocardium only: pointing, energy in the lesion, each with its chance level), the lesion
head's own map, and the lesion-fill check (:func:`deepoxymap.audit.evidence.lesion_reliance`).

``python -m tools.lesion_decoder --n-train 480 --n-val 100 --epochs 15 --out data/exp/lesion_decoder``
writes ``OUT/results.json``. Generated data and weights stay under ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap import CLASSES
from deepoxymap.audit.reference import mask_on_model_grid
from deepoxymap.cohort import read_manifest
from deepoxymap.model.preprocess import PreprocessSpec
from deepoxymap.model.synthetic import synthetic_manifest
from tools.lesion_supervision import SPEC, Prepared, experiment_parser, localisation, prepare_all

DECODER_LAYERS = ("dec1_relu", "dec2_relu", "dec3_relu", "block4_conv4_relu")
"""Readouts scored by default: decoder levels at 64 / 32 / 16 px, and the encoder's block4 (8 px)."""


def _block(x: Any, filters: int, name: str) -> Any:
    from keras import layers

    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu" if i == 2 else f"{name}_relu{i}")(x)
    return x


def _soft_dice_bce(y_true: Any, y_pred: Any) -> Any:
    """Binary cross-entropy + (1 - soft Dice over the batch) on ``[b, S, S, 1]`` lesion fractions."""
    import keras
    from keras import ops

    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    inter = ops.sum(y_true * y_pred)
    dice = (2.0 * inter + 1.0) / (ops.sum(y_true) + ops.sum(y_pred) + 1.0)
    return bce + 1.0 - dice


def build_unet(size: int) -> Any:
    """The upper-bound arm: a 3-level U-Net (16-128 filters), input ``[b, S, S, 3]``, output ``lesion`` ``[b, S, S, 1]``."""
    import keras
    from keras import layers

    inp = keras.Input((size, size, 3))
    x, skips = inp, []
    for d in range(3):
        x = _block(x, 16 * 2**d, f"down{d}")
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = _block(x, 128, "bottom")
    for d in reversed(range(3)):
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = layers.Concatenate()([x, skips[d]])
        x = _block(x, 16 * 2**d, f"dec{d + 1}")
    out = layers.Conv2D(1, 1, activation="sigmoid", name="lesion")(x)
    return keras.Model(inp, {"lesion": out})


def build_decoder(seed: int, *, head: str = "both") -> tuple[Any, Any]:
    """The ``decoder`` arm: (training model with ``probs`` and ``lesion`` outputs, class-only view ``input -> probs``).

    ``head="both"``: the logits read the VGG head (GAP of ``block5_pool``) and the lesion
    evidence; ``head="lesion"``: the lesion evidence only (the pooled decoder features and the
    map's mean and maximum, through a 64-unit ReLU layer), so every class score passes
    through the lesion map.
    """
    if head not in ("both", "lesion"):
        raise ValueError(f"head must be 'both' or 'lesion', got {head!r}")
    import keras
    from keras import layers, ops

    from deepoxymap.model.architectures import build_conv_bn_model

    base = build_conv_bn_model("vgg19", SPEC.input_size, seed=seed, zero_logits=True)
    g = base.get_layer
    skips = [g(n).output for n in ("block1_conv2_relu", "block2_conv2_relu", "block3_conv4_relu")]
    x = g("block4_conv4_relu").output
    for level, (skip, f) in zip((3, 2, 1), zip(reversed(skips), (128, 64, 32), strict=True), strict=True):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_cat")([x, skip])
        x = _block(x, f, f"dec{level}")
    feat = x  # dec1_relu: [b, S, S, 32]
    lesion = layers.Conv2D(1, 1, activation="sigmoid", name="lesion")(feat)

    class AttentionPool(layers.Layer):
        """``sum(a F) / (sum(a) + eps)`` over space: ``[b, S, S, C], [b, S, S, 1] -> [b, C]``."""

        def call(self, f: Any, a: Any) -> Any:
            return ops.sum(f * a, axis=(1, 2)) / (ops.sum(a, axis=(1, 2)) + 1e-3)

    pooled = AttentionPool(name="lesion_pool")(feat, lesion)
    burden = layers.Concatenate(name="lesion_burden")(
        [
            layers.GlobalAveragePooling2D(name="lesion_mean")(lesion),
            layers.GlobalMaxPooling2D(name="lesion_max")(lesion),
        ]
    )
    parts = [g("head_drop2").output] if head == "both" else []
    z = layers.Concatenate(name="evidence")([*parts, pooled, burden])
    if head == "lesion":  # a small non-linear read of the lesion evidence (the VGG head's dense layer is unused)
        z = layers.Dense(64, activation="relu", name="evidence_dense")(z)
    logits = layers.Dense(len(CLASSES), name="logits", kernel_initializer="zeros")(z)
    probs = layers.Activation("softmax", name="probs")(logits)
    train_model = keras.Model(base.input, {"probs": probs, "lesion": lesion})
    view = keras.Model(base.input, probs, name="decoder_view")
    return train_model, view


def _targets(subjects: list[Prepared]) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    x = np.concatenate([p.x for p in subjects])
    les = np.concatenate([p.lesion for p in subjects])[..., None]
    y = np.eye(len(CLASSES), dtype=np.float32)[np.concatenate([np.full(len(p.x), p.y) for p in subjects])]
    return x, y, les


def train_arm(arm: str, tr: list[Prepared], va: list[Prepared], args: argparse.Namespace) -> tuple[Any, Any | None]:
    """Fit one arm with a cosine learning rate; returns (training model, class-only view or None for ``unet``)."""
    import keras

    keras.utils.set_random_seed(args.seed)
    x, y, les = _targets(tr)
    xv, yv, lv = _targets(va)
    # mirror augmentation (rows): the lesion target follows the image
    x, y, les = np.concatenate([x, x[:, ::-1]]), np.concatenate([y, y]), np.concatenate([les, les[:, ::-1]])
    steps = math.ceil(len(x) / args.batch_size) * args.epochs
    opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=steps, alpha=0.01))
    if arm == "unet":
        model, view = build_unet(SPEC.input_size), None
        model.compile(optimizer=opt, loss={"lesion": _soft_dice_bce})
        tgt, vt = {"lesion": les}, {"lesion": lv}
    else:
        model, view = build_decoder(args.seed, head=args.head)
        model.compile(
            optimizer=opt,
            loss={"probs": "categorical_crossentropy", "lesion": _soft_dice_bce},
            loss_weights={"probs": 1.0, "lesion": args.weight},
            metrics={"probs": ["accuracy"]},
        )
        tgt, vt = {"probs": y, "lesion": les}, {"probs": yv, "lesion": lv}
    t0 = time.perf_counter()
    hist = model.fit(x, tgt, validation_data=(xv, vt), epochs=args.epochs, batch_size=args.batch_size,
                     shuffle=True, verbose=2)  # fmt: skip
    out = args.out / arm
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(
        json.dumps({"fit_s": time.perf_counter() - t0, **{k: [float(v) for v in vs] for k, vs in hist.history.items()}})
    )
    return model, view


def _lesion_map(model: Any, x: NDArray[np.float32]) -> NDArray[np.float32]:
    out = model.predict(x, verbose=0)
    return np.asarray(out["lesion"] if isinstance(out, dict) else out)[..., 0]


def score(arm: str, model: Any, view: Any | None, va: list[Prepared], layers: list[str]) -> dict[str, Any]:
    """Validation figures of one arm, per audit group (see the module docstring)."""
    from sklearn.metrics import roc_auc_score

    from deepoxymap.audit.evidence import lesion_reliance
    from deepoxymap.explain import explain_batch
    from deepoxymap.model.predict import predict_array

    probs, ys = [], []
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in va:
        assert p.ref is not None
        if view is not None:
            probs.append(predict_array(view, p.x).mean(axis=0))
            ys.append(p.y)
        if p.group == "healthy":
            continue
        g = per[p.group]
        les = np.stack(mask_on_model_grid(p.ref, "lesion")) if p.group != "edema-global" else p.lesion
        myo = np.stack(mask_on_model_grid(p.ref, "myocardium"))
        head = _lesion_map(model, p.x)
        for k, v in localisation(head / max(float(head.max()), 1e-6), les, myo).items():
            g[f"lesion_head_{k}"].append(v)
        if view is None:
            continue
        rel = lesion_reliance(view, p.ref, p.y)
        for k in ("lesion_reliance", "lesion_reliance_control"):
            if math.isfinite(rel[k]):
                g[k].append(rel[k])
        for method in ("gradcam", "hirescam"):
            for layer in layers:
                hms = explain_batch(view, p.x, method, target_class=p.y, layer=layer, normalize="batch")
                maps = np.stack([h.array for h in hms])
                for k, v in localisation(maps, les, myo).items():
                    g[f"{method}_{layer}_{k}"].append(v)
    res: dict[str, Any] = {"arm": arm, "n_val_subjects": len(va)}
    if probs:
        pa, ya = np.stack(probs), np.asarray(ys)
        res["accuracy"] = float(np.mean(pa.argmax(1) == ya))
        res["macro_auc"] = float(roc_auc_score(ya, pa, multi_class="ovr", average="macro"))
    res["groups"] = {
        g: {"n": max(len(x) for x in v.values()), **{k: float(np.nanmean(x)) for k, x in v.items()}}
        for g, v in sorted(per.items())
    }
    return res


def main(argv: list[str] | None = None) -> int:
    ap = experiment_parser(__doc__.splitlines()[0], "loss weight of the lesion output (decoder arm)")
    ap.add_argument("--arms", default="decoder", help="comma list of: unet, decoder")
    ap.add_argument(
        "--channels",
        choices=("grey", "dynamics"),
        default="grey",
        help="model input: the bh-end frame, or bh-start, bh-end and their registered percent change",
    )
    ap.add_argument("--head", choices=("both", "lesion"), default="both", help="what the decoder arm's logits read")
    ap.add_argument("--layers", default=",".join(DECODER_LAYERS), help="readout layers scored (decoder arm)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    arms = args.arms.split(",")
    if bad := sorted(set(arms) - {"unet", "decoder"}):
        ap.error(f"unknown arm(s) {bad}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        recs = read_manifest(synthetic_manifest(Path(td) / "m.csv", args.n_train, args.n_val, seed=args.stream))
    spec = PreprocessSpec(SPEC.input_size, SPEC.crop_mm, channels=args.channels)
    t0 = time.perf_counter()
    tr = prepare_all([r for r in recs if r.split == "train"], False, args.jobs, spec)
    va = prepare_all([r for r in recs if r.split == "val"], True, args.jobs, spec)
    print(f"prepared {len(tr)} train + {len(va)} val subjects in {time.perf_counter() - t0:.0f} s", flush=True)
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "spec": spec.to_dict(), "arms": {}}
    for arm in arms:
        model, view = train_arm(arm, tr, va, args)
        results["arms"][arm] = score(arm, model, view, va, args.layers.split(","))
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        print(arm, json.dumps(results["arms"][arm], indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
