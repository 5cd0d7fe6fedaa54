"""RawBoost throughput: batched torch (`safespeak.augment.rawboost`) vs per-utterance numpy/scipy original.

Prints utterances/s for algorithms 1–8 on batches of B × T samples (default 32 × 64,600 = 4 s at 16 kHz),
both measured in this run on the same input, for each torch thread count in `--threads` (default 1 and 2).
The torch figure is the best of `--repeats` whole-batch runs; the baseline processes `--baseline-items`
utterances one by one (best per utterance; numpy/scipy run single-threaded here). Both are measured in
`--rounds` alternating rounds and the best of each is kept, so that a slow spell of a shared (virtual)
machine hits both sides alike. With more than one torch thread, `rawboost` uses torch's intra-op threads.
The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
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
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs, best kept (default 5)")
    ap.add_argument("--baseline-items", type=int, default=8, help="utterances timed for numpy (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating baseline/torch rounds (default 3)")
    ap.add_argument("--algos", default="1,2,3,4,5,6,7,8", help="comma-separated algorithms (default 1..8)")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    rs = np.random.RandomState(0)
    x_np = (0.1 * rs.standard_normal((args.batch, args.samples))).astype(np.float32)
    x = torch.from_numpy(x_np)
    gen = torch.Generator().manual_seed(0)
    print(f"RawBoost, batch {args.batch} x {args.samples} samples, float32, CPU ({os.cpu_count()} cores), "
          f"load average {os.getloadavg()[0]:.1f}; numpy baseline = one utterance at a time")
    head = ("algo", "threads", "torch batch ms", "torch utt/s", "numpy ms/utt", "numpy utt/s", "speed-up")
    widths = (4, 7, 14, 11, 12, 11, 8)
    print("  ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    items = x_np[: args.baseline_items]
    for algo in (int(a) for a in args.algos.split(",")):
        per_item = float("inf")
        t_torch = dict.fromkeys(threads, float("inf"))
        for _ in range(args.rounds):
            base = _best(lambda a=algo: [rawboost_numpy(u, a, rs) for u in items], max(1, args.repeats // 2))
            per_item = min(per_item, base / len(items))
            for n in threads:
                torch.set_num_threads(n)
                rawboost(x, algo, gen)  # warm-up (allocator, FFT plans)
                t_torch[n] = min(t_torch[n], _best(lambda a=algo: rawboost(x, a, gen), args.repeats))
        for n in threads:
            ours, base = args.batch / t_torch[n], 1 / per_item
            ms, base_ms = t_torch[n] * 1e3, per_item * 1e3
            ratio = f"{ours / base:.1f}x"
            cells = (algo, n, f"{ms:.1f}", f"{ours:.0f}", f"{base_ms:.2f}", f"{base:.1f}", ratio)
            print("  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
