"""Classifier speed, as ratios against anchors measured in the same run (targets <= 1.2).

1. **Inference**: :func:`deepoxymap.model.predict.predict_array` (what
   ``predict_case`` and the app call) on a batch of 32 preprocessed slices vs a
   bare ``model(x)`` on the same batch.
2. **Training step**: ``model.fit`` on the training ``tf.data`` pipeline of
   :func:`deepoxymap.model.data.make_dataset` as the shipped recipe uses it
   (shuffle, a frame drawn from 5 per slice, batch, rotation + flip, all keyed by
   per-element seeds; prefetch, class weights) vs ``model.train_on_batch`` on
   in-memory tensors of the same shape: the input pipeline must not be the
   bottleneck. The network is the shipped card's training form (conv-BN VGG19).

Uses the shipped model's architecture and input size when present (VGG19,
96 px otherwise). Timings are medians over alternating repeats (the 2-core
machine is shared, so anchor and subject are interleaved).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGET = 1.2


def _median_time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> int:
    """Run both benchmarks; print times and ratios; 0 if both ratios <= 1.2."""
    import keras

    from deepoxymap.config import settings
    from deepoxymap.model.architectures import build_conv_bn_model, build_model
    from deepoxymap.model.augment import AugmentSpec
    from deepoxymap.model.data import make_dataset
    from deepoxymap.model.predict import predict_array

    keras.utils.disable_interactive_logging()
    size, arch, conv_bn, jitter = 96, "vgg19", True, 2
    path = settings().model_path
    if path.is_file():
        from deepoxymap.model.loading import load_model

        loaded = load_model(path)
        model, size, arch = loaded.model, loaded.spec.input_size, loaded.arch
        recipe = loaded.card.get("training", {}).get("config", {})
        conv_bn, jitter = bool(recipe.get("conv_bn", False)), int(recipe.get("frame_jitter", 0))
        print(f"model: shipped {path.name} ({arch}, {size} px)")
    else:
        model = build_model(arch, size, None, seed=0)
        print(f"model: untrained {arch} at {size} px (no shipped model)")
    rng = np.random.default_rng(0)

    # 1. inference ------------------------------------------------------------
    x = rng.normal(size=(32, size, size, 3)).astype(np.float32)
    predict_array(model, x)
    model(x, training=False)
    t_ours, t_bare = [], []
    for _ in range(5):
        t_ours.append(_median_time(lambda: predict_array(model, x), 1))
        t_bare.append(_median_time(lambda: model(x, training=False), 1))
    ti, tb = statistics.median(t_ours), statistics.median(t_bare)
    r_inf = ti / tb
    print(f"inference, batch 32: predict_array {ti:.3f} s ({32 / ti:.0f} slices/s), bare model(x) {tb:.3f} s")
    print(f"  ratio {r_inf:.2f} (target <= {TARGET})")

    # 2. training step ------------------------------------------------------------
    train_model = build_conv_bn_model(arch, size, seed=0) if conv_bn else build_model(arch, size, None, seed=0)
    print(f"training form: {'conv-BN' if conv_bn else 'plain'} {arch}, frame jitter +-{jitter}")
    train_model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy")
    n_steps, bs = 4, 16
    xs = rng.normal(size=(n_steps * bs, size, size, 3)).astype(np.float32)
    ys = rng.integers(0, 4, n_steps * bs)
    onehot = np.eye(4, dtype=np.float32)[ys]
    cw = {k: 1.0 for k in range(4)}
    frames = None
    if jitter:
        frames = rng.normal(size=(n_steps * bs, 2 * jitter + 1, size, size, 3)).astype(np.float32)
        frames[:, 0] = xs
    ds = make_dataset(xs, ys, batch_size=bs, augment=AugmentSpec("rot20"), shuffle=True, x_frames=frames)

    def pipeline() -> None:
        train_model.fit(ds, epochs=1, class_weight=cw, verbose=0)

    def anchor() -> None:
        for i in range(n_steps):
            train_model.train_on_batch(xs[i * bs : (i + 1) * bs], onehot[i * bs : (i + 1) * bs], class_weight=cw)

    pipeline()  # build the fit train function
    anchor()
    t_p, t_a = [], []
    for _ in range(3):
        t_p.append(_median_time(pipeline, 1) / n_steps)
        t_a.append(_median_time(anchor, 1) / n_steps)
    tp, ta = statistics.median(t_p), statistics.median(t_a)
    r_tr = tp / ta
    print(
        f"training step, batch {bs}: fit(tf.data pipeline: jitter + augmentation) {tp:.3f} s, train_on_batch {ta:.3f} s"
    )
    print(f"  ratio {r_tr:.2f} (target <= {TARGET})")
    return 0 if (r_inf <= TARGET and r_tr <= TARGET) else 1


if __name__ == "__main__":
    raise SystemExit(main())
