"""Toy data, seeded crops, the epoch batch sampler, loaders, leakage guard and fingerprints."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from safespeak.audio import load_audio
from safespeak.data import (
    DataLeakageError,
    EpochBatchSampler,
    TrialDataset,
    check_leakage,
    load_split,
    make_loader,
    shard_indices,
    trials_fingerprint,
)
from safespeak.protocols import Trial
from toydata import write_toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), {"train": 12, "dev": 6}, seed=5)


def _split(toy, name: str) -> list[Trial]:
    return load_split(str(toy.protocols[name]), toy.format, audio_dir=str(toy.audio_dirs[name]))


def test_toy_dataset_is_deterministic_and_readable(toy, tmp_path: Path) -> None:
    again = write_toy_dataset(tmp_path, {"train": 12, "dev": 6}, seed=5)
    assert again.protocols["train"].read_text() == toy.protocols["train"].read_text()
    a, b = (load_audio(d.audio_dirs["dev"] / "TOY_D_00003.flac") for d in (toy, again))
    np.testing.assert_array_equal(a, b)
    train, dev = _split(toy, "train"), _split(toy, "dev")
    assert [t.label for t in train].count(1) == 6 and len(dev) == 3 * 2
    assert {t.attack for t in train if t.label == 0} <= {"A01", "A02"}
    assert not {t.trial_id for t in train} & {t.trial_id for t in dev}
    check_leakage(train, dev)  # disjoint by construction


def test_train_crops_are_a_function_of_seed_epoch_index(toy) -> None:
    ds = TrialDataset(_split(toy, "train"), 4000, train=True, seed=1)
    long = next(i for i, t in enumerate(ds.trials) if load_audio(t.path).shape[0] > 8000)
    first = ds[long]["audio"]
    assert first.shape == (4000,) and first.dtype == torch.float32
    torch.testing.assert_close(ds[long]["audio"], first, rtol=0, atol=0)
    ds.set_epoch(1)
    assert not torch.equal(ds[long]["audio"], first)
    other_seed = TrialDataset(ds.trials, 4000, train=True, seed=2)
    assert not torch.equal(other_seed[long]["audio"], first)


def test_dev_crop_takes_the_start_and_pads_short_files(toy) -> None:
    trials = _split(toy, "dev")
    ds = TrialDataset(trials, 40_000, train=False)  # 2.5 s: longer than every toy file (<= 1.2 s)
    x = load_audio(trials[0].path)
    item = ds[0]["audio"].numpy()
    np.testing.assert_array_equal(item[: x.shape[0]], x)
    np.testing.assert_array_equal(item[x.shape[0] : 2 * x.shape[0]], x[: 40_000 - x.shape[0]])


def test_sampler_order_is_pure_and_ranks_partition_the_global_batch() -> None:
    single = EpochBatchSampler(50, 8, seed=3)
    single.set_epoch(2)
    batches = list(single)
    assert len(batches) == len(single) == 6 and all(len(b) == 8 for b in batches)
    assert len({i for b in batches for i in b}) == 48  # one permutation, tail dropped
    again = EpochBatchSampler(50, 8, seed=3)
    again.set_epoch(2)
    assert list(again) == batches
    again.set_epoch(3)
    assert list(again) != batches
    ranks = [EpochBatchSampler(50, 4, seed=3, rank=r, world=2) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(2)
    for b, (r0, r1) in enumerate(zip(*ranks, strict=True)):
        assert not set(r0) & set(r1)
        assert r0 + r1 == batches[b]
    single.set_epoch(2, start_batch=4)
    assert list(single) == batches[4:] and len(single) == 2


def test_sampler_rejects_too_few_trials() -> None:
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        EpochBatchSampler(7, 4, seed=0, world=2)


def test_loader_batches_do_not_depend_on_workers(toy) -> None:
    ds = TrialDataset(_split(toy, "train"), 4000, train=True, seed=1)
    sampler = EpochBatchSampler(len(ds), 4, seed=1)
    out = []
    for workers in (0, 2):
        sampler.set_epoch(1)
        ds.set_epoch(1)
        out.append(list(make_loader(ds, sampler, num_workers=workers, seed=1, epoch=1)))
    for a, b in zip(*out, strict=True):
        assert a["audio"].shape == (4, 4000) and a["label"].dtype == torch.int64
        torch.testing.assert_close(a["audio"], b["audio"], rtol=0, atol=0)
        assert a["index"].tolist() == b["index"].tolist()
        assert a["label"].tolist() == [ds.trials[i].label for i in a["index"].tolist()]


def test_leakage_guard_names_shared_ids_and_files(toy) -> None:
    train, dev = _split(toy, "train"), _split(toy, "dev")
    with pytest.raises(DataLeakageError, match=r"1 shared trial ids \(e.g. TOY_T_00000\)"):
        check_leakage(train, [*dev, train[0]])
    renamed = replace(train[3], trial_id="ANOTHER_NAME")
    with pytest.raises(DataLeakageError, match=r"1 shared audio files.*TOY_T_00003\.flac.*allow_overlap"):
        check_leakage(train, [*dev, renamed])


def test_fingerprint_tracks_ids_labels_and_split_boundaries(toy) -> None:
    train, dev = _split(toy, "train"), _split(toy, "dev")
    fp = trials_fingerprint(train, dev)
    assert fp == trials_fingerprint(list(train), list(dev)) and len(fp) == 64
    flipped = [replace(train[0], label=1 - train[0].label), *train[1:]]
    assert trials_fingerprint(flipped, dev) != fp
    assert trials_fingerprint(train[:-1], [train[-1], *dev]) != fp


def test_dataset_rejects_unlabelled_or_pathless_trials() -> None:
    with pytest.raises(ValueError, match="'x1' needs an audio path"):
        TrialDataset([Trial("x1", 1)], 100, train=True)
    with pytest.raises(ValueError, match="'x2' needs an audio path and a 0/1 label"):
        TrialDataset([Trial("x2", None, path="a.flac")], 100, train=False)


def test_shard_indices_cover_everything_once() -> None:
    shards = [shard_indices(11, r, 3) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(11))
