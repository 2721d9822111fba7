"""Everything one case's exports say, computed once: :func:`analyse_case` -> :class:`CaseAnalysis`.

The Parametric Map, the SEGs, the SR and the PDF report are views of one
:class:`CaseAnalysis`, so they always agree with each other and with the
Feature-maps page (which passes in what it already computed: the preprocessed
input, the prediction and the CAMs).

Numbers and where they come from:

* class probabilities and the call: :func:`deepoxymap.model.predict.predict`
  (mean of the slice probabilities);
* CAMs on the OS-CMR slice grid: :func:`deepoxymap.explain.methods.explain_batch`
  then ``Heatmap.to_source`` (float32 ``[rows, cols]`` in ``[0, 1]``);
* per AHA segment (float64 ``[17]``, index ``s - 1``, NaN where absent):
  CAM energy (share of the map, 0-1) and reference-lesion transmurality
  (0-1) from :func:`deepoxymap.audit.case_metrics`; T1 and T2 (ms) as means of
  the slice-matched maps over the OS-CMR segment maps
  (:func:`deepoxymap.compare.segment_means`); the OS response (percent
  signal change, baseline -> the model's time point) from
  :func:`deepoxymap.cardiac.os_response`, averaged over the slices holding a segment;
* agreement figures (:data:`AGREEMENT_FIGURES`) at the CAM threshold;
* scar on the LGE grid (:func:`deepoxymap.cardiac.scar.quantify_scar` with its
  defaults: n-SD 3 grown to 1.5 SD, per-slice lower-mode remote) and edema on
  the T2 grid (:func:`deepoxymap.cardiac.edema.edema_mask`, remote + 2 SD), both
  inside the myocardium of the case's label maps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.case import Case, Role, Series, Stack
from deepoxymap.compare import crop_box_px
from deepoxymap.errors import CaseError, ExportError

if TYPE_CHECKING:
    from deepoxymap.audit.reference import CaseReference
    from deepoxymap.model.loading import LoadedModel
    from deepoxymap.model.predict import CasePrediction
    from deepoxymap.model.preprocess import Preprocessed

__all__ = ["AGREEMENT_FIGURES", "SEGMENT_QUANTITIES", "CaseAnalysis", "LesionMask", "analyse_case", "model_identity"]

log = logging.getLogger(__name__)

AGREEMENT_FIGURES: dict[str, tuple[str, str]] = {
    "pointing": ("Pointing game (hit within 5 mm)", "1"),
    "pointing_myo": ("Pointing game, myocardium only", "1"),
    "ebpg": ("Energy inside the lesion", "1"),
    "ebpg_myo": ("Energy inside the lesion, myocardium only", "1"),
    "dice": ("Dice of thresholded map", "1"),
    "iou": ("IoU of thresholded map", "1"),
    "dice_myo": ("Dice, myocardium only", "1"),
    "iou_myo": ("IoU, myocardium only", "1"),
    "kappa": ("Segment agreement (Cohen's kappa)", "1"),
    "energy_in_myocardium": ("Energy in the myocardium", "1"),
    "peak_in_myocardium": ("Peak inside the myocardium", "1"),
    "area50_mm2": ("Area holding half the energy", "mm2"),
    "segment_entropy": ("Spread over segments (normalised entropy)", "1"),
}
"""Agreement figure key (:func:`deepoxymap.audit.case_metrics`) -> (name, UCUM unit)."""

SEGMENT_QUANTITIES: dict[str, tuple[str, str]] = {
    "cam_energy": ("CAM energy", "%"),
    "transmurality": ("Lesion transmurality", "%"),
    "t1_ms": ("T1", "ms"),
    "t2_ms": ("T2", "ms"),
    "os_response": ("OS response", "%"),
}
"""Per-segment quantity key -> (name, unit as reported: ``%`` values are 0-100)."""


@dataclass(frozen=True, eq=False)
class LesionMask:
    """A lesion segmented on its own series (scar on LGE, edema on T2).

    Attributes:
        kind: ``"scar"`` or ``"edema"``.
        series: the series it lies on (its source images are referenced).
        mask: bool ``[slice, rows, cols]`` on that series' grid (slices base -> apex).
        percent_of_myocardium: 100 x lesion / myocardium pixels over the stack.
        method: how it was found, in words (threshold rule and value).
    """

    kind: str
    series: Series
    mask: NDArray[np.bool_]
    percent_of_myocardium: float
    method: str


@dataclass(frozen=True, eq=False)
class CaseAnalysis:
    """One case, one model, one CAM setting: everything the exports hold.

    Attributes:
        case_id: the case (non-identifying).
        label: the reference class if known (demo and cohort cases), else ``None``.
        series: the OS-CMR series the model read (its stack: :attr:`stack`).
        slice_indices: stack slice per row (base -> apex), the rows the model saw.
        frames: cine frame per row (the frame the model saw).
        cams: float32 ``[rows, cols]`` in ``[0, 1]`` per row, on the OS-CMR slice grid.
        method / layer: the CAM method and layer (``None``: the method's default).
        explained: class explained per row.
        threshold: CAM threshold (fraction of the maximum) of the binary SEG and the Dice/IoU.
        classes: class names in output order.
        slice_probs: float32 ``[n, C]``; case_probs: float32 ``[C]`` (mean over slices).
        call: the case-level class.
        model_name / model_version: from the model card (version: package version + file hash).
        caveats: the model card's intended use and training note, verbatim.
        segments: :data:`SEGMENT_QUANTITIES` key -> float64 ``[17]`` (``%`` quantities 0-100; NaN absent).
        agreement: :data:`AGREEMENT_FIGURES` key -> value (finite values only).
        lesion_kind: the reference lesion scored (``scar``, ``edema``, ``none``, ``any``) or ``""`` without masks.
        scar / edema: :class:`LesionMask` or ``None`` (no LGE / T2 series or no label map on it).
        levels: AHA level per row (``""`` unknown).
        crop_boxes: per row, ``(r0, r1, c0, c1)`` pixel box of the region the model saw (its LV-centred crop).
        notes: what could not be computed and why.
    """

    case_id: str
    label: str | None
    series: Series
    slice_indices: list[int]
    frames: list[int]
    cams: list[NDArray[np.float32]]
    method: str
    layer: str | None
    explained: list[str]
    threshold: float
    classes: tuple[str, ...]
    slice_probs: NDArray[np.float32]
    case_probs: NDArray[np.float32]
    call: str
    model_name: str
    model_version: str
    caveats: list[str] = field(default_factory=list)
    segments: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    lesion_kind: str = ""
    scar: LesionMask | None = None
    edema: LesionMask | None = None
    levels: list[str] = field(default_factory=list)
    crop_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def stack(self) -> Stack:
        """The OS-CMR stack the model read."""
        return self.series.stack

    @property
    def cam_volume(self) -> NDArray[np.float32]:
        """float32 ``[n, rows, cols]``: the CAMs stacked in row order."""
        return np.stack([np.asarray(c, dtype=np.float32) for c in self.cams])

    def probabilities(self) -> dict[str, float]:
        """``{class: case probability}``."""
        return {c: float(p) for c, p in zip(self.classes, self.case_probs, strict=True)}


def model_identity(loaded: LoadedModel) -> tuple[str, str]:
    """``(name, version)`` of a model from its card: version is ``<package version>+<sha256[:12]>``."""
    card = loaded.card
    name = str(card.get("name") or loaded.path.stem)
    sha = str((card.get("file") or {}).get("sha256") or "")[:12]
    version = str(card.get("deepoxymap_version") or "0")
    return name, f"{version}+{sha}" if sha else version


def _series_of(case: Case, stack: Stack) -> Series:
    for s in case.series:
        if s.stack is stack:
            return s
    for s in case.series:
        if s.uid == stack.series_uid:
            return s
    raise ExportError("the OS-CMR stack the model read is not one of the case's series", source=case.case_id)


def _labels_3d(case: Case, series: Series) -> NDArray[np.int64] | None:
    mask = case.mask_for(series.uid)
    if mask is None or mask.geometry.shape != series.stack.geometry.shape or mask.n_slices != series.stack.n_slices:
        return None
    return np.rint(mask.data[:, 0]).astype(np.int64)


def _scar(case: Case, notes: list[str]) -> LesionMask | None:
    from deepoxymap.cardiac.masks import masks_from_labels
    from deepoxymap.cardiac.scar import quantify_scar

    lge = case.first(Role.LGE)
    if lge is None:
        notes.append("scar: no LGE series")
        return None
    labels = _labels_3d(case, lge)
    if labels is None:
        notes.append("scar: no myocardium label map on the LGE series")
        return None
    myo = masks_from_labels(labels).myocardium
    if myo.sum() < 2:
        notes.append("scar: the LGE label map holds no myocardium")
        return None
    r = quantify_scar(lge.stack.data[:, 0], myo, pixel_spacing=lge.stack.geometry.pixel_spacing)
    how = f"LGE {r.describe()}, components >= 20 mm2, >= 3 px thick or on the endocardium"
    return LesionMask("scar", lge, r.mask, float(r.percent_of_myocardium), how)


def _edema(case: Case, notes: list[str]) -> LesionMask | None:
    from deepoxymap.cardiac.edema import edema_mask
    from deepoxymap.cardiac.masks import masks_from_labels

    t2 = case.first(Role.T2_MAP)
    if t2 is None:
        notes.append("edema: no T2 map")
        return None
    labels = _labels_3d(case, t2)
    if labels is None:
        notes.append("edema: no myocardium label map on the T2 map")
        return None
    myo = masks_from_labels(labels).myocardium
    if myo.sum() < 2:
        notes.append("edema: the T2 label map holds no myocardium")
        return None
    r = edema_mask(t2.stack.data[:, 0], myo, n_sd=2.0)
    how = f"T2 > remote + 2 SD ({r.threshold_ms:.1f} ms)"
    return LesionMask("edema", t2, r.mask, float(r.percent_of_myocardium), how)


def _segments(
    case: Case, pre: Preprocessed, cm: CaseReference, met: dict[str, Any], notes: list[str]
) -> dict[str, NDArray[np.float64]]:
    from deepoxymap.cardiac.bullseye import as_segment_array
    from deepoxymap.cardiac.oxygenation import os_response
    from deepoxymap.compare import match_panel, segment_means
    from deepoxymap.config import settings

    out: dict[str, NDArray[np.float64]] = {
        "cam_energy": 100.0 * as_segment_array([np.nan if v is None else v for v in met["seg_cam_energy"]]),
        "transmurality": 100.0 * as_segment_array([np.nan if v is None else v for v in met["seg_lesion"]]),
    }
    s = settings()
    for role, key in ((Role.T1_MAP, "t1_ms"), (Role.T2_MAP, "t2_ms")):
        if case.first(role) is None:
            notes.append(f"{key[:2].upper()} per segment: no {role.label} series")
            continue
        pairs = []
        for sd in cm.slices:
            p = match_panel(
                case, pre.stack, sd.slice_index, role, tol_deg=s.slice_match_tol_deg, max_mm=s.slice_match_max_mm
            )
            if p.image is not None:
                pairs.append((p.image, sd.seg_map))
        out[key] = as_segment_array(segment_means([a for a, _ in pairs], [b for _, b in pairs]))
    tps = case.os_timepoints()
    target = pre.timepoint or "bh-end"
    if "baseline" in tps and target in tps and target != "baseline":
        acc: dict[int, list[float]] = {}
        for k, f in zip(pre.slice_indices, pre.frames, strict=True):
            try:
                r = os_response(case, "baseline", target, slice_index=k, frame=f)
            except CaseError as exc:
                notes.append(f"OS response, slice {k + 1}: {exc.message}")
                continue
            for seg, v in r.per_segment.items():
                acc.setdefault(seg, []).append(v)
        out["os_response"] = as_segment_array({seg: float(np.mean(v)) for seg, v in acc.items()})
    else:
        notes.append(f"OS response: needs the baseline and {target} time points")
    return out


def analyse_case(
    case: Case,
    loaded: LoadedModel,
    *,
    method: str = "gradcam",
    layer: str | None = None,
    target: int | None = None,
    contrast: int | None = None,
    threshold: float = 0.5,
    pre: Preprocessed | None = None,
    prediction: CasePrediction | None = None,
    cams: Sequence[NDArray[Any]] | None = None,
    reference: CaseReference | None = None,
) -> CaseAnalysis:
    """Predict, explain and measure one case for export (see the module doc).

    Args:
        case: the case (a label map on the OS-CMR series enables the per-segment values and agreement).
        loaded: the classifier (:func:`deepoxymap.model.loading.load_model`).
        method / layer / target: CAM method, layer (``None``: default) and target class index (``None``: predicted).
        contrast: class index whose logit the map subtracts (contrastive map, recorded in ``explained`` as
            ``"ischemic vs healthy"``), or ``None``.
        threshold: CAM threshold, fraction of the maximum (binary SEG, Dice/IoU, segment calls).
        pre / prediction / cams / reference: already computed by the caller (the app); computed here otherwise.
            ``cams``: float ``[rows, cols]`` per row of ``pre`` on the OS-CMR grid.

    Raises:
        CaseError: the case has nothing the model can read (no OS-CMR series).
        ExportError: ``cams`` do not match the preprocessed rows.
    """
    from deepoxymap.audit import case_metrics, prepare_reference
    from deepoxymap.explain.methods import explain_batch
    from deepoxymap.model.predict import predict
    from deepoxymap.model.preprocess import preprocess_case

    if not 0.0 < threshold < 1.0:
        raise ExportError(f"CAM threshold must lie in (0, 1), got {threshold}")
    pre = pre if pre is not None else preprocess_case(case, loaded.spec)
    pred = prediction if prediction is not None else predict(loaded, pre, case_id=case.case_id)
    explained: list[str]
    if cams is None:
        hms = explain_batch(loaded.model, pre.x, method, target, layer, contrast_class=contrast)
        maps = [h.to_source(t).array for h, t in zip(hms, pre.transforms, strict=True)]
        explained = [str(h.class_name) for h in hms]
    else:
        maps = [np.asarray(c, dtype=np.float32) for c in cams]
        sp = np.asarray(pred.slice_probs)
        explained = [
            loaded.classes[target] if target is not None else loaded.classes[int(np.argmax(sp[i]))]
            for i in range(len(maps))
        ]
    if contrast is not None:
        against = loaded.classes[contrast]
        explained = [e if e == against else f"{e} vs {against}" for e in explained]
    if len(maps) != len(pre.slice_indices):
        raise ExportError(f"{len(maps)} feature maps for {len(pre.slice_indices)} slices", source=case.case_id)
    shape = pre.stack.geometry.shape
    if any(m.shape != shape for m in maps):
        raise ExportError(f"feature maps are not on the OS-CMR grid {shape}", source=case.case_id)
    maps = [np.clip(np.nan_to_num(m.astype(np.float32)), 0.0, 1.0) for m in maps]
    notes = list(pre.notes)
    segments: dict[str, NDArray[np.float64]] = {}
    agreement: dict[str, float] = {}
    kind = ""
    levels: list[str] = []
    if case.mask_for(pre.stack.series_uid) is not None:
        cm = reference if reference is not None else prepare_reference(case, pre)
        met = case_metrics(cm, maps, tau=threshold, tau_myo=threshold, tau_segment=threshold)
        agreement = {
            k: float(met[k]) for k in AGREEMENT_FIGURES if isinstance(met.get(k), (int, float)) and np.isfinite(met[k])
        }
        segments = _segments(case, pre, cm, met, notes)
        kind = cm.lesion_kind
        levels = [sd.level for sd in cm.slices]
    else:
        notes.append("per-segment values and agreement: no label map on the OS-CMR series")
    name, version = model_identity(loaded)
    card = loaded.card
    caveats = [str(v) for v in (card.get("intended_use"), (card.get("training") or {}).get("note")) if v]
    return CaseAnalysis(
        case_id=case.case_id,
        label=case.label,
        series=_series_of(case, pre.stack),
        slice_indices=list(pre.slice_indices),
        frames=list(pre.frames),
        cams=maps,
        method=method,
        layer=layer,
        explained=explained,
        threshold=float(threshold),
        classes=tuple(loaded.classes),
        slice_probs=np.asarray(pred.slice_probs, dtype=np.float32),
        case_probs=np.asarray(pred.case_probs, dtype=np.float32),
        call=str(pred.call),
        model_name=name,
        model_version=version,
        caveats=caveats,
        segments=segments,
        agreement=agreement,
        lesion_kind=kind,
        scar=_scar(case, notes),
        edema=_edema(case, notes),
        levels=levels,
        crop_boxes=[crop_box_px(t, shape) for t in pre.transforms],
        notes=notes,
    )
