"""`safespeak score` under `torchrun`: duration-balanced shards per rank, atomic parts, one merged output.

Every rank lists the same inputs, reads the headers of every `world`-th file (soundfile frames, no
decoding) and all-gathers them, so all ranks derive the same plan without a coordinator:

- the inputs (in `collect_inputs` order) are cut into contiguous *shards* of about `shard_seconds` of
  scoring cost each (at least 4 per rank), and shards go to ranks longest first, each to the least
  loaded rank: the work is balanced by audio duration, not by file count;
- a rank scores its shards one by one and writes each as `<stem>.parts/shard-J-of-S.json` (atomic),
  holding the scores, the failed files and the shard's fingerprint (checkpoint hash, scoring options,
  and every input's id, path, size and mtime); a re-run skips a shard whose part has the same
  fingerprint, so a rank that died loses at most the shard it was scoring;
- rank 0 waits for every rank's `rank-R.json` of this run, merges the parts and writes the same
  `scores.csv`, `.errors.csv` and evaluation card as one process (sorted ids, one row per input); the
  card's `distributed` field records the world size, the shards and per-rank counts.

Scores are those of one process bit for bit when the model gives a window the same score whatever shares
its batch and however many threads run; otherwise they differ by float rounding (~3e-8 for AASIST-L).
Launch: `torchrun --nproc_per_node N -m safespeak score ...` (gloo on CPU, NCCL with `--device cuda`,
one GPU per local rank).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch.distributed

from safespeak import SAMPLE_RATE
from safespeak import distributed as dist_rt
from safespeak.checkpoint import atomic_write, checkpoint_paths, file_sha256
from safespeak.progress import Progress
from safespeak.score import (
    ScoreItem,
    ScoreOptions,
    ScoreResult,
    ScoreRun,
    evaluation_card,
    score_items,
    write_score_outputs,
)
from safespeak.sharding import DEFAULT_SHARD_SECONDS, ShardPlan, audio_seconds, plan_shards, torchrun_world

__all__ = [
    "DEFAULT_SHARD_SECONDS",
    "ShardPart",
    "ShardPlan",
    "item_costs",
    "plan_shards",
    "score_to_files_distributed",
    "shard_fingerprint",
    "torchrun_world",
]

PART_FORMAT = "safespeak-score-shard/1"
_EXIT_HOOK = "SAFESPEAK_TEST_SCORE_EXIT"  # tests only: "RANK:FILES" makes that rank die mid-run
_POLL_S = 0.5


def file_cost(path: str, window: int, crop: str) -> float:
    """Seconds of audio the scorer will run on (a short file is padded to one window; 0 if unreadable)."""
    seconds = audio_seconds(path)
    if seconds is None:  # a broken file costs next to nothing: it fails at once when scored
        return 0.0
    one = window / SAMPLE_RATE
    return one if crop == "first" else max(seconds, one)


def item_costs(
    items: Sequence[ScoreItem], window: int, crop: str, rank: int = 0, world: int = 1
) -> list[float]:
    """Cost of every input; each rank reads every `world`-th header and the ranks all-gather them."""
    mine = [file_cost(it.path, window, crop) for it in items[rank::world]]
    gathered = dist_rt.all_gather_objects(mine)
    costs = [0.0] * len(items)
    for r, part in enumerate(gathered):
        costs[r::world] = part
    return costs


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def shard_fingerprint(items: Sequence[ScoreItem], weights_sha256: str, opts: ScoreOptions) -> str:
    """Hash of what decides a shard's rows: the weights, the scoring options and each input's file."""
    options = asdict(opts)
    options.pop("num_workers", None)  # how files are read does not change the scores
    options["device"] = str(opts.device).split(":")[0]  # cuda:0 and cuda:1 give the same scores
    doc = [PART_FORMAT, weights_sha256, options, [(it.trial_id, it.path, _stat(it.path)) for it in items]]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ShardPart:
    """One scored shard as written by its rank: scores, failed files (id, path, reason), window count."""

    shard: int
    fingerprint: str
    scores: tuple[tuple[str, float], ...]
    errors: tuple[tuple[str, str, str], ...]
    n_windows: int
    seconds: float

    def to_json(self) -> str:
        """JSON (floats written with `repr`, so they read back bit for bit)."""
        return json.dumps({"format": PART_FORMAT, **asdict(self)}) + "\n"

    @classmethod
    def read(cls, path: Path, fingerprint: str) -> ShardPart | None:
        """The part at `path` if it is complete and made from the same inputs, else None."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(doc, dict)
            or doc.get("format") != PART_FORMAT
            or doc.get("fingerprint") != fingerprint
        ):
            return None
        return cls(
            int(doc["shard"]),
            doc["fingerprint"],
            tuple((str(i), float(s)) for i, s in doc["scores"]),
            tuple((str(i), str(p), str(e)) for i, p, e in doc["errors"]),
            int(doc["n_windows"]),
            float(doc["seconds"]),
        )


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _part_path(parts: Path, j: int, n: int) -> Path:
    return parts / f"shard-{j:06d}-of-{n:06d}.json"


def _rank_path(parts: Path, rank: int) -> Path:
    return parts / f"rank-{rank:05d}.json"


def _exit_after(rank: int) -> int | None:
    hook = os.environ.get(_EXIT_HOOK, "")
    if hook and int(hook.split(":")[0]) == rank:
        return int(hook.split(":")[1])
    return None


@dataclass(frozen=True)
class _Job:
    """What every rank shares: the inputs, the plan, where parts go and this run's token."""

    items: list[ScoreItem]
    plan: ShardPlan
    weights_sha256: str
    opts: ScoreOptions
    parts: Path
    token: str
    _fingerprints: dict[int, str] = field(default_factory=dict)

    def fingerprint(self, j: int) -> str:
        """Shard `j`'s fingerprint (computed on first use: a rank stats only the files it needs)."""
        if j not in self._fingerprints:
            a, b = self.plan.bounds[j]
            self._fingerprints[j] = shard_fingerprint(self.items[a:b], self.weights_sha256, self.opts)
        return self._fingerprints[j]


def _score_own_shards(
    job: _Job, model: Any, opts: ScoreOptions, rank: int, world: int, progress: bool
) -> dict:
    """Score (or find finished) this rank's shards; returns the rank's counts for the card."""
    mine = job.plan.of_rank(rank)
    n_files = sum(job.plan.bounds[j][1] - job.plan.bounds[j][0] for j in mine)
    bar: Progress[Any] = Progress(total=n_files, desc=f"rank {rank}/{world}", unit="file", enabled=progress)
    stats = {
        "rank": rank,
        "shards": len(mine),
        "files": n_files,
        "scored": 0,
        "failed": 0,
        "resumed_shards": 0,
    }
    stats["audio_seconds"] = round(sum(job.plan.cost[j] for j in mine), 3)
    done, stop_after, t0 = 0, _exit_after(rank), time.perf_counter()
    for j in mine:
        a, b = job.plan.bounds[j]
        path = _part_path(job.parts, j, len(job.plan.bounds))
        part = ShardPart.read(path, job.fingerprint(j))
        if part is None:
            if stop_after is not None and done + (b - a) > stop_after:
                os._exit(17)  # test hook: die in the middle of this shard
            res = score_items(model, job.items[a:b], opts, progress=False)
            part = ShardPart(j, job.fingerprint(j), tuple(res.scores.items()), tuple(res.errors),
                             res.n_windows, round(res.seconds, 3))  # fmt: skip
            _write_text(path, part.to_json())
        else:
            stats["resumed_shards"] += 1
        stats["scored"] += len(part.scores)
        stats["failed"] += len(part.errors)
        done += b - a
        bar.update(b - a)
    bar.close()
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    _write_text(_rank_path(job.parts, rank), json.dumps({"token": job.token, **stats}) + "\n")
    return stats


def _reports(job: _Job, world: int) -> list[dict] | None:
    """Every rank's report of this run (None while one is missing or from an earlier run)."""
    reports = []
    for r in range(world):
        try:
            doc = json.loads(_rank_path(job.parts, r).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if doc.get("token") != job.token:
            return None
        reports.append({k: v for k, v in doc.items() if k != "token"})
    return reports


def _wait_for_ranks(job: _Job, world: int, progress: bool) -> list[dict]:
    """Rank 0: wait until every rank has reported this run, showing the shards the others finish."""
    n = len(job.plan.bounds)

    def finished() -> int:
        return sum(_part_path(job.parts, j, n).is_file() for j in range(n))

    bar: Progress[Any] | None = None
    seen = 0
    while (reports := _reports(job, world)) is None:
        if bar is None:  # only when rank 0 has to wait for the others
            seen = finished()
            bar = Progress(total=n - seen, desc="other ranks", unit="shard", enabled=progress)
        now = finished()
        bar.update(max(0, now - seen))
        seen = max(seen, now)
        time.sleep(_POLL_S)
    if bar is not None:
        bar.update(max(0, finished() - seen))
        bar.close()
    return reports


def _merge(job: _Job) -> ScoreResult:
    """Every part of this run, verified by fingerprint, as one result (each input exactly once)."""
    merged = ScoreResult()
    n = len(job.plan.bounds)
    for j in range(n):
        part = ShardPart.read(_part_path(job.parts, j, n), job.fingerprint(j))
        if part is None:
            raise RuntimeError(f"{_part_path(job.parts, j, n)}: shard missing or made from other inputs")
        merged.scores.update(part.scores)
        merged.errors.extend(part.errors)
        merged.n_windows += part.n_windows
    ids = {it.trial_id for it in job.items}
    if set(merged.scores) | {e[0] for e in merged.errors} != ids or len(merged.scores) + len(
        merged.errors
    ) != len(ids):
        raise RuntimeError("merged shards do not cover every input exactly once")
    return merged


def score_to_files_distributed(
    checkpoint: str | Path,
    source: str | Path,
    output: str | Path,
    *,
    options: ScoreOptions | None = None,
    protocol_format: str | None = None,
    subset: str = "all",
    audio_dir: str | Path | None = None,
    audio_ext: str = ".flac",
    progress: bool = True,
    shard_seconds: float = DEFAULT_SHARD_SECONDS,
) -> ScoreRun | None:
    """`score_to_files` on every torchrun rank; rank 0 returns the `ScoreRun`, the others None."""
    from safespeak.checkpoint import load_checkpoint
    from safespeak.score import _window_source, collect_inputs, scoring_window

    opts = options or ScoreOptions()
    joined = not torch.distributed.is_initialized()  # leave a caller's process group alone
    info = dist_rt.setup(opts.device)
    try:
        t0 = time.perf_counter()
        items = collect_inputs(
            source, protocol_format=protocol_format, subset=subset, audio_dir=audio_dir, audio_ext=audio_ext
        )
        model, meta = load_checkpoint(checkpoint, map_location=info.device)
        window = scoring_window(model, meta, opts.window)
        opts_w = replace(opts, window=window)
        sha = meta.weights_sha256 or file_sha256(checkpoint_paths(checkpoint)[0])
        plan = plan_shards(
            item_costs(items, window, opts.crop, info.rank, info.world), info.world, shard_seconds
        )
        out = Path(output)
        token = dist_rt.all_gather_objects(uuid.uuid4().hex)[0]  # rank 0's: names this run's reports
        job = _Job(items, plan, sha, opts_w, out.with_name(out.stem + ".parts"), token)
        _score_own_shards(
            job, model, replace(opts_w, device=str(info.device)), info.rank, info.world, progress
        )
        if not info.is_main:
            return None
        reports = _wait_for_ranks(job, info.world, progress)
        merged = _merge(job)
        merged.seconds = time.perf_counter() - t0
        card = evaluation_card(
            checkpoint, meta, opts_w, window, merged, source=str(source), protocol_format=protocol_format,
            subset=subset, n_inputs=len(items), window_source=_window_source(opts, meta),
        )  # fmt: skip
        record = {"world_size": info.world, "shards": len(plan.bounds), "ranks": reports}
        run = write_score_outputs(out, merged, replace(card, distributed=record), len(items))
        shutil.rmtree(job.parts, ignore_errors=True)
        return run
    finally:
        if joined:
            dist_rt.cleanup()
