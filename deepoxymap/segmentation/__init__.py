"""Automatic segmentation of the LV blood pool, LV myocardium and RV on short-axis images.

:func:`segment_image` (one image) and :func:`segment_stack` (a whole
:class:`~deepoxymap.case.Stack`) return uint8 label maps in the phantom scheme:
0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool. Two methods
(:data:`METHODS`) start from the same LV localisation: ``polar``
(:mod:`deepoxymap.segmentation.polar`), classical polar unwrapping around the LV
centre and dynamic programming of the endo- and epicardial borders; and ``unet``
(:mod:`deepoxymap.segmentation.learned`), a small U-Net trained only on
random-appearance phantom images (:mod:`deepoxymap.segmentation.synth`).
"""

from deepoxymap.segmentation.api import (
    BACKGROUND,
    DEFAULT_METHOD,
    KIND_OF_ROLE,
    LV_BLOOD,
    METHODS,
    MYOCARDIUM,
    RV_BLOOD,
    segment_image,
    segment_stack,
)
from deepoxymap.segmentation.polar import KINDS

__all__ = [
    "BACKGROUND",
    "DEFAULT_METHOD",
    "KINDS",
    "KIND_OF_ROLE",
    "LV_BLOOD",
    "METHODS",
    "MYOCARDIUM",
    "RV_BLOOD",
    "segment_image",
    "segment_stack",
]
