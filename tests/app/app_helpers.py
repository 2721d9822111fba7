"""AppTest helpers: a tiny in-memory case, a tiny model with a valid card, a fresh AppTest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from deepoxymap.case import Case, Geometry, Role, Series, Stack, Truth

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TIMEOUT = int(os.environ.get("DEEPOXYMAP_APPTEST_TIMEOUT", "180"))

PAGES = {
    "home": "pages/home.py",
    "load": "pages/load_case.py",
    "viewer": "pages/viewer.py",
    "classify": "pages/classify.py",
    "features": "pages/feature_maps.py",
    "audit": "pages/cohort_audit.py",
    "teaching": "pages/teaching.py",
    "model": "pages/model_card.py",
}


def _geometry(n: int, shape: tuple[int, int], spacing: float, z0: float, dz: float, shift: float = 0.0) -> Geometry:
    origins = np.zeros((n, 3))
    origins[:, 0] = -shape[1] * spacing / 2 + shift
    origins[:, 1] = -shape[0] * spacing / 2
    origins[:, 2] = z0 - dz * np.arange(n)
    return Geometry(origins, [1.0, 0, 0], [0, 1.0, 0], (spacing, spacing), shape, dz, "1.2.3.4", True)


def _ring(shape: tuple[int, int], r0: float, r1: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    rr = np.hypot(yy - shape[0] / 2, xx - shape[1] / 2)
    return (rr >= r0) & (rr < r1)


def make_tiny_case(case_id: str = "tiny-001") -> Case:
    """Three slices, four OS-CMR time points (4 frames each), LGE, T1 and T2 maps, and masks."""
    rng = np.random.default_rng(0)
    shape = (48, 48)
    myo = _ring(shape, 8, 13)
    blood = _ring(shape, 0, 8)
    series = []
    for t, (tp, gain) in enumerate([("baseline", 1.0), ("hv-end", 0.92), ("bh-start", 0.95), ("bh-end", 1.08)]):
        data = np.zeros((3, 4, *shape), np.float32)
        data[:, :] = 60 + 300 * blood + 120 * gain * myo
        data += rng.normal(0, 5, data.shape).astype(np.float32)
        g = _geometry(3, shape, 2.0, 0.0, 8.0)
        stack = Stack(
            data,
            g,
            np.tile(np.arange(4) * 40.0, (3, 1)),
            Role.OS_CMR,
            "",
            tp,
            100.0 + 60 * t,
            f"1.2.3.os.{t}",
            f"OS_SAX_{tp.upper().replace('-', '_')}",
            (250.0, 500.0),
        )
        series.append(Series(stack.series_uid, stack, Role.OS_CMR, "test"))
    lesion = myo.copy()
    lesion[:, : shape[1] // 2] = False
    for uid, role, units, val, win in [
        ("1.2.3.lge", Role.LGE, "", 40 + 300 * blood + 400 * lesion, (200.0, 500.0)),
        ("1.2.3.t1", Role.T1_MAP, "ms", 1400 * blood + 1000 * myo + 200 * lesion, (1100.0, 1000.0)),
        ("1.2.3.t2", Role.T2_MAP, "ms", 250 * blood + 45 * myo + 15 * lesion, (50.0, 100.0)),
    ]:
        data = np.repeat(np.asarray(val, np.float32)[None, None], 3, axis=0)
        g = _geometry(3, shape, 2.2, 2.0, 8.0, shift=1.5)
        stack = Stack(data, g, np.zeros((3, 1)), role, units, None, 400.0, uid, role.label, win)
        series.append(Series(uid, stack, role, "test"))
    labels = np.zeros((3, 1, *shape), np.float32)
    labels[:, 0][:, blood] = 1
    labels[:, 0][:, myo] = 2
    labels[:, 0][:, lesion] = 4
    masks = {}
    for s in series:
        masks[s.uid] = Stack(labels, s.stack.geometry, np.zeros((3, 1)), Role.MASK, "label", series_uid=s.uid)
    truth = Truth(record={"class": "ischemic", "segments": [5, 6, 11, 12]})
    return Case(case_id, tuple(series), "ischemic", truth, masks)


def new_app():
    """A fresh AppTest of the whole app."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def write_tiny_model(out_dir: Path) -> Path:
    """A small flat Keras model with the shipped model's head layer names, plus a valid card."""
    import json

    import keras

    from deepoxymap import CLASSES
    from deepoxymap.model.card import sha256_file

    keras.utils.set_random_seed(0)
    size = 32
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1")(inp)
    x = keras.layers.MaxPooling2D(name="block1_pool")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block2_conv1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_gap")(x)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.Dropout(0.3, name="head_drop1")(x)
    x = keras.layers.Dense(8, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(0.3, name="head_drop2")(x)
    x = keras.layers.Dense(len(CLASSES), name="logits")(x)
    out = keras.layers.Activation("softmax", name="probs")(x)
    model = keras.Model(inp, out, name="tiny")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tiny.keras"
    model.save(path)
    card = {
        "name": "tiny test model",
        "arch": "tiny-cnn",
        "classes": list(CLASSES),
        "preprocessing": {"input_size": size, "crop_mm": 80.0, "timepoint": "bh-end"},
        "weights": "none: random initialisation (a test model; it has learnt nothing)",
        "intended_use": "Tests only.",
        "training": {
            "n_subjects": 0,
            "class_counts": {c: 0 for c in CLASSES},
            "split": {"train": [], "val": [], "test": []},
            "command": "python tests/app/app_helpers.py",
        },
        "metrics": {
            "note": "made-up numbers for the tests",
            "test": {
                "accuracy": {"value": 0.25, "ci": [0.1, 0.4]},
                "macro_auc": {"value": 0.5, "ci": [0.4, 0.6]},
                "auc": {c: {"value": 0.5, "ci": [0.4, 0.6]} for c in CLASSES},
                "confusion": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
            },
        },
        "library_versions": {"keras": keras.__version__},
        "file": {"sha256": sha256_file(path)},
    }
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


def make_cohort_zip(
    path: Path, manifest: str, subjects_from: Path | None, *, top: str = "", extra: dict[str, bytes] | None = None
) -> Path:
    """A cohort zip: ``manifest.csv`` plus, for each manifest row, ``subjects_from/<path>`` (all its files).

    Rows whose path leaves ``subjects_from`` (absolute, ``../``) are written to the manifest only.

    Args:
        path: the zip to write.
        manifest: the manifest's text.
        subjects_from: folder the subject folders are copied from (``None``: no subject folders).
        top: a folder inside the zip that holds everything (as when a folder is zipped).
        extra: more members, ``{name in the zip: bytes}`` (names written as given).
    """
    import csv
    import io
    import zipfile

    pre = f"{top}/" if top else ""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{pre}manifest.csv", manifest)
        if subjects_from is not None:
            for row in csv.DictReader(io.StringIO(manifest)):
                folder = (subjects_from / row["path"]).resolve()
                if not folder.is_relative_to(subjects_from.resolve()):
                    continue  # a hostile row: its path is written to the manifest, nothing is copied
                for f in sorted(folder.rglob("*")):
                    if f.is_file():
                        zf.write(f, f"{pre}{row['path']}/{f.relative_to(folder).as_posix()}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def feature_panels(at: Any) -> dict[str, tuple[str, np.ndarray]]:
    """The Feature-maps panels drawn by an AppTest run: ``{panel name: (title, RGB picture)}``.

    Each panel is a heading (``**<title>**``) followed by its composed PNG (a data URI),
    both in drawing order; the name is the title's first part (``"T1 map"``, ...).
    """
    import base64
    import io

    from PIL import Image

    from deepoxymap.ui import featureview

    titles = [
        m.value.strip("*")
        for m in at.markdown
        if m.value.startswith("**") and m.value.strip("*").split(" ·")[0] in featureview.PANEL_NAMES
    ]
    srcs = [u for img in at.image for u in img.value if u.startswith("data:image/png;base64,")]
    assert len(titles) == len(srcs), (titles, len(srcs))
    out: dict[str, tuple[str, np.ndarray]] = {}
    for title, src in zip(titles, srcs, strict=True):
        rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
        out.setdefault(title.split(" ·")[0], (title, rgb))
    return out
