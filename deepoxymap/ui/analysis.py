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

from deepoxymap import CLASSES
from deepoxymap.case import Case, Role, Stack, nearest_slice, resample_slice
from deepoxymap.config import settings
from deepoxymap.errors import GeometryError
from deepoxymap.ui import modelinfo, state
from deepoxymap.ui.core import Missing, need, need_any

# ---------------------------------------------------------------------------
# model, input, prediction
# ---------------------------------------------------------------------------


def class_names(loaded: Any) -> list[str]:
    """Output class names of a loaded model (``loaded.classes``, else :data:`deepoxymap.CLASSES`)."""
    names = getattr(loaded, "classes", None)
    return [str(c) for c in names] if names else list(CLASSES)


def preprocessed(lc: state.LoadedCase, loaded: Any) -> Any:
    """``preprocess_case(case, loaded.spec)`` once per case and model."""
    pre_fn = need("deepoxymap.model.preprocess", "preprocess_case", "Preprocessing for the classifier")
    spec = getattr(loaded, "spec", None)
    if spec is None:
        spec_cls = need("deepoxymap.model.preprocess", "PreprocessSpec", "Preprocessing for the classifier")
        spec = spec_cls()
    return state.cached(lc.token, ("pre", modelinfo.model_key()), lambda: pre_fn(lc.case, spec))


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


def _view(pred: Any, classes: list[str]) -> PredictionView:
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
    predict_case = need_any(
        [("deepoxymap.model", "predict_case"), ("deepoxymap.model.predict", "predict_case")], "Classification"
    )

    def run() -> PredictionView:
        kwargs: dict[str, Any] = {}
        if mc_samples:
            kwargs["mc_samples"] = int(mc_samples)
        pred = predict_case(loaded, lc.case, **kwargs)
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
    reg = need("deepoxymap.explain", "METHODS", "Feature maps (class activation maps)")
    return {k: getattr(v, "label", k) for k, v in reg.items()}


def method_uses_layer(method: str) -> bool:
    """Whether a method takes a convolutional layer."""
    reg = need("deepoxymap.explain", "METHODS", "Feature maps")
    return bool(getattr(reg.get(method), "uses_layer", True))


def layers(loaded: Any) -> tuple[list[str], str]:
    """Convolutional layer names (last first is not assumed) and the default layer."""
    names = need("deepoxymap.explain", "conv_layer_names", "Feature maps")(loaded.model)
    default = need("deepoxymap.explain", "default_layer", "Feature maps")(loaded.model)
    return list(names), str(default)


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


def cam(lc: state.LoadedCase, row: int, method: str, layer: str | None, target: int | None) -> SliceCam:
    """The CAM of row ``row`` of the preprocessed input, mapped onto the OS-CMR grid (cached)."""
    loaded = modelinfo.loaded_model()
    pre = preprocessed(lc, loaded)
    explain = need("deepoxymap.explain", "explain", "Feature maps")
    layer_key = layer if method_uses_layer(method) else None

    def run() -> SliceCam:
        h = explain(loaded.model, pre.x[row], method=method, target_class=target, layer=layer_key)
        src = h.to_source(pre.transforms[row])
        return SliceCam(src.array, h.array, h.class_name, h.probabilities, h.raw)

    return state.cached(lc.token, ("cam", modelinfo.model_key(), method, layer_key, target, row), run)


def all_cams(lc: state.LoadedCase, method: str, layer: str | None, target: int | None) -> list[SliceCam]:
    """CAMs of every slice (for bullseyes and agreement)."""
    loaded = modelinfo.loaded_model()
    pre = preprocessed(lc, loaded)
    return [cam(lc, i, method, layer, target) for i in range(pre.x.shape[0])]


def raw_feature_maps(lc: state.LoadedCase, row: int, layer: str | None, top_k: int = 8) -> Any:
    """The ``top_k`` most active channels of a layer for one slice (cached)."""
    loaded = modelinfo.loaded_model()
    pre = preprocessed(lc, loaded)
    fm = need("deepoxymap.explain", "feature_maps", "Raw feature maps")
    return state.cached(
        lc.token,
        ("fmaps", modelinfo.model_key(), layer, top_k, row),
        lambda: fm(loaded.model, pre.x[row], layer=layer, top_k=top_k),
    )


# ---------------------------------------------------------------------------
# slice-matched panels (LGE / T1 / T2 onto the OS-CMR grid)
# ---------------------------------------------------------------------------

PANEL_ROLES = (Role.LGE, Role.T1_MAP, Role.T2_MAP)


@dataclass(frozen=True)
class Panel:
    """One series resampled onto an OS-CMR slice.

    Attributes:
        role: LGE, T1 map or T2 map.
        image: float32 ``[R, C]`` on the OS-CMR grid, or ``None`` when not matched.
        other_index: matched slice of that series.
        distance_mm: distance between the planes.
        message: why there is no image (``None`` when there is).
        stack: the series' stack (window, units).
        labels: its reference label map resampled (nearest) onto the OS-CMR grid, or ``None``.
    """

    role: Role
    image: NDArray[np.float32] | None
    other_index: int | None
    distance_mm: float | None
    message: str | None
    stack: Stack | None
    labels: NDArray[np.float32] | None = None


def panel(lc: state.LoadedCase, ref: Stack, k: int, role: Role) -> Panel:
    """The ``role`` series' slice nearest to OS-CMR slice ``k``, resampled onto its grid (cached)."""

    def run() -> Panel:
        s = settings()
        series = lc.case.first(role)
        if series is None:
            return Panel(role, None, None, None, f"No {role.label} series in this case.", None)
        other = series.stack
        try:
            m = nearest_slice(ref.geometry, k, other.geometry, tol_deg=s.slice_match_tol_deg)
        except GeometryError as exc:
            return Panel(role, None, None, None, f"Cannot match slices: {exc.message}.", other)
        if m.distance_mm > s.slice_match_max_mm:
            return Panel(
                role,
                None,
                m.other_index,
                m.distance_mm,
                f"No {role.label} slice within {s.slice_match_max_mm:.0f} mm (nearest is {m.distance_mm:.1f} mm away).",
                other,
            )
        img = resample_slice(other.image(m.other_index, 0), other.geometry, m.other_index, ref.geometry, k, order=1)
        labels = None
        lesion = reference_lesion(lc.case, series.uid, m.other_index, 0)
        if lesion is not None:
            labels = resample_slice(lesion, other.geometry, m.other_index, ref.geometry, k, order=0)
        return Panel(role, img, m.other_index, m.distance_mm, None, other, labels)

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
    except Missing:
        tps = lc.case.os_timepoints()
        if not tps:
            raise Missing("Feature maps need an OS-CMR series: set the roles on the Load case page.") from None
        stack = tps.get("bh-end") or list(tps.values())[-1]
        return stack, list(range(stack.n_slices)), [0] * stack.n_slices


def reference_lesion(case: Case, series_uid: str, k: int, frame: int = 0) -> NDArray[np.float32] | None:
    """The reference lesion (scar or edema) of slice ``k`` of a series: float32 0/1 on its grid, or ``None``.

    From the case's label maps (``deepoxymap.cardiac.masks``, phantom label scheme)
    and, where present, the full edema extent in ``case.truth["edema_masks"]``.
    """
    mask = case.mask_for(series_uid)
    if mask is None or k >= mask.n_slices:
        return None
    masks_from_labels = need("deepoxymap.cardiac.masks", "masks_from_labels", "Reference lesion outlines")
    labels = mask.image(k, min(frame, mask.n_frames - 1))
    extent = None
    edema = (case.truth or {}).get("edema_masks") if isinstance(case.truth, dict) else None
    if isinstance(edema, dict) and series_uid in edema:
        e = np.asarray(edema[series_uid])
        if e.ndim == 3 and k < e.shape[0] and e.shape[1:] == labels.shape:
            extent = e[k]
    m = masks_from_labels(labels, edema_extent=extent)
    lesion = np.asarray(m.scar | m.edema)
    return lesion.astype(np.float32) if lesion.any() else None


def view_box(
    lc: state.LoadedCase, stack: Stack, k: int, margin: float = 1.15
) -> tuple[float, float, float, float] | None:
    """The region the model sees on slice ``k`` (its LV-centred crop), in mm axes ``(x0, x1, y0, y1)``.

    ``None`` without a model (the whole image is shown then).
    """
    try:
        loaded = modelinfo.loaded_model()
        pre = preprocessed(lc, loaded)
    except Missing:
        return None
    if k not in pre.slice_indices:
        return None
    t = pre.transforms[pre.slice_indices.index(k)]
    rs, cs = stack.geometry.pixel_spacing
    half_r = t.model_shape[0] * t.scale[0] * rs / 2 * margin
    half_c = t.model_shape[1] * t.scale[1] * cs / 2 * margin
    yc, xc = t.center[0] * rs, t.center[1] * cs
    return (xc - half_c, xc + half_c, yc - half_r, yc + half_r)


def case_has_lesion_masks(case: Case) -> bool:
    """Whether the case carries reference label maps (ground truth or drawn)."""
    return bool(case.masks)
