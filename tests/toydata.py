"""Toy data and a tiny BatchNorm-free model for tests (`from toydata import ...`).

`write_toy_dataset` is the library's generator (re-exported). `test-toy-cnn` is registered on import: a
two-conv model without BatchNorm, so a DDP run's averaged gradients equal one process's large batch;
`delay` (seconds slept per training forward) widens the window in which kill-and-resume tests act.
Run as a script (`python tests/toydata.py train ...`) it registers the model and runs the train command,
which is how subprocess / torchrun tests train it; with `TOY_TRACE_DIR` set, each process logs the training
items it loads (to check DDP sharding).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from safespeak.data import ToyDataset, write_toy_dataset
from safespeak.models.base import CountermeasureModel
from safespeak.models.registry import _REGISTRY, register

__all__ = ["ToyCNN", "ToyDataset", "ToySSL", "toy_config", "write_toy_dataset"]


class ToyCNN(CountermeasureModel):
    """(B, T) -> (B, 2) logits `[spoof, bonafide]` from two strided convs and mean/max pooling."""

    def __init__(self, channels: int = 8, dropout: float = 0.0, delay: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 64, stride=16)
        self.conv2 = nn.Conv1d(channels, channels, 8, stride=4)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * channels, 2)
        # a parameter forward never uses, like AASIST's kept-for-key-parity BatchNorm: DDP must cope
        self.unused = nn.Parameter(torch.zeros(1))
        self.delay = delay
        self.input_length = 4000

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"expected (B, T) waveforms, got shape {tuple(x.shape)}")
        if self.training and self.delay:
            time.sleep(self.delay)
        h = F.relu(self.conv2(F.relu(self.conv1(x[:, None]))))  # (B, C, T')
        return self.fc(self.drop(torch.cat([h.mean(-1), h.amax(-1)], dim=1)))  # (B, 2)


class ToySSL(ToyCNN):
    """`ToyCNN` whose first conv plays an SSL backbone: `param_groups` puts it at `ssl_lr`."""

    def param_groups(self, lr: float, ssl_lr: float | None = None) -> list[dict[str, Any]]:
        rest = [p for n, p in self.named_parameters() if not n.startswith("conv1.")]
        ssl = list(self.conv1.parameters())
        return [{"params": rest, "lr": lr}, {"params": ssl, "lr": lr if ssl_lr is None else ssl_lr}]


if "test-toy-cnn" not in _REGISTRY:
    register("test-toy-cnn", description="tiny BatchNorm-free CNN for tests")(ToyCNN)
    register("test-toy-ssl", description="toy CNN with an SSL-like parameter group")(ToySSL)


def toy_config(data: ToyDataset, out_dir: str | Path, **train: Any) -> dict[str, Any]:
    """A plain config dict training `test-toy-cnn` on `data` (train/dev splits) into `out_dir`."""
    split = {
        s: {"protocol": str(data.protocols[s]), "audio_dir": str(data.audio_dirs[s])}
        for s in ("train", "dev")
    }
    return {
        "name": "toy",
        "model": {"arch": "test-toy-cnn", "overrides": {}},
        "data": {
            **split,
            "crop_samples": 4000,
            "dev_crop_samples": 8000,
            "batch_size": 4,
            "dev_batch_size": 8,
        },
        "train": {
            "out_dir": str(out_dir),
            "seed": 3,
            "epochs": 2,
            "lr": 3e-3,
            "scheduler": "cosine",
            "min_lr": 1e-4,
            "save_every_steps": 2,
            "tensorboard": False,
            "progress": False,
            **train,
        },
    }


def _trace_train_items(out_dir: str) -> None:
    """Append `epoch index` of every training item this process loads to `out_dir/rank<RANK>.txt`."""
    import os

    from safespeak.data import TrialDataset

    original = TrialDataset.__getitem__
    path = Path(out_dir) / f"rank{os.environ.get('RANK', '0')}.txt"

    def traced(self: TrialDataset, i: int) -> dict[str, Any]:
        if self.train:
            with open(path, "a") as fh:
                fh.write(f"{self.epoch} {i}\n")
        return original(self, i)

    TrialDataset.__getitem__ = traced  # type: ignore[method-assign]


if __name__ == "__main__":
    import os

    torch.set_num_threads(1)
    if os.environ.get("TOY_TRACE_DIR"):
        _trace_train_items(os.environ["TOY_TRACE_DIR"])
    import argparse

    from safespeak.commands.train import register

    # only the train command: importing every CLI module would add seconds to each subprocess test
    parser = argparse.ArgumentParser(prog="toydata")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(sys.argv[1:])
    raise SystemExit(args.func(args))
