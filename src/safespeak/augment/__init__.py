"""Training-time waveform augmentation on batches (B, T): RawBoost, codecs and channel effects.

`build_augment(AugmentConfig(...))` gives the batch transform the trainer applies after cropping;
`safespeak.augment.rawboost.rawboost(x, algo, generator)` is the direct RawBoost entry point (the
module is deliberately not shadowed by a same-named function here).
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
from safespeak.augment.rawboost import RawBoostParams

__all__ = [
    "AugmentConfig",
    "BatchTransform",
    "ChannelConfig",
    "ChannelTransform",
    "Compose",
    "RawBoostParams",
    "RawBoostTransform",
    "build_augment",
]
