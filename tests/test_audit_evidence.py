"""The lesion-fill check: does the class score rest on the lesion's own pixels? (deepoxymap.audit.evidence)."""

from __future__ import annotations

import numpy as np
import pytest
from test_audit import _ring_case


def _with_input(cm, lesion_value: float = 1.0, myo_value: float = 0.5, blood_value: float = 0.2):
    """The ring case with a model input: blood pool, textured myocardium (``myo_value`` +- 0.05) and a bright
    lesion (all channels), on slice 0."""
    x = np.zeros_like(cm.x)
    texture = np.random.default_rng(0).uniform(-0.05, 0.05, cm.x.shape[1:3]).astype(np.float32)
    for i, sl in enumerate(cm.slices):
        x[i][sl.labels == 1] = blood_value
        x[i][sl.myocardium] = (myo_value + texture[sl.myocardium])[:, None]
        x[i][sl.lesion] = lesion_value
    return type(cm)(cm.subject, cm.label, cm.subtype, x, cm.transforms, cm.slices, cm.pixel_spacing, cm.lesion_kind)


def _bright_spot_model(keras, threshold: float):
    """p(ischemic) rises with the number of pixels brighter than ``threshold`` in channel 0; else healthy."""
    inp = keras.Input((64, 64, 3))
    conv = keras.layers.Conv2D(1, 1, activation="relu", name="bright")
    dense = keras.layers.Dense(4, name="logits")
    out = keras.layers.Activation("softmax")(dense(keras.layers.GlobalAveragePooling2D()(conv(inp))))
    model = keras.Model(inp, out)
    k = np.zeros((1, 1, 3, 1), np.float32)
    k[0, 0, 0, 0] = 10.0
    conv.set_weights([k, np.array([-10.0 * threshold], np.float32)])
    dense.set_weights([np.array([[-20.0, 400.0, 0.0, 0.0]], np.float32), np.array([1.0, -1.0, 0.0, 0.0], np.float32)])
    return model


def test_fill_replaces_the_lesion_by_the_remote_median_and_the_control_lies_in_remote_myocardium():
    from scipy import ndimage as ndi

    from deepoxymap.audit import lesion_on_model_grid
    from deepoxymap.audit.evidence import ReliancePolicy, lesion_fill_inputs

    cm = _with_input(_ring_case(2))
    fill = lesion_fill_inputs(cm)
    les = cm.slices[0].lesion
    assert fill.slices_filled == 1 and fill.lesion_pixels == int(les.sum())
    les_grid = lesion_on_model_grid(cm)[0] >= ReliancePolicy().lesion_min
    np.testing.assert_array_equal(les_grid, les)  # model grid == source grid in this case
    remote = cm.slices[0].myocardium & ~ndi.binary_dilation(les, iterations=2)
    np.testing.assert_allclose(fill.x_lesion[0][les], np.median(cm.x[0][remote], axis=0)[None].repeat(les.sum(), 0))
    np.testing.assert_array_equal(fill.x_lesion[0][~les], cm.x[0][~les])  # nothing else changed
    np.testing.assert_array_equal(fill.x_lesion[1], cm.x[1])  # the lesion-free slice is untouched
    changed = np.any(fill.x_control[0] != cm.x[0], axis=-1)
    assert changed.any() and not (changed & les).any()  # the control patch is elsewhere...
    assert (changed <= remote).all()  # ...inside the remote wall
    assert 0.5 * fill.lesion_pixels <= fill.control_pixels <= fill.lesion_pixels


def test_a_model_that_reads_the_lesion_relies_on_it_and_one_that_does_not_shows_none():
    keras = pytest.importorskip("keras")
    from deepoxymap.audit.evidence import lesion_reliance

    cm = _with_input(_ring_case(1))  # one slice: the case probability is that slice's
    reads = lesion_reliance(_bright_spot_model(keras, 0.8), cm, target=1)
    assert reads["p_true"] > 0.9 and reads["p_lesion_filled"] < 0.1
    assert reads["lesion_reliance"] > 0.8 and abs(reads["lesion_reliance_control"]) < 0.05
    assert reads["slices_filled"] == 1.0 and 0.5 <= reads["control_area_ratio"] <= 1.0

    # the same model reading the wall (everything above 0.3): filling the lesion with remote wall changes nothing
    wall = lesion_reliance(_bright_spot_model(keras, 0.3), cm, target=1)
    assert abs(wall["lesion_reliance"]) < 0.02 and abs(wall["lesion_reliance_control"]) < 0.02


def test_the_cards_offset_is_applied_as_in_the_case_call():
    keras = pytest.importorskip("keras")
    from deepoxymap.audit.evidence import lesion_reliance

    cm = _with_input(_ring_case(1))
    model = _bright_spot_model(keras, 0.8)
    plain = lesion_reliance(model, cm, target=1)
    shifted = lesion_reliance(model, cm, target=1, offset=np.array([0.0, -3.0, 0.0, 0.0]))
    assert shifted["p_true"] < plain["p_true"]


def test_a_lesion_covering_the_whole_wall_cannot_be_filled():
    keras = pytest.importorskip("keras")
    from deepoxymap.audit.evidence import lesion_reliance

    cm = _with_input(_ring_case(1, lesion_deg=(0.0, 360.0), label="edema"))
    rel = lesion_reliance(_bright_spot_model(keras, 0.8), cm, target=3)
    assert rel["slices_filled"] == 0.0
    assert all(np.isnan(rel[k]) for k in ("p_true", "lesion_reliance", "lesion_reliance_control"))


def test_summary_json_carries_the_reliance_figures():
    """The figures reach summary.json and the report's own section."""
    import json

    from deepoxymap.audit import AuditConfig, AuditResult, summary_json
    from deepoxymap.audit.report import audit_markdown
    from deepoxymap.audit.run import _summarise

    cfg = AuditConfig(methods=("gradcam",))
    rows = [
        {"subject": f"s{i}", "class": "ischemic", "group": "ischemic", "subtype": "LAD", "method": "gradcam",
         "layer": "c2", "predicted": "ischemic", "p_true": 0.9, "p_lesion_filled": p, "p_control_filled": 0.88,
         "lesion_reliance": 0.9 - p, "lesion_reliance_control": 0.02}
        for i, p in enumerate((0.5, 0.3))
    ]  # fmt: skip
    res = AuditResult(summary=_summarise(rows, {}, {}, cfg, ["c2"]), config=cfg, layers=("c2",),
                      default=("gradcam", "c2"), per_case=rows)  # fmt: skip
    out = json.loads(json.dumps(summary_json(res), allow_nan=False))
    isch = out["default"]["classes"]["ischemic"]
    assert isch["lesion_reliance"] == pytest.approx(0.5) and isch["lesion_reliance_control"] == pytest.approx(0.02)
    md = audit_markdown(res, cfg)
    assert "Does the model use the lesion?" in md and "| ischemic | LAD | 2 |" in md
