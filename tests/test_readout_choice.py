"""tools.readout_choice: the score that picks the app's default readout on validation audits."""

from __future__ import annotations

import json
import math

from tools import readout_choice


def _fig(p: float, dice: float, ideal: float, auc: float) -> dict[str, float]:
    return {"pointing_myo": p, "dice_myo": dice, "dice_myo_ideal": ideal, "segment_auc": auc,
            "energy_in_lesion_myo": 0.2, "energy_chance": 0.1}  # fmt: skip


def test_score_and_ranking(tmp_path, capsys) -> None:
    good = {g: _fig(0.9, 0.6, 0.8, 0.9) for g in readout_choice.GROUPS}
    weak = {g: _fig(0.3, 0.1, 0.8, 0.5) for g in readout_choice.GROUPS}
    assert math.isclose(readout_choice.score(good), 0.9 + 0.75 + 0.9)
    assert math.isnan(readout_choice.score({**good, "ischemic": {}}))  # a missing group is no free pass
    summary = {"default": {}, "all": [{"method": "gradcam", "layer": "b3", "classes": weak},
                                      {"method": "hirescam", "layer": "b4", "classes": good}]}  # fmt: skip
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert readout_choice.main([f"val={tmp_path}"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| val")]
    assert lines[0].startswith("| val | hirescam | b4 | 2.550") and "2.0x" in lines[0]
    assert lines[1].startswith("| val | gradcam | b3 |")
