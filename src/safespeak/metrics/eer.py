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
    bona_pos: NDArray[np.intp]  # (Nb,) merged position of each sorted bona fide score
    spoof_pos: NDArray[np.intp]  # (Ns,) merged position of each sorted spoof score

    @property
    def n(self) -> int:
        return self.bona_sorted.size + self.spoof_sorted.size

    def is_bona(self) -> NDArray[np.bool_]:
        """(N,) True where the merged position holds a bona fide trial."""
        lab = np.zeros(self.n, dtype=bool)
        lab[self.bona_pos] = True
        return lab

    def sorted_scores(self) -> NDArray[np.float64]:
        """(N,) all scores in merged order."""
        out = np.empty(self.n, dtype=np.float64)
        out[self.bona_pos] = self.bona_sorted
        out[self.spoof_pos] = self.spoof_sorted
        return out


def merge_sorted(bonafide: NDArray[np.float64], spoof: NDArray[np.float64]) -> MergedScores:
    """Sort each class and compute the merged positions of a stable bona-fide-first sort."""
    b = np.sort(bonafide)
    s = np.sort(spoof)
    # A bona fide trial goes after every strictly lower spoof; a spoof after every bona fide <= it.
    bona_pos = np.arange(b.size) + np.searchsorted(s, b, side="left")
    spoof_pos = np.arange(s.size) + np.searchsorted(b, s, side="right")
    return MergedScores(b, s, bona_pos, spoof_pos)


def compute_det_curve(
    bonafide: ArrayLike, spoof: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Official DET curve: ``(frr, far, thresholds)``, each of length ``Nb + Ns + 1``.

    Point 0 rejects nothing (FRR 0, FAR 1, threshold = lowest score - 0.001); point k rejects the
    first k trials of the stable bona-fide-first sort, and its threshold is the k-th sorted score.
    """
    bona = as_scores(bonafide, "bona fide")
    spf = as_scores(spoof, "spoof")
    merged = merge_sorted(bona, spf)
    bona_cum = np.cumsum(merged.is_bona())  # (N,) bona fide rejected after each point
    spoof_left = spf.size - (np.arange(1, merged.n + 1) - bona_cum)  # spoofs still accepted
    frr = np.concatenate(([0.0], bona_cum / bona.size))
    far = np.concatenate(([1.0], spoof_left / spf.size))
    scores = merged.sorted_scores()
    thresholds = np.concatenate(([scores[0] - DET_FIRST_OFFSET], scores))
    return frr, far, thresholds


def eer_point(n_bona: int, n_spoof: int, bona_cum: NDArray[np.int64]) -> tuple[int, float]:
    """(index, EER) of the first DET point minimising |FRR - FAR|, from cumulative bona fide counts.

    FRR - FAR strictly increases along the curve, so the minimum of its absolute value sits at the sign
    change: at the first point with FRR >= FAR or at the one before it (that one wins a tie).
    """
    k = np.arange(1, bona_cum.size + 1)
    # FRR >= FAR  <=>  bona_cum / Nb >= (Ns - spoof_cum) / Ns, compared exactly in integers.
    cross = bona_cum * n_spoof >= n_bona * (n_spoof - (k - bona_cum))
    q = int(np.argmax(cross)) + 1  # DET index (point 0 has FRR - FAR = -1 < 0); the last point is >= 0

    def rates(i: int) -> tuple[float, float]:
        b = int(bona_cum[i - 1]) if i else 0
        return b / n_bona, (n_spoof - (i - b)) / n_spoof

    frr_q, far_q = rates(q)
    frr_p, far_p = rates(q - 1)
    if abs(frr_p - far_p) <= abs(frr_q - far_q):
        return q - 1, float(np.mean((frr_p, far_p)))
    return q, float(np.mean((frr_q, far_q)))


def compute_eer(bonafide: ArrayLike, spoof: ArrayLike) -> tuple[float, float]:
    """Official EER as a fraction and its threshold: ``(eer, threshold)``.

    Degenerate inputs follow the official code: all scores equal -> 1.0; reversed polarity -> 1.0; a
    spoof equal to the lowest bona fide of otherwise separated classes -> 1 / (2 Ns). Unlike the
    official code (which returns NaN), an empty class raises ValueError.

    >>> compute_eer([0.9, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.1, 0.2])
    (0.55, 0.5)
    """
    bona = as_scores(bonafide, "bona fide")
    spf = as_scores(spoof, "spoof")
    merged = merge_sorted(bona, spf)
    is_bona = merged.is_bona()
    bona_cum = np.cumsum(is_bona)
    idx, eer = eer_point(bona.size, spf.size, bona_cum)
    if idx == 0:
        threshold = min(merged.bona_sorted[0], merged.spoof_sorted[0]) - DET_FIRST_OFFSET
    else:
        # The threshold is the score of the last trial counted as rejected at the EER point.
        b = int(bona_cum[idx - 1])
        threshold = merged.bona_sorted[b - 1] if is_bona[idx - 1] else merged.spoof_sorted[idx - 1 - b]
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
