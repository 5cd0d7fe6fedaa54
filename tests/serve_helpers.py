"""A tiny AASIST checkpoint, test audio and `safespeak serve` in a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from safespeak.checkpoint import save_checkpoint
from safespeak.models import build

TINY = {"filts": [20, [1, 8], [8, 8], [8, 16], [16, 16]], "gat_dims": [16, 8], "nb_samp": 8_000}
LENGTHS = (0.3, 0.5, 0.9, 1.4, 2.2, 3.1)  # seconds: shorter than, equal to and several windows


def tiny_checkpoint(path: Path, **meta: object) -> Path:
    """A random-weight tiny AASIST (0.5 s window) saved as a safespeak checkpoint."""
    torch.manual_seed(0)
    model = build("aasist", **TINY).eval()
    save_checkpoint(path, model, arch="aasist", model_config=TINY, meta=dict(meta))
    return path


def write_clips(folder: Path, lengths: tuple[float, ...] = LENGTHS, seed: int = 0) -> list[Path]:
    """16-bit WAV clips (tone + noise, a different pitch each) of the given lengths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, seconds in enumerate(lengths):
        t = np.arange(int(seconds * 16_000)) / 16_000
        x = 0.3 * np.sin(2 * np.pi * (120 + 60 * i) * t) + 0.03 * rng.standard_normal(t.size)
        paths.append(folder / f"clip{i}.wav")
        sf.write(paths[-1], x.astype(np.float32), 16_000, subtype="PCM_16")
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_server(checkpoint: Path, *extra: str, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m safespeak serve` on a free port; yields (base URL, process); stopped with SIGINT."""
    port = free_port()
    cmd = [sys.executable, "-m", "safespeak", "serve", "--checkpoint", str(checkpoint), "--port", str(port)]
    env = {**os.environ, "SAFESPEAK_TOKEN": ""}
    env.pop("SAFESPEAK_TOKEN")
    with open(log, "w") as out:
        proc = subprocess.Popen([*cmd, *extra], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start (exit {proc.poll()}):\n{log.read_text()}")
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
