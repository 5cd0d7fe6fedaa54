"""Speed of protocol and score-file parsing on ASVspoof-sized files.

Rows: `read_protocol` on the real 71,237-line ASVspoof 2019 LA eval protocol, and `read_score_table` on a
generated 611,829-line two-column score file (the size of the metrics big case). Baselines, measured in
the same run on the same files: ``numpy.genfromtxt(dtype=str)``, which is how the official ASVspoof 2019
code (clovaai/aasist ``evaluation.py``) reads its text files, and a bare ``line.split()`` loop (a lower
bound: no validation, no records). The ratio is baseline time / ours (> 1: ours is faster).

Run: ``.venv/bin/python benchmarks/protocols.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from safespeak.protocols import read_protocol
from safespeak.scorefiles import read_score_table

EVAL_2019 = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "protocols"
EVAL_2019 = EVAL_2019 / "ASVspoof2019.LA.cm.eval.trl.txt"


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def split_loop(path: Path) -> list[list[str]]:
    with open(path) as fh:
        return [line.split() for line in fh]


def write_scores(path: Path, n: int = 611_829, seed: int = 0) -> None:
    scores = np.random.default_rng(seed).standard_normal(n).astype(np.float32).astype(np.float64)
    path.write_text("".join(f"T_{i:07d} {s!r}\n" for i, s in enumerate(scores.tolist())))


def main() -> None:
    parser = argparse.ArgumentParser(description="Time protocol / score-file parsing against baselines.")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median reported)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scores = Path(tmp) / "scores.txt"
        write_scores(scores)
        cases = [("score file 611,829 lines", scores, lambda p: read_score_table(p, "two-column"))]
        if EVAL_2019.exists():
            cases.insert(
                0, ("2019 LA eval 71,237 lines", EVAL_2019, lambda p: read_protocol(p, "asvspoof2019-la"))
            )
        for name, path, ours in cases:
            t_ours = median_time(lambda: ours(path), args.repeats)  # noqa: B023 - called inside the loop
            t_np = median_time(lambda: np.genfromtxt(path, dtype=str), args.repeats)  # noqa: B023
            t_split = median_time(lambda: split_loop(path), args.repeats)  # noqa: B023
            rows.append((name, t_ours, t_np, t_split))
    print(f"{'file':<26} {'ours (s)':>9} {'genfromtxt (s)':>14} {'ratio':>6} {'split (s)':>9} {'ratio':>6}")
    for name, ours, np_t, split in rows:
        print(f"{name:<26} {ours:9.3f} {np_t:14.3f} {np_t / ours:6.2f} {split:9.3f} {split / ours:6.2f}")


if __name__ == "__main__":
    main()
