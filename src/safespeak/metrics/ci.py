"""Bootstrap confidence interval of the official EER.

Resampling is stratified: each replicate draws Nb bona fide and Ns spoof trials with replacement from
their own class. A replicate is a vector of copy counts over the original trials, so the trials are
sorted once (official bona-fide-first order) and every replicate's EER is found from cumulative counts
— no re-sorting, no Python loop over DET points. Copies of one trial form a run of consecutive DET
points; the EER crossing inside such a run is located exactly with integer arithmetic.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from safespeak.metrics.eer import as_scores, merge_sorted

__all__ = ["bootstrap_eer_ci", "bootstrap_eers"]

# Twice the (replicates x trials) elements of one chunk; a few int64 matrices of half that size are
# alive at once (about 100 MB at this setting).
_CHUNK_ELEMENTS = 4_000_000


def _replicate_eers(
    counts: NDArray[np.int64], is_bona: NDArray[np.bool_], n_bona: int, n_spoof: int
) -> NDArray[np.float64]:
    """(R,) EER of each replicate; `counts` (R, N) copies of each trial in merged DET order."""
    bona_cum = np.cumsum(np.where(is_bona, counts, 0), axis=1)  # (R, N) after each trial's copies
    spoof_cum = np.cumsum(np.where(is_bona, 0, counts), axis=1)  # (R, N)
    # First trial whose last copy reaches FRR >= FAR (exact integer comparison); the final point has it.
    reached = bona_cum * n_spoof >= n_bona * (n_spoof - spoof_cum)
    m = np.argmax(reached, axis=1)  # (R,)
    rows = np.arange(counts.shape[0])
    b0 = np.where(m > 0, bona_cum[rows, m - 1], 0)  # counts before that trial's copies
    s0 = np.where(m > 0, spoof_cum[rows, m - 1], 0)
    # Number of copies j of trial m needed to reach FRR >= FAR (ceil of an exact rational).
    need_b = -(-(n_bona * (n_spoof - s0) - b0 * n_spoof) // n_spoof)  # bona fide copy: b0 + j
    need_s = -(-(n_bona * (n_spoof - s0) - b0 * n_spoof) // n_bona)  # spoof copy: s0 + j
    j = np.maximum(np.where(is_bona[m], need_b, need_s), 1)
    bona_step = is_bona[m].astype(np.int64)
    bq, sq = b0 + j * bona_step, s0 + j * (1 - bona_step)  # first point with FRR >= FAR
    bp, sp = bq - bona_step, sq - (1 - bona_step)  # the point before it
    frr_q, far_q = bq / n_bona, (n_spoof - sq) / n_spoof
    frr_p, far_p = bp / n_bona, (n_spoof - sp) / n_spoof
    # Official tie rule: the earlier point wins when |FRR - FAR| is equal.
    take_p = np.abs(frr_p - far_p) <= np.abs(frr_q - far_q)
    return np.where(take_p, (frr_p + far_p) / 2, (frr_q + far_q) / 2)


def bootstrap_eers(
    bonafide: ArrayLike, spoof: ArrayLike, n_boot: int = 1000, seed: int = 0
) -> NDArray[np.float64]:
    """(n_boot,) EERs of stratified bootstrap replicates.

    Replicate r draws bona fide indices ``rng.integers(0, Nb, Nb)`` then spoof indices
    ``rng.integers(0, Ns, Ns)`` from one ``numpy.random.default_rng(seed)``, replicate after replicate
    (so results do not depend on the memory chunking); each EER equals `compute_eer` on the resampled
    scores.
    """
    bona = as_scores(bonafide, "bona fide")
    spf = as_scores(spoof, "spoof")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    order_b, order_s = np.argsort(bona, kind="stable"), np.argsort(spf, kind="stable")
    merged = merge_sorted(bona, spf)
    is_bona = merged.is_bona()
    n_b, n_s, n = bona.size, spf.size, merged.n
    # Column of every original trial in the merged DET order.
    col_b = np.empty(n_b, dtype=np.intp)
    col_b[order_b] = merged.bona_pos
    col_s = np.empty(n_s, dtype=np.intp)
    col_s[order_s] = np.flatnonzero(~is_bona)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // (2 * n))
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, chunk):
        r = min(chunk, n_boot - start)
        flat = np.empty((r, n), dtype=np.intp)  # (R, N) merged column of every drawn trial
        for i in range(r):
            flat[i, :n_b] = col_b[rng.integers(0, n_b, size=n_b)]
            flat[i, n_b:] = col_s[rng.integers(0, n_s, size=n_s)]
        flat += (np.arange(r) * n)[:, None]
        counts = np.bincount(flat.ravel(), minlength=r * n).reshape(r, n)  # (R, N)
        out[start : start + r] = _replicate_eers(counts, is_bona, n_b, n_s)
    return out


def bootstrap_eer_ci(
    bonafide: ArrayLike, spoof: ArrayLike, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` interval of the EER (fractions) at level ``1 - alpha``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    eers = bootstrap_eers(bonafide, spoof, n_boot, seed)
    low, high = np.quantile(eers, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
