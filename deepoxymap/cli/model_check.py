"""``deepoxymap model-check``: verify the shipped model files against their cards.

The classifier (``--model``) and the LV / RV segmenter (``--segmenter``) are each checked.

Exit codes: 0 when the model and card verify (hash, safe-mode load, graph) --
or when the model file is simply absent (a development tree without a model
still runs; a warning says how to get one); 1 on a missing/invalid card, a
hash mismatch or a file Keras cannot load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sub-command's options."""
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model (settings.model_path)")
    parser.add_argument(
        "--segmenter", type=Path, default=None, help="default: the shipped segmenter (settings.segmenter_path)"
    )
    parser.add_argument("--hash-only", action="store_true", help="verify the sha256 only (no TensorFlow import)")


def run(args: argparse.Namespace) -> int:
    """Check and report both files; 1 when either fails."""
    return max(_classifier(args), _segmenter(args))


def _segmenter(args: argparse.Namespace) -> int:
    from deepoxymap.config import settings
    from deepoxymap.segmentation.learned import SegmenterUnavailable, load_segmenter, verify_segmenter

    path = getattr(args, "segmenter", None) or settings().segmenter_path
    if not Path(path).is_file():
        print(
            f"warning: no segmenter at {path}; automatic masks use the classical method. To get one: "
            "python -m deepoxymap.segmentation.learned --help",
            file=sys.stderr,
        )
        return 0
    try:
        line = verify_segmenter(path)
        if not args.hash_only:
            load_segmenter(Path(path))
            line += "; loads in Keras safe mode"
    except (ValueError, SegmenterUnavailable) as exc:
        print(f"error: {path}: {exc}" if str(path) not in str(exc) else f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {line}")
    return 0


def _classifier(args: argparse.Namespace) -> int:
    from deepoxymap.config import settings
    from deepoxymap.errors import ModelLoadError
    from deepoxymap.model.loading import TRAIN_HINT, verify_model_file

    path = args.model or settings().model_path
    if not Path(path).is_file():
        print(
            f"warning: no model at {path}; classification will be unavailable. To get one: {TRAIN_HINT}",
            file=sys.stderr,
        )
        return 0
    try:
        p, card = verify_model_file(path)
        if not args.hash_only:
            from deepoxymap.model.loading import load_model

            load_model(p)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    t = (card.get("metrics") or {}).get("test") or {}
    acc = (t.get("accuracy") or {}).get("value")
    print(
        f"ok: {p.name} sha256 {card['file']['sha256'][:12]}... matches its card; arch {card.get('arch')}, "
        f"input {card['preprocessing']['input_size']} px"
        + (f", test accuracy {acc:.3f} (n={t.get('n')})" if acc is not None else "")
        + ("" if args.hash_only else "; loads in Keras safe mode")
    )
    return 0
