"""`safespeak serve` under load: requests/s and p50/p95 latency, torch vs onnx backend, in one run.

Each backend is served by its own `safespeak serve` process (the model loaded once, concurrent requests
batched); an asyncio client keeps 1, 4 or 20 uploads in flight for `--seconds` per cell (every client
finishes at least one request), posting the same 4 s or 30 s WAV. The torch backend is the baseline:
the last column is the onnx/torch ratio of requests per second. The model is a random-weight `--arch`
(default: the LFCC-LCNN B03 baseline, 64,600-sample windows: a 4 s file is 1 window, a 30 s file 8).

    .venv/bin/python benchmarks/serve.py [--arch lcnn] [--seconds 8] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from safespeak.checkpoint import save_checkpoint
from safespeak.models import build
from serve_helpers import running_server


def make_wav(path: Path, seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    x = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, x.astype(np.float32), 16_000, subtype="PCM_16")
    return path.read_bytes()


async def run_cell(url: str, data: bytes, clients: int, seconds: float) -> tuple[int, float, list[float]]:
    """(requests, wall seconds, latencies) with `clients` uploads in flight until the deadline."""
    latencies: list[float] = []

    async def client(http: httpx.AsyncClient, deadline: float) -> None:
        while True:
            t0 = time.perf_counter()
            resp = await http.post(url + "/v1/detect", files={"file": ("bench.wav", data, "audio/wav")})
            resp.raise_for_status()
            latencies.append(time.perf_counter() - t0)
            if time.perf_counter() >= deadline:
                return

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=clients)) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http, t0 + seconds) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return len(latencies), wall, latencies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="lcnn", help="registered model, random weights (default lcnn)")
    ap.add_argument("--seconds", type=float, default=8.0, help="load time per cell (default 8)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 20])
    ap.add_argument("--lengths", type=float, nargs="+", default=[4.0, 30.0], help="file lengths in seconds")
    ap.add_argument("--backends", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx"])
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads of the server (both backends)")
    ap.add_argument("--device", default="cpu", help="torch backend device (onnx always runs on the CPU)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    torch.manual_seed(0)
    model = build(args.arch).eval()
    save_checkpoint(root / "model", model, arch=args.arch)
    files = {s: make_wav(root / f"{s:g}s.wav", s, i) for i, s in enumerate(args.lengths)}
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the server's torch threads; onnxruntime follows
    print(
        f"safespeak serve, {args.arch} (random weights, window {model.input_length} samples), "
        f"{args.threads} intra-op threads, torch device {args.device}; {os.cpu_count()} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f}; {args.seconds:g} s of load per cell"
    )
    head = ["backend", "file", "clients", "requests", "req/s", "p50 ms", "p95 ms", "mean batch", "vs torch"]
    widths = [8, 5, 8, 9, 7, 8, 8, 11, 9]
    print("  ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)), flush=True)
    baseline: dict[tuple[float, int], float] = {}
    for backend in args.backends:
        extra = ["--backend", backend, "--max-seconds", str(max(args.lengths) + 1), "--device", args.device]
        if backend == "onnx":
            extra[-1] = "cpu"
        with running_server(root / "model", *extra, log=root / f"{backend}.log") as (url, _):
            asyncio.run(run_cell(url, files[args.lengths[0]], 1, 0))  # warm-up
            for seconds, data in files.items():
                for clients in args.clients:
                    before = httpx.get(url + "/healthz").json()
                    n, wall, lat = asyncio.run(run_cell(url, data, clients, args.seconds))
                    after = httpx.get(url + "/healthz").json()
                    batches = max(1, after["batches"] - before["batches"])
                    rps = n / wall
                    if backend == "torch":
                        baseline[(seconds, clients)] = rps
                    ratio = rps / baseline.get((seconds, clients), float("nan"))
                    p50, p95 = (1000 * float(np.percentile(lat, q)) for q in (50, 95))
                    cells = [backend, f"{seconds:g}s", clients, n, f"{rps:.2f}", f"{p50:.0f}", f"{p95:.0f}",
                             f"{(after['requests_scored'] - before['requests_scored']) / batches:.1f}",
                             f"{ratio:.2f}x"]  # fmt: skip
                    print("  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)), flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
