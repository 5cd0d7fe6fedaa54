"""Scoring throughput: safespeak's batched full-length scorer vs a seed-style per-file first-4 s loop.

Both run in the same process on the same files (random lengths 1-9 s, FLAC) with the same model.
The seed loop reads each file, cuts/pads it to 64,600 samples and runs the model on a batch of one;
ours windows the *whole* file (more audio scored per file) and packs windows of many files per batch.

    .venv/bin/python benchmarks/scoring.py [--arch aasist] [--files 48] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="aasist")
    ap.add_argument("--files", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
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


if __name__ == "__main__":
    main()
