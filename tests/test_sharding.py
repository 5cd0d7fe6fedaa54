"""Work split for torchrun jobs: shards of equal duration, contiguous, the same on every rank."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from safespeak.sharding import audio_seconds, plan_shards
from scoring_helpers import write_wav


def test_shards_balance_duration_not_file_count() -> None:
    costs = [30.0] * 10 + [1.0] * 300  # the first 10 files hold half of the audio
    plan = plan_shards(costs, world=2, shard_seconds=50.0)
    assert plan.bounds[0][0] == 0 and plan.bounds[-1][1] == len(costs)
    assert all(a[1] == b[0] for a, b in zip(plan.bounds, plan.bounds[1:], strict=False))  # contiguous
    assert len(plan.bounds) == 12 and max(plan.cost) <= 50.0 + 30.0
    sizes = [b - a for a, b in plan.bounds]
    assert max(plan.cost) - min(plan.cost) <= 30.0  # shards hold about the same seconds...
    assert max(sizes) >= 10 * min(sizes)  # ...which here means very unequal file counts
    loads = [sum(plan.cost[j] for j in plan.of_rank(r)) for r in range(2)]
    assert abs(loads[0] - loads[1]) <= max(plan.cost) and sorted(plan.owner) == [0] * 6 + [1] * 6
    assert plan == plan_shards(costs, world=2, shard_seconds=50.0)  # every rank derives the same plan


def test_shard_plan_edge_cases() -> None:
    assert plan_shards([], world=4).bounds == ()
    few = plan_shards([5.0, 1.0, 0.0], world=4)  # fewer inputs than 4 shards per rank
    assert few.bounds == ((0, 1), (1, 2), (2, 3)) and sorted(few.owner) == [0, 1, 2]
    broken = plan_shards([0.0] * 9, world=2)  # nothing readable: split by count
    assert sum(b - a for a, b in broken.bounds) == 9 and set(broken.owner) == {0, 1}
    many = plan_shards([1.0] * 1000, world=3, shard_seconds=100.0)
    assert len(many.bounds) == 12 and all(b - a in (83, 84) for a, b in many.bounds)


def test_audio_seconds_reads_the_header_only(tmp_path: Path) -> None:
    assert audio_seconds(str(write_wav(tmp_path / "a.wav", np.zeros(24000), sr=8000))) == 3.0
    (tmp_path / "b.wav").write_bytes(b"RIFF....")
    assert audio_seconds(str(tmp_path / "b.wav")) is None
    assert audio_seconds(str(tmp_path / "missing.flac")) is None
