"""Hand-made cases for the model tests: a bright LV disc in a grey myocardial ring.

No phantom package needed: each case has OS-CMR stacks (baseline, bh-end) of
``n_slices`` slices x ``n_frames`` frames whose LV cavity contracts to its
smallest at ``es_frame``; the myocardial ring's brightness depends on the class
so a tiny network can learn it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepoxymap import CLASSES
from deepoxymap.case import Case, Geometry, Role, Series, Stack

if TYPE_CHECKING:
    from deepoxymap.model.train import TrainConfig

RING_LEVEL = {"healthy": 0.30, "ischemic": 0.15, "non-ischemic": 0.45, "edema": 0.60}


def make_image(
    shape: tuple[int, int],
    center: tuple[float, float],
    r_blood_mm: float,
    spacing: float,
    ring_level: float,
    rng: np.random.Generator,
    *,
    wall_mm: float = 9.0,
) -> np.ndarray:
    """``[rows, cols]`` float32: background 0.1, RV crescent, ring, bright blood (1.0), noise."""
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    d = np.hypot(rr - center[0], cc - center[1]) * spacing
    img = np.full(shape, 0.1)
    # a body ellipse
    body = ((rr - shape[0] / 2) / (0.45 * shape[0])) ** 2 + ((cc - shape[1] / 2) / (0.48 * shape[1])) ** 2 < 1
    img[body] = 0.25
    # RV crescent on the viewer's left
    drv = np.hypot(rr - center[0], cc - (center[1] - (r_blood_mm + wall_mm + 6) / spacing)) * spacing
    img[(drv < r_blood_mm + 6) & (d > r_blood_mm + wall_mm)] = 0.8
    img[(d >= r_blood_mm) & (d < r_blood_mm + wall_mm)] = ring_level
    img[d < r_blood_mm] = 1.0
    img += rng.normal(0, 0.02, shape)
    return (img * 1000).astype(np.float32)


def make_case(
    case_id: str,
    label: str = "healthy",
    *,
    n_slices: int = 2,
    n_frames: int = 6,
    es_frame: int = 2,
    shape: tuple[int, int] = (80, 88),
    spacing: float = 1.5,
    center: tuple[float, float] = (42.0, 47.0),
    seed: int = 0,
    timepoints: tuple[str, ...] = ("baseline", "bh-end"),
    shift_px: dict[str, tuple[float, float]] | None = None,
) -> Case:
    """A :class:`Case` with one OS-CMR series per time point (see module doc).

    ``shift_px`` moves the heart of a time point's series by ``(rows, cols)`` pixels
    (a breathing shift between breath-holds); the ring of ``bh-end`` is 8 % brighter.
    """
    rng = np.random.default_rng(seed)
    series = []
    for t_i, tp in enumerate(timepoints):
        data = np.zeros((n_slices, n_frames) + shape, np.float32)
        for k in range(n_slices):
            for f in range(n_frames):
                r = 16.0 - 6.0 * np.cos(np.pi * (f - es_frame) / n_frames) ** 2 + 0.5 * k
                lvl = RING_LEVEL[label] * (1.08 if tp == "bh-end" else 1.0)
                dr, dc = (shift_px or {}).get(tp, (0.0, 0.0))
                data[k, f] = make_image(shape, (center[0] + k + dr, center[1] + dc), r, spacing, lvl, rng)
        origins = np.array([[0.0, 0.0, -10.0 * k] for k in range(n_slices)])
        geom = Geometry(origins, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (spacing, spacing), shape, 8.0)
        tt = np.tile(np.arange(n_frames, dtype=np.float64) * 40.0, (n_slices, 1))
        st = Stack(
            data,
            geom,
            tt,
            Role.OS_CMR,
            timepoint=tp,
            acquisition_time_s=float(t_i * 100),
            series_uid=f"{case_id}.{t_i}",
        )
        series.append(Series(uid=f"{case_id}.{t_i}", stack=st, role=Role.OS_CMR, role_reason="test"))
    return Case(case_id=case_id, series=tuple(series), label=label)


def write_fake_manifest(folder: Path, n_per_class: int = 4, sites: tuple[str, ...] = ("A", "B")) -> Path:
    """A manifest of fake subjects (folders are empty; load them with :func:`fake_loader`)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    i = 0
    for c in CLASSES:
        for j in range(n_per_class):
            sid = f"S{i:03d}"
            (folder / sid).mkdir(exist_ok=True)
            (folder / sid / "label.txt").write_text(c)
            rows.append(
                {
                    "subject": sid,
                    "class": c,
                    "subtype": "",
                    "site": sites[j % len(sites)],
                    "field_strength": "3.0",
                    "path": sid,
                }
            )
            i += 1
    p = folder / "manifest.csv"
    with p.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["subject", "class", "subtype", "site", "field_strength", "path"])
        w.writeheader()
        w.writerows(rows)
    return p


def fake_loader(path: Path) -> Case:
    """Build the case of a fake subject folder (label from ``label.txt``)."""
    label = (Path(path) / "label.txt").read_text().strip()
    return make_case(Path(path).name, label, seed=int(Path(path).name[1:]))


def tiny_train_config(root: Path, **overrides: object) -> TrainConfig:
    """A ``TrainConfig`` for a seconds-long tinycnn fit on a fresh fake manifest under ``root``.

    24 px over 80 mm, batch 8, 2 epochs, 20 bootstrap draws, cache in ``root/cache``; any
    field can be overridden. Load the subjects with :func:`fake_loader`.
    """
    from deepoxymap.model.preprocess import PreprocessSpec
    from deepoxymap.model.train import TrainConfig

    fields: dict[str, object] = {
        "manifest": write_fake_manifest(root / "cohort", n_per_class=3),
        "arch": "tinycnn",
        "out": root / "models",
        "spec": PreprocessSpec(input_size=24, crop_mm=80.0),
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "n_boot": 20,
        "cache_dir": root / "cache",
    }
    fields.update(overrides)
    return TrainConfig(**fields)  # type: ignore[arg-type]
