"""The classifiers: VGG19 (the study's model), ResNet50 and EfficientNetB0.

Each is ONE flat Keras functional graph: the ``keras.applications`` base with
``include_top=False`` and the head built on ``base.output`` (a nested base
model breaks tf-keras-vis CAMs: "Output with path '1' is not connected").

The BatchNormalization after pooling standardises the pooled features: from
scratch, VGG19's pooled features share a large common offset (mean 1.6) with a
small per-feature spread (SD 0.13), and without it the head did not learn at
all (measured; see the model card). Head (layer names are part of the contract)::

    base.output -> GlobalAveragePooling2D("head_gap") -> BatchNormalization("head_bn") -> Dropout("head_drop1")
      -> Dense(units, relu, "head_dense") -> Dropout("head_drop2")
      -> Dense(4, "logits") -> Activation("softmax", "probs")

Weights (``weights`` argument): ``"imagenet"`` uses Keras' normal download and
cache (``~/.keras/models/``); offline, a :class:`WeightsUnavailableError` names
the file Keras looks for and the ``--weights PATH`` alternative. A path loads a
local weights file of the base (``.h5`` / ``.weights.h5``, by layer name);
``"none"`` initialises randomly (train from scratch; ReLU conv kernels
He-normal, see :func:`he_init_convs`).

MC-dropout: :func:`mc_dropout_predict` runs the deterministic base once and the
head ``n_samples`` times with dropout active (the saved inference graph itself
never applies dropout).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap import CLASSES
from deepoxymap.errors import ModelLoadError, WeightsUnavailableError

__all__ = [
    "ARCHS",
    "BN_MOMENTUM",
    "HEAD_LAYERS",
    "ArchInfo",
    "build_base",
    "build_conv_bn_model",
    "build_model",
    "fold_conv_bn",
    "he_init_convs",
    "mc_dropout_predict",
    "resolve_weights",
]

HEAD_LAYERS = ("head_gap", "head_bn", "head_drop1", "head_dense", "head_drop2", "logits", "probs")


@dataclass(frozen=True)
class ArchInfo:
    """What differs between architectures.

    Attributes:
        name: CLI name.
        keras_name: ``keras.applications`` constructor name.
        notop_file: file Keras caches in ``~/.keras/models/`` for ImageNet ``include_top=False``.
        imagenet_scaling: input convention of the ImageNet weights (PreprocessSpec.scaling).
        scratch_scaling: input convention used when training from scratch.
        last_conv: name of the last convolutional layer (default Grad-CAM layer).
    """

    name: str
    keras_name: str
    notop_file: str
    imagenet_scaling: str
    scratch_scaling: str
    last_conv: str


ARCHS: dict[str, ArchInfo] = {
    "vgg19": ArchInfo(
        "vgg19", "VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "caffe", "zscore", "block5_conv4"
    ),
    "resnet50": ArchInfo(
        "resnet50",
        "ResNet50",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "caffe",
        "zscore",
        "conv5_block3_out",
    ),
    "efficientnetb0": ArchInfo(
        "efficientnetb0", "EfficientNetB0", "efficientnetb0_notop.h5", "raw255", "raw255", "top_activation"
    ),
    # a tiny flat CNN for tests and benchmarks of the pipeline (never shipped)
    "tinycnn": ArchInfo("tinycnn", "", "", "zscore", "zscore", "tiny_conv2"),
}


def _arch(name: str) -> ArchInfo:
    key = name.lower().replace("-", "").replace("_", "")
    if key not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHS)}")
    return ARCHS[key]


def resolve_weights(weights: str | os.PathLike[str] | None, arch: str) -> str | Path | None:
    """Normalise the ``--weights`` choice: ``None`` (scratch), ``"imagenet"`` or an existing path.

    For ``"imagenet"`` this checks, within a couple of seconds, that the cached
    file exists or that the download host answers; otherwise it raises.

    Raises:
        WeightsUnavailableError: ImageNet weights neither cached nor downloadable,
            or a weights path that does not exist.
    """
    info = _arch(arch)
    if weights is None or str(weights).lower() in ("none", "", "scratch"):
        return None
    if str(weights).lower() == "imagenet":
        if not info.notop_file:
            raise WeightsUnavailableError(f"{info.name} has no ImageNet weights", hint="use --weights none")
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / info.notop_file
        if cache.is_file():
            return "imagenet"
        try:
            with socket.create_connection(("storage.googleapis.com", 443), timeout=3.0):
                pass
        except OSError as exc:
            raise WeightsUnavailableError(
                f"ImageNet weights for {info.keras_name} are not cached and cannot be downloaded ({exc})",
                source=str(cache),
                hint=(
                    f"Keras looks for {info.notop_file} in ~/.keras/models/; copy it there, "
                    f"or pass --weights PATH to a local weights file, or --weights none to train from scratch"
                ),
            ) from None
        return "imagenet"
    p = Path(weights).expanduser()
    if not p.is_file():
        raise WeightsUnavailableError(
            "weights file not found",
            source=str(p),
            hint="pass --weights imagenet, --weights none or a path to an existing .h5/.weights.h5 file",
        )
    return p


def build_base(arch: str, input_size: int, weights: str | Path | None = None) -> Any:
    """The ``keras.applications`` base (``include_top=False``), weights resolved by :func:`resolve_weights`."""
    import keras

    info = _arch(arch)
    w = resolve_weights(weights, arch) if weights is not None else None
    if info.name == "tinycnn":
        if w == "imagenet":
            raise WeightsUnavailableError("tinycnn has no ImageNet weights", hint="use --weights none")
        inp = keras.Input((input_size, input_size, 3), name="input_layer")
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="tiny_conv1")(inp)
        x = keras.layers.MaxPooling2D(2, name="tiny_pool1")(x)
        x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="tiny_conv2")(x)
        base = keras.Model(inp, x, name="tinycnn")
        if isinstance(w, Path):
            base.load_weights(str(w))
        return base
    ctor = getattr(keras.applications, info.keras_name)
    kw: dict[str, Any] = {"include_top": False, "input_shape": (input_size, input_size, 3)}
    t0 = time.perf_counter()
    try:
        base = ctor(weights="imagenet" if w == "imagenet" else None, **kw)
    except Exception as exc:  # noqa: BLE001 - Keras raises a bare Exception on URL failure
        raise WeightsUnavailableError(
            f"could not obtain ImageNet weights for {info.keras_name} after {time.perf_counter() - t0:.1f} s: {exc}",
            source=info.notop_file,
            hint=(
                f"Keras looks for {info.notop_file} in ~/.keras/models/; "
                "pass --weights PATH to a local file or --weights none"
            ),
        ) from None
    if isinstance(w, Path):
        try:
            base.load_weights(str(w))
        except Exception as exc:  # noqa: BLE001 - h5/keras errors of any kind mean a wrong file
            raise ModelLoadError(
                f"could not load base weights: {exc}",
                source=str(w),
                hint=f"the file must hold {info.keras_name} (include_top=False) weights for this input size",
            ) from None
    return base


def he_init_convs(base: Any) -> int:
    """Re-initialise every ``Conv2D`` kernel with He-normal (fan-in) and zero its bias.

    Used when training from scratch: ``keras.applications`` uses Glorot-uniform,
    which halves the activation variance at every 3x3 ReLU layer of a plain
    network (VGG19: 16 conv layers, ~2^16 in variance), so training starts with
    vanishing signals; He et al. 2015 ("Delving deep into rectifiers") derived
    the fan-in initialisation precisely to train VGG-style plain ReLU nets from
    scratch. Returns the number of layers re-initialised.
    """
    import keras

    n = 0
    for layer in base.layers:
        if type(layer).__name__ == "Conv2D" and layer.get_config().get("activation") == "relu":
            init = keras.initializers.HeNormal()
            layer.kernel.assign(init(tuple(layer.kernel.shape)))
            if layer.bias is not None:
                layer.bias.assign(keras.ops.zeros(tuple(layer.bias.shape)))
            n += 1
    return n


def _head(features: Any, dense_units: int, dropout: float, n_classes: int, zero_logits: bool) -> Any:
    """The classification head (layer names in :data:`HEAD_LAYERS`) on a base's output tensor; returns the probs tensor."""
    import keras

    x = keras.layers.GlobalAveragePooling2D(name="head_gap")(features)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.Dropout(dropout, name="head_drop1")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_drop2")(x)
    x = keras.layers.Dense(n_classes, name="logits", kernel_initializer="zeros" if zero_logits else "glorot_uniform")(x)
    out = keras.layers.Activation("softmax", name="probs")(x)
    return out


def build_model(
    arch: str = "vgg19",
    input_size: int = 96,
    weights: str | Path | None = None,
    *,
    dense_units: int = 256,
    dropout: float = 0.5,
    n_classes: int = len(CLASSES),
    seed: int | None = None,
    zero_logits: bool = False,
) -> Any:
    """One flat ``keras.Model``: base + head, input float32 ``[batch, S, S, 3]``, output probs ``[batch, 4]``.

    Args:
        arch: ``"vgg19"``, ``"resnet50"`` or ``"efficientnetb0"``.
        input_size: S, pixels.
        weights: ``None``/``"none"``, ``"imagenet"`` or a path (see :func:`resolve_weights`).
        dense_units: width of the hidden dense layer of the head.
        dropout: rate of both head dropout layers.
        seed: seeds Keras' initialisers (reproducible scratch training).
        zero_logits: zero-initialise the ``logits`` kernel (training starts at
            exactly uniform predictions, loss ln 4). Without it, random features
            give confidently wrong random logits, and the fastest way for Adam to
            lower that loss in a plain ReLU net without normalisation is to
            silence the features: VGG19 from scratch collapsed to constant
            outputs (dead ReLUs, loss stuck at ln 4) within one epoch.
    """
    import keras

    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    info = _arch(arch)
    base = build_base(info.name, input_size, weights)
    if weights is None or str(weights).lower() in ("none", "", "scratch"):
        he_init_convs(base)
    out = _head(base.output, dense_units, dropout, n_classes, zero_logits)
    return keras.Model(base.input, out, name=f"deepoxymap_{info.name}")


BN_MOMENTUM = 0.9
"""Moving-average momentum of the base BatchNorms when training from scratch
(:func:`build_conv_bn_model`, and ResNet50/EfficientNetB0 via ``train``; the head's stays 0.99).

Keras' default 0.99 lags ~100 steps behind the weights; the study cohort gives
~25 steps per epoch, so the folded statistics would describe the network of
four epochs earlier (measured: validation loss ~6e4 after epoch 1 at 0.99).
"""


def build_conv_bn_model(
    arch: str = "vgg19",
    input_size: int = 96,
    *,
    dense_units: int = 256,
    dropout: float = 0.5,
    n_classes: int = len(CLASSES),
    seed: int | None = None,
    zero_logits: bool = False,
) -> Any:
    """The TRAINING form of a plain-conv architecture: BatchNorm after every ReLU conv.

    VGG19 (and the test ``tinycnn``) have no normalisation; trained end to end
    from scratch with Adam, plain VGG19 collapsed to constant outputs (loss
    stuck at ln 4, see the model card), while the same topology with
    ``Conv2D(linear, no bias) -> BatchNormalization -> ReLU`` learns (Ioffe &
    Szegedy 2015; probe in ``docs/experiments``). Every ``Conv2D(relu)`` named
    ``N`` of the ``keras.applications`` base becomes ``Conv2D N (linear, no
    bias) -> BatchNormalization N_bn -> ReLU N_relu``; every other layer and the
    head are the same as :func:`build_model`. After training,
    :func:`fold_conv_bn` folds each BatchNorm (inference mode: a per-channel
    affine map) into its conv kernel and bias, giving EXACTLY the plain
    ``keras.applications`` graph of :func:`build_model` (same layer names, so
    Grad-CAM's ``block5_conv4`` is the same tensor). Scratch weights only.

    Args: as :func:`build_model` (no ``weights``: random initialisation, He-normal conv kernels).
    """
    import keras

    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    info = _arch(arch)
    plain = build_base(info.name, input_size, None)
    layers = plain.layers
    if not layers or type(layers[0]).__name__ != "InputLayer":
        raise ValueError(f"{info.name}: expected a sequential base starting with an InputLayer")
    inp = keras.Input((input_size, input_size, 3), name=layers[0].name)
    x = inp
    for layer in layers[1:]:
        if len(layer._inbound_nodes) != 1 or len(layer._inbound_nodes[0].input_tensors) != 1:
            raise ValueError(f"{info.name}: conv-BN training needs a chain of single-input layers ({layer.name})")
        cfg = layer.get_config()
        if type(layer).__name__ == "Conv2D" and cfg.get("activation") == "relu":
            cfg = {**cfg, "activation": "linear", "use_bias": False, "kernel_initializer": "he_normal"}
            x = keras.layers.Conv2D.from_config(cfg)(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{layer.name}_bn")(x)
            x = keras.layers.ReLU(name=f"{layer.name}_relu")(x)
        else:
            x = type(layer).from_config(cfg)(x)
    out = _head(x, dense_units, dropout, n_classes, zero_logits)
    return keras.Model(inp, out, name=f"deepoxymap_{info.name}_convbn")


def fold_conv_bn(trained: Any, plain: Any) -> int:
    """Copy a :func:`build_conv_bn_model` network into the plain graph, folding each BatchNorm into its conv.

    For a conv ``N`` followed by ``N_bn`` (inference mode,
    ``y = gamma (z - mean) / sqrt(var + eps) + beta``):
    ``kernel' = kernel * s`` and ``bias' = beta + (bias - mean) * s`` with
    ``s = gamma / sqrt(var + eps)`` per output channel, so
    ``relu(conv'(x)) == relu(bn(conv(x)))`` up to float32 rounding. Every other
    layer with weights (the head) is copied by name.

    Args:
        trained: the conv-BN model (weights read, not modified).
        plain: the :func:`build_model` graph of the same arch, input size and head (weights overwritten).

    Returns:
        Number of BatchNorm layers folded.

    Raises:
        ValueError: a layer with weights in ``plain`` has no counterpart in ``trained``.
    """
    names = {layer.name: layer for layer in trained.layers}
    n = 0
    for layer in plain.layers:
        if not layer.weights:
            continue
        src = names.get(layer.name)
        bn = names.get(f"{layer.name}_bn")
        if src is None:
            raise ValueError(f"layer {layer.name!r} of the plain model is missing from the trained model")
        if bn is not None and type(layer).__name__ == "Conv2D":
            k = np.asarray(src.kernel.numpy(), np.float64)
            b = np.asarray(src.bias.numpy(), np.float64) if src.use_bias else np.zeros(k.shape[-1])
            gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones(k.shape[-1])
            beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros(k.shape[-1])
            mean = np.asarray(bn.moving_mean.numpy(), np.float64)
            var = np.asarray(bn.moving_variance.numpy(), np.float64)
            s = gamma / np.sqrt(var + float(bn.epsilon))
            layer.kernel.assign((k * s).astype(np.float32))
            layer.bias.assign((beta + (b - mean) * s).astype(np.float32))
            n += 1
        else:
            layer.set_weights(src.get_weights())
    return n


def mc_dropout_predict(
    model: Any, x: NDArray[np.float32], n_samples: int = 30, *, seed: int = 0, batch_size: int = 32
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Monte-Carlo dropout: the head run ``n_samples`` times with dropout active.

    The base has no dropout, so its features are computed once (cheap). Works
    for any model built by :func:`build_model` (BatchNorm stays in inference mode).

    Args:
        x: float32 ``[n, H, W, 3]`` preprocessed input.

    Returns:
        ``(mean_probs [n, C], std_probs [n, C], predictive_entropy [n])`` float32;
        entropy in nats of the mean probabilities.
    """
    import keras
    import tensorflow as tf

    feat_model = keras.Model(model.input, model.get_layer("head_gap").output)
    feats = feat_model.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)
    drop1, dense, drop2, logits = (model.get_layer(n) for n in ("head_drop1", "head_dense", "head_drop2", "logits"))
    gen = tf.random.Generator.from_seed(seed)
    f = tf.convert_to_tensor(feats)
    try:
        f = model.get_layer("head_bn")(f, training=False)
    except ValueError:  # models without the head normalisation
        pass
    samples = []
    for _ in range(int(n_samples)):
        s1, s2 = gen.uniform_full_int([2], dtype=tf.int32)
        h = tf.nn.dropout(f, rate=float(drop1.rate), seed=int(s1))
        h = dense(h)
        h = tf.nn.dropout(h, rate=float(drop2.rate), seed=int(s2))
        samples.append(tf.nn.softmax(logits(h), axis=-1).numpy())
    p = np.stack(samples).astype(np.float32)  # [S, n, C]
    mean = p.mean(axis=0)
    std = p.std(axis=0)
    ent = -(mean * np.log(np.clip(mean, 1e-12, 1.0))).sum(axis=-1)
    return mean.astype(np.float32), std.astype(np.float32), ent.astype(np.float32)
