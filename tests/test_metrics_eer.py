"""EER / DET parity with the official `compute_eer` / `compute_det_curve` (edge cases, la2019, big case)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DIR, require_shared
from safespeak.metrics import asv_error_rates, compute_det_curve, compute_eer

TOL = 1e-9


def _fixture_keys(case: str, *path: str) -> list[str]:
    """Keys of ``<case>/expected.json`` at `path`, read at collection time so that another fixture set
    (other cases or subsets) is covered too; a placeholder when ../shared is absent (the test skips)."""
    file = SHARED_DIR / "fixtures" / "metrics" / case / "expected.json"
    if not file.exists():
        return ["fixtures-absent"]
    node = json.loads(file.read_text())
    for key in path:
        node = node[key]
    return list(node)


EDGE_CASES = _fixture_keys("edge_cases", "cases")


def _fixture(*parts: str) -> Path:
    return require_shared("fixtures", "metrics", *parts)


def _edge(case: str) -> tuple[np.ndarray, np.ndarray, dict]:
    exp = json.loads((_fixture("edge_cases") / "expected.json").read_text())["cases"][case]
    rows = [line.split() for line in (_fixture("edge_cases") / exp["file"]).read_text().splitlines()]
    bona = np.array([float(s) for k, s in rows if k == "bonafide"])
    spoof = np.array([float(s) for k, s in rows if k == "spoof"])
    return bona, spoof, exp


def _textbook_det(bona: np.ndarray, spoof: np.ndarray) -> tuple[np.ndarray, ...]:
    """Reference construction: stable argsort of [bona, spoof] and cumulative sums."""
    scores = np.concatenate((bona, spoof))
    order = np.argsort(scores, kind="mergesort")
    labels = np.concatenate((np.ones(bona.size), np.zeros(spoof.size)))[order]
    rejected_bona = np.cumsum(labels)
    accepted_spoof = spoof.size - (np.arange(1, scores.size + 1) - rejected_bona)
    frr = np.concatenate(([0.0], rejected_bona / bona.size))
    far = np.concatenate(([1.0], accepted_spoof / spoof.size))
    return frr, far, np.concatenate(([scores[order[0]] - 0.001], scores[order]))


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_case_eer_matches_official(case: str) -> None:
    bona, spoof, exp = _edge(case)
    assert (bona.size, spoof.size) == (exp["n_bonafide"], exp["n_spoof"])
    eer, threshold = compute_eer(bona, spoof)
    assert eer == pytest.approx(exp["eer_fraction"], abs=TOL)
    assert threshold == pytest.approx(exp["eer_threshold"], abs=TOL, rel=1e-15)
    frr, far, thresholds = compute_det_curve(bona, spoof)
    i = exp["eer_det_index"]
    assert (frr[i], far[i], thresholds[i]) == pytest.approx((exp["frr_at_eer"], exp["far_at_eer"], threshold))
    assert int(np.argmin(np.abs(frr - far))) == i


@pytest.mark.parametrize("case", EDGE_CASES)
def test_det_curve_equals_the_textbook_stable_sort(case: str) -> None:
    bona, spoof, _ = _edge(case)
    for ours, ref in zip(compute_det_curve(bona, spoof), _textbook_det(bona, spoof), strict=True):
        np.testing.assert_array_equal(ours, ref)


def test_tie_group_small_by_hand() -> None:
    # bona fide 0.9, 0.5, 0.5, 0.5 / spoof 0.5, 0.5, 0.5, 0.1, 0.2 : inside the 0.5 group the three bona
    # fide are rejected before any spoof, reaching FRR 3/4 while FAR is still 3/5 (official: 0.55 here).
    eer, thr = compute_eer([0.9, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.1, 0.2])
    assert (eer, thr) == (pytest.approx(0.55, abs=1e-15), 0.5)
    assert compute_eer(np.full(3, 0.5), np.full(7, 0.5)) == (1.0, 0.5)


def test_empty_or_invalid_input_raises() -> None:
    with pytest.raises(ValueError, match="no bona fide scores"):
        compute_eer([], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="no spoof scores"):
        compute_eer([0.1], np.array([]))
    with pytest.raises(ValueError, match="NaN"):
        compute_eer([0.1, np.nan], [0.2])
    with pytest.raises(ValueError, match="1-D"):
        compute_det_curve(np.zeros((2, 2)), [0.2])


def test_asv_error_rates_accept_at_threshold() -> None:
    rates = asv_error_rates([1.0, 2.0, 3.0, 4.0], [0.0, 1.0], [0.5, 2.0, 5.0], threshold=2.0)
    assert (rates.pfa, rates.pmiss) == (0.0, 0.25)
    assert (rates.pmiss_spoof, rates.pfa_spoof) == pytest.approx((1 / 3, 2 / 3))
    no_spoof = asv_error_rates([1.0, 2.0], [0.0, 1.0], [], threshold=1.0)
    assert np.isnan(no_spoof.pfa_spoof) and no_spoof.pfa == 0.5


def test_la2019_eer_and_per_attack_breakdown() -> None:
    exp = json.loads((_fixture("la2019") / "expected.json").read_text())
    rows = [line.split() for line in (_fixture("la2019") / "cm_scores_4col.txt").read_text().splitlines()]
    scores = np.array([float(r[3]) for r in rows])
    attack, key = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    bona = scores[key == "bonafide"]
    eer, thr = compute_eer(bona, scores[key == "spoof"])
    assert eer == pytest.approx(exp["eer_fraction"], abs=TOL)
    assert eer * 100 == pytest.approx(exp["calculate_tDCF_EER_return"]["eer_percent"], abs=TOL)
    assert thr == pytest.approx(exp["eer_threshold"], abs=TOL)
    for name, value in exp["per_attack_eer_fraction"].items():
        got, got_thr = compute_eer(bona, scores[attack == name])
        assert got == pytest.approx(value, abs=TOL), name
        assert got * 100 == pytest.approx(exp["per_attack_eer_percent"][name], abs=TOL), name
        assert got_thr == pytest.approx(exp["per_attack_eer_threshold"][name], abs=TOL), name
    # The 2-column file holds the same numbers in another order: the EER does not depend on order.
    two = dict(line.split() for line in (_fixture("la2019") / "cm_scores_2col.txt").read_text().splitlines())
    ids = [r[0] for r in rows]
    again = np.array([float(two[i]) for i in ids])
    assert compute_eer(again[key == "bonafide"], again[key == "spoof"])[0] == eer


def test_big_case_regenerated_and_official_eer() -> None:
    exp = json.loads((_fixture("big_case") / "expected.json").read_text())
    gen = exp["generator"]
    rng = np.random.default_rng(gen["seed"])
    bona = (2.5 + 1.5 * rng.standard_normal(gen["n_bonafide"])).astype(np.float32).astype(np.float64)
    spoof = (-1.0 + 2.0 * rng.standard_normal(gen["n_spoof"])).astype(np.float32).astype(np.float64)
    assert hashlib.sha256(bona.astype("<f8").tobytes()).hexdigest() == gen["sha256_bona_float64_le"]
    assert hashlib.sha256(spoof.astype("<f8").tobytes()).hexdigest() == gen["sha256_spoof_float64_le"]
    assert np.unique(np.concatenate((bona, spoof))).size == gen["n_distinct_values"]
    assert np.intersect1d(bona, spoof).size == gen["distinct_values_shared_by_bonafide_and_spoof"]
    eer, thr = compute_eer(bona, spoof)
    assert eer == pytest.approx(exp["eer_fraction"], abs=TOL)
    assert eer * 100 == pytest.approx(exp["eer_percent"], abs=TOL)
    assert thr == pytest.approx(exp["eer_threshold"], abs=TOL)
    frr, far, _ = compute_det_curve(bona, spoof)
    i = exp["eer_det_index"]
    assert (frr[i], far[i]) == pytest.approx((exp["frr_at_eer"], exp["far_at_eer"]), abs=TOL)
