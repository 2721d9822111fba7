"""The endocardial pass: trabeculae and papillary muscles go to the blood pool on bright-blood cine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deepoxymap.segmentation import learned
from deepoxymap.segmentation.check import dice
from deepoxymap.segmentation.endocardium import BRIGHT_BLOOD_KINDS, include_trabeculae
from deepoxymap.segmentation.synth import SIZE

PS = (1.5, 1.5)


def _heart(shape: tuple[int, int] = (96, 96), r_endo: float = 16.0, r_epi: float = 23.0, seed: int = 0) -> dict[str, Any]:
    """A bright-blood slice: blood 1.0 inside ``r_endo`` px, compact wall 0.3 to ``r_epi``, fat 0.9
    outside; dark trabeculae (0.3) at the blood pool's rim on the right half, 0-6 px deep."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    cy, cx = shape[0] / 2.0, shape[1] / 2.0
    r = np.hypot(rr - cy, cc - cx)
    img = np.where(r < r_endo, 1.0, np.where(r < r_epi, 0.3, 0.9))
    for _ in range(60):
        th = rng.uniform(-np.pi / 2, np.pi / 2)  # the right half (lateral wall)
        rc = r_endo - rng.uniform(0.0, 6.0)
        py, px = cy + rc * np.sin(th), cx + rc * np.cos(th)
        img[np.hypot(rr - py, cc - px) < rng.uniform(0.8, 1.6)] = 0.3
    img = img + rng.normal(0.0, 0.03, shape)
    truth = np.where(r < r_endo, 1, np.where(r < r_epi, 2, 0)).astype(np.uint8)
    # what a network that stops at the first dark tissue gives: the wall 6 px thicker on the right
    r_net = np.where(cc > cx, r_endo - 6.0, r_endo)
    net = np.where(r < r_net, 1, np.where(r < r_epi, 2, 0)).astype(np.uint8)
    return {"img": img, "truth": truth, "net": net}


def test_trabecular_zone_goes_to_the_blood_pool() -> None:
    h = _heart()
    before = dice(h["net"] == 2, h["truth"] == 2)
    out = include_trabeculae(h["img"], h["net"], PS)
    after = dice(out == 2, h["truth"] == 2)
    assert before < 0.88 and after > 0.93, (before, after)
    assert out.dtype == np.uint8 and out.shape == h["net"].shape
    # only myocardium turns into blood pool; the epicardium and background stay
    changed = out != h["net"]
    assert ((h["net"][changed] == 2) & (out[changed] == 1)).all()
    assert np.array_equal(out == 0, h["net"] == 0)


def test_a_right_endocardium_stays_where_it_is() -> None:
    h = _heart()
    out = include_trabeculae(h["img"], h["truth"], PS)
    assert dice(out == 2, h["truth"] == 2) > 0.97


def test_bright_fat_caught_by_the_epicardium_is_not_read_as_blood() -> None:
    """The epicardium 1 px too large (into the bright fat): the rim that is never searched keeps the wall."""
    h = _heart()
    rr, cc = np.mgrid[0:96, 0:96].astype(float)
    r = np.hypot(rr - 48.0, cc - 48.0)
    wide = h["truth"].copy()
    wide[(r >= 23.0) & (r < 24.0)] = 2
    out = include_trabeculae(h["img"], wide, PS)
    assert dice(out == 2, wide == 2) > 0.95


def test_nothing_to_measure_or_dark_blood_leaves_the_labels_alone() -> None:
    h = _heart()
    empty = np.zeros((96, 96), np.uint8)
    assert np.array_equal(include_trabeculae(h["img"], empty, PS), empty)
    dark_blood = 1.3 - h["img"]  # black blood: the pass does not apply
    assert np.array_equal(include_trabeculae(dark_blood, h["net"], PS), h["net"])
    with pytest.raises(ValueError, match="one shape"):
        include_trabeculae(h["img"], h["net"][:10], PS)
    with pytest.raises(ValueError, match="positive"):
        include_trabeculae(h["img"], h["net"], (0.0, 1.5))


class _FixedModel:
    """Stands in for the segmenter: the same label map (as one-hot probabilities) for every input."""

    def __init__(self, labels: np.ndarray) -> None:
        self.p = np.eye(4, dtype=np.float32)[labels][None]

    def predict(self, x: np.ndarray, batch_size: int = 16, verbose: int = 0) -> np.ndarray:
        return np.repeat(self.p, x.shape[0], axis=0)


def test_segment_unet_applies_the_pass_on_bright_blood_kinds_only() -> None:
    """The network grid is the image grid here (1.5 mm, SIZE px, centred), so the fake model's map is the image's."""
    h = _heart(shape=(SIZE, SIZE))
    model = _FixedModel(h["net"])  # symmetric in both mirrors except the thick right wall: mirrors average it
    centre = [((SIZE - 1) / 2.0, (SIZE - 1) / 2.0)]
    kw = {"model": model, "rv_fallback": False}
    cine = learned.segment_unet(h["img"][None], PS, centre, kind="cine", **kw)[0]
    lge = learned.segment_unet(h["img"][None], PS, centre, kind="lge", **kw)[0]
    off = learned.segment_unet(h["img"][None], PS, centre, kind="cine", trabeculae_to_blood=False, **kw)[0]
    assert "lge" not in BRIGHT_BLOOD_KINDS and "cine" in BRIGHT_BLOOD_KINDS
    assert np.array_equal(lge, off)  # LGE: enhanced scar is bright, the pass must not run
    assert (cine == 1).sum() > (off == 1).sum()
    assert dice(cine == 2, h["truth"] == 2) > dice(off == 2, h["truth"] == 2) + 0.01
