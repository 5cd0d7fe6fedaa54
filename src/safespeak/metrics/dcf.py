"""ASVspoof5 metrics: min / actual DCF, Cllr, min Cllr, a-DCF (SASV) and the concurrent t-EER.

Everything follows the ASVspoof5 evaluation package (``calculate_modules.py``, ``a_dcf.py``), written
vectorised: its Python loops over DET points (min DCF, a-DCF, t-EER) become array operations with the
same operation order, so the numbers agree to the last bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from safespeak.metrics.eer import as_scores, compute_det_curve

__all__ = [
    "ADcfCostModel",
    "DcfCostModel",
    "a_dcf",
    "a_dcf_with_threshold",
    "act_dcf",
    "cllr",
    "min_cllr",
    "min_dcf",
    "min_dcf_with_threshold",
    "t_eer",
]


@dataclass(frozen=True)
class DcfCostModel:
    """ASVspoof5 Track 1 DCF costs: prior of spoof, cost of a miss (bona fide rejected), of a false alarm."""

    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa: float = 10.0


@dataclass(frozen=True)
class ADcfCostModel:
    """ASVspoof5 Track 2 a-DCF priors (target, nontarget, spoof) and costs."""

    p_tar: float = 0.9405
    p_non: float = 0.0095
    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa_asv: float = 10.0
    c_fa_cm: float = 10.0


def min_dcf(bonafide: ArrayLike, spoof: ArrayLike, costs: DcfCostModel = DcfCostModel()) -> float:
    """Minimum normalised DCF over the official DET points (ASVspoof5 Track 1 primary metric)."""
    return min_dcf_with_threshold(bonafide, spoof, costs)[0]


def min_dcf_with_threshold(
    bonafide: ArrayLike, spoof: ArrayLike, costs: DcfCostModel = DcfCostModel()
) -> tuple[float, float]:
    """``(min DCF, threshold)``; the threshold is that of the first DET point reaching the minimum."""
    frr, far, thresholds = compute_det_curve(bonafide, spoof)
    p_target = 1 - costs.p_spoof
    c_det = costs.c_miss * frr * p_target + costs.c_fa * far * (1 - p_target)
    i = int(np.argmin(c_det))
    return float(c_det[i] / min(costs.c_miss * p_target, costs.c_fa * (1 - p_target))), float(thresholds[i])


def act_dcf(bonafide: ArrayLike, spoof: ArrayLike, costs: DcfCostModel = DcfCostModel()) -> float:
    """Actual normalised DCF at the Bayes threshold ``-ln(beta)``, ``beta = Cmiss (1-Pspoof) / (Cfa Pspoof)``.

    Scores are taken as log-likelihood ratios whatever their scale (official behaviour): miss =
    bona fide below the threshold, false alarm = spoof at or above it.
    """
    bona = as_scores(bonafide, "bona fide")
    spf = as_scores(spoof, "spoof")
    beta = costs.c_miss * (1 - costs.p_spoof) / (costs.c_fa * costs.p_spoof)
    threshold = -np.log(beta)
    rate_miss = np.sum(bona < threshold) / bona.size
    rate_fa = np.sum(spf >= threshold) / spf.size
    dcf = costs.c_miss * (1 - costs.p_spoof) * rate_miss + costs.c_fa * costs.p_spoof * rate_fa
    return float(dcf / np.min([costs.c_fa * costs.p_spoof, costs.c_miss * (1 - costs.p_spoof)]))


def cllr(bonafide: ArrayLike, spoof: ArrayLike) -> float:
    """Cllr in bits, scores read as natural-log LLRs (ASVspoof5 formula).

    Like the official ``log1p(exp(-s))`` it overflows to ``inf`` for scores beyond about +-710; we keep
    that result (so it matches the official number) but silence NumPy's overflow warnings.
    """
    bona = as_scores(bonafide, "bona fide")
    spf = as_scores(spoof, "spoof")
    with np.errstate(over="ignore", under="ignore"):
        c_bona = np.mean(np.log1p(np.exp(-bona)))
        c_spoof = np.mean(np.log1p(np.exp(spf)))
    return float(0.5 * (c_bona + c_spoof) / np.log(2))


def min_cllr(bonafide: ArrayLike, spoof: ArrayLike) -> float:
    """Minimum Cllr in bits: Cllr after the optimal monotonic calibration (PAV / ROC convex hull).

    The ASVspoof5 package has no min Cllr; this is the BOSARIS definition. Equal scores are pooled into
    one block first (so the result does not depend on trial order), PAV gives the calibrated posterior
    of each block, and the empirical prior log-odds are removed to get LLRs. Always ``<= cllr`` of any
    monotone transform of the scores; 0 for separated classes, 1 for uninformative scores.
    """
    try:
        from scipy.optimize import isotonic_regression
    except ImportError as err:  # added in scipy 1.12
        raise ImportError("min_cllr needs scipy >= 1.12 (scipy.optimize.isotonic_regression)") from err

    bona = as_scores(bonafide, "bona fide")
    spf = as_scores(spoof, "spoof")
    values, inverse = np.unique(np.concatenate((bona, spf)), return_inverse=True)
    n_bona_blk = np.bincount(inverse[: bona.size], minlength=values.size)  # (U,)
    n_blk = np.bincount(inverse, minlength=values.size)  # (U,)
    post = isotonic_regression(n_bona_blk / n_blk, weights=n_blk).x  # (U,) P(bona fide | block)
    post = np.clip(post, 0.0, 1.0)
    # LLR = logit(post) - logit(Nb / N): the odds ratio below is exp(LLR).
    prior_odds = bona.size / spf.size
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = post / (1 - post) / prior_odds
        bona_cost = np.where(n_bona_blk > 0, np.log1p(1 / odds), 0.0)  # -log P(bona | LLR, flat prior)
        spoof_cost = np.where(n_blk > n_bona_blk, np.log1p(odds), 0.0)
    c_bona = np.sum(n_bona_blk * bona_cost) / bona.size
    c_spoof = np.sum((n_blk - n_bona_blk) * spoof_cost) / spf.size
    return float(0.5 * (c_bona + c_spoof) / math.log(2))


def a_dcf(
    target: ArrayLike, nontarget: ArrayLike, spoof: ArrayLike, costs: ADcfCostModel = ADcfCostModel()
) -> float:
    """Minimum normalised a-DCF from SASV scores of target, nontarget and spoof trials.

    The 3-class DET follows a stable sort of ``[target, nontarget, spoof]``; its first point sits at
    lowest score - 1e-8 (official a-DCF code, unlike the 0.001 of the CM DET curve).
    """
    return a_dcf_with_threshold(target, nontarget, spoof, costs)[0]


def a_dcf_with_threshold(
    target: ArrayLike, nontarget: ArrayLike, spoof: ArrayLike, costs: ADcfCostModel = ADcfCostModel()
) -> tuple[float, float]:
    """``(min a-DCF, threshold)`` of the first point reaching the minimum."""
    tar = as_scores(target, "target")
    non = as_scores(nontarget, "nontarget")
    spf = as_scores(spoof, "spoof")
    scores = np.concatenate((tar, non, spf))
    labels = np.repeat(np.array([0, 1, 2], dtype=np.int8), [tar.size, non.size, spf.size])
    order = np.argsort(scores, kind="stable")  # (N,) ties keep target < nontarget < spoof
    lab = labels[order]
    zero = np.zeros(1, dtype=np.int64)
    miss = np.concatenate((zero, np.cumsum(lab == 0)))  # (N+1,) targets rejected
    fa_non = non.size - np.concatenate((zero, np.cumsum(lab == 1)))  # nontargets still accepted
    fa_spf = spf.size - np.concatenate((zero, np.cumsum(lab == 2)))  # spoofs still accepted
    cost = (
        np.array([costs.c_miss * costs.p_tar]) * (miss / tar.size)
        + np.array([costs.c_fa_asv * costs.p_non]) * (fa_non / non.size)
        + np.array([costs.c_fa_cm * costs.p_spoof]) * (fa_spf / spf.size)
    )
    norm = min(costs.c_fa_asv * costs.p_non + costs.c_fa_cm * costs.p_spoof, costs.c_miss * costs.p_tar)
    cost = cost / norm
    i = int(np.argmin(cost))
    threshold = float(scores[order[0]]) - 1e-8 if i == 0 else float(scores[order[i - 1]])
    return float(cost[i]), threshold


def _asv_curves(
    tar: NDArray[np.float64], non: NDArray[np.float64], spf: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(Pmiss, Pfa_nontarget, Pfa_spoof) of the ASV over a stable sort of [target, nontarget, spoof]."""
    scores = np.concatenate((tar, non, spf))
    labels = np.repeat(np.array([0, 1, 2], dtype=np.int8), [tar.size, non.size, spf.size])
    lab = labels[np.argsort(scores, kind="stable")]
    pmiss = np.concatenate(([0.0], np.cumsum(lab == 0) / tar.size))
    # The official writes these as 1 - count / n (not (n - count) / n): keep its rounding.
    pfa_non = np.concatenate(([1.0], 1 - np.cumsum(lab == 1) / non.size))
    pfa_spf = np.concatenate(([1.0], 1 - np.cumsum(lab == 2) / spf.size))
    return pmiss, pfa_non, pfa_spf


def _xpoint(
    cm: tuple[NDArray[np.float64], NDArray[np.float64]],
    asv: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    rho: float = 0.5,
) -> tuple[int, int] | None:
    """(ASV index, CM index) of the official t-EER intersection point, or None when there is none.

    For every allowed ASV point (miss < (1-rho) Pfa_non + rho Pfa_spoof) take the first CM point
    minimising |tandem miss - tandem false alarm|; keep the first ASV point minimising
    |Pfa_non/Pfa_spoof - Pfa_cm/(1 - Pmiss_cm)|. Rows are processed in chunks to bound memory.
    """
    pmiss_cm, pfa_cm = cm
    pmiss_asv, pfa_non, pfa_spf = asv
    rows = np.flatnonzero(pmiss_asv < (1 - rho) * pfa_non + rho * pfa_spf)
    if rows.size == 0:
        return None
    keep = 1 - pmiss_cm  # (N,)
    fa_non_w = (1 - rho) * (1 - pmiss_cm)  # (N,) operation order of the official tandem rates
    fa_spf_w = rho * pfa_cm  # (N,)
    cm_idx = np.empty(rows.size, dtype=np.intp)
    step = max(1, 4_000_000 // pmiss_cm.size)
    for start in range(0, rows.size, step):
        r = rows[start : start + step]
        h = np.multiply(keep, pmiss_asv[r, None])  # (R, N) tandem miss, built in place
        h += pmiss_cm
        fa = np.multiply(fa_non_w, pfa_non[r, None])  # (R, N) tandem false alarm
        fa += fa_spf_w * pfa_spf[r, None]
        h -= fa
        cm_idx[start : start + r.size] = np.argmin(np.abs(h, out=h), axis=1)  # (R,)
    with np.errstate(divide="ignore", invalid="ignore"):
        crit = np.abs(pfa_non[rows] / pfa_spf[rows] - pfa_cm[cm_idx] / (1 - pmiss_cm[cm_idx]))
    crit = np.where(np.isnan(crit), np.inf, crit)
    best = int(np.argmin(crit))
    if not np.isfinite(crit[best]):
        return None
    return int(rows[best]), int(cm_idx[best])


def t_eer(
    target_asv: ArrayLike,
    nontarget_asv: ArrayLike,
    spoof_asv: ArrayLike,
    bonafide_cm: ArrayLike,
    spoof_cm: ArrayLike,
    *,
    accelerated: bool = True,
) -> float:
    """Concurrent t-EER as a **fraction** (the official ASVspoof5 function returns percent).

    ASV curves come from the target / nontarget / spoof ASV scores, the CM curve from bona fide
    (target + nontarget trials) vs spoof CM scores. The value is ``Pfa_spoof_asv * Pfa_cm`` at the
    intersection point (see `_xpoint`). With ``accelerated`` (official default) and both curves of at
    least 3,000 points, the point is searched on every (len // 3000)-th point first, then exactly within
    +-1,600 points of it; this may differ from the exhaustive search (``accelerated=False``) by design.
    """
    tar, non = as_scores(target_asv, "target ASV"), as_scores(nontarget_asv, "nontarget ASV")
    spf = as_scores(spoof_asv, "spoof ASV")
    pmiss_cm, pfa_cm, _ = compute_det_curve(bonafide_cm, spoof_cm)
    pmiss_asv, pfa_non, pfa_spf = _asv_curves(tar, non, spf)
    cm = (pmiss_cm, pfa_cm)
    asv = (pmiss_asv, pfa_non, pfa_spf)
    lo_asv, lo_cm = 0, 0
    ds_asv, ds_cm = pmiss_asv.size // 3000, pmiss_cm.size // 3000
    point = None
    if accelerated and ds_asv > 0 and ds_cm > 0:
        coarse = _xpoint((pmiss_cm[::ds_cm], pfa_cm[::ds_cm]), tuple(x[::ds_asv] for x in asv))
        if coarse is not None:
            c_asv, c_cm = coarse[0] * ds_asv, coarse[1] * ds_cm
            lo_asv, hi_asv = max(c_asv - 1600, 0), min(c_asv + 1600, pmiss_asv.size)
            lo_cm, hi_cm = max(c_cm - 1600, 0), min(c_cm + 1600, pmiss_cm.size)
            window = _xpoint(
                (pmiss_cm[lo_cm:hi_cm], pfa_cm[lo_cm:hi_cm]), tuple(x[lo_asv:hi_asv] for x in asv)
            )
            point = None if window is None else (window[0] + lo_asv, window[1] + lo_cm)
    if point is None:
        point = _xpoint(cm, asv)
    if point is None:
        raise ValueError(
            "t-EER undefined: no ASV operating point with Pmiss < (Pfa_nontarget + Pfa_spoof) / 2"
        )
    return float(pfa_spf[point[0]] * pfa_cm[point[1]])
