"""Per-case model work for the pages.

Every result is memoised with :func:`deepoxymap.ui.state.cached` under the
case's load token, so a slice change re-uses the preprocessed input, the
predictions and any CAM already computed; the same results are kept once per
process under the case's content hash (:mod:`deepoxymap.ui.inference`), so a
second session opening the same case re-uses them. Only a session holding the
same case content can reach them (no ``st.cache_data``). Every model call runs
on the one inference worker (:func:`deepoxymap.ui.inference.run_model`).

:func:`prefetch` computes what the Feature-maps page needs first (input,
prediction, the CAMs at this session's settings, the matched panels) in the
background as soon as a case is loaded, through the same keys.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from deepoxymap import CLASSES, compare
from deepoxymap.case import Case, Role, Stack
from deepoxymap.compare import PANEL_ROLES, Panel
from deepoxymap.config import settings
from deepoxymap.errors import Unavailable
from deepoxymap.explain.methods import METHODS, conv_layer_names, default_layer, explain_batch, feature_maps
from deepoxymap.model.loading import LoadedModel
from deepoxymap.model.predict import CasePrediction, predict_array
from deepoxymap.model.predict import predict as predict_pre
from deepoxymap.model.preprocess import Preprocessed, PreprocessSpec, preprocess_case
from deepoxymap.ui import inference, modelinfo, state

__all__ = [
    "PANEL_ROLES",
    "Panel",
    "PredictionView",
    "SliceCam",
    "all_cams",
    "cam",
    "case_has_lesion_masks",
    "class_names",
    "layers",
    "method_uses_layer",
    "methods",
    "panel",
    "predict",
    "preprocessed",
    "raw_feature_maps",
    "reference_lesion",
    "reference_stack",
    "view_box",
]

# ---------------------------------------------------------------------------
# model, input, prediction
# ---------------------------------------------------------------------------


def class_names(loaded: LoadedModel) -> list[str]:
    """Output class names of a loaded model (``loaded.classes``, else :data:`deepoxymap.CLASSES`)."""
    names = getattr(loaded, "classes", None)
    return [str(c) for c in names] if names else list(CLASSES)


Memo = Callable[[Hashable, Callable[[], Any]], Any]
"""``memo(key, compute)``: :func:`deepoxymap.ui.state.cached` in a session, :func:`deepoxymap.ui.inference.shared` in the background."""


def _session_memo(lc: state.LoadedCase) -> Memo:
    return lambda key, compute: state.cached(lc.token, key, compute)


def _pre(case: Case, spec: PreprocessSpec, mk: str, memo: Memo) -> Preprocessed:
    return memo(("pre", mk), lambda: preprocess_case(case, spec))


def preprocessed(lc: state.LoadedCase, loaded: LoadedModel) -> Preprocessed:
    """``preprocess_case(case, loaded.spec)`` once per case and model: prediction, CAMs and reference masks share it."""
    return _pre(lc.case, loaded.spec, modelinfo.model_key(), _session_memo(lc))


@dataclass(frozen=True)
class PredictionView:
    """A prediction reshaped for display.

    Attributes:
        classes: class names in output order.
        slices: one row per slice: ``slice`` (1-based, base -> apex), a column per class,
            ``call``; with MC-dropout also ``<class> sd`` columns.
        case_probs: ``{class: probability}`` of the case.
        case_sd: ``{class: SD}`` over MC-dropout samples, or empty.
        call: the case-level class.
        uncertainty: a scalar summary (e.g. predictive entropy or SD), or ``None``.
        uncertainty_name: what :attr:`uncertainty` is.
        notes: preprocessing notes (fallbacks taken).
        raw: the core object.
    """

    classes: list[str]
    slices: pd.DataFrame
    case_probs: dict[str, float]
    case_sd: dict[str, float] = field(default_factory=dict)
    call: str = ""
    uncertainty: float | None = None
    uncertainty_name: str = ""
    notes: list[str] = field(default_factory=list)
    raw: Any = None


def _view(pred: CasePrediction, classes: list[str]) -> PredictionView:
    """Reshape a ``CasePrediction`` for display (no new numbers beyond a mean over slices)."""
    classes = list(getattr(pred, "classes", None) or classes)
    sp = np.asarray(pred.slice_probs, dtype=float)
    pre = getattr(pred, "preprocessed", None)
    idx = list(getattr(pre, "slice_indices", None) or range(sp.shape[0]))
    table = pd.DataFrame({"slice": [int(i) + 1 for i in idx]})
    if pre is not None and getattr(pre, "frames", None):
        table["frame"] = [int(f) for f in pre.frames]
    for j, c in enumerate(classes):
        table[c] = sp[:, j]
    table["slice call"] = [classes[int(i)] for i in sp.argmax(axis=1)]
    sd = getattr(pred, "mc_std", None)
    if sd is not None:
        for j, c in enumerate(classes):
            table[f"{c} SD"] = np.asarray(sd, dtype=float)[:, j]
    ent = getattr(pred, "mc_entropy", None)
    if ent is not None:
        table["entropy (nats)"] = np.asarray(ent, dtype=float)
    cp = np.asarray(pred.case_probs, dtype=float)
    case_sd: dict[str, float] = {}
    if sd is not None:
        case_sd = {c: float(np.asarray(sd, dtype=float)[:, j].mean()) for j, c in enumerate(classes)}
    return PredictionView(
        classes=classes,
        slices=table,
        case_probs={c: float(cp[j]) for j, c in enumerate(classes)},
        case_sd=case_sd,
        call=str(pred.call),
        uncertainty=float(np.mean(ent)) if ent is not None else None,
        uncertainty_name="mean predictive entropy, nats" if ent is not None else "",
        notes=list(getattr(pred, "notes", []) or []),
        raw=pred,
    )


def _predict(case: Case, loaded: LoadedModel, mk: str, memo: Memo, mc_samples: int) -> PredictionView:
    def run() -> PredictionView:
        pre = _pre(case, loaded.spec, mk, memo)
        pred = inference.run_model(predict_pre, loaded, pre, case_id=case.case_id, mc_samples=int(mc_samples))
        return _view(pred, class_names(loaded))

    return memo(("pred", mk, int(mc_samples)), run)


def predict(lc: state.LoadedCase, *, mc_samples: int = 0) -> PredictionView:
    """The model's call on the case (``mc_samples`` > 0: MC-dropout), once per case/model/setting."""
    return _predict(lc.case, modelinfo.loaded_model(), modelinfo.model_key(), _session_memo(lc), mc_samples)


def last_prediction(lc: state.LoadedCase) -> PredictionView | None:
    """The most recent prediction of this case (any MC setting), or ``None``."""
    store = state.results_store()
    mk = modelinfo.model_key()
    found = [
        v for (tok, key), v in store.items() if tok == lc.token and isinstance(key, tuple) and key[:2] == ("pred", mk)
    ]
    return found[-1] if found else None


# ---------------------------------------------------------------------------
# feature maps
# ---------------------------------------------------------------------------


def methods() -> dict[str, str]:
    """``{registry name: display label}`` of the CAM methods."""
    return {k: v.label for k, v in METHODS.items()}


def method_uses_layer(method: str) -> bool:
    """Whether a method takes a convolutional layer."""
    spec = METHODS.get(method)
    return bool(spec.uses_layer) if spec is not None else True


def layers(loaded: LoadedModel) -> tuple[list[str], str]:
    """Convolutional layer names (last first is not assumed) and the default layer."""
    return list(conv_layer_names(loaded.model)), str(default_layer(loaded.model))


@dataclass(frozen=True)
class SliceCam:
    """A CAM of one slice on the OS-CMR grid.

    Attributes:
        source: float32 ``[R, C]`` in ``[0, 1]`` on the OS-CMR slice grid.
        model_grid: float32 ``[H, W]`` on the network input.
        target_class: explained class name.
        probabilities: softmax of that slice.
        raw: layer-grid map or ``None``.
    """

    source: NDArray[np.float32]
    model_grid: NDArray[np.float32]
    target_class: str
    probabilities: NDArray[np.float32] | None
    raw: NDArray[np.float32] | None


def _cams(
    case: Case,
    loaded: LoadedModel,
    mk: str,
    memo: Memo,
    method: str,
    layer: str | None,
    target: int | None,
    contrast: int | None = None,
) -> list[SliceCam]:
    layer_key = layer if method_uses_layer(method) else None

    def run() -> list[SliceCam]:
        pre = _pre(case, loaded.spec, mk, memo)
        hms = inference.run_model(
            explain_batch, loaded.model, pre.x, method, target, layer_key, contrast_class=contrast
        )
        out = []
        for h, t in zip(hms, pre.transforms, strict=True):
            src = h.to_source(t)
            out.append(SliceCam(src.array, h.array, h.class_name, h.probabilities, h.raw))
        return out

    return memo(("cams", mk, method, layer_key, target, contrast), run)


def all_cams(
    lc: state.LoadedCase, method: str, layer: str | None, target: int | None, contrast: int | None = None
) -> list[SliceCam]:
    """CAMs of every slice, mapped onto the OS-CMR grid: one batched call per (method, layer, target, contrast).

    ``contrast``: a class index whose logit is subtracted from the target's (contrastive map), or ``None``.
    Cached per case content.
    """
    memo = _session_memo(lc)
    return _cams(lc.case, modelinfo.loaded_model(), modelinfo.model_key(), memo, method, layer, target, contrast)


def cam(
    lc: state.LoadedCase, row: int, method: str, layer: str | None, target: int | None, contrast: int | None = None
) -> SliceCam:
    """The CAM of row ``row`` of the preprocessed input, on the OS-CMR grid (from :func:`all_cams`)."""
    return all_cams(lc, method, layer, target, contrast)[row]


def raw_feature_maps(lc: state.LoadedCase, row: int, layer: str | None, top_k: int = 8) -> Any:
    """The ``top_k`` most active channels of a layer for one slice (cached)."""
    loaded = modelinfo.loaded_model()
    pre = preprocessed(lc, loaded)
    return state.cached(
        lc.token,
        ("fmaps", modelinfo.model_key(), layer, top_k, row),
        lambda: inference.run_model(feature_maps, loaded.model, pre.x[row], layer=layer, top_k=top_k),
    )


# ---------------------------------------------------------------------------
# slice-matched panels (LGE / T1 / T2 onto the OS-CMR grid)
# ---------------------------------------------------------------------------


def _panel(case: Case, ref: Stack, k: int, role: Role, memo: Memo) -> Panel:
    def run() -> Panel:
        s = settings()
        return compare.match_panel(case, ref, k, role, tol_deg=s.slice_match_tol_deg, max_mm=s.slice_match_max_mm)

    return memo(("panel", ref.series_uid, k, role.value), run)


def panel(lc: state.LoadedCase, ref: Stack, k: int, role: Role) -> Panel:
    """The ``role`` series' slice nearest to OS-CMR slice ``k``, resampled onto its grid (cached)."""
    return _panel(lc.case, ref, k, role, _session_memo(lc))


def reference_stack(lc: state.LoadedCase) -> tuple[Stack, list[int], list[int]]:
    """The OS-CMR stack the model sees, with per-row slice index and frame.

    Uses the model's preprocessing where a model is available; otherwise the
    end-of-breath-hold OS-CMR stack (frame 0).
    """
    try:
        loaded = modelinfo.loaded_model()
        pre = preprocessed(lc, loaded)
        return pre.stack, list(pre.slice_indices), list(pre.frames)
    except Unavailable:
        tps = lc.case.os_timepoints()
        if not tps:
            raise Unavailable("Feature maps need an OS-CMR series: set the roles on the Load case page.") from None
        stack = tps.get("bh-end") or list(tps.values())[-1]
        return stack, list(range(stack.n_slices)), [0] * stack.n_slices


def reference_lesion(case: Case, series_uid: str, k: int, frame: int = 0) -> NDArray[np.float32] | None:
    """THE reference lesion of slice ``k`` of a series (:func:`deepoxymap.compare.reference_lesion`)."""
    return compare.reference_lesion(case, series_uid, k, frame)


def view_box(
    lc: state.LoadedCase, stack: Stack, k: int, margin: float = 1.15
) -> tuple[float, float, float, float] | None:
    """The region the model sees on slice ``k`` (its LV-centred crop), in mm axes ``(x0, x1, y0, y1)``.

    ``None`` without a model (the whole image is shown then).
    """
    try:
        loaded = modelinfo.loaded_model()
        pre = preprocessed(lc, loaded)
    except Unavailable:
        return None
    if k not in pre.slice_indices:
        return None
    return compare.crop_extent_mm(pre.transforms[pre.slice_indices.index(k)], stack.geometry.pixel_spacing, margin)


def case_has_lesion_masks(case: Case) -> bool:
    """Whether the case carries reference label maps (ground truth or drawn)."""
    return bool(case.masks)


# ---------------------------------------------------------------------------
# background: warm the shipped model, prefetch a new case
# ---------------------------------------------------------------------------


def _warm_job(path: Any) -> None:
    """Load the model (the pages' process-wide copy) and trace its forward pass and default Grad-CAM."""
    loaded = modelinfo.loaded_model(path)
    size = int(loaded.spec.input_size)
    x = np.zeros((1, size, size, 3), np.float32)
    layer = default_layer(loaded.model)

    def trace() -> None:  # one worker turn: a session's first call waits for all of it, not part of it
        predict_array(loaded.model, x)
        explain_batch(loaded.model, x, "gradcam", None, layer)

    inference.run_model(trace)
    inference.settle_heap()


def warm_model() -> None:
    """Start loading and tracing the shipped model in the background (once per server process).

    :func:`deepoxymap.ui.warmup.start` (``app.py`` calls it before its own imports).
    """
    from deepoxymap.ui import warmup

    warmup.start()


def prefetch(lc: state.LoadedCase) -> None:
    """Compute this case's Feature-maps work in the background, at this session's settings.

    The preprocessed input, the prediction, the CAMs of every slice (this session's method,
    layer and target, else the page's defaults) and every matched LGE/T1/T2 panel go into the
    process-wide store under the same keys the page asks for, so the page finds them ready
    or waits for the computation already running. Does nothing without a model file.
    """
    import streamlit as st

    from deepoxymap.ui import featureview

    path = modelinfo.current_path()
    if not path.is_file():
        return
    mk = modelinfo.model_key(path)
    method = st.session_state.get(featureview.METHOD_KEY, featureview.DEFAULT_METHOD)
    layer = st.session_state.get(featureview.LAYER_KEY)
    choice = st.session_state.get(featureview.TARGET_KEY, "predicted")
    against = bool(st.session_state.get(featureview.CONTRAST_KEY, False))
    case = lc.case

    def job() -> None:
        h = inference.case_key(case)

        def memo(key: Hashable, compute: Callable[[], Any]) -> Any:
            return inference.shared(h, key, compute)

        # the input and the matched panels need only the card: they run while the model loads
        card = modelinfo.read_card(path) or {}
        pre = _pre(case, PreprocessSpec.from_dict(card["preprocessing"]), mk, memo)
        for k in sorted(set(pre.slice_indices)):
            for role in PANEL_ROLES:
                _panel(case, pre.stack, k, role, memo)
        loaded = modelinfo.loaded_model(path)
        _predict(case, loaded, mk, memo, 0)
        if method in METHODS:
            names = conv_layer_names(loaded.model)
            lay = layer if layer in names else default_layer(loaded.model)
            classes = class_names(loaded)
            target = classes.index(choice) if choice in classes else None
            contrast = featureview.contrast_index(against, method, classes)
            _cams(case, loaded, mk, memo, method, lay, target, contrast)

    inference.prefetch(job)
