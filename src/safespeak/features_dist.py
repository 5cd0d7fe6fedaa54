"""Feature-cache extraction under torchrun: each rank caches a duration-balanced share of the trials.

`build_cache_distributed(cache, trials, extract)` is `FeatureCache.build` on every rank of a torchrun
job (`torchrun --nproc_per_node N your_script.py`; gloo on CPU, NCCL on GPU, one device per local rank):

- trials already in a finished shard are left out (a re-run after a dead rank redoes only the rest);
- the others are split with `sharding.plan_shards` on their header durations (what the crop policy
  keeps of them), and each rank builds its share into the same cache folder: shard files are named by a
  hash of their ids, so ranks never write the same file;
- rank 0 waits for every rank's report of this run, then indexes all finished shards (a build that
  computes nothing) and returns the number of trials computed; the other ranks return None.

Outside torchrun it is `cache.build(...)`. With `device="cuda"` each rank runs on `cuda:LOCAL_RANK`:
build `extract` around a front-end moved to that device.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from safespeak import SAMPLE_RATE
from safespeak import distributed as dist_rt
from safespeak.checkpoint import atomic_write
from safespeak.features import CropPolicy, Extractor, FeatureCache
from safespeak.sharding import DEFAULT_SHARD_SECONDS, audio_seconds, plan_shards, torchrun_world

__all__ = ["build_cache_distributed", "crop_cost"]

_POLL_S = 1.0


def crop_cost(path: str, policy: CropPolicy) -> float:
    """Seconds of audio the front-end sees for one file under `policy` (0 when unreadable)."""
    seconds = audio_seconds(path)
    if seconds is None:
        return 0.0
    keep = policy.samples / SAMPLE_RATE
    return keep if policy.kind == "first" else min(seconds, keep)


def _share(cache: FeatureCache, trials: Sequence[Any], rank: int, world: int, shard_seconds: float) -> list:
    """This rank's trials: the uncached ones, split by duration with the plan every rank derives."""
    cached = cache.cached_ids() if cache.dir.is_dir() else {}
    todo = [t for t in trials if str(t.trial_id) not in cached]
    mine = [crop_cost(str(t.path), cache.policy) for t in todo[rank::world]]
    costs = [0.0] * len(todo)
    for r, part in enumerate(dist_rt.all_gather_objects(mine)):
        costs[r::world] = part
    plan = plan_shards(costs, world, shard_seconds)
    return [todo[i] for j in plan.of_rank(rank) for i in range(*plan.bounds[j])]


def _wait(folder: Path, token: str, world: int) -> list[int]:
    """Rank 0: the trials computed by each rank, once every rank has reported this run."""
    while True:
        counts = []
        for r in range(world):
            try:
                doc = json.loads((folder / f"rank-{r:05d}.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                break
            if doc.get("token") != token:
                break
            counts.append(int(doc["computed"]))
        if len(counts) == world:
            return counts
        time.sleep(_POLL_S)


def build_cache_distributed(
    cache: FeatureCache,
    trials: Sequence[Any],
    extract: Extractor,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = True,
    shard_seconds: float = DEFAULT_SHARD_SECONDS,
) -> int | None:
    """Fill `cache` with every trial's features using all torchrun ranks (see the module docstring)."""
    if torchrun_world() <= 1:
        return cache.build(trials, extract, batch_size=batch_size, device=device, progress=progress)
    joined = not torch.distributed.is_initialized()  # leave a caller's process group alone
    info = dist_rt.setup(str(device))
    try:
        ids = [str(t.trial_id) for t in trials]
        if len(set(ids)) != len(ids):
            raise ValueError("feature cache: duplicate trial ids in the list")
        token = dist_rt.all_gather_objects(uuid.uuid4().hex)[0]
        if info.is_main:
            cache.build([], extract, progress=False)  # removes a killed run's temp files first
        dist_rt.barrier()
        mine = _share(cache, trials, info.rank, info.world, shard_seconds)
        # each build first deletes stale temp files; ranks left the all-gather in `_share` together and
        # only write after a whole shard is computed, so none deletes another's file being written
        computed = cache.build(mine, extract, batch_size=batch_size, device=info.device, progress=progress)
        reports = cache.dir / "torchrun"
        text = json.dumps({"token": token, "computed": computed}) + "\n"
        atomic_write(reports / f"rank-{info.rank:05d}.json", lambda tmp: Path(tmp).write_text(text))
        if not info.is_main:
            return None
        counts = _wait(reports, token, info.world)
        cache.build(trials, extract, progress=False)  # every trial is in a shard now: this writes the index
        shutil.rmtree(reports, ignore_errors=True)
        return sum(counts)
    finally:
        if joined:
            dist_rt.cleanup()
