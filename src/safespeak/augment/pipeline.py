"""Training-time batch augmentation assembled from the `augment:` section of the training config.

The trainer calls the transform on each cropped batch (B, T), on the training device, with its own
seeded `torch.Generator`; the data loader stays augmentation-free.

    cfg = AugmentConfig(rawboost_algo=5)
    transform = build_augment(cfg)          # None when everything is off
    if transform is not None:
        x = transform(x, generator)         # (B, T) → (B, T)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from safespeak.augment.channel import ChannelConfig, ChannelTransform
from safespeak.augment.rawboost import ALGORITHMS, RawBoostParams, rawboost_batch

__all__ = ["AugmentConfig", "BatchTransform", "Compose", "RawBoostTransform", "build_augment"]


class BatchTransform(Protocol):
    """A random batch transform: (x (B, T), generator) → (B, T), all randomness from `generator`."""

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor: ...


@dataclass(frozen=True)
class AugmentConfig:
    """The `augment:` section of the training config. Plain fields only, all augmentation off by default.

    rawboost_algo: RawBoost algorithm 0–8 (0 = off); rawboost_p: probability per example that it is
    applied (1 = every example, as the original); rawboost: its parameters (original defaults);
    channel: codec / narrowband / noise options, applied after RawBoost.
    """

    rawboost_algo: int = 0
    rawboost_p: float = 1.0
    rawboost: RawBoostParams = field(default_factory=RawBoostParams)
    channel: ChannelConfig = field(default_factory=ChannelConfig)

    def __post_init__(self) -> None:
        if self.rawboost_algo not in ALGORITHMS:
            msg = f"augment.rawboost_algo must be one of {sorted(ALGORITHMS)}, got {self.rawboost_algo}"
            raise ValueError(msg)
        if not 0 <= self.rawboost_p <= 1:
            raise ValueError(f"augment.rawboost_p is a probability in [0, 1], got {self.rawboost_p}")


@dataclass(frozen=True)
class RawBoostTransform:
    """RawBoost `algo` on each example with probability `p` (the rest pass through unchanged)."""

    algo: int
    params: RawBoostParams = field(default_factory=RawBoostParams)
    p: float = 1.0

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if x.ndim != 2:
            raise ValueError(f"RawBoostTransform expects (B, T), got shape {tuple(x.shape)}")
        y = rawboost_batch(x.to(torch.float32), self.algo, generator, self.params).to(x.dtype)
        if self.p >= 1:
            return y
        gdev = generator.device if generator is not None else x.device
        u = torch.rand((x.shape[0],), generator=generator, device=gdev).to(x.device)
        return torch.where((u < self.p).unsqueeze(-1), y, x)


@dataclass(frozen=True)
class Compose:
    """Apply batch transforms in order, all drawing from the same generator."""

    transforms: Sequence[BatchTransform]

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x


def build_augment(cfg: AugmentConfig, sample_rate: int = 16_000) -> BatchTransform | None:
    """The batch transform `cfg` describes: RawBoost, then channel effects; None when nothing is enabled."""
    steps: list[BatchTransform] = []
    if cfg.rawboost_algo != 0 and cfg.rawboost_p > 0:
        steps.append(RawBoostTransform(cfg.rawboost_algo, cfg.rawboost, cfg.rawboost_p))
    if cfg.channel.enabled:
        steps.append(ChannelTransform(cfg.channel, sample_rate))
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else Compose(tuple(steps))
