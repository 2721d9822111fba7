"""Training-time augmentation as in the study: random rotation and horizontal flip.

TensorFlow ops mapped over *batches* inside the ``tf.data`` training pipeline
(:func:`deepoxymap.model.data.make_dataset`); never part of the saved
inference graph, never applied to validation, test or inference inputs.

Rotation presets (``--augment``): ``"none"``, ``"rot20"``, ``"rot40"``,
``"rot60"``, ``"rot180"``: an angle drawn uniformly in +-N degrees per image,
about the crop centre (= the LV centre), bilinear, reflected border. A
horizontal flip with probability ``flip_p`` (0.5 in the study) is applied in
every preset but ``"none"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["PRESETS", "AugmentSpec", "augment_batch"]

PRESETS: dict[str, float] = {"none": 0.0, "rot20": 20.0, "rot40": 40.0, "rot60": 60.0, "rot180": 180.0}


@dataclass(frozen=True)
class AugmentSpec:
    """Augmentation settings (recorded in the model card).

    Attributes:
        preset: one of :data:`PRESETS`.
        flip_p: probability of a horizontal flip.
    """

    preset: str = "rot20"
    flip_p: float = 0.5

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"augment preset must be one of {sorted(PRESETS)}, got {self.preset!r}")

    @property
    def max_degrees(self) -> float:
        """Rotation range, +- degrees."""
        return PRESETS[self.preset]

    @property
    def active(self) -> bool:
        """Whether any augmentation is applied."""
        return self.preset != "none"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"preset": self.preset, "max_degrees": self.max_degrees, "flip_p": self.flip_p if self.active else 0.0}


def augment_batch(images: Any, spec: AugmentSpec, seed: Any = None) -> Any:
    """Rotate and flip a float32 batch ``[B, H, W, C]`` (tf.Tensor in, tf.Tensor out).

    Args:
        images: float32 ``[B, H, W, C]``.
        spec: the augmentation.
        seed: optional stateless seed ``[2]`` int32 tensor; ``None`` uses the global generator.
    """
    import tensorflow as tf

    if not spec.active:
        return images
    shape = tf.shape(images)
    b, h, w = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    max_rad = spec.max_degrees * math.pi / 180.0
    if seed is None:
        angles = tf.random.uniform([b], -max_rad, max_rad)
        flips = tf.random.uniform([b]) < spec.flip_p
    else:
        angles = tf.random.stateless_uniform([b], seed, -max_rad, max_rad)
        flips = tf.random.stateless_uniform([b], seed + 1) < spec.flip_p
    images = tf.where(flips[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if spec.max_degrees > 0:
        cos, sin = tf.cos(angles), tf.sin(angles)
        x_off = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
        y_off = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
        zeros = tf.zeros_like(cos)
        transforms = tf.stack([cos, -sin, x_off, sin, cos, y_off, zeros, zeros], axis=1)
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=transforms,
            output_shape=shape[1:3],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )
    return images
