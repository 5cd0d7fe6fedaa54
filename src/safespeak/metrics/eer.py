"""DET curve, EER and ASV error rates exactly as the official ASVspoof evaluation code computes them.

The official DET curve is a *stable* sort of ``[bona fide..., spoof...]``: inside a group of equal
scores every bona fide trial is rejected before any spoof trial, and every position inside the group is
an operating point. The EER is ``mean(FRR, FAR)`` at the *first* DET index minimising ``|FRR - FAR|``.
We get the same order without an argsort of the concatenation: each class is sorted on its own (values
only, much faster than a stable argsort) and the two sorted runs are merged by ``searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["AsvErrorRates", "asv_error_rates", "compute_det_curve", "compute_eer"]

# The official first DET point sits 0.001 below the lowest score (the a-DCF curve uses 1e-8 instead).
DET_FIRST_OFFSET = 0.001


def as_scores(scores: ArrayLike, name: str, *, allow_empty: bool = False) -> NDArray[np.float64]:
    """1-D float64 view of `scores`; raises ValueError on NaN, wrong shape or emptiness."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} scores must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"no {name} scores: the metric needs at least one {name} trial")
    if np.isnan(arr).any():
        raise ValueError(f"{name} scores contain NaN (index {int(np.flatnonzero(np.isnan(arr))[0])})")
    return arr


@dataclass(frozen=True)
class MergedScores:
    """Both classes sorted and merged in the official DET order (bona fide first inside ties)."""

    bona_sorted: NDArray[np.float64]  # (Nb,)
    spoof_sorted: NDArray[np.float64]  # (Ns,)
    bona_pos: NDArray[np.intp]  # (Nb,) merged position of each sorted bona fide score, increasing

    @property
    def n(self) -> int:
        return self.bona_sorted.size + self.spoof_sorted.size

    def is_bona(self) -> NDArray[np.bool_]:
        """(N,) True where the merged position holds a bona fide trial."""
        lab = np.zeros(self.n, dtype=bool)
        lab[self.bona_pos] = True
        return lab

    def sorted_scores(self, is_bona: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
        """(N,) all scores in merged order."""
        lab = self.is_bona() if is_bona is None else is_bona
        out = np.empty(self.n, dtype=np.float64)
        out[lab] = self.bona_sorted
        out[~lab] = self.spoof_sorted  # spoofs keep their ascending order
        return out

    def bona_before(self, k: int) -> int:
        """Number of bona fide trials among the first k merged positions (rejected at DET point k)."""
        return int(np.searchsorted(self.bona_pos, k, side="left"))


def merge_sorted(bonafide: NDArray[np.float64], spoof: NDArray[np.float64]) -> MergedScores:
    """Sort each class and compute where a stable bona-fide-first sort puts the bona fide trials."""
    b = np.sort(bonafide)
    s = np.sort(spoof)
    # A bona fide trial goes after every strictly lower spoof (and before equal ones).
    bona_pos = np.arange(b.size) + np.searchsorted(s, b, side="left")
    return MergedScores(b, s, bona_pos)


def det_from_merged(
    merged: MergedScores,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``(frr, far, thresholds)`` of the official DET curve from merged scores."""
    n_bona, n_spoof = merged.bona_sorted.size, merged.spoof_sorted.size
    is_bona = merged.is_bona()
    bona_cum = np.cumsum(is_bona)  # (N,) bona fide rejected after each point
    spoof_left = n_spoof - (np.arange(1, merged.n + 1) - bona_cum)  # spoofs still accepted
    frr = np.concatenate(([0.0], bona_cum / n_bona))
    far = np.concatenate(([1.0], spoof_left / n_spoof))
    scores = merged.sorted_scores(is_bona)
    thresholds = np.concatenate(([scores[0] - DET_FIRST_OFFSET], scores))
    return frr, far, thresholds


def compute_det_curve(
    bonafide: ArrayLike, spoof: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Official DET curve: ``(frr, far, thresholds)``, each of length ``Nb + Ns + 1``.

    Point 0 rejects nothing (FRR 0, FAR 1, threshold = lowest score - 0.001); point k rejects the
    first k trials of the stable bona-fide-first sort, and its threshold is the k-th sorted score.
    """
    bona = as_scores(bonafide, "bona fide")
    spf = as_scores(spoof, "spoof")
    return det_from_merged(merge_sorted(bona, spf))


def _rates(merged: MergedScores, k: int) -> tuple[float, float]:
    """(FRR, FAR) at DET point k, computed as the official code does (counts / class size)."""
    n_bona, n_spoof = merged.bona_sorted.size, merged.spoof_sorted.size
    b = merged.bona_before(k)
    return b / n_bona, (n_spoof - (k - b)) / n_spoof


def eer_index(merged: MergedScores) -> int:
    """Index of the first DET point minimising |FRR - FAR|.

    FRR - FAR strictly increases along the curve, so the minimum of its absolute value sits at the sign
    change: at the first point with FRR >= FAR, found by bisection, or at the one before it (which wins
    a tie, as the official argmin does). FRR >= FAR is tested exactly in integers.
    """
    n_bona, n_spoof = merged.bona_sorted.size, merged.spoof_sorted.size
    lo, hi = 0, merged.n  # FRR < FAR at point 0 (FRR 0, FAR 1); FRR >= FAR at the last point
    while hi - lo > 1:
        mid = (lo + hi) // 2
        b = merged.bona_before(mid)
        if b * n_spoof >= n_bona * (n_spoof - (mid - b)):
            hi = mid
        else:
            lo = mid
    frr_p, far_p = _rates(merged, lo)
    frr_q, far_q = _rates(merged, hi)
    return lo if abs(frr_p - far_p) <= abs(frr_q - far_q) else hi


def compute_eer(bonafide: ArrayLike, spoof: ArrayLike) -> tuple[float, float]:
    """Official EER as a fraction and its threshold: ``(eer, threshold)``.

    Degenerate inputs follow the official code: all scores equal -> 1.0; reversed polarity -> 1.0; a
    spoof equal to the lowest bona fide of otherwise separated classes -> 1 / (2 Ns). Unlike the
    official code (which returns NaN), an empty class raises ValueError.

    >>> compute_eer([0.9, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.1, 0.2])
    (0.55, 0.5)
    """
    merged = merge_sorted(as_scores(bonafide, "bona fide"), as_scores(spoof, "spoof"))
    idx = eer_index(merged)
    eer = float(np.mean(_rates(merged, idx)))
    if idx == 0:
        return eer, float(min(merged.bona_sorted[0], merged.spoof_sorted[0]) - DET_FIRST_OFFSET)
    # The threshold is the score of the last trial counted as rejected at the EER point.
    b = merged.bona_before(idx)
    last_is_bona = b > 0 and merged.bona_pos[b - 1] == idx - 1
    threshold = merged.bona_sorted[b - 1] if last_is_bona else merged.spoof_sorted[idx - 1 - b]
    return eer, float(threshold)


@dataclass(frozen=True)
class AsvErrorRates:
    """ASV error rates at one threshold (fractions).

    pfa: nontarget accepted; pmiss: target rejected; pmiss_spoof: spoof rejected; pfa_spoof: spoof
    accepted (``1 - pmiss_spoof``; NaN both when there were no spoof ASV trials).
    """

    pfa: float
    pmiss: float
    pmiss_spoof: float
    pfa_spoof: float


def asv_error_rates(
    target: ArrayLike, nontarget: ArrayLike, spoof: ArrayLike, threshold: float | None = None
) -> AsvErrorRates:
    """ASV error rates as the official ``obtain_asv_error_rates``: accept = score >= threshold.

    `threshold` None -> the ASV EER threshold of target vs nontarget. Because the EER threshold is the
    score of the last *rejected* trial but ``>=`` accepts it again, these rates belong to the DET point
    one trial before the ASV EER point (official behaviour, reproduced on purpose).
    """
    tar = as_scores(target, "target")
    non = as_scores(nontarget, "nontarget")
    spf = as_scores(spoof, "spoof", allow_empty=True)
    if threshold is None:
        threshold = compute_eer(tar, non)[1]
    pfa = np.count_nonzero(non >= threshold) / non.size
    pmiss = np.count_nonzero(tar < threshold) / tar.size
    if spf.size == 0:
        return AsvErrorRates(float(pfa), float(pmiss), float("nan"), float("nan"))
    pmiss_spoof = np.count_nonzero(spf < threshold) / spf.size
    pfa_spoof = np.count_nonzero(spf >= threshold) / spf.size
    return AsvErrorRates(float(pfa), float(pmiss), float(pmiss_spoof), float(pfa_spoof))
