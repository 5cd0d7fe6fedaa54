"""Two gloo processes under torchrun: disjoint shards, and the result of one process with 2x the batch.

`test-toy-cnn` has no BatchNorm, so per-rank batch statistics cannot differ from the single-process batch's;
DDP averages the per-rank gradients of a loss normalised by the global class-weight sum, which equals
the single-process gradient up to float summation order.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from safespeak.train import STATE_FILE
from toydata import toy_config, write_toy_dataset

ENTRY = Path(__file__).with_name("toydata.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seen(trace_dir: Path) -> dict[str, dict[int, set[int]]]:
    """rank file -> epoch -> indices loaded."""
    out: dict[str, dict[int, set[int]]] = {}
    for f in sorted(trace_dir.glob("rank*.txt")):
        per_epoch: dict[int, set[int]] = defaultdict(set)
        for line in f.read_text().split("\n"):
            if line:
                epoch, i = map(int, line.split())
                per_epoch[epoch].add(i)
        out[f.stem] = dict(per_epoch)
    return out


def _run(cmd: list[str], trace: Path, cwd: Path) -> None:
    trace.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ENTRY.parent), "TOY_TRACE_DIR": str(trace)}
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_with_the_global_batch(tmp_path: Path) -> None:
    toy = write_toy_dataset(tmp_path / "toy", {"train": 26, "dev": 9}, seed=6)  # 3 global batches of 8
    recipes = {}
    for name, batch in (("single", 8), ("ddp", 4)):
        raw = toy_config(toy, tmp_path / name, epochs=2, save_every_steps=100)
        raw["data"]["batch_size"] = batch
        recipes[name] = tmp_path / f"{name}.yaml"
        recipes[name].write_text(yaml.safe_dump(raw))
    _run([sys.executable, str(ENTRY), "train", str(recipes["single"])], tmp_path / "trace1", tmp_path)
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
    ]
    _run([*launcher, str(ENTRY), "train", str(recipes["ddp"])], tmp_path / "trace2", tmp_path)

    single, ddp = _seen(tmp_path / "trace1")["rank0"], _seen(tmp_path / "trace2")
    assert set(ddp) == {"rank0", "rank1"}
    for epoch in (0, 1):
        r0, r1 = ddp["rank0"][epoch], ddp["rank1"][epoch]
        assert len(r0) == len(r1) == 12 and not r0 & r1  # disjoint shards of 3 x 4 items each
        assert r0 | r1 == single[epoch]  # together: the single process's 3 batches of 8
    a, b = (
        load_file(tmp_path / "single" / "last.safetensors"),
        load_file(tmp_path / "ddp" / "last.safetensors"),
    )
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    sa, sb = (torch.load(tmp_path / r / STATE_FILE, weights_only=True) for r in ("single", "ddp"))
    assert sb["global_step"] == sa["global_step"] == 6
    for ha, hb in zip(sa["history"], sb["history"], strict=True):
        assert hb["dev_eer"] == ha["dev_eer"]  # gathered from both ranks' dev shards
        assert hb["train_loss"] == pytest.approx(ha["train_loss"], rel=1e-5)
