"""Does the classifier use the lesion at all? The lesion-fill check.

A feature map can only point at the lesion if the class score depends on the
lesion's pixels. This module measures that dependence directly, with no map:

1. the reference lesion and myocardium are resampled onto the model grid
   (:func:`~deepoxymap.audit.reference.lesion_on_model_grid`);
2. in every slice, the lesion pixels of the model input are replaced by the
   median of the remote myocardium (myocardium more than ``margin_px`` pixels from
   the lesion), channel by channel, so the lesion's contrast is gone while the wall's
   shape (thinning, thickening, dilation) stays;
3. as a control, a patch of remote myocardium of the same shape (the lesion mask
   rotated about the LV centre by the quarter turn that keeps most of it in the
   remote myocardium) is filled the same way;
4. the case-level probability of the true class is computed for the original,
   the lesion-filled and the control-filled inputs.

``reliance = p(original) - p(lesion filled)`` is how much of the model's belief the
lesion's own signal carries; ``reliance_control`` is the same for a lesion-sized
patch elsewhere in the wall. A model whose maps can find the lesion must show a
reliance well above its control. This is an occlusion test in the sense of Zeiler &
Fergus (ECCV 2014), with the occluder chosen by the reference mask and filled
in-distribution (remote myocardium, not zeros), as in the "remove and retrain"
discussion of Hooker et al. (NeurIPS 2019) on why out-of-distribution fills mislead.

A case whose lesion covers the whole myocardium (global edema) has no remote
myocardium to fill from: its figures are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepoxymap.audit.reference import CaseReference, lesion_on_model_grid, mask_on_model_grid

__all__ = ["LesionFill", "ReliancePolicy", "lesion_fill_inputs", "lesion_reliance"]


@dataclass(frozen=True)
class ReliancePolicy:
    """Constants of the lesion-fill check.

    Attributes:
        lesion_min: a model pixel is lesion where the resampled lesion fraction is at least this.
        myo_min: a model pixel is myocardium where the resampled myocardium fraction is at least this.
        margin_px: remote myocardium keeps this many model pixels (dilation) away from the lesion.
        min_pixels: a slice whose lesion or remote myocardium has fewer model pixels is left as it is.
    """

    lesion_min: float = 0.3
    myo_min: float = 0.5
    margin_px: int = 2
    min_pixels: int = 3


@dataclass(frozen=True)
class LesionFill:
    """The filled inputs of one case.

    Attributes:
        x_lesion: float32 ``[n, H, W, C]``: the model input with the lesion filled.
        x_control: float32 ``[n, H, W, C]``: the model input with the control patch filled.
        slices_filled: slices whose lesion was filled (the others are unchanged in both).
        lesion_pixels: model pixels filled as lesion, all slices.
        control_pixels: model pixels filled as control, all slices (at most ``lesion_pixels``).
    """

    x_lesion: NDArray[np.float32]
    x_control: NDArray[np.float32]
    slices_filled: int
    lesion_pixels: int
    control_pixels: int


def _rotate_about(mask: NDArray[np.bool_], center: tuple[float, float], quarter_turns: int) -> NDArray[np.bool_]:
    """``mask`` rotated by ``quarter_turns`` x 90 degrees about ``center`` (row, col), nearest pixel, same shape."""
    rr, cc = np.nonzero(mask)
    dr, dc = rr - center[0], cc - center[1]
    for _ in range(quarter_turns % 4):
        dr, dc = -dc, dr
    r2 = np.rint(center[0] + dr).astype(int)
    c2 = np.rint(center[1] + dc).astype(int)
    keep = (r2 >= 0) & (r2 < mask.shape[0]) & (c2 >= 0) & (c2 < mask.shape[1])
    out = np.zeros_like(mask, dtype=bool)
    out[r2[keep], c2[keep]] = True
    return out


def lesion_fill_inputs(cm: CaseReference, policy: ReliancePolicy = ReliancePolicy()) -> LesionFill:
    """The case's model input with its lesion filled, and with a same-shaped remote patch filled.

    Args:
        cm: the case (``x`` float32 ``[n, H, W, C]`` in the model's scaling; lesion and
            myocardium on the OS-CMR grid with each slice's ``CropTransform``).
        policy: thresholds and margins (model pixels).

    Returns:
        :class:`LesionFill`; with no fillable slice both inputs equal ``cm.x``.
    """
    from scipy import ndimage as ndi

    xl = np.array(cm.x, dtype=np.float32, copy=True)
    xc = np.array(cm.x, dtype=np.float32, copy=True)
    lesions = lesion_on_model_grid(cm)
    myos = mask_on_model_grid(cm, "myocardium")
    n_sl = n_les = n_ctl = 0
    for i, (lf, mf) in enumerate(zip(lesions, myos, strict=True)):
        les = lf >= policy.lesion_min
        myo = mf >= policy.myo_min
        remote = myo & ~ndi.binary_dilation(les, iterations=policy.margin_px) if les.any() else myo
        if les.sum() < policy.min_pixels or remote.sum() < policy.min_pixels:
            continue
        fill = np.median(cm.x[i][remote], axis=0)
        xl[i][les] = fill
        rr, cc = np.nonzero(myo)
        center = (float(rr.mean()), float(cc.mean()))
        best = max((_rotate_about(les, center, q) & remote for q in (2, 1, 3)), key=lambda m: int(m.sum()))
        xc[i][best] = fill
        n_sl += 1
        n_les += int(les.sum())
        n_ctl += int(best.sum())
    return LesionFill(xl, xc, n_sl, n_les, n_ctl)


def lesion_reliance(
    model: Any,
    cm: CaseReference,
    target: int,
    *,
    offset: NDArray[Any] | None = None,
    policy: ReliancePolicy = ReliancePolicy(),
) -> dict[str, float]:
    """How much the case's true-class probability rests on the lesion's own pixels.

    Args:
        model: a Keras classifier (softmax output ``[n, C]``).
        cm: the case (:class:`~deepoxymap.audit.reference.CaseReference`).
        target: class index whose probability is read (the true class).
        offset: the card's calibration offset (``model.calibrate.card_offset``), applied
            to the case-level probabilities as the case call is.
        policy: see :class:`ReliancePolicy`.

    Returns:
        ``p_true``, ``p_lesion_filled``, ``p_control_filled`` (case level: the mean of the
        slices' softmax, offset applied), ``lesion_reliance`` and ``lesion_reliance_control``
        (``p_true`` minus each), ``slices_filled`` and ``control_area_ratio`` (control
        pixels / lesion pixels). All NaN but ``slices_filled`` when no slice could be filled.
    """
    from deepoxymap.model.calibrate import apply_offset
    from deepoxymap.model.predict import predict_array

    fill = lesion_fill_inputs(cm, policy)
    nan = float("nan")
    if fill.slices_filled == 0:
        return {"p_true": nan, "p_lesion_filled": nan, "p_control_filled": nan, "lesion_reliance": nan,
                "lesion_reliance_control": nan, "slices_filled": 0.0, "control_area_ratio": nan}  # fmt: skip
    n = cm.x.shape[0]
    probs = predict_array(model, np.concatenate([cm.x, fill.x_lesion, fill.x_control]).astype(np.float32))
    p0, pl, pc = (float(apply_offset(probs[k * n : (k + 1) * n].mean(axis=0), offset)[target]) for k in range(3))
    return {
        "p_true": p0,
        "p_lesion_filled": pl,
        "p_control_filled": pc,
        "lesion_reliance": p0 - pl,
        "lesion_reliance_control": p0 - pc,
        "slices_filled": float(fill.slices_filled),
        "control_area_ratio": fill.control_pixels / max(fill.lesion_pixels, 1),
    }
