"""``deepoxymap explain PATH``: a feature map for a case slice, saved as a PNG overlay and ``.npy``.

PATH is a case folder, DICOM files or a zip (a phantom subject folder is read
with its ground truth, and then the agreement with its lesion is printed).
The heatmap is computed on the model input and mapped back onto the OS-CMR
image grid (``CropTransform.to_source``); the ``.npy`` holds that source-grid
heatmap (float32 ``[rows, cols]`` in ``[0, 1]``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from deepoxymap import CLASSES
from deepoxymap.errors import ExplainError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("paths", type=Path, nargs="+", help="case folder, DICOM files or a zip")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument(
        "--method", default="gradcam", help="gradcam, gradcam++, hirescam, layercam, scorecam, smoothgrad"
    )
    parser.add_argument("--layer", default=None, help="convolutional layer (default: the last one)")
    parser.add_argument(
        "--class", dest="target", default=None, help="class name or index to explain (default: predicted)"
    )
    parser.add_argument("--slice", type=int, default=None, help="slice index, base to apex (default: every slice)")
    parser.add_argument("--out", type=Path, default=Path("explain_out"), help="output folder")
    parser.add_argument("--alpha", type=float, default=0.45, help="overlay opacity")
    parser.add_argument("--feature-maps", type=int, default=0, metavar="K", help="also save the top-K raw feature maps")
    parser.add_argument("--list-layers", action="store_true", help="print the convolutional layers and exit")


def _target(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    if value in CLASSES:
        return CLASSES.index(value)
    raise ExplainError(f"unknown class {value!r}", hint=f"use one of {list(CLASSES)} or an index")


def run(args: argparse.Namespace) -> int:
    """Compute, save and summarise the heatmaps."""
    from deepoxymap.cli.predict import load_any_case
    from deepoxymap.explain.methods import conv_layer_names, explain_batch, feature_maps
    from deepoxymap.explain.overlay import save_overlay_png
    from deepoxymap.model.loading import load_model
    from deepoxymap.model.preprocess import preprocess_case

    loaded = load_model(args.model)
    if args.list_layers:
        print("\n".join(conv_layer_names(loaded.model)))
        return 0
    case = load_any_case(list(args.paths))
    pre = preprocess_case(case, loaded.spec)
    rows = list(range(pre.x.shape[0])) if args.slice is None else [args.slice]
    if any(r < 0 or r >= pre.x.shape[0] for r in rows):
        raise ExplainError(f"slice {args.slice} out of range: the case has {pre.x.shape[0]} slices")
    hms = explain_batch(loaded.model, pre.x[rows], args.method, _target(args.target), args.layer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for r, h in zip(rows, hms, strict=True):
        t = pre.transforms[r]
        src = h.to_source(t)
        image = pre.stack.data[pre.slice_indices[r], pre.frames[r]]
        stem = f"{case.case_id}_s{pre.slice_indices[r]:02d}_{h.method.replace('+', 'p')}"
        np.save(out / f"{stem}.npy", src.array)
        save_overlay_png(out / f"{stem}.png", image, src.array, alpha=args.alpha)
        item = {
            "slice": pre.slice_indices[r], "frame": pre.frames[r], "method": h.method, "layer": h.layer,
            "class": h.class_name, "p": float(h.probabilities[h.target_class]) if h.probabilities is not None else None,
            "peak_rc": list(src.peak), "png": str(out / f"{stem}.png"), "npy": str(out / f"{stem}.npy"),
        }  # fmt: skip
        mask_stack = case.mask_for(pre.stack.series_uid)
        if mask_stack is not None and case.label in ("ischemic", "non-ischemic", "edema"):
            from deepoxymap.audit import energy_pointing_game, pointing_game
            from deepoxymap.cardiac.masks import labels_from_stack, masks_from_labels

            lab = labels_from_stack(mask_stack, frame=pre.frames[r])[pre.slice_indices[r]]
            m = masks_from_labels(lab)
            lesion = m.scar if case.label != "edema" else (m.edema | m.scar)
            if lesion.any():
                ps = pre.stack.geometry.pixel_spacing
                item["pointing_5mm"] = pointing_game(src.array, lesion, ps, 5.0)
                item["ebpg"] = round(energy_pointing_game(src.array, lesion), 3)
                item["ebpg_myocardium"] = round(energy_pointing_game(src.array, lesion, roi=m.myocardium), 3)
        if args.feature_maps:
            fm = feature_maps(loaded.model, pre.x[r], args.layer, top_k=args.feature_maps)
            np.save(out / f"{stem}_featuremaps_{fm.layer}.npy", fm.maps)
            item["feature_channels"] = fm.channels.tolist()
        summary.append(item)
        print(
            f"slice {item['slice']}: {h.method} on {h.layer or 'input'} for '{h.class_name}' (p={item['p']:.3f}); "
            f"peak at {tuple(src.peak)}; -> {item['png']}"
            + (f"; pointing(5 mm)={item['pointing_5mm']:.0f} EBPG={item['ebpg']}" if "ebpg" in item else "")
        )
    (out / f"{case.case_id}_{args.method.replace('+', 'p')}.json").write_text(json.dumps(summary, indent=1))
    return 0
