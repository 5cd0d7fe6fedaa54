"""Tandem detection cost function (t-DCF): legacy ASVspoof 2019 and revised ASVspoof 2021 / ASVspoof5.

Legacy (clovaai/aasist ``evaluation.py``, ASVspoof 2019 plan):
``t-DCF(s) = (C1 Pmiss_cm(s) + C2 Pfa_cm(s)) / min(C1, C2)`` with
``C1 = Ptar (Cmiss_cm - Cmiss_asv Pmiss_asv) - Pnon Cfa_asv Pfa_asv`` and
``C2 = Cfa_cm Pspoof (1 - Pmiss_spoof_asv)``.

Revised (2021 eval-package, ASVspoof5):
``t-DCF(s) = (C0 + C1 Pmiss_cm(s) + C2 Pfa_cm(s)) / (C0 + min(C1, C2))`` with
``C0 = Ptar Cmiss Pmiss_asv + Pnon Cfa Pfa_asv``, ``C1 = Ptar Cmiss - C0``,
``C2 = Pspoof Cfa_spoof Pfa_spoof_asv``.

The minimum runs over every point of the official CM DET curve (see `compute_det_curve`). Arithmetic
is written in the official operation order so that results agree to the last bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from safespeak.metrics.eer import AsvErrorRates, as_scores, asv_error_rates, det_from_merged, merge_sorted

__all__ = [
    "ASVSPOOF5_ASV_RATES",
    "CostModel",
    "LegacyCostModel",
    "asvspoof5_asv_org_rates",
    "min_tdcf_2019",
    "min_tdcf_2021",
    "min_tdcf_asvspoof5",
    "tdcf_2019_curve",
    "tdcf_2021_coefficients",
    "tdcf_2021_curve",
]


@dataclass(frozen=True)
class LegacyCostModel:
    """ASVspoof 2019 (legacy) t-DCF costs and priors; defaults are the challenge values."""

    p_spoof: float = 0.05
    p_tar: float = 0.9405  # (1 - Pspoof) * 0.99
    p_non: float = 0.0095  # (1 - Pspoof) * 0.01
    c_miss_asv: float = 1.0
    c_fa_asv: float = 10.0
    c_miss_cm: float = 1.0
    c_fa_cm: float = 10.0


@dataclass(frozen=True)
class CostModel:
    """Revised (ASVspoof 2021 / ASVspoof5) t-DCF costs and priors; defaults are the challenge values."""

    p_spoof: float = 0.05
    p_tar: float = 0.9405
    p_non: float = 0.0095
    c_miss: float = 1.0
    c_fa: float = 10.0
    c_fa_spoof: float = 10.0


# Pooled error rates of the organisers' ASV, hard-coded in the ASVspoof5 evaluation package, which uses
# them for min t-DCF whatever ASV scores are submitted.
ASVSPOOF5_ASV_RATES = AsvErrorRates(
    pfa=0.01881016557566423,
    pmiss=0.01880141010575793,
    pmiss_spoof=1 - 0.4607082907604729,
    pfa_spoof=0.4607082907604729,
)


def _check_priors(p_tar: float, p_non: float, p_spoof: float) -> None:
    if min(p_tar, p_non, p_spoof) < 0 or abs(p_tar + p_non + p_spoof - 1) > 1e-10:
        raise ValueError(
            f"priors must be >= 0 and sum to 1, got Ptar={p_tar}, Pnon={p_non}, Pspoof={p_spoof}"
        )


def _cm_det(bonafide: ArrayLike, spoof: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    """CM DET curve after the official sanity checks (finite scores, at least 3 distinct values)."""
    merged = merge_sorted(as_scores(bonafide, "bona fide"), as_scores(spoof, "spoof"))
    frr, far, thresholds = det_from_merged(merged)
    scores = thresholds[1:]  # (N,) sorted: inf can only sit at the ends
    if not (np.isfinite(scores[0]) and np.isfinite(scores[-1])):
        raise ValueError("CM scores contain inf; the t-DCF needs finite scores")
    if np.count_nonzero(scores[1:] != scores[:-1]) < 2:
        raise ValueError("CM scores have fewer than 3 distinct values: give soft scores, not decisions")
    return frr, far, thresholds


def tdcf_2019_curve(
    bonafide: ArrayLike, spoof: ArrayLike, asv: AsvErrorRates, costs: LegacyCostModel = LegacyCostModel()
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Legacy normalised t-DCF over the CM DET points: ``(tdcf, thresholds)``."""
    _check_priors(costs.p_tar, costs.p_non, costs.p_spoof)
    if math.isnan(asv.pmiss_spoof):
        raise ValueError("the legacy t-DCF needs the ASV miss rate of spoof trials (no spoof ASV trials)")
    pmiss_cm, pfa_cm, thresholds = _cm_det(bonafide, spoof)
    c1 = (
        costs.p_tar * (costs.c_miss_cm - costs.c_miss_asv * asv.pmiss)
        - costs.p_non * costs.c_fa_asv * asv.pfa
    )
    c2 = costs.c_fa_cm * costs.p_spoof * (1 - asv.pmiss_spoof)
    if c1 < 0 or c2 < 0:
        raise ValueError(f"negative t-DCF weights C1={c1}, C2={c2}: check the ASV error rates")
    return (c1 * pmiss_cm + c2 * pfa_cm) / np.minimum(c1, c2), thresholds


def min_tdcf_2019(
    bonafide: ArrayLike, spoof: ArrayLike, asv: AsvErrorRates, costs: LegacyCostModel = LegacyCostModel()
) -> float:
    """Minimum legacy (ASVspoof 2019, clovaai/aasist) normalised t-DCF."""
    curve, _ = tdcf_2019_curve(bonafide, spoof, asv, costs)
    return float(curve.min())


def tdcf_2021_coefficients(asv: AsvErrorRates, costs: CostModel = CostModel()) -> tuple[float, float, float]:
    """Revised t-DCF coefficients ``(C0, C1, C2)`` from ASV error rates (2021 eval-package C012)."""
    _check_priors(costs.p_tar, costs.p_non, costs.p_spoof)
    if math.isnan(asv.pfa_spoof):
        raise ValueError("the revised t-DCF needs the ASV false-alarm rate of spoof trials (none given)")
    c0 = costs.p_tar * costs.c_miss * asv.pmiss + costs.p_non * costs.c_fa * asv.pfa
    c1 = costs.p_tar * costs.c_miss - (
        costs.p_tar * costs.c_miss * asv.pmiss + costs.p_non * costs.c_fa * asv.pfa
    )
    c2 = costs.p_spoof * costs.c_fa_spoof * asv.pfa_spoof
    return float(c0), float(c1), float(c2)


def tdcf_2021_curve(
    bonafide: ArrayLike, spoof: ArrayLike, c012: tuple[float, float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Revised normalised t-DCF over the CM DET points for given ``(C0, C1, C2)``: ``(tdcf, thresholds)``."""
    c0, c1, c2 = c012
    if min(c0, c1, c2) < 0:
        raise ValueError(f"negative t-DCF weights C0={c0}, C1={c1}, C2={c2}: check the ASV error rates")
    pmiss_cm, pfa_cm, thresholds = _cm_det(bonafide, spoof)
    return (c0 + c1 * pmiss_cm + c2 * pfa_cm) / (c0 + np.minimum(c1, c2)), thresholds


def min_tdcf_2021(
    bonafide: ArrayLike,
    spoof: ArrayLike,
    asv: AsvErrorRates | None = None,
    *,
    c012: tuple[float, float, float] | None = None,
    costs: CostModel = CostModel(),
) -> float:
    """Minimum revised (ASVspoof 2021) normalised t-DCF.

    Give either the ASV error rates `asv` (coefficients from `costs`) or precomputed `c012`, as the
    2021 eval-package does per (attack, codec) cell. NaN coefficients (a cell without ASV trials of
    some class) give NaN, as in the eval-package tables.
    """
    if c012 is None:
        if asv is None:
            raise ValueError(
                "min_tdcf_2021 needs the ASV error rates (asv=...) or the coefficients (c012=...)"
            )
        c012 = tdcf_2021_coefficients(asv, costs)
    if any(math.isnan(c) for c in c012):
        return float("nan")
    curve, _ = tdcf_2021_curve(bonafide, spoof, c012)
    return float(curve.min())


def min_tdcf_asvspoof5(
    bonafide: ArrayLike,
    spoof: ArrayLike,
    asv: AsvErrorRates = ASVSPOOF5_ASV_RATES,
    costs: CostModel = CostModel(),
) -> float:
    """ASVspoof5 Track 2 min t-DCF: the revised t-DCF with the organisers' hard-coded ASV error rates.

    The official package ignores the submitted ASV scores here; pass `asv` to use other rates, e.g.
    `asvspoof5_asv_org_rates` for the package's ``--asv_org`` path.
    """
    return min_tdcf_2021(bonafide, spoof, asv, costs=costs)


def asvspoof5_asv_org_rates(target: ArrayLike, nontarget: ArrayLike, spoof: ArrayLike) -> AsvErrorRates:
    """ASV error rates as the ASVspoof5 ``--asv_org`` path feeds them to its revised t-DCF.

    Rates at the ASV EER threshold (`asv_error_rates`), except that the package passes the spoof *miss*
    rate where the revised t-DCF expects the spoof false-alarm rate (positional mix-up in the official
    code, reproduced so that results match): ``pfa_spoof`` here holds Pmiss_spoof_asv.
    """
    rates = asv_error_rates(target, nontarget, spoof)
    return AsvErrorRates(rates.pfa, rates.pmiss, rates.pfa_spoof, rates.pmiss_spoof)
