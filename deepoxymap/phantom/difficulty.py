"""Difficulty check: is the synthetic task too easy, or does it leak the label?

Library only (no printing): :func:`difficulty_report` returns the numbers and
:func:`format_report` the table as text; the ``deepoxymap difficulty`` command
(:mod:`deepoxymap.cli.difficulty`) and ``python -m tools.difficulty``
print them.

Two baselines with subject-level stratified 5-fold cross-validation
(``StratifiedGroupKFold``: slices of one subject never straddle train and test):

1. **histogram**: multinomial logistic regression on the normalised myocardial
   intensity histogram of the classifier's input frame (end-systolic frame of the
   breath-hold-end OS-CMR series), using the ground-truth myocardium mask
   (labels 2, 4, 5, 6). Intensities are divided by the median LV blood-pool
   intensity of the same image (a ratio histogram, invariant to receiver gain).
2. **engineered** (an upper reference for hand-made features, *not* trivial):
   the same logistic regression on ground-truth-mask morphology (cavity and
   myocardial area, sector wall thickness mean/SD/min/max) and myocardium/blood
   ratio percentiles and 12-sector spread. A CNN that finds the heart itself and
   sees the patterns should land near or above it.
3. **leak check**: the same model on what should carry no class information:
   image size, pixel spacing, TR/TE/flip, field strength, stored-value
   scaling (image 99th percentile, background mean). Its AUCs should be ~0.5.

AUCs are one-vs-rest per class, on out-of-fold probabilities, at slice level
and subject level (mean of the subject's slice probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pydicom
from numpy.typing import NDArray

from deepoxymap import CLASSES
from deepoxymap.cohort import read_manifest
from deepoxymap.errors import PhantomError
from deepoxymap.phantom.load import read_labels, read_truth

__all__ = [
    "HIST_BINS",
    "MYO",
    "CvAuc",
    "DifficultyReport",
    "Features",
    "cohort_features",
    "cv_auc",
    "difficulty_report",
    "engineered_features",
    "format_report",
    "slice_features",
    "transfer_baselines",
]

MYO = (2, 4, 5, 6)
HIST_BINS = np.linspace(0.0, 1.0, 33)
"""Bin edges of the myocardium/blood ratio histogram."""


@dataclass(frozen=True)
class Features:
    """Per-slice features of a cohort.

    Attributes:
        hist: float64 ``[n, bins]`` normalised histograms (densities summing to 1).
        eng: float64 ``[n, 15]`` engineered morphology/contrast features.
        leak: float64 ``[n, k]`` acquisition/scaling features.
        y: int ``[n]`` class index into :data:`deepoxymap.CLASSES`.
        groups: int ``[n]`` subject index.
        subjects: subject ids (per subject index).
    """

    hist: NDArray[np.float64]
    eng: NDArray[np.float64]
    leak: NDArray[np.float64]
    y: NDArray[np.int64]
    groups: NDArray[np.int64]
    subjects: list[str]


class CvAuc(TypedDict):
    """Cross-validated one-vs-rest AUCs of one baseline (:func:`cv_auc`).

    Attributes:
        slice / subject: class -> AUC at slice level / subject level (mean of the
            subject's slice probabilities); classes absent from ``y`` are left out.
        macro_slice / macro_subject: mean of those AUCs.
        accuracy_subject: subject-level accuracy of the arg-max class.
        majority_accuracy: accuracy of always answering the most frequent class.
    """

    slice: dict[str, float]
    subject: dict[str, float]
    macro_slice: float
    macro_subject: float
    accuracy_subject: float
    majority_accuracy: float


class DifficultyReport(TypedDict):
    """:func:`difficulty_report`: cohort size and the three baselines."""

    n_subjects: int
    n_slices: int
    histogram: CvAuc
    engineered: CvAuc
    leak_check: CvAuc


def slice_features(image: NDArray[Any], labels: NDArray[Any]) -> tuple[NDArray[np.float64], float]:
    """Histogram of myocardium / median blood for one 2D image.

    Returns:
        ``(hist, blood_median)``; hist sums to 1 (empty myocardium -> zeros).
    """
    blood = image[labels == 1]
    bmed = float(np.median(blood)) if blood.size else float(np.percentile(image, 99))
    myo = image[np.isin(labels, MYO)] / max(bmed, 1e-6)
    h, _ = np.histogram(np.clip(myo, 0, 0.999), bins=HIST_BINS)
    s = h.sum()
    return (h / s if s else h.astype(np.float64)), bmed


def engineered_features(image: NDArray[Any], labels: NDArray[Any], pixel_mm: float, level: int) -> list[float]:
    """Morphology and contrast features of one 2D image with its ground-truth labels.

    Returns:
        15 floats: cavity area (mm2), myocardial area (mm2), sector wall thickness
        mean/SD/min/max (mm, 12 sectors about the cavity centroid), myocardium/blood
        ratio percentiles 5/25/50/75/95, sector-mean ratio SD/min/max, slice level.
    """
    b = labels == 1
    m = np.isin(labels, MYO)
    if b.sum() < 5 or m.sum() < 5:
        return [0.0] * 14 + [float(level)]
    rr, cc = np.nonzero(b)
    r0, c0 = rr.mean(), cc.mean()
    ratio = image[m] / max(float(np.median(image[b])), 1e-6)
    R, C = np.nonzero(m)
    sec = ((np.arctan2(R - r0, C - c0) + np.pi) / (2 * np.pi) * 12).astype(int) % 12
    rad = np.hypot(R - r0, C - c0) * pixel_mm
    th = np.array(
        [rad[sec == s].max() - rad[sec == s].min() + pixel_mm if (sec == s).any() else np.nan for s in range(12)]
    )
    sm = np.array([ratio[sec == s].mean() if (sec == s).any() else np.nan for s in range(12)])
    th = np.nan_to_num(th, nan=float(np.nanmean(th)))
    sm = np.nan_to_num(sm, nan=float(np.nanmean(sm)))
    px2 = pixel_mm * pixel_mm
    return [
        float(b.sum() * px2),
        float(m.sum() * px2),
        float(th.mean()),
        float(th.std()),
        float(th.min()),
        float(th.max()),
        *(float(v) for v in np.percentile(ratio, [5, 25, 50, 75, 95])),
        float(sm.std()),
        float(sm.min()),
        float(sm.max()),
        float(level),
    ]


def cohort_features(cohort_dir: Path | str, *, timepoint_key: str = "os_bh-end") -> Features:
    """Features of every slice of every subject of a cohort (reads DICOM with pydicom).

    Raises:
        CaseError: the cohort's ``manifest.csv`` is missing, empty or malformed.
    """
    rows = read_manifest(Path(cohort_dir) / "manifest.csv")
    H, E, Lk, Y, G, subs = [], [], [], [], [], []
    for gi, r in enumerate(rows):
        d = r.path
        truth = read_truth(d)
        labels = read_labels(d)
        st = truth["series"][timepoint_key]
        lab = labels[st["uid"]]
        fr = int(st["label_frame"])
        subs.append(r.subject)
        for k in range(lab.shape[0]):
            ds = pydicom.dcmread(d / "dicom" / timepoint_key / f"IM_{k + 1:02d}_{fr + 1:03d}.dcm")
            img = ds.pixel_array.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
            h, _ = slice_features(img, lab[k])
            H.append(h)
            E.append(engineered_features(img, lab[k], float(ds.PixelSpacing[0]), k))
            bg = img[:6, :6]
            Lk.append(
                [
                    float(ds.Rows),
                    float(ds.Columns),
                    float(ds.PixelSpacing[0]),
                    float(ds.RepetitionTime),
                    float(ds.EchoTime),
                    float(ds.FlipAngle),
                    float(ds.MagneticFieldStrength),
                    float(ds.SliceThickness),
                    float(np.percentile(img, 99)),
                    float(bg.mean()),
                    float(ds.CardiacNumberOfImages),
                ]
            )
            Y.append(CLASSES.index(r.label))
            G.append(gi)
    return Features(np.asarray(H), np.asarray(E), np.asarray(Lk), np.asarray(Y), np.asarray(G), subs)


def cv_auc(
    X: NDArray[Any], y: NDArray[Any], groups: NDArray[Any], *, seed: int = 0, folds: int = 5, C: float = 1.0
) -> CvAuc:
    """Subject-level stratified K-fold logistic regression; one-vs-rest AUCs.

    Returns:
        ``{"slice": {class: auc}, "subject": {class: auc}, "macro_slice", "macro_subject",
        "accuracy_subject", "majority_accuracy"}``.

    Raises:
        PhantomError: a fold put slices of one subject on both sides (``groups`` broken).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_cls = len(CLASSES)
    prob = np.zeros((len(y), n_cls))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for tr, te in cv.split(X, y, groups):
        if set(groups[tr]) & set(groups[te]):
            raise PhantomError("cross-validation fold shares subjects between train and test")
        m = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        m.fit(X[tr], y[tr])
        p = np.zeros((len(te), n_cls))
        p[:, m.classes_] = m.predict_proba(X[te])
        prob[te] = p
    slice_auc: dict[str, float] = {}
    subject_auc: dict[str, float] = {}
    ug = np.unique(groups)
    sp = np.stack([prob[groups == g].mean(0) for g in ug])
    sy = np.array([y[groups == g][0] for g in ug])
    for ci, c in enumerate(CLASSES):
        if 0 < (y == ci).sum() < len(y):
            slice_auc[c] = float(roc_auc_score(y == ci, prob[:, ci]))
            subject_auc[c] = float(roc_auc_score(sy == ci, sp[:, ci]))
    return {
        "slice": slice_auc,
        "subject": subject_auc,
        "macro_slice": float(np.mean(list(slice_auc.values()))),
        "macro_subject": float(np.mean(list(subject_auc.values()))),
        "accuracy_subject": float(np.mean(sp.argmax(1) == sy)),
        "majority_accuracy": float(np.max(np.bincount(sy)) / len(sy)),
    }


def difficulty_report(cohort_dir: Path | str, *, seed: int = 0) -> DifficultyReport:
    """Both baselines on a cohort. See the module docstring."""
    f = cohort_features(cohort_dir)
    return {
        "n_subjects": len(f.subjects),
        "n_slices": len(f.y),
        "histogram": cv_auc(f.hist, f.y, f.groups, seed=seed),
        "engineered": cv_auc(f.eng, f.y, f.groups, seed=seed),
        "leak_check": cv_auc(f.leak, f.y, f.groups, seed=seed),
    }


def format_report(rep: DifficultyReport) -> str:
    """A plain-text table of :func:`difficulty_report`."""
    lines = [f"subjects {rep['n_subjects']}, slices {rep['n_slices']} (subject-level stratified 5-fold CV)"]
    lines.append(f"{'baseline':<12}{'level':<9}" + "".join(f"{c:>14}" for c in CLASSES) + f"{'macro':>9}{'acc':>7}")
    for name in ("histogram", "engineered", "leak_check"):
        r = rep[name]
        for lvl in ("slice", "subject"):
            aucs = "".join(f"{r[lvl].get(c, float('nan')):>14.3f}" for c in CLASSES)
            acc = f"{r['accuracy_subject']:>7.2f}" if lvl == "subject" else " " * 7
            macro = r["macro_slice"] if lvl == "slice" else r["macro_subject"]
            lines.append(f"{name:<12}{lvl:<9}{aucs}{macro:>9.3f}{acc}")
    lines.append(f"majority-class accuracy {rep['histogram']['majority_accuracy']:.2f}")
    return "\n".join(lines)


def transfer_baselines(
    train_dir: Path | str, test_dir: Path | str, *, n_boot: int = 1000, seed: int = 0, C: float = 1.0
) -> dict[str, Any]:
    """The baselines fitted on one generated cohort and scored on another (the classifier's protocol).

    Unlike :func:`difficulty_report` (cross-validation *inside* one cohort), nothing of
    ``test_dir`` is fitted on: each baseline's logistic regression learns from every slice
    of ``train_dir`` (e.g. a further generated cohort, ``deepoxymap generate --seed 7``) and
    predicts ``test_dir``'s slices; a subject's probabilities are the mean of its slices',
    as for the CNN. Both folders need the phantom's ground truth (the ``engineered``
    baseline reads the true myocardium mask, so it is a ground-truth-feature reference).

    Returns:
        ``{"train_subjects", "test_subjects", "<baseline>": metrics}`` for ``histogram``,
        ``engineered`` and ``leak_check``; metrics as
        :func:`deepoxymap.model.metrics.bootstrap_metrics` (95% CIs over test subjects).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deepoxymap.model.metrics import aggregate_cases, bootstrap_metrics

    ftr, fte = cohort_features(train_dir), cohort_features(test_dir)
    out: dict[str, Any] = {"train_subjects": len(ftr.subjects), "test_subjects": len(fte.subjects)}
    subj = [fte.subjects[g] for g in fte.groups]
    for name in ("histogram", "engineered", "leak_check"):
        field = {"histogram": "hist", "engineered": "eng", "leak_check": "leak"}[name]
        Xtr, Xte = getattr(ftr, field), getattr(fte, field)
        m = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(Xtr, ftr.y)
        p = np.zeros((len(Xte), len(CLASSES)))
        p[:, m.classes_] = m.predict_proba(Xte)
        order, cp = aggregate_cases(p, subj)
        ymap = dict(zip(subj, fte.y.tolist(), strict=True))
        out[name] = bootstrap_metrics(np.array([ymap[s] for s in order]), cp, n_boot=n_boot, seed=seed)
    return out
