"""Work split for torchrun jobs: contiguous shards of about equal cost, given to ranks longest first.

Used by `score_dist` (scoring) and `features_dist` (feature-cache extraction). Costs are seconds of
audio read from file headers (`audio_seconds`), so the split balances duration, not file count; every
rank derives the same plan from the same costs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import soundfile as sf

__all__ = ["DEFAULT_SHARD_SECONDS", "ShardPlan", "audio_seconds", "plan_shards", "torchrun_world"]

DEFAULT_SHARD_SECONDS = 900.0  # ~200 ASVspoof files: a dead rank loses minutes, 611k files make ~2k parts


def audio_seconds(path: str) -> float | None:
    """Duration from the file header (no decoding); None when the file cannot be opened."""
    try:
        info = sf.info(path)
    except Exception:  # any unreadable file: the work itself reports it
        return None
    return info.frames / info.samplerate if info.samplerate else None


def torchrun_world() -> int:
    """`WORLD_SIZE` set by torchrun (1 when launched without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass(frozen=True)
class ShardPlan:
    """Shards as `[start, end)` ranges over the inputs, the rank that scores each, and their costs."""

    bounds: tuple[tuple[int, int], ...]
    owner: tuple[int, ...]
    cost: tuple[float, ...]

    def of_rank(self, rank: int) -> list[int]:
        """Shard indices that `rank` scores, in input order."""
        return [j for j, r in enumerate(self.owner) if r == rank]


def _cut(costs: Sequence[float], n_shards: int) -> list[tuple[int, int]]:
    """Contiguous ranges: each closes once it holds its share of the cost still to place."""
    n = len(costs)
    bounds, start, acc, left = [], 0, 0.0, n_shards
    remaining = float(sum(costs))
    for i, c in enumerate(costs):
        acc += c
        if left > 1 and (acc >= remaining / left or n - i - 1 == left - 1):
            bounds.append((start, i + 1))
            start, remaining, acc, left = i + 1, remaining - acc, 0.0, left - 1
    if start < n:
        bounds.append((start, n))
    return bounds


def plan_shards(
    costs: Sequence[float], world: int, shard_seconds: float = DEFAULT_SHARD_SECONDS
) -> ShardPlan:
    """Contiguous shards of about equal cost (>= 4 per rank where inputs allow), longest first to ranks."""
    if not costs:
        return ShardPlan((), (), ())
    total = float(sum(costs))
    weights = list(costs) if total > 0 else [1.0] * len(costs)  # nothing readable: split by count
    n_shards = min(len(costs), max(4 * world, math.ceil(total / shard_seconds)))
    bounds = tuple(_cut(weights, n_shards))
    cost = tuple(float(sum(costs[a:b])) for a, b in bounds)
    load = [0.0] * world
    owner = [0] * len(bounds)
    for j in sorted(range(len(bounds)), key=lambda j: (-cost[j], j)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[j] = r
        load[r] += cost[j] + 1e-9  # an empty shard still counts, so zero-cost shards spread out
    return ShardPlan(bounds, tuple(owner), cost)
