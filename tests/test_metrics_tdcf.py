"""t-DCF parity with the official code: clovaai/aasist (2019 legacy), 2021 stage-1 and eval-package."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from safespeak.metrics import (
    AsvErrorRates,
    CostModel,
    LegacyCostModel,
    asv_error_rates,
    compute_eer,
    min_tdcf_2019,
    min_tdcf_2021,
    tdcf_2019_curve,
    tdcf_2021_coefficients,
    tdcf_2021_curve,
)
from test_metrics_eer import TOL, _fixture, _fixture_keys


def _expected(case: str) -> dict:
    return json.loads((_fixture(case) / "expected.json").read_text())


def _columns(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


@cache
def _la2019() -> dict[str, np.ndarray]:
    rows = _columns(_fixture("la2019", "cm_scores_4col.txt"))
    asv = _columns(_fixture("la2019", "asv_scores.txt"))
    return {
        "cm": np.array([float(r[3]) for r in rows]),
        "key": np.array([r[2] for r in rows]),
        "asv": np.array([float(r[2]) for r in asv]),
        "asv_key": np.array([r[1] for r in asv]),
    }


def _la2019_split() -> tuple[np.ndarray, np.ndarray, AsvErrorRates]:
    d = _la2019()
    rates = asv_error_rates(*(d["asv"][d["asv_key"] == k] for k in ("target", "nontarget", "spoof")))
    return d["cm"][d["key"] == "bonafide"], d["cm"][d["key"] == "spoof"], rates


def test_la2019_asv_rates_use_the_point_before_the_eer() -> None:
    exp = _expected("la2019")["asv"]
    d = _la2019()
    tar, non = d["asv"][d["asv_key"] == "target"], d["asv"][d["asv_key"] == "nontarget"]
    eer, thr = compute_eer(tar, non)
    assert eer == pytest.approx(exp["eer_fraction"], abs=TOL)
    assert thr == pytest.approx(exp["threshold"], abs=TOL)
    _, _, rates = _la2019_split()
    assert rates.pfa == pytest.approx(exp["Pfa_asv"], abs=TOL)  # 0.01025, not the EER point's 0.01
    assert rates.pmiss == pytest.approx(exp["Pmiss_asv"], abs=TOL)
    assert rates.pmiss_spoof == pytest.approx(exp["Pmiss_spoof_asv"], abs=TOL)
    assert rates.pfa_spoof == pytest.approx(1 - exp["Pmiss_spoof_asv"], abs=TOL)


def test_la2019_legacy_min_tdcf_and_threshold() -> None:
    exp = _expected("la2019")
    bona, spoof, rates = _la2019_split()
    assert min_tdcf_2019(bona, spoof, rates) == pytest.approx(exp["min_tdcf"], abs=TOL)
    assert exp["calculate_tDCF_EER_return"]["min_tdcf"] == exp["min_tdcf"]
    curve, thresholds = tdcf_2019_curve(bona, spoof, rates)
    i = int(np.argmin(curve))
    assert i == exp["min_tdcf_det_index"]
    assert thresholds[i] == pytest.approx(exp["min_tdcf_threshold"], abs=TOL)
    # Spoof-first ordering inside the tie group would give a lower, wrong value.
    assert abs(curve[i] - exp["diagnostics_not_official"]["min_tdcf_if_spoof_first_within_ties"]) > 1e-4
    # C1, C2 of the legacy formula: the normalised curve is C1/min * Pmiss + C2/min * Pfa.
    consts = exp["tdcf_legacy_constants_derived"]
    assert curve[0] == pytest.approx(consts["C2"] / consts["normaliser_min_C1_C2"], abs=TOL)


def test_la2019_revised_formulation_extra() -> None:
    exp = _expected("la2019")["extra_revised_tdcf_2021_formulation"]
    bona, spoof, rates = _la2019_split()
    assert rates.pfa_spoof == pytest.approx(exp["Pfa_spoof_asv"], abs=TOL)
    assert min_tdcf_2021(bona, spoof, rates) == pytest.approx(exp["min_tdcf"], abs=TOL)


# ---------------------------------------------------------------- ASVspoof 2021 LA / DF


@cache
def _cm2021(track: str) -> dict[str, np.ndarray]:
    """CM keys joined with the score file by trial id, as columns."""
    case = track.lower() + "2021"
    meta = _columns(_fixture(case, "keys", track, "CM", "trial_metadata.txt"))
    scores = {r[0]: float(r[1]) for r in _columns(_fixture(case, "cm_scores.txt"))}
    cols = {
        "score": np.array([scores[r[1]] for r in meta]),
        "codec": np.array([r[2] for r in meta]),
        "attack": np.array([r[4] for r in meta]),
        "key": np.array([r[5] for r in meta]),
        "subset": np.array([r[7] for r in meta]),
        "col3": np.array([r[3] for r in meta]),  # LA: transmission, DF: source
    }
    if track == "DF":
        cols["vocoder"] = np.array([r[8] for r in meta])
    return cols


@cache
def _asv2021() -> dict[str, np.ndarray]:
    """LA ASV metadata paired by line position with the ASV score file (official behaviour)."""
    meta = _columns(_fixture("la2021", "keys", "LA", "ASV", "trial_metadata.txt"))
    scores = _columns(_fixture("la2021", "keys", "LA", "ASV", "ASVTorch_Kaldi", "score.txt"))
    assert [r[1] for r in meta] == [r[1] for r in scores]
    return {
        "score": np.array([float(r[2]) for r in scores]),
        "codec": np.array([r[2] for r in meta]),
        "attack": np.array([r[4] for r in meta]),
        "label": np.array([r[5] for r in meta]),
        "subset": np.array([r[7] for r in meta]),
    }


def _asv_subset(subset: str, codec: str = "Pooled", attack: str = "Pooled") -> list[np.ndarray]:
    a = _asv2021()
    base = a["subset"] == subset
    if codec != "Pooled":
        base &= a["codec"] == codec
    spoof = base & (a["label"] == "spoof")
    if attack != "Pooled":
        spoof &= a["attack"] == attack
    tar, non = base & (a["label"] == "target"), base & (a["label"] == "nontarget")
    return [a["score"][tar], a["score"][non], a["score"][spoof]]


def _cm_cell(track: str, subset: str, row_col: str, row: str, codec: str) -> tuple[np.ndarray, np.ndarray]:
    """Eval-package cell: codec restricts both classes, the row factor (attack / vocoder) only spoofs."""
    c = _cm2021(track)
    base = c["subset"] == subset
    if codec != "Pooled":
        base &= c["codec"] == codec
    spoof = base & (c["key"] == "spoof")
    if row != "Pooled":
        spoof &= c[row_col] == row
    return c["score"][base & (c["key"] == "bonafide")], c["score"][spoof]


@pytest.mark.parametrize("subset", _fixture_keys("la2021", "stage1_evaluate_2021_LA"))
def test_la2021_stage1(subset: str) -> None:
    exp = _expected("la2021")["stage1_evaluate_2021_LA"][subset]
    bona, spoof = _cm_cell("LA", subset, "attack", "Pooled", "Pooled")
    rates = asv_error_rates(*_asv_subset(subset))
    ours = {"Pfa_asv": rates.pfa, "Pmiss_asv": rates.pmiss, "Pmiss_spoof_asv": rates.pmiss_spoof}
    ours["Pfa_spoof_asv"] = rates.pfa_spoof
    for name, value in ours.items():
        assert value == pytest.approx(exp["asv_error_rates"][name], abs=TOL), name
    assert compute_eer(bona, spoof)[0] == pytest.approx(exp["eer_fraction"], abs=TOL)
    assert min_tdcf_2021(bona, spoof, rates) == pytest.approx(exp["min_tdcf"], abs=TOL)
    # The script's polarity check recomputes everything on negated scores.
    assert compute_eer(-bona, -spoof)[0] == pytest.approx(exp["eer_fraction_negated_scores"], abs=TOL)
    assert min_tdcf_2021(-bona, -spoof, rates) == pytest.approx(exp["min_tdcf_negated_scores"], abs=TOL)


def _eer_or_nan(bona: np.ndarray, spoof: np.ndarray) -> float:
    """The eval-package leaves a cell without bona fide or spoof trials at NaN."""
    return compute_eer(bona, spoof)[0] if bona.size and spoof.size else math.nan


def _c012_or_nan(tar: np.ndarray, non: np.ndarray, spf: np.ndarray) -> tuple[float, float, float]:
    """The eval-package's C012 are NaN when the cell lacks ASV trials of some class."""
    if not (tar.size and non.size and spf.size):
        return (math.nan,) * 3
    return tdcf_2021_coefficients(asv_error_rates(tar, non, spf))


def _table(values: list) -> np.ndarray:
    return np.array(values, dtype=np.float64)  # "nan" strings of the JSON become NaN


@pytest.mark.parametrize("subset", _fixture_keys("la2021", "eval_package_evaluation_API"))
def test_la2021_eval_package_tables(subset: str) -> None:
    exp = _expected("la2021")["eval_package_evaluation_API"][subset]
    eer = np.full((len(exp["rows_attack"]), len(exp["cols_codec"])), np.nan)
    tdcf = np.full_like(eer, np.nan)
    for i, attack in enumerate(exp["rows_attack"]):
        for j, codec in enumerate(exp["cols_codec"]):
            c012 = _c012_or_nan(*_asv_subset(subset, codec, attack))
            ref = exp["C012"][attack][codec]
            np.testing.assert_allclose(c012, _table([ref["C0"], ref["C1"], ref["C2"]]), rtol=0, atol=TOL)
            bona, spoof = _cm_cell("LA", subset, "attack", attack, codec)
            eer[i, j] = _eer_or_nan(bona, spoof)
            if bona.size and spoof.size:
                tdcf[i, j] = min_tdcf_2021(bona, spoof, c012=c012)
    np.testing.assert_allclose(eer, _table(exp["eer_fraction"]), rtol=0, atol=TOL)
    np.testing.assert_allclose(tdcf, _table(exp["min_tdcf"]), rtol=0, atol=TOL)
    assert eer[-1, -1] == pytest.approx(exp["pooled_eer_fraction"], abs=TOL)
    assert tdcf[-1, -1] == pytest.approx(exp["pooled_min_tdcf"], abs=TOL)
    per_codec = _table(list(exp["per_codec_pooled_eer_fraction"].values()))
    np.testing.assert_allclose(eer[-1], per_codec, rtol=0, atol=TOL)
    per_attack = _table(list(exp["per_attack_pooled_codec_min_tdcf"].values()))
    np.testing.assert_allclose(tdcf[:, -1], per_attack, rtol=0, atol=TOL)


@pytest.mark.parametrize("subset", _fixture_keys("la2021", "extras"))
def test_la2021_extras(subset: str) -> None:
    exp = _expected("la2021")["extras"][subset]
    bona, spoof = _cm_cell("LA", subset, "attack", "Pooled", "Pooled")
    assert (bona.size, spoof.size) == (exp["counts"]["bonafide"], exp["counts"]["spoof"])
    assert compute_eer(bona, spoof)[1] == pytest.approx(exp["eer_threshold"], abs=TOL)
    c = _cm2021("LA")
    for tx, value in exp["per_transmission_pooled_eer_fraction"].items():
        sel = (c["subset"] == subset) & (c["col3"] == tx)
        got = _eer_or_nan(c["score"][sel & (c["key"] == "bonafide")], c["score"][sel & (c["key"] == "spoof")])
        np.testing.assert_allclose(got, float(value), rtol=0, atol=TOL, err_msg=tx)
    if "tdcf_constants_derived" in exp:
        consts = exp["tdcf_constants_derived"]
        c012 = tdcf_2021_coefficients(asv_error_rates(*_asv_subset(subset)))
        np.testing.assert_allclose(c012, [consts["C0"], consts["C1"], consts["C2"]], rtol=0, atol=TOL)
        curve, thresholds = tdcf_2021_curve(bona, spoof, c012)
        assert thresholds[int(np.argmin(curve))] == pytest.approx(exp["min_tdcf_threshold"], abs=TOL)


@pytest.mark.parametrize("subset", _fixture_keys("df2021", "eval_package_evaluation_API"))
def test_df2021_eval_package_and_stage1(subset: str) -> None:
    full = _expected("df2021")
    exp = full["eval_package_evaluation_API"][subset]
    eer = np.array(
        [
            [_eer_or_nan(*_cm_cell("DF", subset, "vocoder", voc, codec)) for codec in exp["cols_codec"]]
            for voc in exp["rows_vocoder"]
        ]
    )
    np.testing.assert_allclose(eer, _table(exp["eer_fraction"]), rtol=0, atol=TOL)
    assert eer[-1, -1] == pytest.approx(exp["pooled_eer_fraction"], abs=TOL)
    if subset in full["stage1_evaluate_2021_DF"]:
        assert eer[-1, -1] == pytest.approx(full["stage1_evaluate_2021_DF"][subset]["eer_fraction"], abs=TOL)
    extras = full["extras"][subset]
    bona, spoof = _cm_cell("DF", subset, "vocoder", "Pooled", "Pooled")
    assert compute_eer(bona, spoof)[1] == pytest.approx(extras["eer_threshold"], abs=TOL)
    c = _cm2021("DF")
    for source, value in extras["per_source_eer_fraction"].items():
        sel = (c["subset"] == subset) & (c["col3"] == source)
        got = _eer_or_nan(c["score"][sel & (c["key"] == "bonafide")], c["score"][sel & (c["key"] == "spoof")])
        np.testing.assert_allclose(got, float(value), rtol=0, atol=TOL, err_msg=source)


@pytest.mark.parametrize("case", _fixture_keys("edge_cases", "cases"))
def test_edge_cases_tdcf_refuses_what_the_2021_code_refuses(case: str) -> None:
    exp = json.loads((_fixture("edge_cases") / "expected.json").read_text())["cases"][case]
    rows = _columns(_fixture("edge_cases", exp["file"]))
    bona = np.array([float(s) for k, s in rows if k == "bonafide"])
    spoof = np.array([float(s) for k, s in rows if k == "spoof"])
    rates = AsvErrorRates(pfa=0.01, pmiss=0.01, pmiss_spoof=0.3, pfa_spoof=0.7)
    if exp["extra_2021_compute_tDCF_behaviour"].startswith("SystemExit"):  # the official exits
        with pytest.raises(ValueError, match="distinct"):
            min_tdcf_2021(bona, spoof, rates)
    else:
        assert 0 <= min_tdcf_2021(bona, spoof, rates) <= 1


# ---------------------------------------------------------------- behaviour without fixtures


def test_revised_coefficients_by_hand() -> None:
    rates = AsvErrorRates(pfa=0.02, pmiss=0.05, pmiss_spoof=0.6, pfa_spoof=0.4)
    c0, c1, c2 = tdcf_2021_coefficients(rates, CostModel())
    assert c0 == pytest.approx(0.9405 * 0.05 + 0.0095 * 10 * 0.02, abs=1e-15)
    assert c1 == pytest.approx(0.9405 - c0, abs=1e-15)
    assert c2 == pytest.approx(0.05 * 10 * 0.4, abs=1e-15)
    # A perfect CM reaches C0 / (C0 + min(C1, C2)) and no CM (accept all) reaches 1 at most.
    curve, _ = tdcf_2021_curve([2.0, 3.0, 4.0], [-1.0, 0.0, 1.0], (c0, c1, c2))
    assert curve.min() == pytest.approx(c0 / (c0 + min(c1, c2)), abs=1e-15)
    assert curve[0] == pytest.approx((c0 + c2) / (c0 + min(c1, c2)), abs=1e-15)


def test_tdcf_rejects_hard_decisions_and_bad_inputs() -> None:
    rates = AsvErrorRates(0.01, 0.01, 0.3, 0.7)
    with pytest.raises(ValueError, match="fewer than 3 distinct"):
        min_tdcf_2021([1.0, 1.0, 0.0], [0.0, 0.0], rates)
    with pytest.raises(ValueError, match="inf"):
        min_tdcf_2019([1.0, np.inf, 0.5], [0.0, 0.2], rates)
    with pytest.raises(ValueError, match=r"asv=.*c012="):
        min_tdcf_2021([1.0, 2.0], [0.0, 0.5])
    with pytest.raises(ValueError, match="negative t-DCF weights"):
        min_tdcf_2019([1.0, 2.0], [0.0, 0.5], AsvErrorRates(0.9, 0.99, 0.3, 0.7))
    with pytest.raises(ValueError, match="sum to 1"):
        min_tdcf_2019([1.0, 2.0], [0.0, 0.5], rates, LegacyCostModel(p_spoof=0.5))
    with pytest.raises(ValueError, match="no bona fide"):
        min_tdcf_2019([], [0.0, 0.5, 0.7], rates)
    assert math.isnan(min_tdcf_2021([1.0, 2.0], [0.0, 0.5], c012=(np.nan, np.nan, np.nan)))
