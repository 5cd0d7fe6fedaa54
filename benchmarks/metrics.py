"""Speed of the official-parity EER and legacy min t-DCF on the 611,829-trial big case.

Baseline, measured in the same run: the textbook construction the official code uses (stable
``argsort(kind="mergesort")`` of the concatenated scores, cumulative sums over the sorted labels, then
argmin / min over all DET points). Ours sorts each class on its own (values only) and merges them with
``searchsorted``. Both must give the same numbers; the script checks that before timing. The last
row times the stratified bootstrap (`bootstrap_eers`, counts over one sort) against resampling + the
textbook EER per replicate, with the same random draws.

Run: ``.venv/bin/python benchmarks/metrics.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from safespeak.metrics import (
    AsvErrorRates,
    LegacyCostModel,
    asv_error_rates,
    bootstrap_eers,
    compute_eer,
    min_tdcf_2019,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "metrics"


def big_case(seed: int = 611829) -> tuple[np.ndarray, np.ndarray]:
    """The fixture's big case: 22,617 bona fide and 589,212 spoof float32-rounded Gaussian scores."""
    rng = np.random.default_rng(seed)
    bona = (2.5 + 1.5 * rng.standard_normal(22617)).astype(np.float32).astype(np.float64)
    spoof = (-1.0 + 2.0 * rng.standard_normal(589212)).astype(np.float32).astype(np.float64)
    return bona, spoof


def asv_rates() -> tuple[AsvErrorRates, str]:
    """la2019 fixture ASV rates when ../shared is present, else fixed synthetic ones."""
    path = SHARED / "la2019" / "asv_scores.txt"
    if not path.exists():
        return AsvErrorRates(pfa=0.01025, pmiss=0.01, pmiss_spoof=0.25, pfa_spoof=0.75), "synthetic"
    rows = [line.split() for line in path.read_text().splitlines()]
    scores, keys = np.array([float(r[2]) for r in rows]), np.array([r[1] for r in rows])
    return asv_error_rates(*(scores[keys == k] for k in ("target", "nontarget", "spoof"))), "la2019"


def _textbook_det(bona: np.ndarray, spoof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.concatenate((bona, spoof))
    labels = np.concatenate((np.ones(bona.size), np.zeros(spoof.size)))
    labels = labels[np.argsort(scores, kind="mergesort")]
    bona_cum = np.cumsum(labels)
    frr = np.concatenate(([0.0], bona_cum / bona.size))
    far = np.concatenate(([1.0], (spoof.size - (np.arange(1, scores.size + 1) - bona_cum)) / spoof.size))
    return frr, far


def baseline_eer(bona: np.ndarray, spoof: np.ndarray) -> float:
    frr, far = _textbook_det(bona, spoof)
    i = int(np.argmin(np.abs(frr - far)))
    return float(np.mean((frr[i], far[i])))


def baseline_min_tdcf(bona: np.ndarray, spoof: np.ndarray, asv: AsvErrorRates) -> float:
    c = LegacyCostModel()
    frr, far = _textbook_det(bona, spoof)
    c1 = c.p_tar * (c.c_miss_cm - c.c_miss_asv * asv.pmiss) - c.p_non * c.c_fa_asv * asv.pfa
    c2 = c.c_fa_cm * c.p_spoof * (1 - asv.pmiss_spoof)
    return float(((c1 * frr + c2 * far) / min(c1, c2)).min())


def baseline_bootstrap(bona: np.ndarray, spoof: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """Resample each class, then the textbook EER, replicate by replicate (same draws as ours)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        idx_b = rng.integers(0, bona.size, bona.size)
        idx_s = rng.integers(0, spoof.size, spoof.size)
        out.append(baseline_eer(bona[idx_b], spoof[idx_s]))
    return np.array(out)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description="Time EER and legacy min t-DCF: ours vs textbook sort.")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (median reported)")
    parser.add_argument("--boot", type=int, default=10, help="bootstrap replicates in the CI row (one run)")
    args = parser.parse_args()
    bona, spoof = big_case()
    asv, source = asv_rates()
    eer_ours, eer_base = compute_eer(bona, spoof)[0], baseline_eer(bona, spoof)
    tdcf_ours, tdcf_base = min_tdcf_2019(bona, spoof, asv), baseline_min_tdcf(bona, spoof, asv)
    assert eer_ours == eer_base and abs(tdcf_ours - tdcf_base) < 1e-12, "results differ from the baseline"
    rows = [
        ("EER", lambda: compute_eer(bona, spoof), lambda: baseline_eer(bona, spoof)),
        (
            "min t-DCF 2019",
            lambda: min_tdcf_2019(bona, spoof, asv),
            lambda: baseline_min_tdcf(bona, spoof, asv),
        ),
    ]
    print(f"big case: {bona.size:,} bona fide + {spoof.size:,} spoof; ASV rates: {source}")
    print(f"median of {args.repeats} runs each, scores in memory as float64")
    print(f"EER = {eer_ours!r}, min t-DCF = {tdcf_ours!r} (identical to the baseline)")
    print("| metric | ours (s) | baseline argsort+cumsum (s) | speed-up |\n|---|---:|---:|---:|")
    total_ours = total_base = 0.0
    for name, ours, base in rows:
        t_ours, t_base = median_time(ours, args.repeats), median_time(base, args.repeats)
        total_ours, total_base = total_ours + t_ours, total_base + t_base
        print(f"| {name} | {t_ours:.4f} | {t_base:.4f} | {t_base / t_ours:.2f}x |")
    print(f"| EER + min t-DCF | {total_ours:.4f} | {total_base:.4f} | {total_base / total_ours:.2f}x |")
    start = time.perf_counter()
    boot_ours = bootstrap_eers(bona, spoof, n_boot=args.boot)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    boot_base = baseline_bootstrap(bona, spoof, args.boot)
    t_base = time.perf_counter() - start
    assert np.array_equal(boot_ours, boot_base), "bootstrap replicates differ from the baseline"
    row = f"bootstrap EER, {args.boot} replicates (1 run)"
    print(f"| {row} | {t_ours:.4f} | {t_base:.4f} | {t_base / t_ours:.2f}x |")


if __name__ == "__main__":
    main()
