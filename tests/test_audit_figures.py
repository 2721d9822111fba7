"""The audit's summary PNG (deepoxymap.audit.figures): decodes, has the asked size, and is not blank."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepoxymap import CLASSES
from deepoxymap.audit.figures import audit_summary_png


def _decode(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        return np.asarray(im.convert("RGB"))


def _roc() -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    return {
        "healthy": (np.array([0.0, 0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0, 1.0]), 0.875),
        "edema": (np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.5),
    }


def test_summary_png_decodes_with_the_asked_size_and_is_drawn() -> None:
    """A 4-class audit: the PNG is size_in * dpi pixels and has real content in each quadrant."""
    cm = np.array([[2, 1, 0, 0], [0, 3, 0, 0], [0, 0, 1, 1], [0, 0, 0, 2]])
    agreement = pd.DataFrame(
        [
            {"class": "ischemic", "method": "gradcam", "cases": 3, "pointing game": 0.67, "Dice (myo)": 0.41},
            {"class": "ischemic", "method": "occlusion", "cases": 3, "pointing game": 0.33, "Dice (myo)": 0.2},
            {"class": "edema-focal", "method": "gradcam", "cases": 2, "pointing game": 1.0, "Dice (myo)": None},
        ]
    )
    img = _decode(audit_summary_png(cm, CLASSES, _roc(), agreement, title="test", size_in=(8.0, 6.0), dpi=50))
    assert img.shape == (300, 400, 3)
    h, w = img.shape[0] // 2, img.shape[1] // 2
    for quadrant in (img[:h, :w], img[:h, w:], img[h:, :w], img[h:, w:]):
        colours = np.unique(quadrant.reshape(-1, 3), axis=0)
        assert len(colours) > 20, "a panel is blank"
        assert quadrant.std() > 10
    assert not np.all(img == img[0, 0]), "the image is one colour"


def test_without_agreement_or_roc_still_draws_and_says_so() -> None:
    """No lesion masks (no agreement) and no ROC: a valid PNG, the confusion matrix still drawn."""
    cm = np.eye(4, dtype=int)
    img = _decode(audit_summary_png(cm, CLASSES, {}, None, dpi=40))
    assert img.shape == (400, 520, 3)
    top_left = img[:200, :260]
    assert len(np.unique(top_left.reshape(-1, 3), axis=0)) > 20


def test_core_keys_are_read_too() -> None:
    """Rows with the core's keys (pointing, dice_myo), as plain mappings, are drawn like the page's table."""
    rows = [{"method": "gradcam", "pointing": 0.5, "dice_myo": 0.3}]
    a = _decode(audit_summary_png(np.eye(2), ["a", "b"], {}, rows, dpi=40))
    b = _decode(audit_summary_png(np.eye(2), ["a", "b"], {}, None, dpi=40))
    assert a.shape == b.shape
    assert np.abs(a[200:].astype(int) - b[200:].astype(int)).sum() > 0, "the agreement panels were not drawn"


def test_confusion_must_match_the_classes() -> None:
    """A confusion matrix that is not square, or not n_classes wide, is refused."""
    with pytest.raises(ValueError, match="does not match 4 classes"):
        audit_summary_png(np.zeros((3, 3)), CLASSES, {})
    with pytest.raises(ValueError, match="does not match"):
        audit_summary_png(np.zeros((4, 3)), CLASSES, {})
