"""The ``deepoxymap`` command.

Each sub-command lives next to the science it drives and exposes two functions,
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only
when their command runs, so ``deepoxymap info`` never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from deepoxymap.errors import DeepOxyMapError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("deepoxymap.io.cli", "list the series found in files, folders, zips or NIfTI, and the load report"),
    "generate": ("deepoxymap.phantom.cli", "write a synthetic OS-CMR cohort (DICOM + ground truth)"),
    "realism": ("deepoxymap.phantom.realism", "compare phantom image statistics with a real cine"),
    "difficulty": ("deepoxymap.phantom.difficulty", "trivial-baseline AUCs on a cohort (is the task too easy?)"),
    "train": ("deepoxymap.model.cli_train", "train a classifier on a cohort manifest"),
    "evaluate": ("deepoxymap.model.cli_evaluate", "evaluate classifiers with subject-level splits"),
    "predict": ("deepoxymap.model.cli_predict", "classify a case: per-slice probabilities and the case call"),
    "model-check": ("deepoxymap.model.cli_check", "verify the shipped model file against its card"),
    "explain": ("deepoxymap.explain.cli", "compute a feature map for a case slice and save it"),
    "audit": ("deepoxymap.audit_cli", "agreement of feature maps with lesion masks over a manifest"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command's arguments (imports each module)."""
    parser = argparse.ArgumentParser(prog="deepoxymap", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            p.set_defaults(_missing=module)
            continue
        mod.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS and argv[0] not in ("-h", "--help"):
        # build only the chosen sub-command's parser (keeps start-up light)
        name = argv[0]
        module, help_ = COMMANDS[name]
        parser = argparse.ArgumentParser(prog=f"deepoxymap {name}", description=help_)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            print(f"deepoxymap {name}: not available in this build ({module} missing)", file=sys.stderr)
            return 2
        mod.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        try:
            return int(mod.run(args) or 0)
        except DeepOxyMapError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    build_parser().parse_args(argv)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
