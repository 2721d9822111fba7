"""Experiment (issue 12): does a lesion-supervised auxiliary loss make the classifier use, and its maps find, the lesion?

The audit's lesion-fill check (:func:`deepoxymap.audit.evidence.lesion_reliance`) showed that the
replica barely rests on the lesion's own pixels: filling the lesion with remote myocardium moves
the true-class probability by a few hundredths, no more than filling a same-shaped remote patch.
A map cannot find what the classifier does not use. This script trains two copies of the shipped
recipe's network (conv-BN VGG19 from scratch, grey 64 px over 84 mm, cosine learning rate) on the
same generated subjects with the same seed, and differs in one term of the loss:

* ``baseline``: cross-entropy only (the auxiliary heads exist but have loss weight 0, so the
  backbone sees exactly the baseline's gradients);
* ``aux``: cross-entropy + ``weight`` x binary cross-entropy of two 1x1-conv sigmoid heads on
  ``block3_conv4`` (16 x 16) and ``block4_conv4`` (8 x 8) against the reference lesion pooled to
  those grids (the fraction of each cell that is lesion; global edema: the whole myocardium;
  healthy: zeros). Multi-task supervision in the spirit of attention-mining / guided-attention
  training (Li et al. 2018, GAIN).

After training the auxiliary heads are dropped and each network is folded into the plain
``keras.applications`` graph (:func:`deepoxymap.model.architectures.fold_conv_bn`), so the maps
are read exactly as the app reads them. Both are scored on *validation* subjects only (generated,
never the study cohort): case accuracy, lesion reliance (lesion filled against a remote control),
and Grad-CAM at ``block3_conv4`` / ``block4_conv4`` on the model grid (per case normalisation):
pointing inside the myocardium and the energy of the myocardial map inside the lesion, each beside
its chance level. Every subject goes through the app's ``preprocess_case``.

``python -m tools.lesion_supervision --n-train 480 --n-val 100 --epochs 15 --out data/exp/lesion_aux``
writes ``OUT/results.json`` and prints each arm's figures as JSON. Generated data and weights stay under ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap import CLASSES
from deepoxymap.audit.metrics import energy_pointing_game, pointing_game
from deepoxymap.audit.reference import CaseReference, lesion_on_model_grid, mask_on_model_grid, prepare_case
from deepoxymap.audit.run import audit_group
from deepoxymap.cohort import SubjectRecord, load_case, read_manifest
from deepoxymap.explain.heatmap import pool_to_grid, upsample_map
from deepoxymap.model.data import input_timepoints
from deepoxymap.model.preprocess import PreprocessSpec
from deepoxymap.model.synthetic import synthetic_manifest

SPEC = PreprocessSpec(input_size=64, crop_mm=84.0)
"""The sixth session's replica input (grey bh-end frame, 64 px over 84 mm)."""

AUX_LAYERS = ("block3_conv4", "block4_conv4")


@dataclass
class Prepared:
    """One subject: model input float32 ``[n, 64, 64, 3]``, lesion fraction float32 ``[n, 64, 64]``, the reference."""

    y: int
    group: str
    x: NDArray[np.float32]
    lesion: NDArray[np.float32]
    ref: CaseReference | None


def _prepare(rec: SubjectRecord, keep_ref: bool, spec: PreprocessSpec = SPEC) -> Prepared:
    case = load_case(rec, os_timepoints=input_timepoints(spec))
    cm = prepare_case(case, spec, subtype=rec.subtype)
    group = audit_group(rec.label, rec.subtype)
    les = (
        np.stack(lesion_on_model_grid(cm))
        if group != "edema-global"
        else np.stack(mask_on_model_grid(cm, "myocardium"))
    )
    if rec.label == "healthy":
        les = np.zeros_like(les)
    return Prepared(CLASSES.index(rec.label), group, cm.x.astype(np.float32), les.astype(np.float32),
                    cm if keep_ref else None)  # fmt: skip


def prepare_all(records: list[SubjectRecord], keep_ref: bool, jobs: int, spec: PreprocessSpec = SPEC) -> list[Prepared]:
    """Render in memory and preprocess every record under ``spec`` (``jobs`` spawned workers)."""
    n = len(records)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as ex:
        return list(ex.map(_prepare, records, [keep_ref] * n, [spec] * n, chunksize=4))


def pool_to(les: NDArray[np.float32], grid: int) -> NDArray[np.float32]:
    """Average-pool ``[n, S, S]`` onto ``[n, grid, grid, 1]`` (:func:`~deepoxymap.explain.heatmap.pool_to_grid`)."""
    return np.stack([pool_to_grid(a, (grid, grid)) for a in les])[..., None]


def build(seed: int) -> tuple[Any, Any]:
    """The conv-BN VGG19 (zero logits) with the two auxiliary heads; returns (training model, its class-only view)."""
    import keras

    from deepoxymap.model.architectures import build_conv_bn_model

    base = build_conv_bn_model("vgg19", SPEC.input_size, seed=seed, zero_logits=True)
    outs = {"probs": base.get_layer("probs").output}
    for name in AUX_LAYERS:
        feat = base.get_layer(f"{name}_relu").output
        outs[f"aux_{name}"] = keras.layers.Conv2D(1, 1, activation="sigmoid", name=f"aux_{name}")(feat)
    return keras.Model(base.input, outs), base


def _arrays(model: Any, subjects: list[Prepared]) -> tuple[NDArray[np.float32], dict[str, NDArray[np.float32]]]:
    """The slices ``[n, S, S, 3]`` and the targets of every output: one-hot class, lesion pooled to each aux grid."""
    x = np.concatenate([p.x for p in subjects])
    les = np.concatenate([p.lesion for p in subjects])
    y = np.eye(len(CLASSES), dtype=np.float32)[np.concatenate([np.full(len(p.x), p.y) for p in subjects])]
    targets = {"probs": y}
    for name in AUX_LAYERS:
        targets[f"aux_{name}"] = pool_to(les, int(model.get_layer(f"aux_{name}").output.shape[1]))
    return x, targets


def train(arm: str, tr: list[Prepared], va: list[Prepared], args: argparse.Namespace, out: Path) -> tuple[Any, Any]:
    """Fit one arm; returns (the folded plain model, class output only; the training model with its aux heads)."""
    import keras

    from deepoxymap.model.architectures import build_model, fold_conv_bn

    model, base = build(args.seed)  # build_conv_bn_model seeds Keras with args.seed
    x, targets = _arrays(model, tr)
    xv, tv = _arrays(model, va)
    w = args.weight if arm == "aux" else 0.0
    steps = math.ceil(len(x) / args.batch_size) * args.epochs
    lr = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=steps, alpha=0.01)
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss={"probs": "categorical_crossentropy", **{f"aux_{n}": "binary_crossentropy" for n in AUX_LAYERS}},
        loss_weights={"probs": 1.0, **{f"aux_{n}": w for n in AUX_LAYERS}},
        metrics={"probs": ["accuracy"]},
    )
    t0 = time.perf_counter()
    hist = model.fit(x, targets, validation_data=(xv, tv), epochs=args.epochs, batch_size=args.batch_size,
                     shuffle=True, verbose=2)  # fmt: skip
    fit_s = time.perf_counter() - t0
    plain = build_model("vgg19", SPEC.input_size, None)
    fold_conv_bn(base, plain)
    (out / arm).mkdir(parents=True, exist_ok=True)
    (out / arm / "history.json").write_text(
        json.dumps({"fit_s": fit_s, **{k: [float(v) for v in vs] for k, vs in hist.history.items()}})
    )
    return plain, model


def _case_maps(model: Any, cm: CaseReference, target: int, layer: str) -> NDArray[np.float32]:
    from deepoxymap.explain import explain_batch

    hms = explain_batch(model, cm.x, "gradcam", target_class=target, layer=layer, normalize="batch")
    return np.stack([h.array for h in hms])


def localisation(maps: NDArray[Any], les: NDArray[Any], myo: NDArray[Any]) -> dict[str, float]:
    """Pointing (myocardium only) and energy in the lesion over the case's lesion slices, with chance levels."""
    hits, e_in, chance = [], [], []
    for m, lf, mf in zip(maps, les, myo, strict=True):
        my = mf >= 0.5
        le = (lf >= 0.5) & my
        if le.sum() < 2 or my.sum() < 10:
            continue
        hits.append(pointing_game(m, le, tolerance_mm=0.0, roi=my))  # the peak on a lesion pixel; NaN: no energy
        e_in.append(energy_pointing_game(m, le, roi=my))
        chance.append(float(le.sum() / my.sum()))
    if not chance:
        return {}
    c = float(np.mean(chance))
    return {"pointing": float(np.nanmean(hits)), "pointing_chance": c, "energy": float(np.nanmean(e_in)),
            "energy_chance": c}  # fmt: skip


def score(plain: Any, trained: Any, va: list[Prepared]) -> dict[str, Any]:
    """Validation figures of one arm: accuracy, reliance and localisation per audit group."""
    from sklearn.metrics import roc_auc_score

    from deepoxymap.audit.evidence import lesion_reliance
    from deepoxymap.model.predict import predict_array

    probs, ys = [], []
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in va:
        assert p.ref is not None
        pr = predict_array(plain, p.x).mean(axis=0)
        probs.append(pr)
        ys.append(p.y)
        if p.group == "healthy":
            continue
        g = per[p.group]
        rel = lesion_reliance(plain, p.ref, p.y)
        for k in ("lesion_reliance", "lesion_reliance_control"):
            if math.isfinite(rel[k]):
                g[k].append(rel[k])
        les = np.stack(lesion_on_model_grid(p.ref))
        myo = np.stack(mask_on_model_grid(p.ref, "myocardium"))
        for layer in AUX_LAYERS:
            loc = localisation(_case_maps(plain, p.ref, p.y, layer), les, myo)
            for k, v in loc.items():
                g[f"{layer}_{k}"].append(v)
        aux = trained.predict(p.x, verbose=0)[f"aux_{AUX_LAYERS[0]}"][..., 0]
        up = np.stack([upsample_map(a, p.x.shape[1:3]) for a in aux])
        loc = localisation(up / max(float(up.max()), 1e-6), les, myo)
        for k, v in loc.items():
            g[f"aux_head_{k}"].append(v)
    pa, ya = np.stack(probs), np.asarray(ys)
    out: dict[str, Any] = {
        "n_val_subjects": len(va),
        "accuracy": float(np.mean(pa.argmax(1) == ya)),
        "macro_auc": float(roc_auc_score(ya, pa, multi_class="ovr", average="macro")),
        "groups": {
            g: {"n": max(len(x) for x in v.values()), **{k: float(np.mean(x)) for k, x in v.items()}}
            for g, v in sorted(per.items())
        },
    }
    return out


def experiment_parser(description: str, weight_help: str) -> argparse.ArgumentParser:
    """The arguments the lesion experiments share (cohort size, optimiser, seeds, workers)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--n-train", type=int, default=480)
    ap.add_argument("--n-val", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight", type=float, default=1.0, help=weight_help)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stream", type=int, default=4242, help="generated stream (synthetic_manifest seed)")
    ap.add_argument("--jobs", type=int, default=2)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = experiment_parser(__doc__.splitlines()[0], "loss weight of each auxiliary head (aux arm)")
    ap.add_argument("--arms", default="baseline,aux")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        man = synthetic_manifest(Path(td) / "m.csv", args.n_train, args.n_val, seed=args.stream)
        recs = read_manifest(man)
    tr_r = [r for r in recs if r.split == "train"]
    va_r = [r for r in recs if r.split == "val"]
    t0 = time.perf_counter()
    tr = prepare_all(tr_r, False, args.jobs)
    va = prepare_all(va_r, True, args.jobs)
    print(f"prepared {len(tr)} train + {len(va)} val subjects in {time.perf_counter() - t0:.0f} s", flush=True)
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "spec": SPEC.to_dict(), "arms": {}}
    for arm in args.arms.split(","):
        plain, trained = train(arm, tr, va, args, args.out)
        results["arms"][arm] = score(plain, trained, va)
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        print(arm, json.dumps(results["arms"][arm], indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
