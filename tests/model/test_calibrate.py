"""The class-prior correction: it recovers a known prior shift, is fitted on validation only, and every path applies it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepoxymap import CLASSES
from deepoxymap.model.calibrate import (
    apply_offset,
    card_offset,
    decision_card,
    fit_log_prior_offset,
    mean_nll,
    too_few_to_fit,
)


def _shifted(n: int, prior: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cases whose labels follow ``prior`` but whose probabilities are posteriors under a uniform prior."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(prior), size=n, p=prior)
    means = np.eye(len(prior)) * 1.2
    x = means[y] + rng.normal(size=(n, len(prior)))
    logits = x @ means.T - 0.5 * np.sum(means**2, axis=1)  # Gaussian class-conditionals, equal priors
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), y


def test_fit_recovers_a_known_prior_shift() -> None:
    prior = np.array([0.5, 0.2, 0.1, 0.2])
    p, y = _shifted(20000, prior)
    b = fit_log_prior_offset(p, y)
    want = np.log(prior) - np.log(prior).mean()
    assert abs(b.sum()) < 1e-9
    assert np.allclose(b, want, atol=0.08), (b, want)
    assert mean_nll(p, y, b) < mean_nll(p, y) - 0.01
    # on data drawn the same way, the corrected arg-max is more accurate (the Bayes rule for that prior)
    p2, y2 = _shifted(20000, prior, seed=1)
    assert np.mean(apply_offset(p2, b).argmax(1) == y2) > np.mean(p2.argmax(1) == y2) + 0.02


def test_no_shift_gives_no_offset_and_apply_is_safe() -> None:
    p, y = _shifted(20000, np.full(4, 0.25))
    assert np.abs(fit_log_prior_offset(p, y)).max() < 0.06
    q = apply_offset(p[:5], np.array([50.0, -50.0, 0.0, 0.0]))  # huge offsets: no overflow, rows sum to 1
    assert np.all(np.isfinite(q)) and np.allclose(q.sum(1), 1.0)
    assert apply_offset(p[:3], None) is not None and np.allclose(apply_offset(p[:3], None), p[:3])
    assert np.allclose(apply_offset(p[0], np.zeros(4)), p[0])  # a [C] vector works too
    with pytest.raises(ValueError):
        fit_log_prior_offset(np.zeros((0, 4)), np.zeros(0))


def test_a_class_absent_from_validation_stays_finite() -> None:
    p, y = _shifted(400, np.array([0.5, 0.5, 0.0, 0.0]))
    b = fit_log_prior_offset(p, y)
    assert np.all(np.isfinite(b)) and b[2] < b[0] and b[3] < b[1]


def test_too_few_validation_subjects_fit_nothing() -> None:
    assert too_few_to_fit(np.repeat(np.arange(4), 5)) is None
    why = too_few_to_fit(np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3]))
    assert why is not None and "edema 4" in why and "need 5" in why
    assert card_offset({"decision": {"log_prior_offset": None, "not_fitted": why}}, CLASSES) is None


def test_card_round_trip() -> None:
    p, y = _shifted(500, np.array([0.4, 0.2, 0.2, 0.2]))
    b = fit_log_prior_offset(p, y)
    dec = json.loads(json.dumps(decision_card(b, p, y)))
    assert dec["fitted_on_subjects"] == 500 and dec["fitted_on"] == "validation"
    got = card_offset({"decision": dec}, CLASSES)
    assert got is not None and np.allclose(got, b, atol=1e-5)
    assert card_offset({}, CLASSES) is None  # an older card: no correction


def test_calibrate_command_writes_the_card_from_validation_subjects(tiny_trained, tmp_path, capsys) -> None:
    """``deepoxymap calibrate`` scores the card's val split only and rewrites ``decision``; predict follows it."""
    import shutil

    from model_synth import fake_loader

    from deepoxymap.cli import calibrate
    from deepoxymap.cohort import read_manifest
    from deepoxymap.model import evaluate as ev
    from deepoxymap.model.loading import load_model
    from deepoxymap.model.predict import predict_case

    res, manifest, cache = tiny_trained
    m = tmp_path / res.model_path.name
    shutil.copy(res.model_path, m)
    card = json.loads(res.model_path.with_suffix(".json").read_text())
    card.pop("decision")
    m.with_suffix(".json").write_text(json.dumps(card))
    seen: list[str] = []
    real = ev.score_records

    def spy(loaded, recs, **kw):
        seen.extend(r.subject for r in recs)
        assert kw["prior_correction"] is False
        return real(loaded, recs, **kw, loader=fake_loader)

    from deepoxymap.cli import build_parser

    args = build_parser().parse_args(
        ["calibrate", "--model", str(m), "--manifest", str(manifest), "--cache-dir", str(cache), "--jobs", "1"]
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ev, "score_records", spy)
        assert calibrate.run(args) == 2  # 4 validation subjects, one per class: too few by default
        assert "too few validation subjects" in capsys.readouterr().out
        assert "decision" not in json.loads(m.with_suffix(".json").read_text())
        seen.clear()
        args.min_per_class = 1
        assert calibrate.run(args) == 0
    assert sorted(seen) == sorted(card["training"]["split"]["val"])  # validation only, never test
    assert not set(seen) & set(card["training"]["split"]["test"])
    out = json.loads(m.with_suffix(".json").read_text())
    assert out["decision"]["written_by"] == "deepoxymap calibrate"
    assert "validation subjects: offset" in capsys.readouterr().out
    loaded = load_model(m)
    rec = read_manifest(manifest)[0]
    pred = predict_case(loaded, fake_loader(rec.path))
    off = card_offset(loaded.card, loaded.classes)
    assert off is not None
    assert np.allclose(pred.case_probs, apply_offset(pred.slice_probs.mean(0), off), atol=1e-6)
