"""ASVspoof5 parity: min / actual DCF, Cllr, a-DCF, min t-DCF and t-EER; min Cllr properties."""

from __future__ import annotations

import csv
import json
import math
from functools import cache

import numpy as np
import pytest

from safespeak.metrics import (
    a_dcf,
    act_dcf,
    asvspoof5_asv_org_rates,
    cllr,
    compute_det_curve,
    compute_eer,
    min_cllr,
    min_dcf,
    min_tdcf_asvspoof5,
    t_eer,
)
from safespeak.metrics.dcf import _asv_curves, _xpoint, a_dcf_with_threshold, min_dcf_with_threshold
from test_metrics_eer import TOL, _fixture, _fixture_keys


def _tsv(name: str) -> list[list[str]]:
    with open(_fixture("asvspoof5", name), newline="") as f:
        return list(csv.reader(f, delimiter="\t"))[1:]


@cache
def _expected() -> dict:
    return json.loads((_fixture("asvspoof5") / "expected.json").read_text())


@cache
def _track1() -> tuple[np.ndarray, np.ndarray]:
    scores = {r[0]: float(r[1]) for r in _tsv("t1_cm_scores.tsv")}
    keys = _tsv("t1_cm_keys.tsv")
    bona = np.array([scores[r[0]] for r in keys if r[1] == "bonafide"])
    spoof = np.array([scores[r[0]] for r in keys if r[1] == "spoof"])
    return bona, spoof


@cache
def _track2() -> dict[str, dict[str, np.ndarray]]:
    """{label: {"cm", "asv", "sasv"}} for target / nontarget / spoof trials, joined by (spk, filename)."""
    scores = {(r[0], r[1]): [float(x) for x in r[2:5]] for r in _tsv("t2_sasv_scores.tsv")}
    keys = _tsv("t2_sasv_keys.tsv")
    out = {}
    for label in ("target", "nontarget", "spoof"):
        rows = np.array([scores[(r[0], r[1])] for r in keys if r[3] == label])
        out[label] = {"cm": rows[:, 0], "asv": rows[:, 1], "sasv": rows[:, 2]}
    return out


def test_track1_metrics() -> None:
    exp = _expected()["track1"]
    bona, spoof = _track1()
    assert (bona.size, spoof.size) == (exp["counts"]["n_bonafide"], exp["counts"]["n_spoof"])
    value, threshold = min_dcf_with_threshold(bona, spoof)
    assert value == pytest.approx(exp["min_dcf"], abs=TOL)
    assert threshold == pytest.approx(exp["min_dcf_threshold"], abs=TOL)
    assert min_dcf(bona, spoof) == value
    assert abs(value - exp["diagnostics_not_official"]["min_dcf_spoof_first_within_ties"]) > 1e-4
    assert act_dcf(bona, spoof) == pytest.approx(exp["act_dcf"], abs=TOL)
    assert cllr(bona, spoof) == pytest.approx(exp["cllr_bits"], abs=TOL)
    eer, eer_thr = compute_eer(bona, spoof)
    assert (eer, eer_thr) == pytest.approx((exp["eer_fraction"], exp["eer_threshold"]), abs=TOL)
    assert -math.log(1.9) == pytest.approx(exp["act_dcf_threshold"], abs=TOL)


def test_track2_a_dcf_min_tdcf_t_eer() -> None:
    exp = _expected()["track2"]
    t2 = _track2()
    value, threshold = a_dcf_with_threshold(*(t2[k]["sasv"] for k in ("target", "nontarget", "spoof")))
    assert value == pytest.approx(exp["a_dcf"], abs=TOL)
    assert value == pytest.approx(exp["extra"]["t2_single_a_dcf"], abs=TOL)
    assert threshold == pytest.approx(exp["a_dcf_threshold"], abs=TOL)
    assert abs(value - exp["diagnostics_not_official"]["a_dcf_negatives_first_within_ties"]) > 1e-4
    bona_cm = np.concatenate((t2["target"]["cm"], t2["nontarget"]["cm"]))
    assert min_tdcf_asvspoof5(bona_cm, t2["spoof"]["cm"]) == pytest.approx(exp["min_tdcf"], abs=TOL)
    asv = [t2[k]["asv"] for k in ("target", "nontarget", "spoof")]
    org = asvspoof5_asv_org_rates(*asv)
    ref = exp["extra"]["fixture_asv_error_rates"]
    assert (org.pfa, org.pmiss, org.pmiss_spoof) == pytest.approx(
        (ref["Pfa_non_ASV"], ref["Pmiss_ASV"], ref["Pfa_spf_ASV"]), abs=TOL
    )
    with_own_asv = min_tdcf_asvspoof5(bona_cm, t2["spoof"]["cm"], org)
    assert with_own_asv == pytest.approx(
        exp["extra"]["min_tdcf_with_asv_error_rates_from_fixture_asv_scores"], abs=TOL
    )
    fast = t_eer(*asv, bona_cm, t2["spoof"]["cm"])
    exact = t_eer(*asv, bona_cm, t2["spoof"]["cm"], accelerated=False)
    assert fast * 100 == pytest.approx(exp["t_eer_percent"], abs=TOL)
    assert exact * 100 == pytest.approx(exp["extra"]["t_eer_percent_exact_full_search"], abs=TOL)
    pmiss_cm, pfa_cm, _ = compute_det_curve(bona_cm, t2["spoof"]["cm"])
    point = _xpoint((pmiss_cm, pfa_cm), _asv_curves(*asv))
    assert list(point) == exp["extra"]["t_eer_exact_full_search_index_asv_cm"]


def _official_loop_teer(tar, non, spf, bona_cm, spoof_cm) -> float:
    """Straight per-ASV-threshold loop of the published t-EER definition (rho = 0.5), for small inputs."""
    pmiss_cm, pfa_cm, _ = compute_det_curve(bona_cm, spoof_cm)
    scores = np.concatenate((tar, non, spf))
    lab = np.concatenate((np.ones(tar.size), np.zeros(non.size), -np.ones(spf.size)))[
        np.argsort(scores, kind="mergesort")
    ]
    pmiss = np.concatenate(([0], np.cumsum(lab == 1) / tar.size))
    pfa_non = np.concatenate(([1], 1 - np.cumsum(lab == 0) / non.size))
    pfa_spf = np.concatenate(([1], 1 - np.cumsum(lab == -1) / spf.size))
    best, result = np.inf, None
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(pmiss.size):
            h = (pmiss_cm + (1 - pmiss_cm) * pmiss[i]) - (
                (0.5 * (1 - pmiss_cm)) * pfa_non[i] + (0.5 * pfa_cm) * pfa_spf[i]
            )
            j = int(np.argmin(np.abs(h)))
            if pmiss[i] < 0.5 * pfa_non[i] + 0.5 * pfa_spf[i]:
                crit = abs(pfa_non[i] / pfa_spf[i] - pfa_cm[j] / (1 - pmiss_cm[j]))
                if crit < best:
                    best, result = crit, pfa_spf[i] * pfa_cm[j]
    return result


def test_t_eer_vectorised_equals_a_plain_loop() -> None:
    rng = np.random.default_rng(7)
    tar, non, spf = rng.normal(3, 1, 60), rng.normal(0, 1, 90), np.round(rng.normal(1.5, 1, 120), 1)
    bona_cm, spoof_cm = np.round(rng.normal(1, 1, 150), 1), np.round(rng.normal(-1, 1, 120), 1)
    expected = _official_loop_teer(tar, non, spf, bona_cm, spoof_cm)
    assert t_eer(tar, non, spf, bona_cm, spoof_cm) == pytest.approx(expected, abs=1e-15)
    assert 0 < expected < 0.5


EDGE_CASES = _fixture_keys("edge_cases", "cases")


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_cases_track1_metrics(case: str) -> None:
    exp = json.loads((_fixture("edge_cases") / "expected.json").read_text())["cases"][case]
    ref = exp["extra_asvspoof5_track1_metrics"]
    rows = [line.split() for line in (_fixture("edge_cases") / exp["file"]).read_text().splitlines()]
    bona = np.array([float(s) for k, s in rows if k == "bonafide"])
    spoof = np.array([float(s) for k, s in rows if k == "spoof"])
    assert min_dcf(bona, spoof) == pytest.approx(ref["min_dcf"], abs=TOL)
    assert act_dcf(bona, spoof) == pytest.approx(ref["act_dcf"], abs=TOL)
    assert compute_eer(bona, spoof)[0] == pytest.approx(ref["eer_fraction"], abs=TOL)
    expected_cllr = float(ref["cllr_bits"])  # "inf" where the official log1p(exp(.)) overflows
    assert cllr(bona, spoof) == pytest.approx(expected_cllr, abs=TOL)


def test_min_cllr_properties() -> None:
    rng = np.random.default_rng(3)
    bona, spoof = rng.normal(2, 1, 300), rng.normal(-1, 1.5, 700)
    m = min_cllr(bona, spoof)
    assert 0 < m < cllr(bona, spoof)
    # Invariant to any strictly increasing transform of the scores.
    assert min_cllr(np.exp(bona / 3), np.exp(spoof / 3)) == pytest.approx(m, abs=1e-12)
    # Calibration cannot beat PAV: a fitted affine calibration stays above min Cllr.
    assert min(cllr(a * bona + b, a * spoof + b) for a in (0.5, 1, 2) for b in (-1, 0, 1)) >= m
    assert min_cllr([1.0, 2.0], [-1.0, 0.0]) == 0.0
    assert min_cllr(np.full(4, 0.3), np.full(9, 0.3)) == pytest.approx(1.0, abs=1e-12)
    # Reversed polarity is uninformative after a monotone (increasing) calibration.
    assert min_cllr([-1.0, -2.0], [1.0, 2.0]) == pytest.approx(1.0, abs=1e-12)


def test_a_dcf_by_hand_and_errors() -> None:
    # All accepted: cost = Cfa_asv Pnon + Cfa_cm Pspoof = 0.595 < Cmiss Ptar: normalised 1 before any
    # rejection; a threshold between targets and the rest gives 0.
    assert a_dcf([3.0, 4.0], [0.0, 1.0], [0.5, 2.0]) == 0.0
    assert a_dcf([0.0], [1.0], [2.0]) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError, match="no nontarget"):
        a_dcf([1.0], [], [0.0])
    with pytest.raises(ValueError, match="no spoof ASV"):
        t_eer([0.0], [1.0], [], [1.0, 2.0], [0.0])
