"""Scoring throughput: safespeak's batched full-length scorer vs a seed-style per-file first-4 s loop.

Both run in the same process on the same files (random lengths 1-9 s, FLAC) with the same model.
The seed loop reads each file, cuts/pads it to 64,600 samples and runs the model on a batch of one;
ours windows the *whole* file (more audio scored per file) and packs windows of many files per batch.

    .venv/bin/python benchmarks/scoring.py [--arch aasist] [--files 48] [--threads 2] [--processes 2]

A second table runs `safespeak score` on the same files as one process (`--threads` threads, then 1) and under
`torchrun --nproc_per_node N` (one thread per rank), wall time including start-up, and the merged
outputs are checked against the single process (ids identical, scores within 1e-5).
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from safespeak.checkpoint import save_checkpoint
from safespeak.models import build
from safespeak.score import ScoreItem, ScoreOptions, score_items


def make_files(root: Path, n: int, seed: int = 0) -> list[ScoreItem]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        x = 0.1 * rng.standard_normal(int(rng.uniform(1.0, 9.0) * 16000)).astype(np.float32)
        p = root / f"utt{i:05d}.flac"
        sf.write(str(p), x, 16000, subtype="PCM_16")
        items.append(ScoreItem(p.stem, str(p)))
    return items


@torch.inference_mode()
def seed_loop(model: torch.nn.Module, items: list[ScoreItem], n: int = 64_600) -> dict[str, float]:
    """The seed's scorer: one file at a time, first 4 s (repeat-padded), batch of one."""
    out = {}
    for it in items:
        x, _ = sf.read(it.path, dtype="float32")
        x = np.tile(x, -(-n // len(x)))[:n]
        out[it.trial_id] = float(model.score(torch.from_numpy(x)[None])[0])
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_run(ckpt: Path, audio: Path, out: Path, procs: int, threads: int, batch: int) -> float:
    """Wall seconds of `safespeak score` as one process or under torchrun with `procs` ranks."""
    args = ["score", "--checkpoint", str(ckpt), "--input", str(audio), "--output", str(out)]
    args += ["--batch-size", str(batch)]
    launcher = [sys.executable, "-m", "safespeak"]
    if procs > 1:
        rdzv = ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), *rdzv,
                    "-m", "safespeak"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "SAFESPEAK_PROGRESS": "off"}
    t0 = time.perf_counter()
    subprocess.run([*launcher, *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def _scores(path: Path) -> dict[str, float]:
    with open(path) as fh:
        return {r["ID"]: float(r["score"]) for r in csv.DictReader(fh)}


def scaling_table(args: argparse.Namespace, model: torch.nn.Module, root: Path, n_files: int) -> None:
    """Files/s of the CLI as one process (`--threads`, and 1 thread) and under torchrun (1 thread each)."""
    ckpt = save_checkpoint(root / "ckpt", model, arch=args.arch)
    configs = list(dict.fromkeys([(1, args.threads), (1, 1), (args.processes, 1)]))  # (processes, threads)
    best = dict.fromkeys(configs, float("inf"))
    for r in range(args.rounds):  # alternate the order: a shared machine's load drifts
        for procs, threads in configs if r % 2 == 0 else configs[::-1]:
            out = root / "out" / f"p{procs}t{threads}" / "scores.csv"
            dt = cli_run(ckpt, root, out, procs, threads, args.batch_size)
            best[procs, threads] = min(best[procs, threads], dt)
    ref = _scores(root / "out" / f"p1t{args.threads}" / "scores.csv")
    rows = []
    for procs, threads in configs:
        got = _scores(root / "out" / f"p{procs}t{threads}" / "scores.csv")
        diff = max(abs(got[k] - ref[k]) for k in ref) if got.keys() == ref.keys() else float("inf")
        assert diff < 1e-5, f"{procs} processes: scores differ from one process by {diff}"
        rows.append((procs, threads, best[procs, threads], diff))
    print(f"\n`safespeak score`, best of {args.rounds} wall times incl. start-up, {n_files} files, crop=full")
    head = ("processes", "threads each", "s", "files/s", "vs first row", "max |diff|")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (9, 13, 7, 8, 13, 11), strict=True)))
    for procs, threads, dt, diff in rows:
        print(f"{procs:>9} {threads:>13} {dt:7.2f} {n_files / dt:8.2f} {rows[0][2] / dt:12.2f}x {diff:11.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="aasist")
    ap.add_argument("--files", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--processes", type=int, default=2, help="torchrun ranks for the scaling table")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each launch in the scaling table (best)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.arch).eval()
    with tempfile.TemporaryDirectory() as tmp:
        items = make_files(Path(tmp), args.files)
        audio_s = sum(sf.info(i.path).duration for i in items)
        seed_loop(model, items[:2])  # warm-up
        t0 = time.perf_counter()
        seed_scores = seed_loop(model, items)
        t_seed = time.perf_counter() - t0
        rows = [("seed loop: per file, first 4 s, batch 1", t_seed, len(seed_scores), len(items) * 4.0375)]
        for crop in ("first", "full"):
            opts = ScoreOptions(crop=crop, batch_size=args.batch_size)
            t0 = time.perf_counter()
            res = score_items(model, items, opts, progress=False)
            dt = time.perf_counter() - t0
            scored_s = len(items) * 4.0375 if crop == "first" else audio_s
            rows.append((f"safespeak: crop={crop}, batch {args.batch_size}", dt, len(res.scores), scored_s))
            if crop == "first":  # same inputs -> same scores as the seed loop
                diff = max(abs(res.scores[k] - seed_scores[k]) for k in seed_scores)
                assert diff < 1e-4, f"first-window scores differ from the seed loop by {diff}"
        print(f"model {args.arch}, {args.files} files, {audio_s:.0f} s of audio, {args.threads} threads")
        print(f"{'method':<42} {'s':>7} {'files/s':>8} {'audio s/s':>10} {'files/s vs seed':>16}")
        for name, dt, n, sec in rows:
            print(f"{name:<42} {dt:7.2f} {n / dt:8.2f} {sec / dt:10.2f} {t_seed / dt:15.2f}x")
        scaling_table(args, model, Path(tmp), len(items))


if __name__ == "__main__":
    main()
