"""Per-case model work for the pages, cached in *this session* only.

Every result is memoised with :func:`deepoxymap.ui.state.cached` under the
case's load token, so a slice change re-uses the preprocessed input, the
predictions and any CAM already computed. Nothing here is shared between
users (no ``st.cache_data``): patient images never leave the session.
"""

from __future__ import annotations

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
from deepoxymap.model.predict import CasePrediction
from deepoxymap.model.predict import predict as predict_pre
from deepoxymap.model.preprocess import Preprocessed, preprocess_case
from deepoxymap.ui import modelinfo, state

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


def preprocessed(lc: state.LoadedCase, loaded: LoadedModel) -> Preprocessed:
    """``preprocess_case(case, loaded.spec)`` once per case and model: prediction, CAMs and reference masks share it."""
    return state.cached(lc.token, ("pre", modelinfo.model_key()), lambda: preprocess_case(lc.case, loaded.spec))


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


def predict(lc: state.LoadedCase, *, mc_samples: int = 0) -> PredictionView:
    """The model's call on the case (``mc_samples`` > 0: MC-dropout), once per case/model/setting."""
    loaded = modelinfo.loaded_model()

    def run() -> PredictionView:
        pre = preprocessed(lc, loaded)
        pred = predict_pre(loaded, pre, case_id=lc.case.case_id, mc_samples=int(mc_samples))
        return _view(pred, class_names(loaded))

    return state.cached(lc.token, ("pred", modelinfo.model_key(), int(mc_samples)), run)


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


def all_cams(lc: state.LoadedCase, method: str, layer: str | None, target: int | None) -> list[SliceCam]:
    """CAMs of every slice, mapped onto the OS-CMR grid: one batched call per (method, layer, target), cached."""
    loaded = modelinfo.loaded_model()
    layer_key = layer if method_uses_layer(method) else None

    def run() -> list[SliceCam]:
        pre = preprocessed(lc, loaded)
        hms = explain_batch(loaded.model, pre.x, method, target, layer_key)
        out = []
        for h, t in zip(hms, pre.transforms, strict=True):
            src = h.to_source(t)
            out.append(SliceCam(src.array, h.array, h.class_name, h.probabilities, h.raw))
        return out

    return state.cached(lc.token, ("cams", modelinfo.model_key(), method, layer_key, target), run)


def cam(lc: state.LoadedCase, row: int, method: str, layer: str | None, target: int | None) -> SliceCam:
    """The CAM of row ``row`` of the preprocessed input, on the OS-CMR grid (from :func:`all_cams`)."""
    return all_cams(lc, method, layer, target)[row]


def raw_feature_maps(lc: state.LoadedCase, row: int, layer: str | None, top_k: int = 8) -> Any:
    """The ``top_k`` most active channels of a layer for one slice (cached)."""
    loaded = modelinfo.loaded_model()
    pre = preprocessed(lc, loaded)
    return state.cached(
        lc.token,
        ("fmaps", modelinfo.model_key(), layer, top_k, row),
        lambda: feature_maps(loaded.model, pre.x[row], layer=layer, top_k=top_k),
    )


# ---------------------------------------------------------------------------
# slice-matched panels (LGE / T1 / T2 onto the OS-CMR grid)
# ---------------------------------------------------------------------------


def panel(lc: state.LoadedCase, ref: Stack, k: int, role: Role) -> Panel:
    """The ``role`` series' slice nearest to OS-CMR slice ``k``, resampled onto its grid (cached)."""

    def run() -> Panel:
        s = settings()
        return compare.match_panel(lc.case, ref, k, role, tol_deg=s.slice_match_tol_deg, max_mm=s.slice_match_max_mm)

    return state.cached(lc.token, ("panel", ref.series_uid, k, role.value), run)


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
