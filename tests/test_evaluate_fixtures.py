"""`evaluate` (API and `safespeak evaluate --json`) vs the official outputs in ../shared/fixtures/metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import require_shared
from safespeak.cli import main
from safespeak.evaluate import evaluate

TOL = 1e-9


def _expected(case: str) -> dict[str, Any]:
    return json.loads((require_shared("fixtures", "metrics", case) / "expected.json").read_text())


def _close(got: dict[str, float | None], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=TOL), k


def _la2021_args(subset: str) -> tuple[list[str], dict[str, Any]]:
    d = require_shared("fixtures", "metrics", "la2021")
    args = [str(d / "cm_scores.txt"), str(d / "keys/LA/CM/trial_metadata.txt"), "asvspoof2021-la"]
    kw = {
        "subset": subset,
        "asv_scores": str(d / "keys/LA/ASV/ASVTorch_Kaldi/score.txt"),
        "asv_protocol": str(d / "keys/LA/ASV/trial_metadata.txt"),
    }
    return args, kw


@pytest.mark.parametrize("scores", ["cm_scores_2col.txt", "cm_scores_4col.txt"])
def test_la2019_eer_legacy_tdcf_and_per_attack(scores: str) -> None:
    d, exp = require_shared("fixtures", "metrics", "la2019"), _expected("la2019")
    r = evaluate(d / scores, d / "cm_protocol.txt", "asvspoof2019-la", asv_scores=d / "asv_scores.txt")
    assert (r["n_bonafide"], r["n_spoof"]) == (517, 4412)
    assert r["eer"] == pytest.approx(exp["eer_fraction"], abs=TOL)
    assert r["eer_threshold"] == pytest.approx(exp["eer_threshold"], abs=TOL)
    assert r["min_tdcf"] == pytest.approx(exp["min_tdcf"], abs=TOL)
    assert r["asv_error_rates"]["pfa"] == pytest.approx(exp["asv"]["Pfa_asv"], abs=TOL)
    assert r["asv_error_rates"]["pmiss_spoof"] == pytest.approx(exp["asv"]["Pmiss_spoof_asv"], abs=TOL)
    _close(r["per_attack"], exp["per_attack_eer_fraction"])
    assert r["warnings"] == []
    assert "per_condition" not in r  # 2019 LA has no condition columns


@pytest.mark.parametrize("subset", ["eval", "progress", "hidden"])
def test_la2021_revised_tdcf_per_codec_and_attack(subset: str) -> None:
    exp = _expected("la2021")
    ep = exp["eval_package_evaluation_API"][subset]
    args, kw = _la2021_args(subset)
    r = evaluate(*args, **kw)
    counts = exp["fixture_generation"]["counts"][subset]
    assert (r["n_bonafide"], r["n_spoof"]) == (counts["bonafide"], counts["spoof"])
    assert r["eer"] == pytest.approx(ep["pooled_eer_fraction"], abs=TOL)
    assert r["min_tdcf"] == pytest.approx(ep["pooled_min_tdcf"], abs=TOL)
    assert r["eer_threshold"] == pytest.approx(exp["extras"][subset]["eer_threshold"], abs=TOL)
    without_pooled = lambda d: {k: v for k, v in d.items() if k != "Pooled"}  # noqa: E731
    # the per-codec tables end with the official "Pooled" entry (all codecs)
    _close(r["per_condition"]["codec"], ep["per_codec_pooled_eer_fraction"])
    _close(r["per_condition_min_tdcf"]["codec"], ep["per_codec_pooled_min_tdcf"])
    assert list(r["per_condition"]["codec"])[-1] == "Pooled"
    _close(r["per_attack"], without_pooled(ep["per_attack_pooled_codec_eer_fraction"]))
    _close(r["per_attack_min_tdcf"], without_pooled(ep["per_attack_pooled_codec_min_tdcf"]))
    transmission = r["per_condition"]["transmission"]
    _close(without_pooled(transmission), exp["extras"][subset]["per_transmission_pooled_eer_fraction"])
    assert transmission["Pooled"] == pytest.approx(ep["pooled_eer_fraction"], abs=TOL)
    if subset in exp["stage1_evaluate_2021_LA"]:  # the stage-1 script: same pooled values, ASV rates
        st = exp["stage1_evaluate_2021_LA"][subset]
        assert r["min_tdcf"] == pytest.approx(st["min_tdcf"], abs=TOL)
        rates = {
            "pfa": "Pfa_asv",
            "pmiss": "Pmiss_asv",
            "pmiss_spoof": "Pmiss_spoof_asv",
            "pfa_spoof": "Pfa_spoof_asv",
        }
        _close(r["asv_error_rates"], {k: st["asv_error_rates"][v] for k, v in rates.items()})


@pytest.mark.parametrize("subset", ["eval", "progress", "hidden"])
def test_df2021_per_codec_vocoder_source(subset: str) -> None:
    d, exp = require_shared("fixtures", "metrics", "df2021"), _expected("df2021")
    ep = exp["eval_package_evaluation_API"][subset]
    r = evaluate(d / "cm_scores.txt", d / "keys/DF/CM/trial_metadata.txt", "asvspoof2021-df", subset=subset)
    assert r["eer"] == pytest.approx(ep["pooled_eer_fraction"], abs=TOL)
    if subset in exp["stage1_evaluate_2021_DF"]:
        assert r["eer"] == pytest.approx(exp["stage1_evaluate_2021_DF"][subset]["eer_fraction"], abs=TOL)
    without_pooled = lambda d: {k: v for k, v in d.items() if k != "Pooled"}  # noqa: E731
    _close(r["per_condition"]["codec"], ep["per_codec_pooled_eer_fraction"])  # with the official Pooled
    _close(r["per_condition"]["vocoder"], ep["per_vocoder_pooled_codec_eer_fraction"])
    _close(without_pooled(r["per_condition"]["source"]), exp["extras"][subset]["per_source_eer_fraction"])
    assert "min_tdcf" not in r


def test_asvspoof5_track1() -> None:
    d, exp = require_shared("fixtures", "metrics", "asvspoof5"), _expected("asvspoof5")["track1"]
    r = evaluate(d / "t1_cm_scores.tsv", d / "t1_cm_keys.tsv", "asvspoof5")
    assert r["scores_format"] == "asvspoof5"
    for key, ref in [("eer", "eer_fraction"), ("eer_threshold", "eer_threshold"), ("min_dcf", "min_dcf"),
                     ("act_dcf", "act_dcf"), ("cllr", "cllr_bits")]:  # fmt: skip
        assert r[key] == pytest.approx(exp[ref], abs=TOL), key
    assert r["per_attack"] == {}  # the keys TSV names no attacks


def test_asvspoof5_track2() -> None:
    d, exp = require_shared("fixtures", "metrics", "asvspoof5"), _expected("asvspoof5")["track2"]
    r = evaluate(d / "t2_sasv_scores.tsv", d / "t2_sasv_keys.tsv", "asvspoof5-sasv")
    assert r["a_dcf"] == pytest.approx(exp["a_dcf"], abs=TOL)
    assert r["min_tdcf"] == pytest.approx(exp["min_tdcf"], abs=TOL)
    assert r["t_eer"] == pytest.approx(exp["t_eer_percent"] / 100, abs=TOL)  # ours is a fraction
    assert (r["n_target"], r["n_nontarget"], r["n_spoof"]) == (2000, 3000, 4500)


def _cli_json(capsys: pytest.CaptureFixture[str], scores: Path, protocol: Path, fmt: str, *more: str) -> Any:
    argv = ["evaluate", "--scores", str(scores), "--protocol", str(protocol), "--protocol-format", fmt]
    assert main([*argv, *more, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_json_matches_official_values(capsys: pytest.CaptureFixture[str]) -> None:
    m = require_shared("fixtures", "metrics")
    la19 = _expected("la2019")
    r = _cli_json(capsys, m / "la2019/cm_scores_4col.txt", m / "la2019/cm_protocol.txt", "asvspoof2019-la",
                  "--asv-scores", str(m / "la2019/asv_scores.txt"))  # fmt: skip
    assert (r["eer"], r["min_tdcf"]) == pytest.approx((la19["eer_fraction"], la19["min_tdcf"]), abs=TOL)
    args, kw = _la2021_args("eval")
    r = _cli_json(capsys, *args, "--subset", "eval", "--asv-scores", kw["asv_scores"],
                  "--asv-protocol", kw["asv_protocol"])  # fmt: skip
    ep = _expected("la2021")["eval_package_evaluation_API"]["eval"]
    assert r["min_tdcf"] == pytest.approx(ep["pooled_min_tdcf"], abs=TOL)
    assert r["per_condition"]["codec"]["gsm"] == pytest.approx(
        ep["per_codec_pooled_eer_fraction"]["gsm"], abs=TOL
    )
    assert r["per_condition_min_tdcf"]["codec"]["gsm"] == pytest.approx(
        ep["per_codec_pooled_min_tdcf"]["gsm"]
    )
    df = _expected("df2021")["eval_package_evaluation_API"]["hidden"]
    r = _cli_json(capsys, m / "df2021/cm_scores.txt", m / "df2021/keys/DF/CM/trial_metadata.txt",
                  "asvspoof2021-df", "--subset", "hidden")  # fmt: skip
    assert r["eer"] == pytest.approx(df["pooled_eer_fraction"], abs=TOL)
    t1 = _expected("asvspoof5")["track1"]
    r = _cli_json(capsys, m / "asvspoof5/t1_cm_scores.tsv", m / "asvspoof5/t1_cm_keys.tsv", "asvspoof5")
    assert (r["min_dcf"], r["cllr"]) == pytest.approx((t1["min_dcf"], t1["cllr_bits"]), abs=TOL)
    t2 = _expected("asvspoof5")["track2"]
    r = _cli_json(
        capsys, m / "asvspoof5/t2_sasv_scores.tsv", m / "asvspoof5/t2_sasv_keys.tsv", "asvspoof5-sasv"
    )
    assert (r["a_dcf"], r["t_eer"]) == pytest.approx((t2["a_dcf"], t2["t_eer_percent"] / 100), abs=TOL)


def test_cli_table_prints_percent(capsys: pytest.CaptureFixture[str]) -> None:
    d = require_shared("fixtures", "metrics", "la2019")
    argv = ["evaluate", "--scores", str(d / "cm_scores_2col.txt"), "--protocol", str(d / "cm_protocol.txt"),
            "--protocol-format", "asvspoof2019-la"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "EER            8.6698 %" in out  # 0.08669800666723951 as percent
    assert "A17" in out and "29.8232 %" in out


def test_reversed_polarity_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = require_shared("fixtures", "metrics", "la2019")
    flipped = tmp_path / "neg.txt"
    rows = [line.split() for line in (d / "cm_scores_2col.txt").read_text().splitlines()]
    flipped.write_text("".join(f"{u} {-float(s)!r}\n" for u, s in rows))
    r = evaluate(flipped, d / "cm_protocol.txt", "asvspoof2019-la", asv_scores=d / "asv_scores.txt")
    assert r["eer"] > 0.5
    assert len(r["warnings"]) == 2 and "reversed" in r["warnings"][0] and "negated" in r["warnings"][1]
    argv = ["evaluate", "--scores", str(flipped), "--protocol", str(d / "cm_protocol.txt"),
            "--protocol-format", "asvspoof2019-la", "--json"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "reversed" in json.loads(out)["warnings"][0]
    assert "safespeak evaluate: warning: EER" in err


def test_la2021_stage1_negated_scores_give_official_values(tmp_path: Path) -> None:
    """Negated CM scores: the stage-1 script's own polarity numbers, and our warning fires."""
    exp = _expected("la2021")["stage1_evaluate_2021_LA"]["eval"]
    args, kw = _la2021_args("eval")
    rows = [line.split() for line in Path(args[0]).read_text().splitlines()]
    flipped = tmp_path / "neg.txt"
    flipped.write_text("".join(f"{u} {-float(s)!r}\n" for u, s in rows))
    r = evaluate(flipped, *args[1:], **kw)
    assert r["eer"] == pytest.approx(exp["eer_fraction_negated_scores"], abs=TOL)
    assert r["min_tdcf"] == pytest.approx(exp["min_tdcf_negated_scores"], abs=TOL)
    assert any("negated scores give a lower min t-DCF" in w for w in r["warnings"])


EDGE_CASES = ["all_identical", "perfectly_separated", "reversed_polarity", "separated_touching",
              "single_spoof", "tie_at_threshold_small", "offset_1e6_step_1e-9"]  # fmt: skip


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_cases_through_evaluate(tmp_path: Path, case: str) -> None:
    """The `key score` edge cases as a CSV protocol + ID,score file: official EER and the right warning."""
    d = require_shared("fixtures", "metrics", "edge_cases")
    exp = _expected("edge_cases")["cases"][case]
    rows = [line.split() for line in (d / f"{case}.txt").read_text().splitlines() if line.strip()]
    (tmp_path / "p.csv").write_text(
        "id,path,label\n" + "".join(f"t{i},t{i}.wav,{k}\n" for i, (k, _) in enumerate(rows))
    )
    (tmp_path / "s.csv").write_text("ID,score\n" + "".join(f"t{i},{s}\n" for i, (_, s) in enumerate(rows)))
    r = evaluate(tmp_path / "s.csv", tmp_path / "p.csv", "csv")
    assert r["eer"] == pytest.approx(exp["eer_fraction"], abs=TOL)
    assert r["eer_threshold"] == pytest.approx(exp["eer_threshold"], abs=TOL, rel=1e-15)
    # EER > 0.5 warns (single_spoof: 0.81, the 4-way tie: 0.55); all-equal scores get their own message
    reversed_cases = ("reversed_polarity", "single_spoof", "tie_at_threshold_small")
    expected_warning = "scores are equal" if case == "all_identical" else None
    expected_warning = "look reversed" if case in reversed_cases else expected_warning
    if expected_warning is None:
        assert r["warnings"] == []
    else:
        assert len(r["warnings"]) == 1 and expected_warning in r["warnings"][0]
