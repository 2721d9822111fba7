"""The ``deepoxymap`` command: one module per sub-command in this package.

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int``
and imports its science inside ``run``, so ``deepoxymap info`` never imports
TensorFlow. Only the chosen sub-command's module is imported.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from deepoxymap.errors import DeepOxyMapError

__all__ = ["COMMANDS", "build_parser", "command_module", "main"]


def _info() -> ModuleType:
    from deepoxymap.cli import info

    return info


def _generate() -> ModuleType:
    from deepoxymap.cli import generate

    return generate


def _realism() -> ModuleType:
    from deepoxymap.cli import realism

    return realism


def _difficulty() -> ModuleType:
    from deepoxymap.cli import difficulty

    return difficulty


def _train() -> ModuleType:
    from deepoxymap.cli import train

    return train


def _training_manifest() -> ModuleType:
    from deepoxymap.cli import training_manifest

    return training_manifest


def _evaluate() -> ModuleType:
    from deepoxymap.cli import evaluate

    return evaluate


def _calibrate() -> ModuleType:
    from deepoxymap.cli import calibrate

    return calibrate


def _predict() -> ModuleType:
    from deepoxymap.cli import predict

    return predict


def _model_check() -> ModuleType:
    from deepoxymap.cli import model_check

    return model_check


def _explain() -> ModuleType:
    from deepoxymap.cli import explain

    return explain


def _audit() -> ModuleType:
    from deepoxymap.cli import audit

    return audit


def _export() -> ModuleType:
    from deepoxymap.cli import export

    return export


def _report() -> ModuleType:
    from deepoxymap.cli import report

    return report


def _segment() -> ModuleType:
    from deepoxymap.cli import segment

    return segment


def _scar() -> ModuleType:
    from deepoxymap.cli import scar

    return scar


COMMANDS: dict[str, tuple[Callable[[], ModuleType], str]] = {
    "info": (_info, "list the series found in files, folders, zips or NIfTI, and the load report"),
    "generate": (_generate, "write a synthetic OS-CMR cohort (DICOM + ground truth)"),
    "realism": (_realism, "compare phantom image statistics with a real cine"),
    "difficulty": (_difficulty, "trivial-baseline AUCs on a cohort (is the task too easy?)"),
    "training-manifest": (_training_manifest, "a manifest of generated training subjects plus a test cohort"),
    "train": (_train, "train a classifier on a cohort manifest"),
    "evaluate": (_evaluate, "evaluate classifiers with subject-level splits"),
    "calibrate": (_calibrate, "fit a model's class-prior correction on its validation subjects"),
    "predict": (_predict, "classify a case: per-slice probabilities and the case call"),
    "model-check": (_model_check, "verify the shipped model file against its card"),
    "explain": (_explain, "compute a feature map for a case slice and save it"),
    "audit": (_audit, "agreement of feature maps with lesion masks over a manifest"),
    "export": (_export, "write a case's Parametric Map, SEGs, SR and PDF report (de-identified by default)"),
    "report": (_report, "write a case's one-page PDF report"),
    "segment": (_segment, "automatic LV blood pool, myocardium and RV label maps as 8-bit PNGs"),
    "scar": (_scar, "LGE scar inside a labelled myocardium: scar.nii.gz and one JSON line"),
}
"""Sub-command name -> (its module, imported on use; one-line help)."""


def command_module(name: str) -> ModuleType:
    """The module of sub-command ``name`` (imported now)."""
    return COMMANDS[name][0]()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command's arguments (imports each module)."""
    parser = argparse.ArgumentParser(prog="deepoxymap", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (load, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        load().add_arguments(p)
        p.set_defaults(_command=name)
    return parser


def _log_to_stderr() -> None:
    """Show the package's INFO lines (progress) and warnings on stderr, once."""
    log = logging.getLogger("deepoxymap")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        # build only the chosen sub-command's parser (keeps start-up light)
        name = argv[0]
        load, help_ = COMMANDS[name]
        mod = load()
        parser = argparse.ArgumentParser(prog=f"deepoxymap {name}", description=help_)
        mod.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        _log_to_stderr()
        try:
            return int(mod.run(args) or 0)
        except DeepOxyMapError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    build_parser().parse_args(argv)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
