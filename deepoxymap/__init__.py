"""DeepOxyMap: what a deep network sees in contrast-free oxygenation-sensitive CMR.

Research use only; not a medical device.
"""

from __future__ import annotations

__version__ = "0.1.0"

CLASSES: tuple[str, ...] = ("healthy", "ischemic", "non-ischemic", "edema")
"""The four classes, in the fixed order the model's outputs use."""
