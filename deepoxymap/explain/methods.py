"""CAM methods behind one interface, with a cached fast Grad-CAM path.

The model is a flat Keras 3 graph with a layer named ``logits`` followed by a
softmax (see ``docs/CONTRACTS.md``). Every gradient is taken of the target
class **logit**, never of the softmax (a saturated softmax has vanishing
gradients).

Fast path (Grad-CAM, Grad-CAM++, HiResCAM, Layer-CAM, Score-CAM): one cached
sub-model ``input -> (layer activations, logits)`` per ``(model id, layers)``
shares the original layers and weights (no copy) and is called with
``training=False`` inside a ``tf.function``; the gradient is taken only from
the logit back to the chosen layer, so a Grad-CAM costs one forward pass plus
a backward pass through the head. Nothing is written to the model: no layer
attribute, activation or weight is ever changed (a test checks it).

Several layers at once (``layer=("block3_conv4", "block5_conv4")`` or
``"block3_conv4+block5_conv4"``): one gradient pass returns every layer's
activations and gradients, each layer's map is computed by the method,
and the maps are fused by the rule of :func:`~deepoxymap.explain.heatmap.fuse_maps`
(Jiang et al. 2021: each map upsampled to the input grid and normalised, the
shallower maps scaled by ``tanh(2 m)``, element-wise maximum), so a fused map
has the finest layer's resolution and the deepest layer's class evidence.

Normalisation: ``normalize="slice"`` (default) scales each input's map to
``[0, 1]`` on its own; ``normalize="batch"`` uses one minimum and one maximum
over the whole batch (one case's slices), so a slice whose evidence is weak
stays weak (the audit's per-case normalisation).

SmoothGrad runs tf-keras-vis' ``Saliency`` on a cached ``input -> logits``
sub-model (built without a model modifier, so tf-keras-vis neither clones nor
modifies anything).

References:
    Selvaraju et al., Grad-CAM, ICCV 2017 (arXiv 1610.02391).
    Chattopadhay et al., Grad-CAM++, WACV 2018 (arXiv 1710.11063).
    Wang et al., Score-CAM, CVPRW 2020 (arXiv 1910.01279).
    Jiang et al., LayerCAM, IEEE TIP 2021.
    Draelos & Carin, HiResCAM (Use HiResCAM instead of Grad-CAM for faithful
    explanations of convolutional neural networks), 2020 (arXiv 2011.08891).
    Smilkov et al., SmoothGrad, 2017 (arXiv 1706.03825).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from deepoxymap.errors import ExplainError
from deepoxymap.explain.heatmap import FeatureMaps, Heatmap, fuse_maps, normalize_map, upsample_map

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "clear_cache",
    "conv_layer_names",
    "default_layer",
    "explain",
    "explain_batch",
    "explain_methods",
    "feature_maps",
    "layer_grid",
    "layer_names",
    "layer_stride",
    "logits_model",
    "supports_contrast",
]

Align = Literal["centre", "corner"]
Normalize = Literal["slice", "batch"]
LayerSpec = str | Sequence[str] | None
"""A layer name, several names (a tuple/list or one ``"+"``-joined string: fused), or ``None`` (the last conv)."""

DEFAULT_METHOD = "gradcam"
"""The method the app's Feature-maps page shows first (and the audit's ``default`` entry)."""


def _keras() -> Any:
    import keras

    return keras


def _tf() -> Any:
    import tensorflow as tf

    return tf


# ---------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------


def _is_conv(layer: Any) -> bool:
    """Whether ``layer`` is a Keras convolution (public classes only; no ``keras.src`` import)."""
    import keras

    L = keras.layers
    convs = (L.Conv1D, L.Conv2D, L.Conv3D, L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose,
             L.DepthwiseConv1D, L.DepthwiseConv2D, L.SeparableConv1D, L.SeparableConv2D)  # fmt: skip
    return isinstance(layer, convs)


def _out_rank(layer: Any) -> int:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return -1


def conv_layer_names(model: Any) -> list[str]:
    """Names of the convolutional layers of a flat model, input to output order.

    Args:
        model: a ``keras.Model``.

    Returns:
        Layer names whose layer is a Keras convolution (``Conv2D``,
        ``DepthwiseConv2D``, ``SeparableConv2D``...).
    """
    return [layer.name for layer in model.layers if _is_conv(layer) and _out_rank(layer) == 4]


def default_layer(model: Any) -> str:
    """The last convolutional layer (tf-keras-vis' default penultimate layer).

    Raises:
        ExplainError: the model has no convolutional layer (e.g. a nested base model).
    """
    names = conv_layer_names(model)
    if not names:
        raise ExplainError(
            "the model has no convolutional layer at the top level",
            source=getattr(model, "name", "model"),
            hint="build the head on base.output so the graph is flat (a nested base model hides its layers)",
        )
    return names[-1]


def _layer_output(model: Any, layer: str) -> Any:
    try:
        lyr = model.get_layer(layer)
    except ValueError as exc:
        raise ExplainError(
            f"no layer named {layer!r}",
            source=getattr(model, "name", "model"),
            hint=f"choose one of {conv_layer_names(model)}",
        ) from exc
    if _out_rank(lyr) != 4:
        raise ExplainError(
            f"layer {layer!r} has output shape {tuple(lyr.output.shape)}, not [batch, h, w, channels]",
            source=getattr(model, "name", "model"),
            hint=f"choose a convolutional layer: {conv_layer_names(model)}",
        )
    return lyr.output


def layer_names(model: Any, layer: LayerSpec = None) -> tuple[str, ...]:
    """The layers a :data:`LayerSpec` names, checked, shallow to deep (model order), without repeats.

    Args:
        model: a flat ``keras.Model``.
        layer: ``None`` (the last convolution), a name, a ``"+"``-joined string
            of names, or a sequence of names.

    Raises:
        ExplainError: an unknown layer, or one without a 4-D ``[batch, h, w, channels]`` output.
    """
    if layer is None:
        return (default_layer(model),)
    names = [p.strip() for p in layer.split("+")] if isinstance(layer, str) else [str(p).strip() for p in layer]
    names = [n for n in dict.fromkeys(names) if n]
    if not names:
        return (default_layer(model),)
    for n in names:
        _layer_output(model, n)
    order = {lyr.name: i for i, lyr in enumerate(model.layers)}
    return tuple(sorted(names, key=lambda n: order[n]))


def layer_grid(model: Any, layer: LayerSpec = None) -> tuple[int, int]:
    """``(h, w)`` of a layer's feature map; for fused layers, the finest (largest) grid."""
    grids = [tuple(int(v) for v in model.get_layer(n).output.shape[1:3]) for n in layer_names(model, layer)]
    return max(grids, key=lambda g: g[0] * g[1])  # type: ignore[return-value]


def layer_stride(model: Any, layer: LayerSpec = None) -> tuple[float, float]:
    """The layer's feature-map stride on the model input, ``(rows, cols)`` input pixels per cell.

    E.g. VGG19 ``block5_conv4`` at a 96-px input: 6 x 6 cells, stride 16; fused
    layers take the finest layer's stride.
    """
    h, w = layer_grid(model, layer)
    size = model.inputs[0].shape[1:3]
    return float(size[0]) / h, float(size[1]) / w


def _logits_output(model: Any) -> Any:
    names = [layer.name for layer in model.layers]
    if "logits" in names:
        return model.get_layer("logits").output
    last = model.layers[-1]
    keras = _keras()
    if isinstance(last, (keras.layers.Activation, keras.layers.Softmax)):
        return last.input
    raise ExplainError(
        "the model has no 'logits' layer and does not end in a separate softmax",
        source=getattr(model, "name", "model"),
        hint="give the last Dense layer name='logits' and add Activation('softmax') after it",
    )


# ---------------------------------------------------------------------------
# the cache: one entry per (model id, layer), dropped when the model dies
# ---------------------------------------------------------------------------


@dataclass
class _Entry:
    model_ref: weakref.ReferenceType[Any]
    fn: Any  # tf.function(x, target) -> (acts, grads, logits, target)
    layer: str | None


_CACHE: dict[tuple[int, str], _Entry] = {}
_LOCK = threading.RLock()


def clear_cache() -> None:
    """Forget every cached sub-model (tests; after a model is replaced in place)."""
    with _LOCK:
        _CACHE.clear()


def _cached(model: Any, key: str, build: Callable[[], Any]) -> Any:
    k = (id(model), key)
    with _LOCK:
        entry = _CACHE.get(k)
        if entry is not None and entry.model_ref() is model:
            return entry.fn
        fn = build()
        _CACHE[k] = _Entry(weakref.ref(model), fn, key)
        weakref.finalize(model, _CACHE.pop, k, None)
        return fn


def _x_spec(model: Any) -> Any:
    """One trace for every batch size: ``[None, H, W, C]`` float32."""
    tf = _tf()
    return tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)


def _grad_fn(model: Any, layer: LayerSpec) -> Any:
    """Cached ``tf.function(x, target, contrast) -> (acts tuple, grads tuple, logits, target)``, one per layer.

    The score differentiated is the target logit, minus the ``contrast`` logit where
    ``contrast >= 0`` and differs from the target (a contrastive explanation).
    """
    names = layer_names(model, layer)
    key = "+".join(names)

    def build() -> Any:
        keras, tf = _keras(), _tf()
        outs = [_layer_output(model, n) for n in names]
        sub = keras.Model(model.inputs, [*outs, _logits_output(model)], name=f"gradcam_{key.replace('+', '_')}")
        k = len(names)

        @tf.function(input_signature=[_x_spec(model), tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)])
        def fn(x: Any, target: Any, contrast: Any) -> Any:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                # Watching the input records the forward ops; the gradient is
                # then pruned to the path logit -> layer (the head only).
                tape.watch(x)
                res = sub(x, training=False)
                acts, logits = list(res[:k]), res[k]
                pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
                tgt = tf.where(target < 0, pred, target)
                own = tf.gather(logits, tgt, axis=1, batch_dims=1)
                use = (contrast >= 0) & (contrast != tgt)
                other = tf.gather(logits, tf.maximum(contrast, 0), axis=1, batch_dims=1)
                score = tf.reduce_sum(own - tf.where(use, other, tf.zeros_like(other)))
            grads = tape.gradient(score, acts)
            grads = [tf.zeros_like(a) if g is None else g for a, g in zip(acts, grads, strict=True)]
            return tuple(acts), tuple(grads), logits, tgt

        return fn

    return _cached(model, f"gradc:{key}", build)


def logits_model(model: Any) -> Any:
    """Cached ``tf.function(x) -> logits`` over the shared layers (no copy, no mutation)."""

    def build() -> Any:
        keras, tf = _keras(), _tf()
        sub = keras.Model(model.inputs, _logits_output(model), name="logits_only")

        @tf.function(input_signature=[_x_spec(model)])
        def fn(x: Any) -> Any:
            return sub(x, training=False)

        fn.keras_model = sub
        return fn

    return _cached(model, "logits", build)


def _acts_fn(model: Any, layer: str) -> Any:
    def build() -> Any:
        keras, tf = _keras(), _tf()
        sub = keras.Model(model.inputs, _layer_output(model, layer), name=f"acts_{layer}")

        @tf.function(input_signature=[_x_spec(model)])
        def fn(x: Any) -> Any:
            return sub(x, training=False)

        return fn

    return _cached(model, f"acts:{layer}", build)


# ---------------------------------------------------------------------------
# inputs and outputs
# ---------------------------------------------------------------------------


def _as_batch(model: Any, inputs: Any) -> NDArray[np.float32]:
    x = np.asarray(inputs, dtype=np.float32)
    want = tuple(model.inputs[0].shape[1:])
    if x.ndim == len(want):
        x = x[None]
    if x.ndim != len(want) + 1 or any(w is not None and w != s for w, s in zip(want, x.shape[1:], strict=True)):
        raise ExplainError(
            f"input of shape {x.shape} does not fit the model input {(None, *want)}",
            hint="pass preprocess_case(...).x (float32 [n, H, W, 3]) or one slice of it",
        )
    if not np.all(np.isfinite(x)):
        raise ExplainError("input contains NaN or infinite values")
    return x


def _targets(target_class: int | Sequence[int] | None, n: int, n_classes: int) -> NDArray[np.int32]:
    if target_class is None:
        t = np.full(n, -1, dtype=np.int32)
    elif isinstance(target_class, (int, np.integer)):
        t = np.full(n, int(target_class), dtype=np.int32)
    else:
        t = np.asarray(list(target_class), dtype=np.int32)
        if t.shape != (n,):
            raise ExplainError(f"{t.size} target classes given for {n} inputs")
    bad = t[(t >= n_classes) | (t < -1)]
    if bad.size:
        raise ExplainError(
            f"target class {int(bad[0])} out of range: the model has {n_classes} classes (0..{n_classes - 1})"
        )
    return t


def _class_name(i: int, n_classes: int, class_names: Sequence[str] | None) -> str:
    if class_names is not None and len(class_names) == n_classes:
        return str(class_names[i])
    from deepoxymap import CLASSES

    if n_classes == len(CLASSES):
        return CLASSES[i]
    return f"class {i}"


def softmax(z: NDArray[Any]) -> NDArray[np.float32]:
    """Softmax over the last axis of logits ``[..., C]`` (float64 inside, float32 out)."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------------------
# the methods: each maps (acts [n,h,w,k], grads [n,h,w,k]) -> cam [n,h,w] >= 0
# ---------------------------------------------------------------------------


def _cam_gradcam(acts: NDArray[np.float32], grads: NDArray[np.float32]) -> NDArray[np.float32]:
    w = grads.mean(axis=(1, 2), keepdims=True)
    return np.maximum((acts * w).sum(axis=-1), 0.0)


def _cam_gradcampp(acts: NDArray[np.float32], grads: NDArray[np.float32]) -> NDArray[np.float32]:
    # tf-keras-vis' closed form with exp(score) dropped: it multiplies the 1st,
    # 2nd and 3rd derivatives alike, cancels in alpha and only rescales the
    # weights (undone by the final normalisation); keeping it overflows for
    # logits above ~88.
    g1 = grads
    g2 = g1 * grads
    g3 = g2 * grads
    global_sum = acts.sum(axis=(1, 2), keepdims=True)
    denom = 2.0 * g2 + g3 * global_sum
    denom = denom + (g2 == 0.0).astype(np.float32)
    alphas = g2 / denom
    norm = alphas.sum(axis=(1, 2), keepdims=True)
    norm = norm + (norm == 0.0).astype(np.float32)
    alphas = alphas / norm
    weights = (np.maximum(g1, 0.0) * alphas).sum(axis=(1, 2), keepdims=True)
    return np.maximum((weights * acts).sum(axis=-1), 0.0)


def _cam_layercam(acts: NDArray[np.float32], grads: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.maximum((np.maximum(grads, 0.0) * acts).sum(axis=-1), 0.0)


def _cam_hirescam(acts: NDArray[np.float32], grads: NDArray[np.float32]) -> NDArray[np.float32]:
    # HiResCAM (Draelos & Carin 2020): ReLU(sum_k dy/dA_k(i, j) * A_k(i, j)), the
    # element-wise product summed over channels. Grad-CAM replaces dy/dA_k(i, j)
    # by its spatial mean, so the two agree when the gradient is spatially
    # constant (a conv layer followed directly by global average pooling).
    return np.maximum((grads * acts).sum(axis=-1), 0.0)


_GRAD_CAMS: dict[str, Callable[[NDArray[np.float32], NDArray[np.float32]], NDArray[np.float32]]] = {
    "gradcam": _cam_gradcam,
    "gradcam++": _cam_gradcampp,
    "hirescam": _cam_hirescam,
    "layercam": _cam_layercam,
}


@dataclass(frozen=True)
class MethodInfo:
    """Registry entry.

    Attributes:
        name: registry key.
        label: display name.
        uses_layer: whether a convolutional layer is chosen.
        cost: rough cost in forward passes of the model (for the UI).
        reference: the paper.
    """

    name: str
    label: str
    uses_layer: bool
    cost: str
    reference: str


METHODS: dict[str, MethodInfo] = {
    "gradcam": MethodInfo("gradcam", "Grad-CAM", True, "~1 forward", "Selvaraju et al. 2017"),
    "gradcam++": MethodInfo("gradcam++", "Grad-CAM++", True, "~1 forward", "Chattopadhay et al. 2018"),
    "hirescam": MethodInfo("hirescam", "HiResCAM", True, "~1 forward", "Draelos & Carin 2020"),
    "layercam": MethodInfo("layercam", "Layer-CAM", True, "~1 forward", "Jiang et al. 2021"),
    "scorecam": MethodInfo("scorecam", "Score-CAM", True, "1 + max_n forwards", "Wang et al. 2020"),
    "smoothgrad": MethodInfo(
        "smoothgrad", "SmoothGrad saliency", False, "samples x (forward + backward)", "Smilkov et al. 2017"
    ),
}
"""The method registry, keyed by the name :func:`explain` accepts."""


def supports_contrast(method: str) -> bool:
    """Whether ``method`` takes a ``contrast_class`` (the gradient CAMs: Grad-CAM, Grad-CAM++, HiResCAM, Layer-CAM)."""
    try:
        return check_method(method) in _GRAD_CAMS
    except ExplainError:
        return False


def check_method(method: str) -> str:
    """The canonical registry name of ``method`` (case, ``-`` and ``_`` ignored; ``gradcampp`` etc.).

    Raises:
        ExplainError: not a registered method.
    """
    m = method.lower().replace("_", "").replace("-", "")
    aliases = {
        "gradcam": "gradcam",
        "gradcam++": "gradcam++",
        "gradcampp": "gradcam++",
        "gradcamplusplus": "gradcam++",
        "hirescam": "hirescam",
        "layercam": "layercam",
        "scorecam": "scorecam",
        "smoothgrad": "smoothgrad",
    }
    if m not in aliases:
        raise ExplainError(f"unknown method {method!r}", hint=f"choose one of {sorted(METHODS)}")
    return aliases[m]


def _scorecam(
    model: Any,
    x: NDArray[np.float32],
    acts: NDArray[np.float32],
    targets: NDArray[np.int32],
    *,
    max_n: int,
    batch_size: int,
) -> NDArray[np.float32]:
    """Score-CAM on the layer grid: ``[n, h, w]`` (tf-keras-vis' algorithm, Faster Score-CAM selection)."""
    fwd = logits_model(model)
    n, h, w, k = acts.shape
    size = (x.shape[1], x.shape[2])
    out = np.zeros((n, h, w), dtype=np.float32)
    m = int(min(max(1, max_n), k))
    for i in range(n):
        a = acts[i]
        std = a.reshape(-1, k).std(axis=0)
        sel = np.argsort(-std, kind="stable")[:m]
        masks = np.stack([normalize_map(upsample_map(a[..., c], size)) for c in sel])  # [m, H, W]
        masked = x[i][None] * masks[..., None]
        probs = []
        for s in range(0, m, batch_size):
            probs.append(softmax(np.asarray(fwd(masked[s : s + batch_size]))))
        p = np.concatenate(probs)[:, targets[i]]  # [m]
        out[i] = np.maximum((a[..., sel] * p[None, None, :]).sum(axis=-1), 0.0)
    return out


_SMOOTH_LOCK = threading.Lock()


def _smoothgrad(
    model: Any, x: NDArray[np.float32], targets: NDArray[np.int32], *, samples: int, noise: float, seed: int
) -> NDArray[np.float32]:
    """SmoothGrad via tf-keras-vis ``Saliency`` on the logits sub-model; ``[n, H, W]``."""
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.scores import CategoricalScore

    sub = logits_model(model).keras_model
    saliency = Saliency(sub, clone=False)  # no modifier: tf-keras-vis neither clones nor modifies
    out = np.zeros(x.shape[:3], dtype=np.float32)
    # tf-keras-vis draws its noise from numpy's global generator: seed it for
    # reproducibility and restore the caller's state afterwards.
    with _SMOOTH_LOCK:
        state = np.random.get_state()  # noqa: NPY002
        try:
            np.random.seed(seed)  # noqa: NPY002
            for i in range(x.shape[0]):
                s = saliency(
                    CategoricalScore([int(targets[i])]),
                    x[i : i + 1],
                    smooth_samples=samples,
                    smooth_noise=noise,
                    normalize_map=False,
                )
                out[i] = np.asarray(s, dtype=np.float32).reshape(x.shape[1:3])
        finally:
            np.random.set_state(state)  # noqa: NPY002
    return out


def explain_batch(
    model: Any,
    inputs: Any,
    method: str = "gradcam",
    target_class: int | Sequence[int] | None = None,
    layer: LayerSpec = None,
    *,
    class_names: Sequence[str] | None = None,
    align: Align = "centre",
    normalize: Normalize = "slice",
    max_n: int = 16,
    batch_size: int = 16,
    smooth_samples: int = 16,
    smooth_noise: float = 0.2,
    seed: int = 0,
    contrast_class: int | Sequence[int] | None = None,
) -> list[Heatmap]:
    """Heatmaps for a batch of preprocessed inputs (one model call for the gradient methods).

    Args:
        model: flat ``keras.Model`` with a ``logits`` layer then a softmax; never modified.
        inputs: float32 ``[n, H, W, C]`` (or ``[H, W, C]``) exactly as fed to the model.
        method: a key of :data:`METHODS`.
        target_class: ``None`` (each input's predicted class), one class index,
            or one index per input.
        layer: a layer with a 4-D output (default: the last convolution), or several
            (a tuple/list or a ``"+"``-joined string) whose maps are fused
            (:func:`~deepoxymap.explain.heatmap.fuse_maps`; gradient CAMs only).
            Ignored by ``smoothgrad``.
        class_names: names of the outputs (default ``deepoxymap.CLASSES`` for 4 outputs).
        align: upsampling alignment, see :func:`upsample_map`.
        normalize: ``"slice"``: each map min-max scaled to ``[0, 1]`` on its own;
            ``"batch"``: one minimum and maximum over all ``n`` maps (pass one
            case's slices: a weak slice stays weak, its peak below 1).
        max_n: Score-CAM: most activation maps used (highest spatial variance first).
        batch_size: Score-CAM: masked inputs per forward call.
        smooth_samples: SmoothGrad: noisy copies averaged.
        smooth_noise: SmoothGrad: noise SD as a fraction of the input's range.
        seed: SmoothGrad noise seed.
        contrast_class: ``None`` (explain the target logit), or one class index (or one
            per input) whose logit is subtracted from the target's: the map answers "why
            this class rather than that one" (contrastive Grad-CAM, Prabhushankar et al.
            2020), e.g. a lesion class against ``healthy``, so evidence the two classes
            share (the LV's shape, remote myocardium) cancels. Where it equals the
            target the plain target logit is used. Gradient CAMs only.

    Returns:
        ``n`` heatmaps on the model grid, float32 ``[H, W]`` in ``[0, 1]``, each
        with the softmax probabilities of its input.

    Raises:
        ExplainError: unknown method or layer, bad target class or input shape,
            several layers for Score-CAM, a contrast class for Score-CAM or SmoothGrad.
    """
    name = check_method(method)
    return explain_methods(
        model, inputs, (name,), target_class, layer, class_names=class_names, align=align, normalize=normalize,
        max_n=max_n, batch_size=batch_size, smooth_samples=smooth_samples, smooth_noise=smooth_noise, seed=seed,
        contrast_class=contrast_class,
    )[name]  # fmt: skip


def _scale(full: NDArray[np.float32], normalize: Normalize) -> NDArray[np.float32]:
    """``[n, H, W]`` maps to ``[0, 1]``: per map (``"slice"``) or with one min/max over all (``"batch"``)."""
    if normalize == "batch":
        return normalize_map(full)
    if normalize != "slice":
        raise ExplainError(f"unknown normalisation {normalize!r}", hint="use 'slice' or 'batch'")
    return np.stack([normalize_map(f) for f in full]) if len(full) else full


def _grad_cam_maps(
    name: str,
    acts: Sequence[NDArray[np.float32]],
    grads: Sequence[NDArray[np.float32]],
    size: tuple[int, int],
    align: Align,
    normalize: Normalize,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """One gradient CAM at one or several layers: ``(raw [n, h, w] on the finest layer grid, full [n, H, W])``.

    One layer: ``raw`` is the method's map on the layer grid and ``full`` its
    upsampling. Several layers: each layer's map is fused by
    :func:`~deepoxymap.explain.heatmap.fuse_maps`, onto the input grid for
    ``full`` and onto the finest layer's grid for ``raw``.
    """
    per_layer = [_GRAD_CAMS[name](a, g) for a, g in zip(acts, grads, strict=True)]
    if len(per_layer) == 1:
        raw = per_layer[0]
        return raw, np.stack([upsample_map(c, size, align=align) for c in raw])
    fine = max((m.shape[1:] for m in per_layer), key=lambda g: g[0] * g[1])
    per_case = normalize == "batch"
    full = fuse_maps(per_layer, size, align=align, per_batch=per_case)
    raw = fuse_maps(per_layer, (int(fine[0]), int(fine[1])), align=align, per_batch=per_case)
    return raw, full


def explain_methods(
    model: Any,
    inputs: Any,
    methods: Sequence[str],
    target_class: int | Sequence[int] | None = None,
    layer: LayerSpec = None,
    *,
    class_names: Sequence[str] | None = None,
    align: Align = "centre",
    normalize: Normalize = "slice",
    max_n: int = 16,
    batch_size: int = 16,
    smooth_samples: int = 16,
    smooth_noise: float = 0.2,
    seed: int = 0,
    contrast_class: int | Sequence[int] | None = None,
) -> dict[str, list[Heatmap]]:
    """Several methods on the same inputs, sharing one gradient pass.

    Grad-CAM, Grad-CAM++, HiResCAM and Layer-CAM differ only in how they weight
    the same activations and gradients, so asking for all of them costs one model
    call (Score-CAM reuses the activations), also when several layers are fused.
    Arguments as :func:`explain_batch`.

    Returns:
        ``{method: [Heatmap per input]}`` keyed by the canonical method names;
        ``Heatmap.layer`` is the ``"+"``-joined layer names (shallow to deep).
    """
    names = [check_method(m) for m in methods]
    x = _as_batch(model, inputs)
    n = x.shape[0]
    layers = layer_names(model, layer)
    layer_name = "+".join(layers)
    if len(layers) > 1 and "scorecam" in names:
        raise ExplainError("Score-CAM takes one layer", hint=f"choose one of {list(layers)}")
    n_classes = int(_logits_output(model).shape[-1])
    t = _targets(target_class, n, n_classes)
    c = _targets(contrast_class, n, n_classes)
    if contrast_class is not None and (plain := [m for m in names if not supports_contrast(m)]):
        raise ExplainError(
            f"a contrast class needs a gradient CAM, not {plain[0]}", hint=f"use one of {list(_GRAD_CAMS)}"
        )
    tf = _tf()

    acts_t, grads_t, logits_t, tgt_t = _grad_fn(model, layers)(tf.constant(x), tf.constant(t), tf.constant(c))
    acts = [np.asarray(a, dtype=np.float32) for a in acts_t]
    grads = [np.nan_to_num(np.asarray(g, dtype=np.float32)) for g in grads_t]
    probs = softmax(np.asarray(logits_t))
    tgt = np.asarray(tgt_t, dtype=np.int32)
    size = (int(x.shape[1]), int(x.shape[2]))

    result: dict[str, list[Heatmap]] = {}
    for name in dict.fromkeys(names):
        raw: NDArray[np.float32] | None
        lyr: str | None = layer_name
        if name in _GRAD_CAMS:
            raw, full = _grad_cam_maps(name, acts, grads, size, align, normalize)
        elif name == "scorecam":
            raw = _scorecam(model, x, acts[0], tgt, max_n=max_n, batch_size=batch_size)
            full = np.stack([upsample_map(c, size, align=align) for c in raw])
        else:  # smoothgrad
            full = _smoothgrad(model, x, tgt, samples=smooth_samples, noise=smooth_noise, seed=seed)
            raw, lyr = None, None
        scaled = _scale(full, normalize)
        result[name] = [
            Heatmap(
                array=scaled[i],
                method=name,
                layer=lyr,
                target_class=int(tgt[i]),
                class_name=_class_name(int(tgt[i]), n_classes, class_names),
                contrast_class=int(c[i]) if 0 <= c[i] != tgt[i] else None,
                probabilities=probs[i],
                raw=None if raw is None else raw[i].astype(np.float32),
            )
            for i in range(n)
        ]
    return result


def explain(
    model: Any,
    inputs: Any,
    method: str = "gradcam",
    target_class: int | None = None,
    layer: LayerSpec = None,
    **options: Any,
) -> Heatmap:
    """One heatmap for one preprocessed input.

    Args:
        model: flat ``keras.Model`` with a ``logits`` layer then a softmax; never modified.
        inputs: float32 ``[H, W, C]`` or ``[1, H, W, C]`` (one slice of ``preprocess_case(...).x``).
        method: ``"gradcam"``, ``"gradcam++"``, ``"hirescam"``, ``"layercam"``, ``"scorecam"`` or ``"smoothgrad"``.
        target_class: class index to explain (default: the predicted class).
        layer: convolutional layer name (default: the last one), or several to fuse.
        **options: passed to :func:`explain_batch` (``align``, ``max_n``, ``smooth_samples``...).

    Returns:
        :class:`Heatmap` on the model grid (float32 ``[H, W]`` in ``[0, 1]``);
        map it onto the OS-CMR image with ``heatmap.to_source(transform)``.
    """
    x = _as_batch(model, inputs)
    if x.shape[0] != 1:
        raise ExplainError(f"explain() takes one input, got {x.shape[0]}: use explain_batch()")
    return explain_batch(model, x, method, target_class, layer, **options)[0]


def feature_maps(model: Any, inputs: Any, layer: str | None = None, top_k: int = 8) -> FeatureMaps:
    """Raw activations of a layer, the ``top_k`` channels by mean activation.

    Args:
        model: flat ``keras.Model``; never modified.
        inputs: float32 ``[H, W, C]`` or ``[1, H, W, C]``.
        layer: a layer with 4-D output (default: the last convolution).
        top_k: channels kept (all if larger than the layer).

    Returns:
        :class:`FeatureMaps` with ``maps`` float32 ``[k, h, w]``.
    """
    x = _as_batch(model, inputs)
    if x.shape[0] != 1:
        raise ExplainError(f"feature_maps() takes one input, got {x.shape[0]}")
    name = layer or default_layer(model)
    a = np.asarray(_acts_fn(model, name)(_tf().constant(x)), dtype=np.float32)[0]  # [h, w, K]
    mean = a.mean(axis=(0, 1))
    k = int(min(max(1, top_k), a.shape[-1]))
    order = np.argsort(-mean, kind="stable")[:k]
    return FeatureMaps(
        layer=name,
        maps=np.moveaxis(a[..., order], -1, 0).astype(np.float32),
        channels=order.astype(np.int64),
        mean_activation=mean[order].astype(np.float32),
        n_channels=int(a.shape[-1]),
    )
