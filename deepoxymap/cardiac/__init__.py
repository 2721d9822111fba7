"""Cardiac anatomy and tissue characterisation (no TensorFlow).

Modules:
    localize: LV localisation shared with preprocessing (``find_lv_center``).
    masks: structure masks from label maps (phantom, EMIDEC, user NIfTI/DICOM) or contours.
    segments: RV insertion points, anatomy-anchored AHA 17-segment maps, slice levels,
        per-segment aggregation.
    scar: LGE scar by n-SD and FWHM inside the myocardium, transmurality per segment.
    edema: T2 edema mask (T2 above remote by a configurable margin).
    bullseye: the 17-segment bullseye (matplotlib figure and plotly data).
    oxygenation: the OS response (percent signal change between manoeuvre time points).
"""

from __future__ import annotations

from deepoxymap.cardiac.oxygenation import OSResponse, os_response

__all__ = ["OSResponse", "os_response"]
