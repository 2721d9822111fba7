"""Rank the feature-map readouts of one or more audits run on *validation* subjects.

``python -m tools.readout_choice LABEL=DIR [LABEL=DIR ...]`` reads each ``DIR/summary.json``
(written by ``deepoxymap audit``) and prints, for every (audit, method, layer), the issue-12
figures of the three focal-lesion groups and the score used to choose the app's default readout:
the mean over ischemic, non-ischemic and focal edema of segment AUC + Dice / ideal-map ceiling +
pointing game (myocardium only). Run it on validation audits only (a generated cohort such as
``generate --seed 7``); the test cohort's audit is read, not ranked.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

GROUPS = ("ischemic", "non-ischemic", "edema-focal")


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else float("nan")


def score(classes: dict[str, dict[str, Any]]) -> float:
    """Mean over the focal groups of segment AUC + Dice / ideal + pointing (NaN if a figure is missing)."""
    parts = []
    for g in GROUPS:
        f = classes.get(g) or {}
        ideal = _num(f.get("dice_myo_ideal"))
        dice = _num(f.get("dice_myo")) / ideal if ideal > 0 else float("nan")
        parts.append(_num(f.get("segment_auc")) + dice + _num(f.get("pointing_myo")))
    return sum(parts) / len(parts)


def rows(label: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per readout of one audit's ``summary.json``."""
    out = []
    for e in summary["all"]:
        c = e["classes"]
        row: dict[str, Any] = {"audit": label, "method": e["method"], "layer": e["layer"], "score": score(c)}
        for g in GROUPS:
            f = c.get(g) or {}
            ratio = _num(f.get("energy_in_lesion_myo")) / _num(f.get("energy_chance"))
            row[g] = (
                f"{_num(f.get('pointing_myo')):.2f} / {ratio:.1f}x / {_num(f.get('dice_myo')):.2f}"
                f" [{_num(f.get('dice_myo_ideal')):.2f}] / {_num(f.get('segment_auc')):.2f}"
            )
        out.append(row)
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    table = []
    for arg in argv:
        label, _, d = arg.partition("=")
        table += rows(label, json.loads((Path(d) / "summary.json").read_text()))
    table.sort(key=lambda r: -r["score"] if math.isfinite(r["score"]) else math.inf)
    print(
        "| audit | method | layer | score | "
        + " | ".join(f"{g}: pointing / energy / Dice [ideal] / segAUC" for g in GROUPS)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(GROUPS))
    for r in table:
        print(
            f"| {r['audit']} | {r['method']} | {r['layer']} | {r['score']:.3f} | "
            + " | ".join(r[g] for g in GROUPS)
            + " |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
