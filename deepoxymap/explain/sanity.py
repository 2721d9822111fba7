"""Sanity and faithfulness checks for heatmaps.

* **Model-parameter randomisation** (Adebayo et al., "Sanity checks for
  saliency maps", NeurIPS 2018): re-initialise the top weighted layers of a
  *clone* of the model (cascading from the logits down) and compare the
  heatmaps by Spearman rank correlation. A method whose map barely changes
  explains the image, not the model: it is flagged.
* **Deletion curve** (Petsiuk et al., RISE, BMVC 2018): remove the most-attended
  pixels first (replace them by a baseline) and follow the target class
  probability; a faithful map makes it fall fast (small area under the curve).

Neither check touches the shared model: the randomisation works on
``keras.models.clone_model`` with its own weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.explain.heatmap import Heatmap

__all__ = [
    "DeletionCurve",
    "RandomizationResult",
    "deletion_curve",
    "randomization_check",
    "randomized_clone",
    "spearman",
]


def spearman(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Spearman rank correlation of two same-shape maps (NaN if either is constant)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def randomized_clone(model: Any, n_top: int = 1, seed: int = 0) -> Any:
    """A clone of ``model`` whose top ``n_top`` weighted layers are re-initialised.

    All other weights are copied from ``model``; the re-initialised kernels
    are Glorot-uniform draws from ``numpy.random.default_rng(seed)`` and
    biases are zero (no global random state is touched). The input model is
    not modified.

    Args:
        model: flat ``keras.Model``.
        n_top: weighted layers counted from the output (1 = the logits layer only).
        seed: generator seed.

    Returns:
        A new ``keras.Model``.
    """
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    weighted = [layer for layer in clone.layers if layer.get_weights()]
    rng = np.random.default_rng(seed)
    for layer in weighted[::-1][: max(0, n_top)]:
        new = []
        for w in layer.get_weights():
            if w.ndim >= 2:
                receptive = int(np.prod(w.shape[:-2])) if w.ndim > 2 else 1
                fan_in, fan_out = w.shape[-2] * receptive, w.shape[-1] * receptive
                lim = float(np.sqrt(6.0 / (fan_in + fan_out)))
                new.append(rng.uniform(-lim, lim, size=w.shape).astype(w.dtype))
            else:
                new.append(np.zeros_like(w))
        layer.set_weights(new)
    return clone


@dataclass(frozen=True)
class RandomizationResult:
    """Outcome of the model-parameter randomisation test for one method.

    Attributes:
        method: registry name.
        layer: CAM layer used.
        n_top: weighted layers re-initialised.
        spearman: per-input Spearman correlations, original vs randomised map.
        mean_spearman: their mean (NaN-ignoring).
        threshold: the correlation above which the method fails.
        passed: ``mean_spearman < threshold`` (NaN counts as passed when the
            randomised map is constant: it did change).
    """

    method: str
    layer: str | None
    n_top: int
    spearman: tuple[float, ...]
    mean_spearman: float
    threshold: float
    passed: bool


def randomization_check(
    model: Any,
    inputs: NDArray[Any],
    method: str = "gradcam",
    *,
    layer: str | None = None,
    target_class: int | Sequence[int] | None = None,
    n_top: int = 1,
    threshold: float = 0.5,
    seed: int = 0,
    **options: Any,
) -> RandomizationResult:
    """Model-parameter randomisation test on a clone.

    Args:
        model: the trained model (never modified).
        inputs: float32 ``[n, H, W, C]`` preprocessed inputs.
        method: registry name.
        layer: CAM layer (default: last convolution).
        target_class: class(es) explained in both models (default: the trained
            model's predictions, reused for the randomised one).
        n_top: weighted layers re-initialised from the top.
        threshold: fail if the mean Spearman correlation is at least this.
        seed: re-initialisation seed.
        **options: passed to ``explain_batch``.

    Returns:
        :class:`RandomizationResult`.
    """
    from deepoxymap.explain.methods import default_layer, explain_batch

    layer = layer or default_layer(model)
    orig = explain_batch(model, inputs, method, target_class, layer, **options)
    targets = [h.target_class for h in orig]
    rand_model = randomized_clone(model, n_top=n_top, seed=seed)
    rand = explain_batch(rand_model, inputs, method, targets, layer, **options)
    rhos = tuple(spearman(a.array, b.array) for a, b in zip(orig, rand, strict=True))
    finite = [r for r in rhos if np.isfinite(r)]
    mean = float(np.mean(finite)) if finite else float("nan")
    passed = bool(not np.isfinite(mean) or mean < threshold)
    return RandomizationResult(method, orig[0].layer, n_top, rhos, mean, threshold, passed)


@dataclass(frozen=True)
class DeletionCurve:
    """Confidence as the most-attended pixels are removed.

    Attributes:
        fractions: float ``[s]`` fraction of pixels removed, 0 to 1.
        probabilities: float ``[s]`` target-class probability after each removal.
        auc: area under the curve (trapezoid over the fraction axis), in ``[0, 1]``;
            lower is more faithful.
        random_auc: the same with a random pixel order (reference).
        target_class: the class followed.
    """

    fractions: NDArray[np.float64]
    probabilities: NDArray[np.float64]
    auc: float
    random_auc: float
    target_class: int


def _auc(x: NDArray[Any], y: NDArray[Any]) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def deletion_curve(
    model: Any,
    x: NDArray[Any],
    heatmap: Heatmap | NDArray[Any],
    *,
    target_class: int | None = None,
    steps: int = 20,
    baseline: float | str = "mean",
    seed: int = 0,
    with_random: bool = True,
) -> DeletionCurve:
    """Deletion curve of one heatmap on one input.

    Args:
        model: the model (never modified); probabilities are its softmax output.
        x: float32 ``[H, W, C]`` preprocessed input.
        heatmap: the map on the model grid (``[H, W]``).
        target_class: class followed (default: the heatmap's, else predicted).
        steps: number of deletion steps (``steps + 1`` points incl. 0 and 1).
        baseline: value written into deleted pixels: a number, or ``"mean"``
            (the input's per-channel mean; avoids creating new edges on a dark background).
        seed: for the random-order reference curve.
        with_random: compute the random-order reference (``random_auc`` is NaN otherwise).

    Returns:
        :class:`DeletionCurve`.
    """
    from deepoxymap.explain.methods import logits_model, softmax

    xx = np.asarray(x, dtype=np.float32)
    h = np.asarray(heatmap.array if isinstance(heatmap, Heatmap) else heatmap, dtype=np.float32)
    if h.shape != xx.shape[:2]:
        raise ValueError(f"heatmap {h.shape} does not match the input {xx.shape[:2]}")
    if target_class is None and isinstance(heatmap, Heatmap):
        target_class = heatmap.target_class
    fwd = logits_model(model)
    base = xx.reshape(-1, xx.shape[-1]).mean(axis=0) if baseline == "mean" else np.full(xx.shape[-1], float(baseline))
    n_pix = h.size
    fr = np.linspace(0.0, 1.0, steps + 1)

    def curve(order: NDArray[np.int64]) -> NDArray[np.float64]:
        batch = np.repeat(xx[None], steps + 1, axis=0)
        flat = batch.reshape(steps + 1, n_pix, xx.shape[-1])
        for i, f in enumerate(fr):
            k = round(f * n_pix)
            flat[i, order[:k]] = base
        p = softmax(np.asarray(fwd(batch)))
        return p[:, tc].astype(np.float64)

    if target_class is None:
        tc = int(np.argmax(np.asarray(fwd(xx[None]))[0]))
    else:
        tc = int(target_class)
    order = np.argsort(-h.ravel(), kind="stable")
    probs = curve(order)
    r_auc = _auc(fr, curve(np.random.default_rng(seed).permutation(n_pix))) if with_random else float("nan")
    return DeletionCurve(fr, probs, _auc(fr, probs), r_auc, tc)
