"""Datasets, batch samplers and loaders over `Trial` lists, plus a toy dataset generator.

A batch from `make_loader` is a dict:

- `audio`: float32 (B, T) waveforms at 16 kHz, T = the crop length (random crop for training, the
  first T samples for dev; files shorter than T are repeat-padded);
- `label`: int64 (B,), 1 bona fide / 0 spoof;
- `index`: int64 (B,), position of each trial in the dataset's trial list.

Determinism: the order of batches is a pure function of (seed, epoch) and a training crop of trial `i`
is a pure function of (seed, epoch, i), whatever the number of workers or processes, so a resumed run
can skip exactly the batches it already consumed and a DDP run sees the single-process global batches.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from safespeak.audio import crop, load_audio, save_audio
from safespeak.protocols import BONAFIDE, SPOOF, Trial

__all__ = [
    "DataLeakageError",
    "EpochBatchSampler",
    "ToyDataset",
    "TrialDataset",
    "check_leakage",
    "load_split",
    "make_loader",
    "shard_indices",
    "trials_fingerprint",
    "write_toy_dataset",
]


class DataLeakageError(ValueError):
    """Train and dev share trials or audio files."""


class TrialDataset(Dataset):
    """Labelled trials -> fixed-length crops (see the module docstring for the item layout).

    `train=True` crops at a random start drawn from `numpy.random.default_rng([seed, epoch, i])`;
    otherwise the first `crop_samples` samples are used. Call `set_epoch` before building an epoch's
    loader (workers copy the dataset when the loader's iterator starts).
    """

    def __init__(self, trials: Sequence[Trial], crop_samples: int, *, train: bool, seed: int = 0) -> None:
        for t in trials:
            if t.path is None or t.label not in (BONAFIDE, SPOOF):
                raise ValueError(f"trial {t.trial_id!r} needs an audio path and a 0/1 label (got {t})")
        self.trials = list(trials)
        self.crop_samples = int(crop_samples)
        self.train = train
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops `__getitem__` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        t = self.trials[i]
        x = load_audio(t.path)  # type: ignore[arg-type]  # (T,)
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        x = crop(x, self.crop_samples, rng)  # (crop_samples,)
        return {"audio": torch.from_numpy(np.ascontiguousarray(x)), "label": int(t.label), "index": i}  # type: ignore[arg-type]


def shard_indices(n: int, rank: int = 0, world: int = 1) -> list[int]:
    """Indices `rank, rank + world, ...` of `n` items (uneven shards; for evaluation)."""
    return list(range(rank, n, world))


class EpochBatchSampler:
    """Per-process batches of a seeded permutation; `set_epoch` selects the permutation.

    The global batch `b` is `perm[b*G:(b+1)*G]` with `G = batch_size * world`; rank `r` takes its
    `r`-th slice of `batch_size`, so ranks are disjoint and their union is the single-process batch of
    size `G`. Incomplete global batches are dropped. `start_batch` skips already-consumed batches.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, rank: int = 0, world: int = 1) -> None:
        if n < batch_size * world:
            raise ValueError(f"{n} training trials cannot fill one global batch of {batch_size} x {world}")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's permutation and the first batch to yield."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def __len__(self) -> int:
        return max(0, self.n // (self.batch_size * self.world) - self.start_batch)

    def __iter__(self) -> Iterator[list[int]]:
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        g = self.batch_size * self.world
        for b in range(self.start_batch, self.n // g):
            lo = b * g + self.rank * self.batch_size
            yield perm[lo : lo + self.batch_size].tolist()


def _seed_worker(worker_id: int) -> None:
    # torch gives each worker a seed derived from the loader's generator; propagate it to numpy/random
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 - seeds the legacy global RNG inside the worker
    random.seed(seed)


def make_loader(
    dataset: TrialDataset,
    batch_sampler: Sequence[list[int]] | EpochBatchSampler,
    *,
    num_workers: int = 0,
    seed: int = 0,
    epoch: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """DataLoader yielding the batches described in the module docstring.

    Worker seeds come from a generator seeded by (seed, epoch), so creating the loader never draws
    from the global torch RNG (which would shift dropout masks after a resume).
    """
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=gen,
        pin_memory=pin_memory,
    )


def load_split(
    protocol: str, fmt: str, *, audio_dir: str | None = None, audio_ext: str = ".flac", subset: str = "all"
) -> list[Trial]:
    """Read a labelled protocol split; every trial must have a label (a key file, not a trial list)."""
    from safespeak.protocols import read_protocol

    trials = read_protocol(protocol, fmt, subset=subset, audio_dir=audio_dir, audio_ext=audio_ext)
    unlabelled = [t.trial_id for t in trials if t.label is None]
    if unlabelled:
        raise ValueError(f"{protocol}: {len(unlabelled)} trials have no label (e.g. {unlabelled[:3]})")
    if not trials:
        raise ValueError(f"{protocol}: no trials")
    return trials


def check_leakage(train: Sequence[Trial], dev: Sequence[Trial], max_examples: int = 5) -> None:
    """Raise `DataLeakageError` when train and dev share trial ids or audio files (by resolved path)."""
    ids = sorted({t.trial_id for t in train} & {t.trial_id for t in dev})

    def files(ts: Sequence[Trial]) -> set[str]:
        return {os.path.realpath(t.path) for t in ts if t.path}

    paths = sorted(files(train) & files(dev))
    if ids or paths:
        parts = []
        if ids:
            parts.append(f"{len(ids)} shared trial ids (e.g. {', '.join(ids[:max_examples])})")
        if paths:
            parts.append(f"{len(paths)} shared audio files (e.g. {', '.join(paths[:max_examples])})")
        raise DataLeakageError(
            "train and dev overlap: " + "; ".join(parts) + ". Fix the protocols, or set "
            "data.allow_overlap=true / pass --allow-leakage if this is intended."
        )


def trials_fingerprint(*splits: Sequence[Trial]) -> str:
    """SHA-256 of the (id, label, file name) lists of the given splits, in order."""
    h = hashlib.sha256()
    for k, trials in enumerate(splits):
        h.update(f"#split{k}\n".encode())
        for t in trials:
            h.update(f"{t.trial_id}\t{t.label}\t{Path(t.path).name if t.path else '-'}\n".encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ toy data


@dataclass(frozen=True)
class ToyDataset:
    """Where `write_toy_dataset` put things: per split an ASVspoof 2019 LA protocol and a flac folder."""

    root: Path
    protocols: dict[str, Path]
    audio_dirs: dict[str, Path]
    format: str = "asvspoof2019-la"


def _toy_signal(rng: np.random.Generator, bonafide: bool, attack: int, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = rng.uniform(100, 240)
    if bonafide:  # voiced-like: decaying harmonics with a slow amplitude envelope
        x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
        x = x * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    else:  # "vocoded": buzzy harmonics plus a high-frequency noise band whose level depends on the attack
        x = sum(np.sin(2 * np.pi * k * f0 * t) / np.sqrt(k) for k in range(1, 8))
        noise = np.diff(rng.standard_normal(n + 1))
        x = x + (0.3 + 0.3 * attack) * noise
    x = x + 0.02 * rng.standard_normal(n)
    return (0.3 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def write_toy_dataset(
    root: str | os.PathLike[str],
    sizes: dict[str, int] | None = None,
    *,
    seed: int = 0,
    min_seconds: float = 0.3,
    max_seconds: float = 1.2,
    sample_rate: int = 16_000,
) -> ToyDataset:
    """Write a small, learnable synthetic ASVspoof-2019-LA-like dataset (half bona fide, 2 attacks).

    `sizes` maps split name -> number of files (default train 32, dev 16, eval 16). Each split gets
    `root/<split>/flac/*.flac` and `root/<split>.txt` (`spk utt - attack key`); trial ids are unique
    across splits. Durations are uniform in [min_seconds, max_seconds] (some shorter than a crop).
    Deterministic for a given seed. Read it back with `read_protocol(proto, "asvspoof2019-la",
    audio_dir=audio_dir)`.
    """
    sizes = sizes or {"train": 32, "dev": 16, "eval": 16}
    root = Path(root)
    protocols, audio_dirs = {}, {}
    for s, (split, n) in enumerate(sizes.items()):
        rng = np.random.default_rng([seed, s])
        audio_dir, lines = root / split / "flac", []
        for i in range(n):
            bona = i % 2 == 0
            attack = int(rng.integers(1, 3))
            utt = f"TOY_{split[0].upper()}_{i:05d}"
            n_samples = int(rng.uniform(min_seconds, max_seconds) * sample_rate)
            save_audio(audio_dir / f"{utt}.flac", _toy_signal(rng, bona, attack, n_samples, sample_rate))
            att, key = ("-", "bonafide") if bona else (f"A{attack:02d}", "spoof")
            lines.append(f"TOY_SPK{i % 4} {utt} - {att} {key}\n")
        protocols[split] = root / f"{split}.txt"
        protocols[split].write_text("".join(lines))
        audio_dirs[split] = audio_dir
    return ToyDataset(root, protocols, audio_dirs)
