"""Writing an audit: tables (CSV), the markdown summary, thresholds, bullseye PNGs and plotly data.

:func:`write_audit` turns an in-memory :class:`~deepoxymap.audit.run.AuditResult`
into ``per_case.csv``, ``summary.csv``, ``summary_subtype.csv``, ``summary.md``,
``summary.json`` (:func:`summary_json`), ``sanity.csv``, ``thresholds.json``,
``bullseye/*.png`` (CAM energy per segment beside LGE transmurality or edema
extent), ``bullseye_data.json`` (plotly ``Barpolar`` data per case) and
``failed.csv`` (``subject,line,phase,error``: the manifest rows that could not be
audited; a header only when none failed).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepoxymap import CLASSES
from deepoxymap.audit.run import AUDIT_CLASSES, AuditConfig, AuditResult, mean_sd

__all__ = [
    "FAILED_COLUMNS",
    "FIGURE_KEYS",
    "SPREAD_FIGURES",
    "audit_markdown",
    "by_subtype",
    "summary_json",
    "write_audit",
]

FAILED_COLUMNS = ("subject", "line", "phase", "error")
"""Columns of ``failed.csv`` (``line``: the manifest line, 1 = header; 0 for an in-memory case)."""

FIGURE_KEYS = {
    "pointing_myo": "pointing_myo",
    "pointing_myo_chance": "pointing_myo_chance",
    "energy_in_lesion_myo": "energy_in_lesion_myo",
    "energy_chance": "energy_chance",
    "dice_myo": "dice_myo",
    "dice_myo_ideal": "dice_myo_ideal",
    "dice_myo_all_myo": "dice_myo_all",
    "segment_auc": "segment_auc",
    "segment_kappa": "kappa_pooled",
    "lesion_reliance": "lesion_reliance",
    "lesion_reliance_control": "lesion_reliance_control",
}
"""``summary.json`` figure -> the :attr:`AuditResult.summary` column it is read from (means over cases;
``segment_kappa`` is Cohen's kappa pooled over the group's segments; ``lesion_reliance`` and
``lesion_reliance_control``: the lesion-fill check, the same for every readout of a case)."""

SPREAD_FIGURES = ("energy_in_myocardium", "area50_mm2", "segment_entropy", "peak_in_myocardium")
"""The healthy group's energy-spread figures (no lesion to score against)."""


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def by_subtype(per_case: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean figures per (class, sub-type, method, layer) for the lesion classes."""
    keys = sorted({(r["class"], r.get("subtype", ""), r["method"], r["layer"]) for r in per_case if r["class"] != "healthy"},
                  key=lambda k: (CLASSES.index(k[0]) if k[0] in CLASSES else 9, k[1], k[2], k[3]))  # fmt: skip
    out = []
    for c, st, m, lyr in keys:
        rows = [r for r in per_case if (r["class"], r.get("subtype", ""), r["method"], r["layer"]) == (c, st, m, lyr)]
        d: dict[str, Any] = {"class": c, "subtype": st, "method": m, "layer": lyr, "n": len(rows)}
        for k in ("dice", "dice_ideal", "dice_myo", "dice_myo_ideal", "dice_myo_all", "ebpg_myo",
                  "lesion_area_fraction_myo", "pointing_myo", "segment_auc", "lesion_reliance",
                  "lesion_reliance_control"):  # fmt: skip
            d[k] = mean_sd(r.get(k, float("nan")) for r in rows)[0]
        out.append(d)
    return out


def audit_markdown(res: AuditResult, cfg: AuditConfig | None = None) -> str:
    """The summary tables of an audit as markdown."""
    cfg = cfg or res.config
    lines = ["# Feature-map agreement audit", ""]
    lines += [f"- {n}" for n in res.notes]
    lines.append(f"- wall time {res.seconds:.0f} s")
    lines += ["", "## Lesion groups (mean over cases; maps normalised per case; Dice at the frozen threshold)", ""]
    lines.append(
        "| group | method | layer | n | acc | pointing (myo) [chance] | energy in lesion (myo, case) [chance] | "
        "Dice [ideal] | Dice (myo) [ideal] [all-myo] | IoU (myo) | segment AUC | kappa (pooled) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for d in res.summary:
        if d["class"] == "healthy":
            continue
        lines.append(
            f"| {d['class']} | {d['method']} | {d['layer']} | {d['n']} | {_fmt(d['accuracy'])} | "
            f"{_fmt(d['pointing_myo'])} [{_fmt(d['pointing_myo_chance'])}] | "
            f"{_fmt(d['energy_in_lesion_myo'])} [{_fmt(d['energy_chance'])}] | "
            f"{_fmt(d['dice'])} +- {_fmt(d['dice_sd'])} [{_fmt(d['dice_ideal'])}] | "
            f"{_fmt(d['dice_myo'])} +- {_fmt(d['dice_myo_sd'])} [{_fmt(d['dice_myo_ideal'])}] [{_fmt(d['dice_myo_all'])}] | "
            f"{_fmt(d['iou_myo'])} | {_fmt(d['segment_auc'])} | {_fmt(d['kappa_pooled'])} |"
        )
    lines += [
        "",
        (
            "Bracketed: chance levels (a random myocardial peak; a uniform map over the myocardium; calling the whole "
            "myocardium lesion) and [ideal]: the ceiling of the readout, i.e. the Dice of the reference lesion itself "
            "average-pooled to the layer's grid, upsampled like a CAM and thresholded like one (its threshold also "
            "chosen on validation subjects). Energy in lesion: over all slices of the case. Segment AUC: per case, "
            "mean CAM per AHA segment against the lesion-positive segments (threshold-free). edema-global: the whole "
            "myocardium is oedematous, so its myocardium-only figures are trivial; it is reported apart from "
            "edema-focal. acc: case-level accuracy of the model on these cases."
        ),
        "",
    ]
    sub_rows = by_subtype(res.per_case)
    if sub_rows:
        lines += [
            "",
            "## Lesion sub-types (the study's Dice rows: transmural 0.85, subendocardial 0.90, HCM 0.83, DCM 0.93, global edema 0.93)",
            "",
        ]
        lines.append(
            "| class | sub-type | method | layer | n | Dice [ideal] | Dice (myo) [ideal] [all-myo] | EBPG (myo) [chance] | "
            "pointing (myo) | segment AUC |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for d in sub_rows:
            lines.append(
                f"| {d['class']} | {d['subtype']} | {d['method']} | {d['layer']} | {d['n']} | {_fmt(d['dice'])} [{_fmt(d['dice_ideal'])}] | "
                f"{_fmt(d['dice_myo'])} [{_fmt(d['dice_myo_ideal'])}] [{_fmt(d['dice_myo_all'])}] | "
                f"{_fmt(d['ebpg_myo'])} [{_fmt(d['lesion_area_fraction_myo'])}] | {_fmt(d['pointing_myo'])} | {_fmt(d['segment_auc'])} |"
            )
    lines += _reliance_lines(res)
    lines += ["", "## Healthy cases: heatmap energy spread (no lesion)", ""]
    lines.append(
        "| method | layer | n | acc | energy in myocardium | area holding 50 % energy (mm^2) | segment entropy (0-1) | peak in myocardium |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for d in res.summary:
        if d["class"] != "healthy":
            continue
        lines.append(
            f"| {d['method']} | {d['layer']} | {d['n']} | {_fmt(d['accuracy'])} | {_fmt(d['energy_in_myocardium'])} | {_fmt(d['area50_mm2'], 0)} | "
            f"{_fmt(d['segment_entropy'])} | {_fmt(d['peak_in_myocardium'])} |"
        )
    lines += [
        "",
        "## Frozen thresholds (chosen on validation subjects)",
        "",
        "| method | layer | tau | val Dice | tau (myo) | val Dice (myo) | tau segment | val kappa | tau (myo, ideal) | val Dice (myo, ideal) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, t in res.thresholds.items():
        m, lyr = k.split("|", 1)
        lines.append(
            f"| {m} | {lyr} | {_fmt(t.get('tau'))} | {_fmt(t.get('val_dice'))} | {_fmt(t.get('tau_myo'))} | {_fmt(t.get('val_dice_myo'))} | "
            f"{_fmt(t.get('tau_segment'))} | {_fmt(t.get('val_kappa'))} | {_fmt(t.get('tau_myo_ideal'))} | {_fmt(t.get('val_dice_myo_ideal'))} |"
        )
    if res.failed:
        lines += ["", "## Failed rows (left out of every figure above)", "", "| subject | line | phase | error |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {f['subject']} | {f['line']} | {f['phase']} | {str(f['error']).replace('|', '/')} |" for f in res.failed
        ]
    if res.sanity:
        lines += [
            "",
            "## Sanity checks",
            "",
            "| method | layer | images | randomisation: mean Spearman rho (top layers re-initialised) | passed | deletion AUC | random-order AUC |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in res.sanity:
            flag = "yes" if s["randomization_passed"] else "**NO (flagged: map barely depends on the model)**"
            lines.append(
                f"| {s['method']} | {s['layer']} | {s['n_images']} | {_fmt(s['spearman_mean'])} ({s['randomize_top']}) | {flag} | {_fmt(s['deletion_auc'], 3)} | {_fmt(s['deletion_auc_random'], 3)} |"
            )
    lines += [
        "",
        f"Pointing tolerance {cfg.tolerance_mm} mm; a segment is lesion-positive at >= {100 * cfg.lesion_extent_min:.0f} % lesion area; target class = {cfg.target}"
        + (f", contrasted with {cfg.contrast} (its logit subtracted)." if cfg.contrast else "."),
        "",
    ]
    return "\n".join(lines)


def _reliance_lines(res: AuditResult) -> list[str]:
    """The lesion-fill check per group and sub-type (one readout's rows: the check does not depend on the readout)."""
    if not res.per_case:
        return []
    m0, l0 = res.default or (res.per_case[0]["method"], res.per_case[0]["layer"])
    rows = [r for r in res.per_case if r["method"] == m0 and r["layer"] == l0 and r["class"] != "healthy"]
    keys = sorted({(r.get("group", r["class"]), r.get("subtype", "")) for r in rows})
    if not keys:
        return []
    out = [
        "",
        "## Does the model use the lesion? (lesion-fill check, no map involved)",
        "",
        "| group | sub-type | n | p(true) | p(true), lesion filled | p(true), remote patch filled | reliance | control |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in dict.fromkeys(k[0] for k in keys):
        for st in [None, *sorted({k[1] for k in keys if k[0] == g})]:
            sel = [r for r in rows if r.get("group", r["class"]) == g and (st is None or r.get("subtype", "") == st)]
            f = {k: mean_sd(r.get(k, float("nan")) for r in sel) for k in
                 ("p_true", "p_lesion_filled", "p_control_filled", "lesion_reliance", "lesion_reliance_control")}  # fmt: skip
            name = "**all**" if st is None else st
            out.append(
                f"| {g} | {name} | {f['lesion_reliance'][2]} | {_fmt(f['p_true'][0])} | {_fmt(f['p_lesion_filled'][0])} | "
                f"{_fmt(f['p_control_filled'][0])} | {_fmt(f['lesion_reliance'][0])} | {_fmt(f['lesion_reliance_control'][0])} |"
            )
    out += [
        "",
        (
            "The lesion's pixels of the model input are replaced by the median of the remote myocardium (the wall's "
            "shape stays); the control fills a same-shaped patch of remote myocardium. reliance = p(true) - p(true, "
            "lesion filled), the share of the model's belief carried by the lesion's own signal; a model whose maps "
            "can find the lesion needs a reliance well above its control. n: cases with a fillable lesion (global "
            "edema has no remote myocardium)."
        ),
    ]
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    return v


def _figures(res: AuditResult, method: str, layer: str) -> dict[str, Any]:
    """``{CLASS: FIGURES}`` of one readout, every :data:`AUDIT_CLASSES` group present (``n`` 0 and nulls when empty)."""
    sanity = next((s for s in res.sanity if s["method"] == method and s["layer"] == layer), None)
    san = None if sanity is None else {k: _clean(sanity.get(k)) for k in
                                       ("randomization_passed", "spearman_mean", "randomize_top", "n_images",
                                        "deletion_auc", "deletion_auc_random")}  # fmt: skip
    out: dict[str, Any] = {}
    for c in AUDIT_CLASSES:
        d = next((r for r in res.summary if r["class"] == c and r["method"] == method and r["layer"] == layer), None)
        fig: dict[str, Any] = {"n": int(d["n"]) if d else 0}
        for name, col in FIGURE_KEYS.items():
            fig[name] = _clean(d.get(col)) if d else None
        if c == "healthy":
            for k in SPREAD_FIGURES:
                fig[k] = _clean(d.get(k)) if d else None
        fig["sanity"] = san
        out[c] = fig
    return out


def summary_json(res: AuditResult) -> dict[str, Any]:
    """The audit's headline figures, shaped for ``summary.json``.

    ``{"default": {"method", "layer", "classes": {CLASS: FIGURES}}, "all": [{"method", "layer", "classes"}, ...]}``
    with CLASS one of :data:`~deepoxymap.audit.run.AUDIT_CLASSES` and FIGURES holding ``n``, the
    :data:`FIGURE_KEYS` (means over the group's cases, null where undefined), ``sanity`` (the
    randomisation and deletion checks of that method and layer, null when not run) and, for
    ``healthy``, the :data:`SPREAD_FIGURES`. ``default`` is the app's default readout
    (:attr:`AuditResult.default`; else the first computed one).
    """
    readouts = list(dict.fromkeys((r["method"], r["layer"]) for r in res.summary))
    if not readouts:
        from deepoxymap.audit.run import layers_for

        readouts = [(m, lyr) for m in res.config.methods for lyr in layers_for(m, res.layers)]
    default = res.default or (readouts[0] if readouts else ("", ""))
    entry = [{"method": m, "layer": lyr, "classes": _figures(res, m, lyr)} for m, lyr in readouts]
    return {
        "default": {"method": default[0], "layer": default[1], "classes": _figures(res, *default)},
        "all": entry,
    }


def _write_bullseye(bdir: Path, key: str, seg: Mapping[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from deepoxymap.cardiac.bullseye import bullseye_pair

    bdir.mkdir(parents=True, exist_ok=True)
    s, method, layer = key.split("|", 2)
    kind, label, subtype = seg["lesion_kind"], seg["label"], seg["subtype"]
    right = (
        "LGE transmurality per segment"
        if kind == "scar"
        else ("T2 edema transmurality per segment" if kind == "edema" else "no lesion (healthy)")
    )
    fig = bullseye_pair(
        [np.nan if v is None else v for v in seg["cam_energy"]],
        [np.nan if v is None else v for v in seg["lesion"]],
        left_title=f"{method} energy per segment", right_title=right,
        suptitle=f"{s} ({label}{', ' + subtype if subtype else ''}), layer {layer}",
    )  # fmt: skip
    p = bdir / f"{s}_{method.replace('+', 'p')}_{layer.replace('+', '-')}.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def write_audit(res: AuditResult, out_dir: Path) -> list[Path]:
    """Write every table and figure of ``res`` into ``out_dir`` (created); returns the paths (also in ``res.files``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        keys = list(rows[0])
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if _clean(r.get(k)) is None else _clean(r.get(k))) for k in keys})
        res.files.append(path)

    write_csv(out_dir / "per_case.csv", res.per_case)
    write_csv(out_dir / "summary.csv", res.summary)
    write_csv(out_dir / "summary_subtype.csv", by_subtype(res.per_case))
    write_csv(out_dir / "sanity.csv", res.sanity)
    with (out_dir / "failed.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(FAILED_COLUMNS), extrasaction="ignore")
        w.writeheader()
        w.writerows(res.failed)
    res.files.append(out_dir / "failed.csv")
    (out_dir / "summary.md").write_text(audit_markdown(res))
    (out_dir / "summary.json").write_text(json.dumps(summary_json(res), indent=1) + "\n")
    (out_dir / "thresholds.json").write_text(
        json.dumps({k: {kk: _clean(vv) for kk, vv in v.items()} for k, v in res.thresholds.items()}, indent=1)
    )
    from deepoxymap.cardiac.bullseye import plotly_bullseye_data

    data = {k: {"cam_energy": plotly_bullseye_data(v["cam_energy"]), "lesion": plotly_bullseye_data(v["lesion"]), "lesion_kind": v["lesion_kind"]}
            for k, v in res.segments.items()}  # fmt: skip
    (out_dir / "bullseye_data.json").write_text(json.dumps(data))
    res.files += [out_dir / "summary.md", out_dir / "summary.json", out_dir / "thresholds.json",
                  out_dir / "bullseye_data.json"]  # fmt: skip
    for key, seg in res.segments.items():
        if seg.get("png"):
            res.files.append(_write_bullseye(out_dir / "bullseye", key, seg))
    return list(res.files)
