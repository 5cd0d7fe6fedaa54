"""A run SIGKILLed mid-training and resumed ends with the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from safespeak.train import STATE_FILE
from toydata import toy_config, write_toy_dataset

ENTRY = Path(__file__).with_name("toydata.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ENTRY.parent)}


def _launch(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ENTRY), "train", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _recipe(tmp_path: Path, toy, name: str) -> Path:
    # dropout draws from the global torch RNG and augmentation from the trainer's generator, so an
    # exact match also checks that both RNG states are restored
    raw = toy_config(toy, tmp_path / name, epochs=2, save_every_steps=2)
    raw["model"]["overrides"] = {"dropout": 0.3, "delay": 0.05}
    raw["augment"] = {"rawboost_algo": 5, "channel": {"codec_p": 0.5}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _wait_for_step(proc: subprocess.Popen, state: Path, step: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"training ended before step {step}:\n{proc.stdout.read()}"
        if state.exists():
            s = torch.load(state, weights_only=True)
            if s["global_step"] >= step:
                return int(s["global_step"])
        time.sleep(0.02)
    raise TimeoutError(f"no state with step >= {step} after {timeout} s")


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    toy = write_toy_dataset(tmp_path / "toy", {"train": 24, "dev": 8}, seed=4)  # 6 steps x 2 epochs
    full = _launch(str(_recipe(tmp_path, toy, "full")))
    killed = _launch(str(_recipe(tmp_path, toy, "killed")))
    step = _wait_for_step(killed, tmp_path / "killed" / STATE_FILE, 4)  # inside epoch 0
    time.sleep(0.03)  # let it run on into an arbitrary point of the next steps
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL and step < 12
    assert not (tmp_path / "killed" / "result.json").exists()
    resumed = _launch("--resume", str(tmp_path / "killed"))
    out_full, out_resumed = full.communicate(timeout=300)[0], resumed.communicate(timeout=300)[0]
    assert full.returncode == 0, out_full
    assert resumed.returncode == 0, out_resumed
    a, b = (
        load_file(tmp_path / "full" / "last.safetensors"),
        load_file(tmp_path / "killed" / "last.safetensors"),
    )
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    sa, sb = (torch.load(tmp_path / r / STATE_FILE, weights_only=True) for r in ("full", "killed"))
    assert sb["history"] == sa["history"] and sb["global_step"] == 12
