"""How the scar defaults were chosen (docs/experiments/scar.md): tuning implants + in-memory phantoms only.

    python docs/experiments/scar_tuning.py

Tuning set: semi-synthetic infarcts with ``TUNING_SEEDS`` (0-39) in the real
EMIDEC negative LGE (``../shared/data/real``), and 20 phantom subjects
rendered in memory (seed 7, indices 500-519; not the study cohort). Never the
held-out ``TEST_SEEDS``. Rule: the largest mean of (implant Dice, phantom
lesion Dice) among the settings whose false scar is <= 1 % in every healthy
phantom. Prints one markdown row per setting.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

import deepoxymap.cardiac.scar as S
from deepoxymap.cardiac.emidec_check import TUNING_SEEDS, find_cases, load_emidec_case
from deepoxymap.cardiac.masks import EMIDEC, PHANTOM, masks_from_labels
from deepoxymap.cardiac.scar_implant import implant_infarct
from deepoxymap.phantom.generate import simulate_subject

SPECS = (
    [("healthy", "normal")] * 6
    + [
        ("ischemic", t)
        for t in ("LAD-transmural", "LAD-subendocardial", "RCA-transmural", "RCA-subendocardial",
                  "LCx-transmural", "LCx-subendocardial")
    ] * 2
    + [("non-ischemic", "DCM"), ("non-ischemic", "HCM")]
)  # fmt: skip


def main() -> None:
    neg = next(p for p in find_cases() if p.name == "sampleNegative")
    img, lab, ps = load_emidec_case(Path(neg))
    m = masks_from_labels(lab, EMIDEC)
    imps = [implant_infarct(img, m.myocardium, m.lv_blood, ps, seed=s) for s in TUNING_SEEDS]
    subs = []
    for i, (c, st) in enumerate(SPECS):
        sim = simulate_subject(f"T{i}", c, st, "AB"[i % 2], 7, 500 + i, n_frames=4)
        lg = next(x for x in sim.series if x.key == "lge")
        mm = masks_from_labels(next(v for k, v in lg.labels.items() if not k.endswith("__edema")), PHANTOM)
        subs.append((c, lg.pixels[:, 0].astype(np.float32), mm.myocardium, mm.scar))
    orig = S.lower_mode_stats
    settings: list[tuple[str, float, float, dict]] = [
        (f"n-SD {n}/{g}", pk, win, {"n_sd": n, "n_sd_extent": g})
        for pk, win, (n, g) in itertools.product((0.0, 0.3), (0.0, 2.0, 2.5), ((3.0, 1.5), (3.0, 2.0), (3.5, 2.0)))
    ]
    settings += [
        ("old: n-SD 5 robust pooled", 0.0, 0.0,
         {"n_sd": 5.0, "n_sd_extent": None, "remote": "robust", "per_slice": False, "core_erosion": 0}),
        ("old: FWHM seeded by n-SD 5", 0.0, 0.0,
         {"method": "fwhm", "fwhm_min_sd": 5.0, "remote": "robust", "per_slice": False, "core_erosion": 0}),
    ]  # fmt: skip
    print("| setting | lowest peak | window | implant Dice mean (min) | phantom lesion Dice | healthy false % max |")
    print("|---|---|---|---|---|---|")
    for name, pk, win, kw in settings:
        S.lower_mode_stats = lambda v, w=win, p=pk: orig(v, w, p)  # type: ignore[misc]
        d = [S.dice(S.quantify_scar(i.image, m.myocardium, pixel_spacing=ps, **kw).mask, i.scar) for i in imps]
        healthy, les = [], []
        for c, pim, pmy, psc in subs:
            r = S.quantify_scar(pim, pmy, pixel_spacing=(1.45, 1.45), **kw)
            (healthy if c == "healthy" else les).append(
                r.percent_of_myocardium if c == "healthy" else S.dice(r.mask, psc)
            )
        print(
            f"| {name} | {pk} | {win} | {np.mean(d):.3f} ({np.min(d):.2f}) | {np.nanmean(les):.2f} | "
            f"{max(healthy):.2f} |",
            flush=True,
        )
    S.lower_mode_stats = orig


if __name__ == "__main__":
    main()
