"""The audit over a cohort, in memory: predictions, probabilities and agreement of every case.

:func:`run_audit` takes cases (or manifest records, loaded one at a time), a
loaded model and an :class:`AuditConfig`, and returns an :class:`AuditResult`.
It writes nothing: :func:`deepoxymap.audit.report.write_audit` does.
:func:`plan_subjects` is the policy that decides which subjects choose the
thresholds and which are scored; :func:`audit_manifest` is the whole run over
a manifest as ``deepoxymap audit`` and the Cohort audit page use it.

Fairness rules:

* every map is normalised **per case** (one minimum and maximum over all the
  case's slices, ``explain_methods(..., normalize="batch")``), so a lesion-free
  slice of a lesion case is not forced to show a hot spot;
* figures are reported per :data:`AUDIT_CLASSES` group: global edema (phantom
  sub-type ``global``, where the whole myocardium is the lesion and the
  myocardium-only figures are trivial) apart from focal edema;
* beside each Dice stands the ideal-map ceiling at the readout's resolution
  (:func:`~deepoxymap.audit.reference.ideal_heatmaps`), with its own threshold
  chosen on the validation subjects exactly as the CAM's is;
* beside the maps stands the lesion-fill check (:mod:`deepoxymap.audit.evidence`):
  how much the true-class probability falls when the lesion's pixels are replaced
  by remote myocardium, against a same-shaped remote patch. No map can find a
  lesion the classifier does not use.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap import CLASSES
from deepoxymap.audit.evidence import lesion_reliance
from deepoxymap.audit.metrics import (
    case_metrics,
    choose_segment_threshold,
    choose_threshold,
    cohen_kappa,
    segment_calls,
)
from deepoxymap.audit.reference import CaseReference, ideal_heatmaps, prepare_reference
from deepoxymap.case import Case
from deepoxymap.cohort import SubjectRecord, load_case
from deepoxymap.errors import DeepOxyMapError, ExplainError
from deepoxymap.model.calibrate import apply_offset, card_offset

__all__ = [
    "AUDIT_CLASSES",
    "INPUT_LAYER",
    "AuditConfig",
    "AuditResult",
    "ProgressFn",
    "audit_group",
    "fit_thresholds",
    "run_audit",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, message)``: called after each step of :func:`run_audit`."""

INPUT_LAYER = "input"
"""Layer name recorded for methods that use no layer (SmoothGrad: gradients at the input)."""

FIXED_THRESHOLDS = {"tau": 0.5, "tau_myo": 0.5, "tau_segment": 0.5, "tau_ideal": 0.5, "tau_myo_ideal": 0.5}
"""Thresholds (relative to each map's maximum) used when no validation subjects choose them."""

AuditItem = Case | SubjectRecord
"""A case already in memory, or a manifest record loaded when its turn comes."""

AUDIT_CLASSES = ("ischemic", "non-ischemic", "edema-focal", "edema-global", "healthy")
"""The groups the audit reports: the model's classes with edema split by extent (:func:`audit_group`)."""


def audit_group(label: str, subtype: str = "") -> str:
    """The audit group of a case: its class, edema split into ``edema-global`` (sub-type ``global``) and ``edema-focal``.

    Args:
        label: the true class (``deepoxymap.CLASSES``; anything else is returned unchanged).
        subtype: the phantom's sub-type (``focal``, ``AAR``, ``global``...; case-insensitive).
    """
    if label != "edema":
        return label
    return "edema-global" if subtype.strip().lower() == "global" else "edema-focal"


@dataclass(frozen=True)
class AuditConfig:
    """Settings of :func:`run_audit`.

    Attributes:
        methods: registry names of ``deepoxymap.explain``.
        layers: layer names (``None`` entries mean the model's default last conv).
        target: ``"label"`` (explain the true class: localisation of its evidence)
            or ``"predicted"``.
        contrast: a class name (``"healthy"``) whose logit is subtracted from the
            explained class's (contrastive maps: "why this class rather than healthy";
            a healthy case's own map stays plain), or ``None``. Gradient CAMs only.
        tolerance_mm: pointing-game tolerance, mm.
        lesion_extent_min: lesion area fraction for a lesion-positive segment.
        sanity_cases: cases (first per class, round robin) used for the
            randomisation and deletion checks (0 = skip).
        randomize_top: weighted layers re-initialised from the top.
        max_n: Score-CAM maps; smooth_samples: SmoothGrad samples.
        bullseyes: write the PNG bullseyes (for the first layer of each method;
            ``bullseye_all_layers`` for every layer). The plotly data covers every layer.
        small_cohort: below this many subjects no validation third is held out by
            :func:`plan_subjects`: fixed thresholds (:data:`FIXED_THRESHOLDS`) are used.
        default_method / default_layer: the app's default readout, reported as
            ``summary.json``'s ``"default"`` entry and always computed (``None``:
            ``explain.methods.DEFAULT_METHOD`` / the model's last conv).
    """

    methods: tuple[str, ...] = ("gradcam", "gradcam++")
    layers: tuple[str | None, ...] = (None,)
    target: str = "label"
    contrast: str | None = None
    tolerance_mm: float = 5.0
    lesion_extent_min: float = 0.05
    sanity_cases: int = 4
    randomize_top: int = 2
    max_n: int = 16
    smooth_samples: int = 8
    bullseyes: bool = True
    bullseye_all_layers: bool = False
    small_cohort: int = 12
    default_method: str | None = None
    default_layer: str | None = None

    def __post_init__(self) -> None:
        _contrast_index(self)  # an unknown contrast class, or one with a non-gradient method, fails here


@dataclass
class AuditResult:
    """What :func:`run_audit` computed (nothing is written).

    Attributes:
        per_case: one dict per (case, method, layer).
        summary: one dict per (class, method, layer).
        sanity: one dict per (method, layer).
        thresholds: ``"method|layer" -> {"tau", "tau_myo", "tau_segment", ...}``.
        subjects: scored case ids, in order.
        labels: their true classes (``""`` if unknown).
        subtypes: their sub-types.
        probabilities: float32 ``[n_cases, C]`` case-level probabilities (mean of the slices' softmax).
        calls: the model's case-level class per case.
        segments: ``"subject|method|layer" ->`` per-segment CAM energy and lesion
            transmurality (17-lists), the lesion kind, a title, and whether a PNG is wanted.
        layers: the resolved layer names (fused layers ``"+"``-joined).
        config: the settings the run used (the default readout added to its methods and layers).
        groups: the :func:`audit_group` of each scored case.
        default: ``(method, layer)`` of the app's default readout.
        notes: caveats (e.g. how the validation subjects were chosen).
        seconds: wall time of the run.
        files: paths written by :func:`deepoxymap.audit.report.write_audit`.
        failed: one dict per subject that could not be audited (``subject``, manifest
            ``line`` (0: an in-memory case), ``phase`` (``validation``/``test``), ``error``);
            the other subjects still ran. Written as ``failed.csv``.
        cached: results read from the result cache instead of computed (subject ids,
            ``ID.validation``, ``sanity``).
    """

    per_case: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    sanity: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    subtypes: list[str] = field(default_factory=list)
    probabilities: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, len(CLASSES)), np.float32))
    calls: list[str] = field(default_factory=list)
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    layers: tuple[str, ...] = ()
    config: AuditConfig = field(default_factory=AuditConfig)
    groups: list[str] = field(default_factory=list)
    default: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)

    @property
    def markdown(self) -> str:
        """The summary tables as markdown (:func:`deepoxymap.audit.report.audit_markdown`)."""
        from deepoxymap.audit.report import audit_markdown

        return audit_markdown(self)


def _key(method: str, layer: str) -> str:
    return f"{method}|{layer}"


def layers_for(method: str, layers: Sequence[str]) -> list[str]:
    """The layers a method is computed at (:data:`INPUT_LAYER` for a method that takes none)."""
    from deepoxymap.explain.methods import METHODS, check_method

    return list(layers) if METHODS[check_method(method)].uses_layer else [INPUT_LAYER]


HeatmapSet = tuple[list[NDArray[np.float32]], list[int], NDArray[np.float32]]


def _grid(model: Any, layer: str) -> tuple[int, int]:
    """The feature grid ``(h, w)`` a layer reads out on (the model input for :data:`INPUT_LAYER`)."""
    from deepoxymap.explain.methods import layer_grid

    if layer == INPUT_LAYER:
        return int(model.inputs[0].shape[1]), int(model.inputs[0].shape[2])
    return layer_grid(model, layer)


def _ideal(model: Any, cm: CaseReference, layers: Sequence[str]) -> dict[str, list[NDArray[np.float32]]]:
    """The ideal map of each layer for one case (one computation per distinct grid)."""
    by_grid: dict[tuple[int, int], list[NDArray[np.float32]]] = {}
    out = {}
    for lyr in dict.fromkeys(layers):
        g = _grid(model, lyr)
        if g not in by_grid:
            by_grid[g] = ideal_heatmaps(cm, g)
        out[lyr] = by_grid[g]
    return out


def _contrast_index(cfg: AuditConfig) -> int | None:
    """The class index of ``cfg.contrast`` (``None`` without one)."""
    if cfg.contrast is None:
        return None
    if cfg.contrast not in CLASSES:
        raise ExplainError(f"unknown contrast class {cfg.contrast!r}", hint=f"use one of {list(CLASSES)}")
    from deepoxymap.explain.methods import supports_contrast

    if plain := [m for m in cfg.methods if not supports_contrast(m)]:
        raise ExplainError(f"a contrast class needs gradient CAMs, not {plain[0]}", hint="drop it from --methods")
    return CLASSES.index(cfg.contrast)


def _all_heatmaps(
    model: Any, cm: CaseReference, layers: Sequence[str], cfg: AuditConfig
) -> dict[tuple[str, str], HeatmapSet]:
    """Every (method, layer) heatmap of a case on the OS-CMR grid, normalised per case; one gradient pass per layer."""
    from deepoxymap.explain.methods import check_method, explain_methods

    tgt: int | None = CLASSES.index(cm.label) if cfg.target == "label" and cm.label in CLASSES else None
    contrast = _contrast_index(cfg)
    out: dict[tuple[str, str], HeatmapSet] = {}
    by_layer: dict[str, list[str]] = {}
    for m in cfg.methods:
        for lyr in layers_for(m, layers):
            by_layer.setdefault(lyr, []).append(m)
    for lyr, ms in by_layer.items():
        res = explain_methods(
            model,
            cm.x,
            ms,
            tgt,
            None if lyr == INPUT_LAYER else lyr,
            normalize="batch",  # one maximum over the case's slices
            max_n=cfg.max_n,
            smooth_samples=cfg.smooth_samples,
            contrast_class=contrast,
        )
        for m in ms:
            hms = res[check_method(m)]
            src = [h.to_source(t).array for h, t in zip(hms, cm.transforms, strict=True)]
            probs = np.stack([h.probabilities for h in hms if h.probabilities is not None])
            out[(m, lyr)] = (src, [h.target_class for h in hms], probs)
    return out


def _reference(item: AuditItem, loaded: Any) -> CaseReference:
    from deepoxymap.model.preprocess import preprocess_case

    case = load_case(item) if isinstance(item, SubjectRecord) else item
    subtype = item.subtype if isinstance(item, SubjectRecord) else ""
    return prepare_reference(case, preprocess_case(case, loaded.spec), subtype=subtype)


def _item_id(item: AuditItem) -> str:
    return item.subject if isinstance(item, SubjectRecord) else item.case_id


def resolve_layers(model: Any, config: AuditConfig) -> tuple[str, ...]:
    """The config's layers with ``None`` replaced by the model's default layer, fused names canonical (shallow first)."""
    from deepoxymap.explain.methods import layer_names

    return tuple(dict.fromkeys("+".join(layer_names(model, lyr or None)) for lyr in config.layers))


def with_default(model: Any, config: AuditConfig) -> tuple[AuditConfig, tuple[str, str]]:
    """The config with the default readout added to its methods and layers, and that ``(method, layer)``.

    The default method is ``config.default_method`` (else ``explain.methods.DEFAULT_METHOD``), its layer
    ``config.default_layer`` (else the model's last conv; :data:`INPUT_LAYER` for a method without layer).
    """
    import dataclasses

    from deepoxymap.explain.methods import DEFAULT_METHOD, METHODS, check_method, layer_names

    method = check_method(config.default_method or DEFAULT_METHOD)
    methods = tuple(config.methods)
    if method not in {check_method(m) for m in methods}:
        methods = (*methods, method)
    else:
        method = next(m for m in methods if check_method(m) == method)
    if not METHODS[check_method(method)].uses_layer:
        return dataclasses.replace(config, methods=methods), (method, INPUT_LAYER)
    layer = "+".join(layer_names(model, config.default_layer or None))
    layers = resolve_layers(model, config)
    cfg = dataclasses.replace(config, methods=methods, layers=layers if layer in layers else (*layers, layer))
    return cfg, (method, layer)


# ---------------------------------------------------------------------------
# per-subject tasks (run in this process, in spawned workers or on Dask: deepoxymap.parallel)
# ---------------------------------------------------------------------------

CACHE_VERSION = 2  # 2: per-case rows carry the lesion-fill check
"""Bumped when a task's result changes for the same inputs (invalidates every cached audit entry)."""


@dataclass(frozen=True)
class _Job:
    """What every task of one audit shares (picklable; see :class:`deepoxymap.parallel.ModelRef`)."""

    model: Any
    config: AuditConfig
    layers: tuple[str, ...]
    thresholds: dict[str, dict[str, float]] | None = None


def item_fingerprint(item: AuditItem) -> str | None:
    """:func:`deepoxymap.model.data.record_fingerprint` of a manifest record; ``None`` for an in-memory case."""
    if not isinstance(item, SubjectRecord):
        return None
    from deepoxymap.model.data import record_fingerprint

    return record_fingerprint(item)


def _job_loaded(job: _Job) -> Any:
    """The job's model in this process: the caller's in process, loaded once per worker elsewhere."""
    return job.model.get()


def _validation_arrays(job: _Job, item: AuditItem) -> dict[str, Any]:
    """One validation case: its maps, ideal maps, lesion and myocardium per readout (inputs of the threshold choice)."""
    loaded = _job_loaded(job)
    config, layers = job.config, job.layers
    cm = _reference(item, loaded)
    allh = _all_heatmaps(loaded.model, cm, layers, config)
    ideal = _ideal(loaded.model, cm, [lyr for m in config.methods for lyr in layers_for(m, layers)])
    L = np.stack([x.lesion for x in cm.slices])
    M = np.stack([x.myocardium for x in cm.slices])
    per: dict[str, Any] = {}
    for method in config.methods:
        for layer in layers_for(method, layers):
            hm, _, _ = allh[(method, layer)]
            entry: dict[str, Any] = {"h": np.stack(hm), "i": np.stack(ideal[layer]), "sm": None, "se": None}
            if L.any():
                mh, le, pr = segment_calls(hm, [x.seg_map for x in cm.slices], list(L))
                entry["sm"], entry["se"] = np.asarray(mh[pr]), np.asarray(le[pr])
            per[_key(method, layer)] = entry
    return {"subject": cm.subject, "l": L, "m": M, "per": per}


def _case_result(job: _Job, item: AuditItem) -> dict[str, Any]:
    """One scored case: its per-case rows, pooled segment calls, per-segment data and case probabilities."""
    loaded = _job_loaded(job)
    config, layers, model = job.config, job.layers, loaded.model
    thresholds = job.thresholds or {}
    cm = _reference(item, loaded)
    allh = _all_heatmaps(model, cm, layers, config)
    ideal = _ideal(model, cm, [lyr for m in config.methods for lyr in layers_for(m, layers)])
    group = audit_group(cm.label, cm.subtype)
    case_probs: NDArray[np.float32] | None = None
    offset = card_offset(loaded.card, CLASSES)  # the audit orders every probability by CLASSES
    rows: list[dict[str, Any]] = []
    pooled: list[list[Any]] = []
    segments: dict[str, Any] = {}
    reliance: dict[str, float] = {}
    if cm.label in CLASSES and cm.lesion_kind != "none":  # method-independent: once per case
        rel = lesion_reliance(model, cm, CLASSES.index(cm.label), offset=offset)
        reliance = {k: rel[k] for k in RELIANCE_KEYS}
    for method in config.methods:
        for layer in layers_for(method, layers):
            th = {**FIXED_THRESHOLDS, **thresholds.get(_key(method, layer), {})}
            if "tau_ideal" not in thresholds.get(_key(method, layer), {}):  # older thresholds.json
                th["tau_ideal"], th["tau_myo_ideal"] = th["tau"], th["tau_myo"]
            hm, targets, probs = allh[(method, layer)]
            met = case_metrics(cm, hm, tau=th["tau"], tau_myo=th["tau_myo"], tau_segment=th["tau_segment"],
                               tolerance_mm=config.tolerance_mm, lesion_extent_min=config.lesion_extent_min,
                               ideal=ideal[layer], tau_ideal=th["tau_ideal"], tau_myo_ideal=th["tau_myo_ideal"])  # fmt: skip
            case_probs = apply_offset(probs.mean(axis=0), offset).astype(np.float32)  # as predict's case call
            row = {
                "subject": cm.subject, "class": cm.label, "group": group, "subtype": cm.subtype, "method": method,
                "layer": layer,
                "target": CLASSES[targets[0]] if targets else "", "predicted": CLASSES[int(np.argmax(case_probs))],
                "p_true": float(case_probs[CLASSES.index(cm.label)]) if cm.label in CLASSES else float("nan"),
            }  # fmt: skip
            row.update({k: v for k, v in met.items() if not k.startswith("seg_")})
            row.update(reliance)
            rows.append(row)
            pooled.append([group, method, layer, list(met["seg_cam_pos"]), list(met["seg_lesion_pos"])])
            segments[f"{cm.subject}|{method}|{layer}"] = {
                "cam_energy": met["seg_cam_energy"], "lesion": met["seg_lesion"], "lesion_kind": cm.lesion_kind,
                "label": cm.label, "subtype": cm.subtype,
                "png": config.bullseyes and (config.bullseye_all_layers or layer == layers_for(method, layers)[0]),
            }  # fmt: skip
    return {
        "subject": cm.subject, "label": cm.label, "subtype": cm.subtype, "group": group, "rows": rows,
        "pooled": pooled, "segments": segments,
        "probs": None if case_probs is None else [float(v) for v in case_probs],
    }  # fmt: skip


def _sanity_result(job: _Job, items: Sequence[AuditItem]) -> dict[str, Any]:
    """The randomisation and deletion checks on a few cases (a case that fails to load is skipped and named)."""
    loaded = _job_loaded(job)
    cms: list[CaseReference] = []
    skipped: list[str] = []
    for item in items:
        try:
            cms.append(_reference(item, loaded))
        except DeepOxyMapError as exc:
            skipped.append(f"{_item_id(item)}: {exc}")
    return {"rows": _sanity(loaded.model, cms, job.config, job.layers), "skipped": skipped}


def _audit_task(arg: tuple[str, _Job, Any]) -> dict[str, Any]:
    """The one task function of the audit: ``("validation" | "case" | "sanity", job, item or items)``."""
    kind, job, what = arg
    if kind == "validation":
        return _validation_arrays(job, what)
    if kind == "case":
        return _case_result(job, what)
    if kind == "sanity":
        return _sanity_result(job, what)
    raise ValueError(f"unknown audit task {kind!r}")


def _failure(item: AuditItem, phase: str, error: str) -> dict[str, Any]:
    """A failed row for ``failed.csv``: subject, manifest line (0 for an in-memory case), phase and the error."""
    from deepoxymap.parallel import name_row

    line = item.line if isinstance(item, SubjectRecord) else 0
    return {"subject": _item_id(item), "line": line, "phase": phase, "error": name_row(line, _item_id(item), error)}


def _cache_key(kind: str, job: _Job, item_fp: str | None) -> str | None:
    from deepoxymap.parallel import fingerprint

    if item_fp is None:
        return None
    return fingerprint(f"audit-{kind}", CACHE_VERSION, job.model.key, dataclasses.asdict(job.config),
                       list(job.layers), job.thresholds if kind == "case" else None, item_fp)  # fmt: skip


def _choose(acc: Mapping[str, Mapping[str, list[Any]]], config: AuditConfig, n_val: int) -> dict[str, dict[str, float]]:
    thr: dict[str, dict[str, float]] = {}
    for k, a in acc.items():
        tau, d = choose_threshold(a["h"], a["l"])
        tau_m, dm = choose_threshold(a["h"], a["l"], a["m"])
        tau_s, ks = choose_segment_threshold(a["sm"], a["se"], lesion_extent_min=config.lesion_extent_min)
        tau_i, di = choose_threshold(a["i"], a["l"])
        tau_mi, dmi = choose_threshold(a["i"], a["l"], a["m"])
        thr[k] = {"tau": tau, "val_dice": d, "tau_myo": tau_m, "val_dice_myo": dm, "tau_segment": tau_s,
                  "val_kappa": ks, "tau_ideal": tau_i, "val_dice_ideal": di, "tau_myo_ideal": tau_mi,
                  "val_dice_myo_ideal": dmi, "n_val": n_val}  # fmt: skip
    return thr


def _accumulate(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    acc: dict[str, dict[str, list[Any]]] = {}
    for r in results:
        for k, e in r["per"].items():
            a = acc.setdefault(k, {"h": [], "l": [], "m": [], "sm": [], "se": [], "i": []})
            a["h"].append(e["h"])
            a["i"].append(e["i"])
            a["l"].append(r["l"])
            a["m"].append(r["m"])
            if e["sm"] is not None:
                a["sm"].append(e["sm"])
                a["se"].append(e["se"])
    return acc


class _Runner:
    """The tasks of one audit on one :class:`~deepoxymap.parallel.Pool`, with the optional result cache."""

    def __init__(self, loaded: Any, pool: Any, cache_dir: str | Path | None) -> None:
        from deepoxymap.parallel import ResultCache

        self.pool = pool
        self.model = pool.provide_model(loaded)
        self.cache = ResultCache(cache_dir) if cache_dir is not None else None
        self.cached: list[str] = []

    def job(self, config: AuditConfig, layers: tuple[str, ...], thresholds: Any = None) -> _Job:
        th = None if thresholds is None else {k: dict(v) for k, v in thresholds.items()}
        return _Job(self.model, config, layers, th)

    def run(
        self, kind: str, job: _Job, items: Sequence[Any], names: Sequence[str], fps: Sequence[str | None],
        tick: Callable[[int, Any], None] | None,
    ) -> list[Any]:  # fmt: skip
        keys = [_cache_key(kind, job, fp) for fp in fps]
        suffix = "" if kind == "case" else f".{kind}"
        results, stats = self.pool.run(
            _audit_task, [(kind, job, it) for it in items], names=[f"{n}{suffix}" for n in names], keys=keys,
            cache=self.cache, on_result=tick,
        )  # fmt: skip
        self.cached += [f"{names[i]}{suffix}" for i in stats.cached]
        return results


def fit_thresholds(
    items: Sequence[AuditItem],
    loaded: Any,
    config: AuditConfig,
    *,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """Thresholds per ``method|layer`` chosen on validation cases (maximal mean Dice / kappa), then frozen.

    ``jobs`` / ``scheduler`` / ``cache_dir`` as in :func:`run_audit`.

    Raises:
        DeepOxyMapError: a validation case could not be loaded (the message names it).
    """
    from deepoxymap.parallel import Pool

    with Pool(jobs, scheduler) as pool:
        thr, failed = _fit(_Runner(loaded, pool, cache_dir), items, config, resolve_layers(loaded.model, config),
                           None if progress is None else (lambda i, r: progress(f"validation {_item_id(items[i])}")))  # fmt: skip
    if failed:
        raise DeepOxyMapError(f"validation case {failed[0]['subject']}: {failed[0]['error']}")
    return thr


def _fit(
    runner: _Runner,
    items: Sequence[AuditItem],
    config: AuditConfig,
    layers: tuple[str, ...],
    tick: Callable[[int, Any], None] | None,
) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    from deepoxymap.parallel import TaskFailed

    results = runner.run("validation", runner.job(config, layers), items, [_item_id(i) for i in items],
                         [item_fingerprint(i) for i in items], tick)  # fmt: skip
    ok = [r for r in results if not isinstance(r, TaskFailed)]
    failed = [_failure(it, "validation", r.error) for it, r in zip(items, results, strict=True)
              if isinstance(r, TaskFailed)]  # fmt: skip
    return _choose(_accumulate(ok), config, len(ok)), failed


def _sanity_items(items: Sequence[AuditItem], n: int) -> list[AuditItem]:
    """The sanity-check cases: the first ``max(1, n)`` of each class, round robin over the classes, ``n`` at most."""
    pools: dict[str, list[AuditItem]] = {}
    for it in items:
        label = it.label or ""
        if len(pools.get(label, [])) < max(1, n):
            pools.setdefault(label, []).append(it)
    ordered = [pools.get(c, []) for c in CLASSES]
    xs = [p[i] for i in range(max((len(p) for p in ordered), default=0)) for p in ordered if i < len(p)]
    return xs[: max(1, n)]


def run_audit(
    cases: Sequence[AuditItem],
    loaded: Any,
    config: AuditConfig = AuditConfig(),
    *,
    validation: Sequence[AuditItem] = (),
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    progress: ProgressFn | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    cache_dir: str | Path | None = None,
) -> AuditResult:
    """Agreement of feature maps with lesion masks, and the model's call, for every case.

    Args:
        cases: the scored cases: :class:`~deepoxymap.case.Case` objects, or manifest
            records (loaded one at a time, so memory stays one case per worker).
        loaded: a ``LoadedModel`` (``.model``, ``.spec``; never modified).
        config: methods, layers, tolerances, sanity options.
        validation: cases that choose the thresholds (ignored when ``thresholds`` is given).
        thresholds: frozen thresholds (``thresholds.json`` of an earlier run); without them
            and without validation cases, :data:`FIXED_THRESHOLDS` are used.
        progress: ``progress(done, total, message)`` after each case (in completion order).
        jobs: worker processes (spawned; each loads the model from ``loaded.path`` once);
            1 runs every case in this process with ``loaded`` itself.
        scheduler: a ``dask.distributed`` scheduler address: run the cases on that cluster.
        cache_dir: per-subject results are kept there (``<subject>-<key>.json|npz``, the key
            a hash of the model file, the config, the thresholds and the subject's row and files),
            so a rerun after an interruption computes only the missing subjects. In-memory
            cases are never cached.

    Returns:
        :class:`AuditResult`, in memory; the same numbers for any ``jobs`` or scheduler. A case
        that fails (bad row, unreadable files, mask on no grid) is left out of the figures and
        listed in :attr:`AuditResult.failed`; the others still run.
    """
    from deepoxymap.parallel import Pool, TaskFailed

    t0 = time.perf_counter()
    model = loaded.model
    config, default = with_default(model, config)
    layers = resolve_layers(model, config)
    res = AuditResult(layers=layers, config=config, default=default)
    fit = thresholds is None and bool(validation)
    total = (len(validation) if fit else 0) + len(cases) + (1 if config.sanity_cases else 0)
    done = 0

    def tick(msg: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, msg)

    def ticker(items: Sequence[Any], what: str) -> Callable[[int, Any], None]:
        def on(i: int, r: Any) -> None:
            name = what if what == "sanity checks" else f"{what} {_item_id(items[i])}"
            tick(f"{name}: FAILED ({r.error})" if isinstance(r, TaskFailed) else name)

        return on

    with Pool(jobs, scheduler) as pool:
        runner = _Runner(loaded, pool, cache_dir)
        if thresholds is None:
            if validation:
                thresholds, failed = _fit(runner, validation, config, layers, ticker(validation, "validation"))
                res.failed += failed
            else:
                thresholds = {
                    _key(m, lyr): dict(FIXED_THRESHOLDS) for m in config.methods for lyr in layers_for(m, layers)
                }
        res.thresholds = {k: dict(v) for k, v in thresholds.items()}
        job = runner.job(config, layers, res.thresholds)
        # the sanity task first: it is the longest, and it needs no threshold
        kinds: list[tuple[str, Any, str, str | None]] = []
        if config.sanity_cases:
            chosen = _sanity_items(cases, config.sanity_cases)
            fps = [item_fingerprint(i) for i in chosen]
            joined = "|".join(f for f in fps if f is not None) if all(f is not None for f in fps) else None
            kinds.append(("sanity", chosen, "sanity", joined))
        kinds += [("case", it, _item_id(it), item_fingerprint(it)) for it in cases]
        names = [n for _, _, n, _ in kinds]
        from deepoxymap.parallel import fingerprint

        keys = [_cache_key(k, job, None if fp is None else fingerprint(fp)) for k, _, _, fp in kinds]
        labels = ["sanity checks" if k == "sanity" else f"test {n}" for k, _, n, _ in kinds]

        def on(i: int, r: Any) -> None:
            tick(f"{labels[i]}: FAILED ({r.error})" if isinstance(r, TaskFailed) else labels[i])

        results, stats = pool.run(
            _audit_task, [(k, job, what) for k, what, _, _ in kinds],
            names=[n if k == "case" else "sanity" for k, _, n, _ in kinds], keys=keys, cache=runner.cache,
            on_result=on,
        )  # fmt: skip
        runner.cached += [names[i] for i in stats.cached]
    res.cached = runner.cached

    pooled: dict[tuple[str, str, str], tuple[list[bool], list[bool]]] = {}
    probs_all: list[NDArray[np.float32]] = []
    for (kind, what, _, _), r in zip(kinds, results, strict=True):
        if kind == "sanity":
            if isinstance(r, TaskFailed):
                res.notes.append(f"sanity checks failed: {r.error}")
            else:
                res.sanity = list(r["rows"])
                res.notes += [f"sanity check case skipped: {s}" for s in r["skipped"]]
            continue
        if isinstance(r, TaskFailed):
            res.failed.append(_failure(what, "test", r.error))
            continue
        res.per_case += r["rows"]
        for group, method, layer, cam_pos, les_pos in r["pooled"]:
            pk = pooled.setdefault((group, method, layer), ([], []))
            pk[0].extend(cam_pos)
            pk[1].extend(les_pos)
        res.segments.update(r["segments"])
        if r["probs"] is not None:
            res.subjects.append(r["subject"])
            res.labels.append(r["label"])
            res.subtypes.append(r["subtype"])
            res.groups.append(r["group"])
            probs_all.append(np.asarray(r["probs"], dtype=np.float32))
            res.calls.append(CLASSES[int(np.argmax(probs_all[-1]))])
    if probs_all:
        res.probabilities = np.stack(probs_all).astype(np.float32)
    if res.failed:
        res.notes.append(
            f"{len(res.failed)} subjects failed and are left out of the figures (failed.csv): "
            + "; ".join(f"{f['subject']}: {f['error']}" for f in res.failed[:3])
            + (" ..." if len(res.failed) > 3 else "")
        )
    res.summary = _summarise(res.per_case, pooled, res.thresholds, config, layers)
    res.seconds = time.perf_counter() - t0
    return res


def _sanity(model: Any, cms: Sequence[CaseReference], cfg: AuditConfig, layers: Sequence[str]) -> list[dict[str, Any]]:
    from deepoxymap.explain.methods import explain_batch
    from deepoxymap.explain.sanity import deletion_curve, randomization_check

    if not cms:
        return []
    x = np.concatenate([cm.x for cm in cms])
    tg = [CLASSES.index(cm.label) for cm in cms for _ in range(cm.x.shape[0])] if cfg.target == "label" else None
    out = []
    random_auc: list[float] | None = None
    contrast = _contrast_index(cfg)
    for method in cfg.methods:
        for layer in layers_for(method, layers):
            lyr = None if layer == INPUT_LAYER else layer
            rnd = randomization_check(model, x, method, layer=lyr, target_class=tg, n_top=cfg.randomize_top,
                                      max_n=cfg.max_n, smooth_samples=cfg.smooth_samples,
                                      contrast_class=contrast)  # fmt: skip
            hms = explain_batch(model, x, method, tg, lyr, max_n=cfg.max_n, smooth_samples=cfg.smooth_samples,
                                contrast_class=contrast)  # fmt: skip
            dels = [deletion_curve(model, x[i], hms[i], steps=10, with_random=False) for i in range(x.shape[0])]
            if random_auc is None:  # method-independent: computed once per image
                random_auc = [deletion_curve(model, x[i], hms[i], steps=10).random_auc for i in range(x.shape[0])]
            out.append({
                "method": method, "layer": layer, "n_images": int(x.shape[0]), "randomize_top": cfg.randomize_top,
                "spearman_mean": rnd.mean_spearman, "randomization_passed": rnd.passed,
                "deletion_auc": float(np.mean([d.auc for d in dels])),
                "deletion_auc_random": float(np.mean(random_auc)),
            })  # fmt: skip
    return out


METRIC_KEYS = ("pointing", "pointing_myo", "ebpg", "ebpg_myo", "dice", "dice_myo", "iou", "iou_myo", "kappa",
               "pointing_myo_chance", "dice_myo_all", "energy_in_lesion_myo", "energy_chance", "dice_ideal",
               "dice_myo_ideal", "segment_auc", "lesion_reliance", "lesion_reliance_control")  # fmt: skip
RELIANCE_KEYS = ("lesion_reliance", "lesion_reliance_control", "p_lesion_filled", "p_control_filled")
"""Per-case columns of the lesion-fill check (:func:`deepoxymap.audit.evidence.lesion_reliance`)."""
SPREAD_KEYS = ("energy_in_myocardium", "area50_mm2", "segment_entropy", "peak_in_myocardium")


def mean_sd(vals: Any) -> tuple[float, float, int]:
    """Mean, SD (ddof 1) and count of the finite values."""
    a = np.array([v for v in vals if v is not None and np.isfinite(v)], dtype=np.float64)
    if a.size == 0:
        return float("nan"), float("nan"), 0
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size)


def _summarise(
    per_case: list[dict[str, Any]],
    pooled: Mapping[tuple[str, str, str], tuple[list[bool], list[bool]]],
    thresholds: Mapping[str, Mapping[str, float]],
    cfg: AuditConfig,
    layers: Sequence[str],
) -> list[dict[str, Any]]:
    out = []
    for c in AUDIT_CLASSES:
        for method in cfg.methods:
            for layer in layers_for(method, layers):
                rows = [r for r in per_case if r.get("group", r["class"]) == c and r["method"] == method
                        and r["layer"] == layer]  # fmt: skip
                if not rows:
                    continue
                d: dict[str, Any] = {"class": c, "label": rows[0]["class"], "method": method, "layer": layer,
                                     "n": len(rows),
                                     "accuracy": float(np.mean([r["predicted"] == r["class"] for r in rows]))}  # fmt: skip
                for k in (*METRIC_KEYS, *SPREAD_KEYS, "lesion_area_fraction_myo"):
                    m, sd, _n = mean_sd(r.get(k, float("nan")) for r in rows)
                    d[k], d[k + "_sd"] = m, sd
                a, b = pooled.get((c, method, layer), ([], []))
                d["kappa_pooled"] = cohen_kappa(a, b) if a and any(b) else float("nan")
                th = thresholds.get(_key(method, layer), {})
                d["tau"], d["tau_myo"], d["tau_segment"] = th.get("tau"), th.get("tau_myo"), th.get("tau_segment")
                d["tau_myo_ideal"] = th.get("tau_myo_ideal", th.get("tau_myo"))
                out.append(d)
    return out
