"""RawBoost throughput: batched torch (`safespeak.augment.rawboost`) vs per-utterance numpy/scipy original.

Prints utterances/s for algorithms 1–8 on batches of B × T samples (default 32 × 64,600 = 4 s at 16 kHz),
both measured in this run on the same input. The torch figure is the best of `--repeats` whole-batch
runs; the baseline processes `--baseline-items` utterances one by one (best of its repeats, per utterance).
Run on a quiet machine: `python benchmarks/rawboost.py --threads 2`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from safespeak.augment.rawboost import rawboost
from safespeak.augment.rawboost_numpy import rawboost_numpy


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=32, help="utterances per batch (default 32)")
    ap.add_argument("--samples", type=int, default=64_600, help="samples per utterance (default 64600)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs, best kept (default 5)")
    ap.add_argument("--baseline-items", type=int, default=8, help="utterances timed for numpy (default 8)")
    ap.add_argument("--algos", default="1,2,3,4,5,6,7,8", help="comma-separated algorithms (default 1..8)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rs = np.random.RandomState(0)
    x_np = (0.1 * rs.standard_normal((args.batch, args.samples))).astype(np.float32)
    x = torch.from_numpy(x_np)
    gen = torch.Generator().manual_seed(0)
    print(f"RawBoost, batch {args.batch} x {args.samples} samples, float32, CPU, threads {args.threads}")
    head = ("algo", "torch batch ms", "torch utt/s", "numpy ms/utt", "numpy utt/s", "speed-up")
    print("  ".join(f"{h:>{w}}" for h, w in zip(head, (4, 14, 11, 12, 11, 8), strict=True)))
    items = x_np[: args.baseline_items]
    for algo in (int(a) for a in args.algos.split(",")):
        rawboost(x, algo, gen)  # warm-up (allocator, FFT plans)
        t_torch = _best(lambda a=algo: rawboost(x, a, gen), args.repeats)
        per_item = _best(lambda a=algo: [rawboost_numpy(u, a, rs) for u in items], max(1, args.repeats // 2))
        per_item /= len(items)
        ours, base = args.batch / t_torch, 1 / per_item
        print(f"{algo:>4}  {t_torch * 1e3:>14.1f}  {ours:>11.0f}  {per_item * 1e3:>12.2f}  {base:>11.1f}"
              f"  {ours / base:>7.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
