"""Feature-cache extraction under torchrun: 2 gloo ranks fill the cache a single process fills."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from safespeak.features import CropPolicy, FeatureCache
from safespeak.features_dist import build_cache_distributed, crop_cost
from safespeak.score import ScoreItem
from safespeak.sharding import plan_shards
from scoring_helpers import write_wav

FINGERPRINT = "0123456789abcdef0123"
POLICY = CropPolicy("full", 24_000)

# Runs a build as a script (also under torchrun): a fixed extractor, batch-invariant, so any split of the
# trials over ranks and batches gives the same tensors.
ENTRY = """
import json, sys
from pathlib import Path
import torch
from safespeak.features import CropPolicy, FeatureCache
from safespeak.features_dist import build_cache_distributed
from safespeak.score import ScoreItem

audio, root, fingerprint = sys.argv[1:4]
trials = [ScoreItem(p.stem, str(p)) for p in sorted(Path(audio).glob("*.flac"))]
cache = FeatureCache(root, fingerprint, CropPolicy("full", 24000), shard_size=3)
extract = lambda wav: torch.stack([wav.abs().mean(dim=1), wav.amax(dim=1)], dim=1)  # (B, T) -> (B, 2)
n = build_cache_distributed(cache, trials, extract, progress=False, shard_seconds=2.0)
if n is not None:
    print(json.dumps({"computed": n}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_crop_cost_follows_the_policy(tmp_path: Path) -> None:
    f = str(write_wav(tmp_path / "a.wav", np.zeros(40_000)))
    assert crop_cost(f, CropPolicy("full", 24_000)) == 1.5
    assert crop_cost(f, CropPolicy("full", 80_000)) == 2.5
    assert crop_cost(f, CropPolicy("first", 8_000)) == 0.5
    assert crop_cost(str(tmp_path / "missing.wav"), CropPolicy()) == 0.0


def test_outside_torchrun_it_is_a_plain_build(tmp_path: Path) -> None:
    trials = [ScoreItem("a", str(write_wav(tmp_path / "a.flac", np.full(4000, 0.5))))]
    cache = FeatureCache(tmp_path / "c", FINGERPRINT, POLICY)
    n = build_cache_distributed(cache, trials, lambda w: w.mean(dim=1, keepdim=True), progress=False)
    assert n == 1 and float(cache.get("a")[0]) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.slow
def test_two_gloo_ranks_fill_the_same_cache(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    audio = tmp_path / "audio"
    for i in range(18):
        write_wav(audio / f"t{i:02d}.flac", rng.uniform(-0.9, 0.9, int(rng.uniform(0.2, 3.0) * 16000)))
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, launcher in (
        ("one", [sys.executable]),
        ("two", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                 "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]),
    ):  # fmt: skip
        proc = subprocess.run([*launcher, str(entry), str(audio), str(tmp_path / name), FINGERPRINT], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        runs[name] = json.loads(proc.stdout.strip().splitlines()[-1])["computed"]
    assert runs == {"one": 18, "two": 18}
    one = FeatureCache(tmp_path / "one", FINGERPRINT, POLICY)
    two = FeatureCache(tmp_path / "two", FINGERPRINT, POLICY)
    assert sorted(one.index()) == sorted(two.index()) == [f"t{i:02d}" for i in range(18)]
    for trial_id in one.index():
        assert torch.equal(one.get(trial_id), two.get(trial_id)), trial_id
    # the shards were written per rank, from the duration plan every rank derives
    ids = sorted(one.index())
    plan = plan_shards([crop_cost(str(audio / f"{i}.flac"), POLICY) for i in ids], 2, shard_seconds=2.0)
    rank_of = {ids[k]: r for j, r in enumerate(plan.owner) for k in range(*plan.bounds[j])}
    by_shard: dict[str, set[int]] = {}
    for trial_id, shard in two.index().items():
        by_shard.setdefault(shard, set()).add(rank_of[trial_id])
    assert all(len(r) == 1 for r in by_shard.values()) and set().union(*by_shard.values()) == {0, 1}
    assert not (two.dir / "torchrun").exists()
