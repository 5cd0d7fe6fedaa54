"""Training-time waveform augmentation on batches (B, T): RawBoost, codecs and channel effects.

`build_augment(AugmentConfig(...))` gives the batch transform the trainer applies after cropping.
"""

from __future__ import annotations

from safespeak.augment.channel import ChannelConfig, ChannelTransform
from safespeak.augment.pipeline import (
    AugmentConfig,
    BatchTransform,
    Compose,
    RawBoostTransform,
    build_augment,
)
from safespeak.augment.rawboost import RawBoostParams, rawboost

__all__ = [
    "AugmentConfig",
    "BatchTransform",
    "ChannelConfig",
    "ChannelTransform",
    "Compose",
    "RawBoostParams",
    "RawBoostTransform",
    "build_augment",
    "rawboost",
]
