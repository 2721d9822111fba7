"""Evaluation that would survive review: subject-level splits, CIs, per-site, comparison table.

* :func:`evaluate_model` re-scores a saved model on the **test subjects recorded
  in its own card** (so a hold-out model is never scored on its training
  subjects), case call = mean of slice probabilities, 95% bootstrap CIs over
  subjects, plus the same metrics per acquisition site.
* :func:`cross_validate` trains one model per stratified fold and pools the
  out-of-fold case probabilities (every subject scored exactly once, by a model
  that never saw it).
* :func:`evaluation_json` is ``evaluation.json``: the first model's headline
  (``accuracy``, ``macro_auc`` and per-class ``auc``, each ``{"value", "ci"}``
  with its 95% bootstrap CI) at the top level, then every result in full.
* :func:`comparison_markdown` lays results out like the study's comparison
  (VGG19 vs ResNet50 vs EfficientNetB0 + the phantom's trivial baseline);
  :func:`plot_roc` draws one-vs-rest ROC curves.
* :func:`predict_records` is the cohort ``predict``: every subject's slice and case
  probabilities.

Scoring and prediction run one task per subject on a :class:`deepoxymap.parallel.Pool`
(in this process, in spawned workers with one model each, or on a Dask cluster; the
same numbers for any of them), with an optional per-subject result cache (an
interrupted run resumes) and a per-row error policy: a subject that fails is listed
in ``failed`` (its manifest line and the error) and the others still count.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepoxymap import CLASSES
from deepoxymap.case import Case
from deepoxymap.cohort import SubjectRecord, read_manifest_rows
from deepoxymap.errors import CaseError, DeepOxyMapError
from deepoxymap.model.data import build_slices, record_fingerprint
from deepoxymap.model.metrics import aggregate_cases, bootstrap_metrics, headline, roc_points

__all__ = [
    "STUDY_REPORTED",
    "comparison_markdown",
    "cross_validate",
    "evaluate_model",
    "evaluation_json",
    "plot_roc",
    "predict_records",
    "score_records",
    "trivial_baseline",
]

STUDY_REPORTED = [
    # (model, accuracy, precision, recall, AUC) as published (DOMAIN.md section 1, version A/B)
    ("VGG19 (study, version A)", 0.820, 0.860, 0.780, "0.94/0.88/0.93/0.98 (per class)"),
    ("ResNet50 (study, version A)", None, None, None, "0.87"),
    ("EfficientNetB0 (study, version A)", None, None, None, "0.79"),
    ("VGG19 (study, version B)", 0.804, None, None, None),
]

log = logging.getLogger(__name__)


CACHE_VERSION = 1
"""Bumped when a per-subject result changes for the same inputs (invalidates the result caches)."""


@dataclass(frozen=True)
class _SubjectJob:
    """What every per-subject task of one run shares (picklable).

    ``model``: a :class:`deepoxymap.parallel.ModelRef`; ``slice_cache``: the preprocessed-slice
    cache of :func:`build_slices`; ``loader``: ``path -> Case`` (a top-level function when workers
    are used) or ``None`` for :func:`deepoxymap.cohort.load_case`.
    """

    model: Any
    slice_cache: str | None = None
    loader: Callable[[Path], Case] | None = None
    mc_samples: int = 0
    seed: int = 0


def _score_one(arg: tuple[_SubjectJob, SubjectRecord]) -> dict[str, Any]:
    """One subject's case probabilities (mean of its slices' softmax), through the shared slice cache."""
    from deepoxymap.model.predict import predict_array

    job, rec = arg
    loaded = job.model.get()
    data = build_slices([rec], loaded.spec, loader=job.loader, cache_dir=job.slice_cache, verbose=False)
    if len(data) == 0:
        where = f"line {rec.line}, subject {rec.subject}" if rec.line else rec.subject
        raise CaseError("no slice to classify", source=where)
    probs = predict_array(loaded.model, data.x)
    _, case_probs = aggregate_cases(probs, data.subjects)
    return {"subject": rec.subject, "probs": case_probs[0].tolist(), "n_slices": len(data)}


def _predict_one(arg: tuple[_SubjectJob, SubjectRecord]) -> dict[str, Any]:
    """One subject's :meth:`~deepoxymap.model.predict.CasePrediction.to_dict`, with its row's subject, line and class."""
    from deepoxymap.cohort import load_case
    from deepoxymap.model.predict import predict_case

    job, rec = arg
    loaded = job.model.get()
    case = job.loader(rec.path) if job.loader is not None else load_case(rec)
    pred = predict_case(loaded, case, mc_samples=job.mc_samples, seed=job.seed)
    return {"subject": rec.subject, "line": rec.line, "class": rec.label, **pred.to_dict()}


def _failed_row(rec: SubjectRecord, error: str) -> dict[str, Any]:
    from deepoxymap.parallel import name_row

    return {"subject": rec.subject, "line": rec.line, "error": name_row(rec.line, rec.subject, error)}


def _run_subjects(
    fn: Callable[[tuple[_SubjectJob, SubjectRecord]], dict[str, Any]],
    kind: str,
    loaded: Any,
    records: Sequence[SubjectRecord],
    *,
    pool: Any,
    result_cache: str | os.PathLike[str] | None,
    job_args: dict[str, Any],
    progress: Callable[[int, int, str], None] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """``fn`` over the records on ``pool``: ``(results of the subjects that ran, failed rows, cached subject ids)``."""
    from deepoxymap.parallel import Pool, ResultCache, TaskFailed, fingerprint

    own = pool is None
    pool = Pool(1) if pool is None else pool
    try:
        job = _SubjectJob(pool.provide_model(loaded), **job_args)
        loader = job.loader
        loader_id = None if loader is None else f"{loader.__module__}.{getattr(loader, '__qualname__', loader)}"
        settings = {k: v for k, v in job_args.items() if k not in ("slice_cache", "loader")}
        keys = [fingerprint(kind, CACHE_VERSION, job.model.key, settings, loader_id, record_fingerprint(r))
                for r in records]  # fmt: skip
        done = 0

        def on(i: int, r: Any) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                msg = f"{records[i].subject}: FAILED ({r.error})" if isinstance(r, TaskFailed) else records[i].subject
                progress(done, len(records), msg)

        results, stats = pool.run(
            fn, [(job, r) for r in records], names=[r.subject for r in records], keys=keys,
            cache=ResultCache(result_cache) if result_cache is not None else None, on_result=on,
        )  # fmt: skip
    finally:
        if own:
            pool.close()
    ok = [r for r in results if not isinstance(r, TaskFailed)]
    failed = [_failed_row(rec, r.error) for rec, r in zip(records, results, strict=True) if isinstance(r, TaskFailed)]
    return ok, failed, [records[i].subject for i in stats.cached]


def score_records(
    loaded: Any,
    records: Sequence[SubjectRecord],
    *,
    loader: Callable[[Path], Case] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    pool: Any = None,
    result_cache: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    prior_correction: bool = True,
) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, Any]], list[str]]:
    """Case probabilities of every record, one task per subject.

    Args:
        loaded: a ``LoadedModel`` (workers load it from ``loaded.path``).
        records: the subjects, in order.
        loader: ``path -> Case`` instead of :func:`deepoxymap.cohort.load_case` (picklable with workers).
        cache_dir: preprocessed-slice cache (:func:`build_slices`).
        pool: a :class:`deepoxymap.parallel.Pool` (default: in this process).
        result_cache: per-subject result cache folder (``None``: off).
        progress: ``progress(done, total, subject)`` as each subject finishes.
        prior_correction: apply the card's class-prior correction (``decision``), as
            :func:`~deepoxymap.model.predict.predict` does; ``False``: the raw mean of the slice probabilities.

    Returns:
        ``(subjects, y [n] int, case_probs [n, C] float64, failed rows, cached subject ids)``: the subjects that
        ran, in record order; ``failed``: ``{"subject", "line", "error"}`` per subject that did not.
    """
    ok, failed, cached = _run_subjects(
        _score_one, "evaluate", loaded, records, pool=pool, result_cache=result_cache, progress=progress,
        job_args={"slice_cache": None if cache_dir is None else str(cache_dir), "loader": loader},
    )  # fmt: skip
    ymap = {r.subject: r.y for r in records}
    subjects = [r["subject"] for r in ok]
    p = np.array([r["probs"] for r in ok], dtype=np.float64).reshape(len(ok), len(CLASSES))
    if prior_correction:
        from deepoxymap.model.calibrate import apply_offset, card_offset

        p = apply_offset(p, card_offset(loaded.card, loaded.classes))
    return subjects, np.array([ymap[s] for s in subjects], dtype=int), p, failed, cached


def predict_records(
    loaded: Any,
    records: Sequence[SubjectRecord],
    *,
    mc_samples: int = 0,
    seed: int = 0,
    loader: Callable[[Path], Case] | None = None,
    pool: Any = None,
    result_cache: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The cohort ``predict``: every record's ``CasePrediction.to_dict()`` plus ``subject``, ``line``, ``class``.

    Arguments as :func:`score_records` (``mc_samples``/``seed``: MC dropout, as ``predict_case``).

    Returns:
        ``(predictions in record order, failed rows, cached subject ids)``.
    """
    return _run_subjects(
        _predict_one, "predict", loaded, records, pool=pool, result_cache=result_cache, progress=progress,
        job_args={"loader": loader, "mc_samples": int(mc_samples), "seed": int(seed)},
    )  # fmt: skip


def _per_site(
    subjects: Sequence[str], y: np.ndarray, p: np.ndarray, sites: dict[str, str], n_boot: int, seed: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for site in sorted({sites.get(s, "") for s in subjects}):
        m = np.array([sites.get(s, "") == site for s in subjects])
        if m.sum() >= 2:
            out[site or "?"] = bootstrap_metrics(y[m], p[m], n_boot=n_boot, seed=seed)
    return out


def evaluate_model(
    model_path: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    *,
    subjects: str | Sequence[str] = "test",
    n_boot: int = 1000,
    seed: int = 0,
    loader: Callable[[Path], Case] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    verify_hash: bool = True,
    pool: Any = None,
    result_cache: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Score a saved model on a manifest's subjects.

    Args:
        model_path: ``.keras`` file with its card.
        manifest: cohort manifest (the card's test subjects must be in it).
        subjects: ``"test"`` (the card's test split), ``"all"`` (every manifest
            subject NOT in the card's train/val splits) or explicit ids.
        cache_dir: preprocessed-slice cache (default ``<manifest dir>/.cache``).
        pool: a :class:`deepoxymap.parallel.Pool` (default: in this process); the same
            numbers for any pool.
        result_cache: per-subject result cache folder (``None``: off).
        progress: ``progress(done, total, subject)``.

    Returns:
        dict: ``name``, ``arch``, ``split``, ``metrics`` (with CIs), ``per_site``,
        ``subjects``, ``y``, ``probs``, ``card_test`` (the card's own numbers),
        ``max_abs_diff_vs_card`` (largest case-probability difference vs the card),
        ``failed`` (``{"subject", "line", "error"}`` per subject that could not be scored;
        left out of every figure) and ``cached`` (subjects read from ``result_cache``).

    Raises:
        DeepOxyMapError: no subject could be scored.
    """
    from deepoxymap.model.loading import load_model
    from deepoxymap.parallel import row_failures

    loaded = load_model(model_path, verify_hash=verify_hash)
    records, row_errors = read_manifest_rows(manifest)
    split = loaded.card.get("training", {}).get("split", {})
    if subjects == "test":
        ids = list(split.get("test", []))
        if not ids:
            raise ValueError("the model card records no test split; pass subjects='all' or a list")
    elif subjects == "all":
        seen = set(split.get("train", [])) | set(split.get("val", []))
        ids = [r.subject for r in records if r.subject not in seen]
    else:
        ids = list(subjects)
    by_id = {r.subject: r for r in records}
    missing = [s for s in ids if s not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} subjects not in the manifest, e.g. {missing[:3]}")
    recs = [by_id[s] for s in ids]
    cdir = Path(cache_dir) if cache_dir is not None else Path(manifest).parent / ".cache"
    subj, y, p, failed, cached = score_records(
        loaded, recs, loader=loader, cache_dir=cdir, pool=pool, result_cache=result_cache, progress=progress
    )
    failed[:0] = row_failures(row_errors)
    if not subj:
        raise DeepOxyMapError(
            f"none of the {len(recs)} subjects could be scored"
            + (f", e.g. {failed[0]['subject']}: {failed[0]['error']}" if failed else "")
        )
    sites = {r.subject: r.site for r in recs}
    card_preds = loaded.card.get("metrics", {}).get("test_predictions", {})
    diffs = [
        float(np.max(np.abs(np.asarray(card_preds[s]["probs"]) - p[i]))) for i, s in enumerate(subj) if s in card_preds
    ]
    return {
        "name": loaded.card.get("name", Path(model_path).stem),
        "arch": loaded.arch,
        "model_path": str(model_path),
        "weights": loaded.card.get("weights"),
        "input_size": loaded.spec.input_size,
        "epochs_run": loaded.card.get("training", {}).get("epochs_run"),
        "command": loaded.card.get("training", {}).get("command"),
        "split": split.get("name", "?"),
        "subjects_scored": subjects if isinstance(subjects, str) else "explicit",
        "metrics": bootstrap_metrics(y, p, n_boot=n_boot, seed=seed),
        "per_site": _per_site(subj, y, p, sites, n_boot, seed),
        "subjects": subj,
        "y": y.tolist(),
        "probs": p.round(6).tolist(),
        "card_test": loaded.card.get("metrics", {}).get("test"),
        "max_abs_diff_vs_card": max(diffs) if diffs else None,
        "failed": failed,
        "cached": cached,
    }


def _finite(v: Any) -> Any:
    """``v`` with every non-finite float replaced by ``None`` (strict JSON), recursively."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def evaluation_json(results: Sequence[dict[str, Any]], baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``evaluation.json``.

    Args:
        results: :func:`evaluate_model` / :func:`cross_validate` results (at least one).
        baseline: :func:`trivial_baseline` or ``None``.

    Returns:
        ``{"model", "split", "subjects_scored", "n", "n_boot", "ci_level", "accuracy",
        "macro_auc", "auc": {class: {"value", "ci"}}, "models": [headline per result],
        "results": [...], "trivial_baseline": ...}``: the top-level figures are the
        first result's (:func:`~deepoxymap.model.metrics.headline`), every value a
        ``{"value", "ci": [lo, hi]}`` pair (95% percentile bootstrap over subjects);
        non-finite numbers are ``null``.

    Raises:
        ValueError: no result.
    """
    if not results:
        raise ValueError("no evaluation result")
    first = results[0]
    models = [{"model": r.get("name"), "split": r.get("split"), **headline(r["metrics"])} for r in results]
    return _finite({
        "model": first.get("name"), "split": first.get("split"), "subjects_scored": first.get("subjects_scored"),
        **headline(first["metrics"]), "models": models, "results": list(results), "trivial_baseline": baseline,
    })  # fmt: skip


def cross_validate(
    cfg: Any,
    *,
    k: int = 5,
    out_dir: str | os.PathLike[str],
    loader: Callable[[Path], Case] | None = None,
    n_boot: int = 1000,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Stratified k-fold CV: train one model per fold, pool out-of-fold case probabilities.

    Args:
        cfg: a :class:`~deepoxymap.model.train.TrainConfig` (protocol/fold are overridden).
        out_dir: where the fold models and cards go.

    Returns:
        dict with pooled ``metrics`` (CIs over subjects), ``per_fold`` metrics,
        ``subjects``, ``y``, ``probs``.
    """
    from deepoxymap.model.train import train

    subs: list[str] = []
    ys: list[int] = []
    ps: list[list[float]] = []
    per_fold = []
    for i in range(k):
        c = dataclasses.replace(
            cfg, protocol="fold", fold=i, folds=k, out=Path(out_dir), name=f"{cfg.arch}_fold{i}", n_boot=n_boot
        )
        res = train(c, loader=loader, log=log)
        preds = res.card["metrics"]["test_predictions"]
        per_fold.append(res.card["metrics"]["test"])
        for s, v in preds.items():
            subs.append(s)
            ys.append(CLASSES.index(v["y"]))
            ps.append(v["probs"])
    y = np.array(ys)
    p = np.array(ps)
    if len(set(subs)) != len(subs):
        raise AssertionError("a subject was scored in two folds")
    return {
        "name": f"{cfg.arch} ({k}-fold CV)",
        "arch": cfg.arch,
        "split": f"{k}-fold CV (out-of-fold, pooled)",
        "metrics": bootstrap_metrics(y, p, n_boot=n_boot, seed=cfg.seed),
        "per_fold": per_fold,
        "subjects": subs,
        "y": y.tolist(),
        "probs": p.round(6).tolist(),
    }


def trivial_baseline(manifest: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The phantom's trivial baselines (:func:`deepoxymap.phantom.difficulty.difficulty_report`).

    That report holds subject-level 5-fold CV AUCs of a logistic regression on
    the ground-truth myocardium's intensity histogram (``"histogram"``) and on
    acquisition parameters that should carry no class information
    (``"leak_check"``). Returns ``None`` (and logs why) when the cohort is not a
    generated one or the report fails: it never stops an evaluation.
    """
    from deepoxymap.phantom.difficulty import difficulty_report

    try:
        return dict(difficulty_report(Path(manifest).parent))
    except (DeepOxyMapError, ValueError) as exc:
        log.warning("trivial baseline skipped: %s", exc)
        return None


def _fmt(m: dict[str, Any] | None, pct: bool = True) -> str:
    if not m or m.get("value") is None or not np.isfinite(m["value"]):
        return "–"
    v, (lo, hi) = m["value"], m["ci"]
    if pct:
        return f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


def comparison_markdown(results: Sequence[dict[str, Any]], baseline: dict[str, Any] | None = None) -> str:
    """Markdown tables: our models (with 95% CIs), the trivial baseline, and the study's published numbers."""
    lines = [
        (
            "| Model | Split (test subjects) | Accuracy % | Precision % (macro) | Recall % (macro) | ROC-AUC (macro) "
            "| AUC healthy | AUC ischemic | AUC non-ischemic | AUC edema | ECE |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["metrics"]
        lines.append(
            f"| {r['name']} | {r['split']} (n={m['n']}) | {_fmt(m['accuracy'])} | {_fmt(m['macro_precision'])} "
            f"| {_fmt(m['macro_recall'])} | {_fmt(m['macro_auc'], False)} | "
            + " | ".join(_fmt(m["auc"][c], False) for c in CLASSES)
            + f" | {_fmt(m['ece'], False)} |"
        )
    for key, label in (
        ("histogram", "trivial baseline: GT-myocardium intensity histogram + logistic regression"),
        ("engineered", "reference: GT-mask morphology/contrast features + logistic regression (not trivial)"),
        ("leak_check", "leak check: acquisition parameters + logistic regression (should be ~0.5)"),
    ):
        b = (baseline or {}).get(key)
        if not isinstance(b, dict):
            continue
        subj = b.get("subject", {})
        aucs = " | ".join(f"{subj[c]:.2f}" if c in subj else "–" for c in CLASSES)
        acc = b.get("accuracy_subject")
        acc_s = f"{100 * acc:.1f}" if isinstance(acc, int | float) else "–"
        lines.append(
            f"| {label} | 5-fold CV (n={(baseline or {}).get('n_subjects', '?')}) | {acc_s} | – | – "
            f"| {b.get('macro_subject', float('nan')):.2f} | {aucs} | – |"
        )
    lines += [
        "",
        "Values: case level (mean of slice probabilities), 95% percentile bootstrap CI over subjects in brackets.",
        "",
        "Published in the study (DOMAIN.md section 1; real patients, not comparable to synthetic data):",
        "",
        "| Model | Accuracy % | Precision % | Recall % | ROC-AUC |",
        "|---|---|---|---|---|",
    ]
    for name, acc, prec, rec, auc in STUDY_REPORTED:
        cells = [f"{100 * v:.1f}" if v is not None else "–" for v in (acc, prec, rec)]
        lines.append(f"| {name} | {' | '.join(cells)} | {auc or '–'} |")
    return "\n".join(lines) + "\n"


def plot_roc(results: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """One-vs-rest ROC curves, one panel per model, one curve per class (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(results), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False)
    for ax, r in zip(axes[0], results, strict=False):
        y = np.asarray(r["y"])
        p = np.asarray(r["probs"])
        for k, c in enumerate(CLASSES):
            fpr, tpr = roc_points(y, p, k)
            auc = r["metrics"]["auc"][c]["value"]
            ax.plot(fpr, tpr, label=f"{c} (AUC {auc:.2f})" if auc is not None and np.isfinite(auc) else c)
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_title(f"{r['name']}\n{r['split']}, n={r['metrics']['n']}", fontsize=9)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_aspect("equal")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
