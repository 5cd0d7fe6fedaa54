"""Score files: format detection, id joins (shuffled / missing / extra / duplicate rows), file:line errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared
from safespeak.cli import main
from safespeak.evaluate import evaluate
from safespeak.scorefiles import (
    ScoreFileError,
    detect_score_format,
    read_asv_scores_2021,
    read_score_table,
    read_scores,
)

TOL = 1e-9
LA2019_EER = 0.08669800666723951  # official compute_eer on the la2019 fixture


def _la2019() -> tuple[Path, list[str]]:
    d = require_shared("fixtures", "metrics", "la2019")
    return d, (d / "cm_scores_2col.txt").read_text().splitlines()


def _eval_2019(scores: Path) -> dict:
    d = require_shared("fixtures", "metrics", "la2019")
    return evaluate(scores, d / "cm_protocol.txt", "asvspoof2019-la")


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("LA_E_1 0.5\n", "two-column"),
        ("LA_E_1 A07 spoof 0.5\n", "asvspoof2019"),
        ("filename\tcm-score\nE_1\t0.5\n", "asvspoof5"),
        ("spk\tfilename\tcm-score\tasv-score\tsasv-score\nE_9\tE_1\t0.5\t1\t2\n", "asvspoof5-sasv"),
        ("# card: model x\nID,score\n007,0.5\n", "csv"),
    ],
)
def test_detect_score_format(tmp_path: Path, text: str, fmt: str) -> None:
    p = tmp_path / "s.txt"
    p.write_text(text)
    assert detect_score_format(p) == fmt


def test_three_columns_need_an_explicit_format(tmp_path: Path) -> None:
    p = tmp_path / "s.txt"
    p.write_text("A07 spoof 1.0\n")
    with pytest.raises(ScoreFileError, match=r"s\.txt:1: cannot tell the score format from 3 columns"):
        read_scores(p)


def test_csv_ids_stay_strings_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    p = tmp_path / "scores.csv"
    p.write_text("ID,score,note\n007,1.25,x\n7,-0.5,y\n")
    assert read_scores(p) == {"007": 1.25, "7": -0.5}


def test_sasv_table_keeps_asv_and_sasv_columns(tmp_path: Path) -> None:
    p = tmp_path / "t2.tsv"
    p.write_text(
        "spk\tfilename\tcm-score\tasv-score\tsasv-score\nE_9\tE_1\t0.5\t1.5\t2.5\nE_8\tE_1\t0.5\t-1\t0\n"
    )
    t = read_score_table(p)
    assert t.ids == ["E_9|E_1", "E_8|E_1"]  # one utterance against two speakers: two trials
    np.testing.assert_array_equal(t.extra["asv"], [1.5, -1.0])
    np.testing.assert_array_equal(t.extra["sasv"], [2.5, 0.0])


def test_shuffled_rows_give_the_same_numbers(tmp_path: Path) -> None:
    _, lines = _la2019()
    random.Random(0).shuffle(lines)
    p = tmp_path / "shuffled.txt"
    p.write_text("\n".join(lines) + "\n")
    assert _eval_2019(p)["eer"] == pytest.approx(LA2019_EER, abs=TOL)


def test_missing_extra_and_duplicate_rows_are_errors(tmp_path: Path) -> None:
    _, lines = _la2019()
    p = tmp_path / "s.txt"
    p.write_text("\n".join(lines[7:]) + "\n")
    with pytest.raises(ScoreFileError, match=r"7 trials of .* have no score \(e\.g\. \['"):
        _eval_2019(p)
    p.write_text("\n".join([*lines, "LA_E_0000001 0.1", "LA_E_0000002 0.2"]) + "\n")
    with pytest.raises(
        ScoreFileError, match=r"2 scored ids are not trials of .*'LA_E_0000001', 'LA_E_0000002'"
    ):
        _eval_2019(p)
    p.write_text("\n".join([*lines, lines[3], lines[3]]) + "\n")
    first_id = lines[3].split()[0]
    with pytest.raises(
        ScoreFileError, match=rf"1 trial ids appear more than once \(2 extra rows\), e\.g\. \['{first_id}'\]"
    ):
        _eval_2019(p)


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    _, lines = _la2019()
    p = tmp_path / "bad.txt"
    for bad, msg in [
        ("LA_E_1 abc", r"bad\.txt:11: score 'abc' is not a number"),
        ("LA_E_1 nan", r"bad\.txt:11: score 'nan' is not finite"),
        ("LA_E_1 0.1 0.2", r"bad\.txt:11: expected 2 columns \(trial score\), got 3"),
    ]:
        p.write_text("\n".join([*lines[:10], bad, *lines[10:]]) + "\n")
        with pytest.raises(ScoreFileError, match=msg):
            read_scores(p, "two-column")
    p.write_text("# card: model x\n\nID,score\n# note\na,1\n\nb,oops\n")  # comments, blanks counted
    with pytest.raises(ScoreFileError, match=r"bad\.txt:7: score 'oops' is not a number"):
        read_scores(p)


def test_four_column_key_must_agree_with_protocol(tmp_path: Path) -> None:
    d = require_shared("fixtures", "metrics", "la2019")
    lines = (d / "cm_scores_4col.txt").read_text().splitlines()
    utt, attack, _, score = lines[0].split()
    lines[0] = f"{utt} {attack} bonafide {score}"  # the fixture's first row is a spoof
    p = tmp_path / "s4.txt"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScoreFileError, match=rf"key column disagrees .* 1 trials \(e\.g\. \['{utt}'\]\)"):
        _eval_2019(p)


def test_2021_subset_ignores_other_subsets_but_not_unknown_ids(tmp_path: Path) -> None:
    d = require_shared("fixtures", "metrics", "df2021")
    keys = d / "keys/DF/CM/trial_metadata.txt"
    lines = (d / "cm_scores.txt").read_text().splitlines()
    p = tmp_path / "s.txt"
    p.write_text("\n".join([*lines, "DF_E_9999999 0.3"]) + "\n")
    with pytest.raises(ScoreFileError, match=r"1 scored ids are not trials .*DF_E_9999999"):
        evaluate(p, keys, "asvspoof2021-df", subset="progress")
    eval_ids = {ln.split()[1] for ln in keys.read_text().splitlines() if ln.split()[7] == "eval"}
    p.write_text("\n".join(ln for ln in lines if ln.split()[0] in eval_ids) + "\n")  # eval scores only
    r = evaluate(p, keys, "asvspoof2021-df", subset="eval")
    assert r["eer"] == pytest.approx(0.18673622334393677, abs=TOL)
    with pytest.raises(ScoreFileError, match="have no score"):
        evaluate(p, keys, "asvspoof2021-df", subset="progress")


def test_asv_2021_files_must_be_line_aligned(tmp_path: Path) -> None:
    d = require_shared("fixtures", "metrics", "la2021", "keys", "LA", "ASV")
    lines = (d / "ASVTorch_Kaldi/score.txt").read_text().splitlines()
    asv = read_asv_scores_2021(d / "ASVTorch_Kaldi/score.txt", d / "trial_metadata.txt", "eval")
    assert [int((asv.label == k).sum()) for k in ("target", "nontarget", "spoof")] == [707, 1739, 3787]
    lines[4], lines[5] = lines[5], lines[4]
    p = tmp_path / "score.txt"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScoreFileError, match=r"score\.txt:5: .* does not match .*trial_metadata\.txt:5"):
        read_asv_scores_2021(p, d / "trial_metadata.txt")
    p.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ScoreFileError, match="9278 ASV scores but 9279 trials"):
        read_asv_scores_2021(p, d / "trial_metadata.txt")


def test_generic_protocols_end_to_end(tmp_path: Path) -> None:
    """csv / in-the-wild / folder protocols with an ID,score CSV: numbers checked by hand."""
    # bona fide 3, 2, 1; spoof A: 0, -1 (separated); spoof B: 2.5 (above two bona fide)
    (tmp_path / "list.csv").write_text(
        "path,label,attack,codec\nb1.wav,bonafide,,x\nb2.wav,bonafide,,y\nb3.wav,bonafide,,y\n"
        "s1.wav,spoof,A,x\ns2.wav,spoof,A,y\ns3.wav,spoof,B,y\n"
    )
    scores = tmp_path / "scores.csv"
    scores.write_text("ID,score\nb1.wav,3\nb2.wav,2\nb3.wav,1\ns1.wav,0\ns2.wav,-1\ns3.wav,2.5\n")
    r = evaluate(scores, tmp_path / "list.csv", "csv")
    # B vs all bona fide: DET (FRR, FAR) = (0,1) (1/3,1) (2/3,1) (2/3,0) (1,0); first min |FRR-FAR| at (2/3,1)
    assert r["per_attack"] == {"A": 0.0, "B": pytest.approx(5 / 6)}
    assert r["per_condition"]["codec"]["x"] == 0.0
    assert r["eer"] == pytest.approx(1 / 3)
    (tmp_path / "meta.csv").write_text(
        "file,speaker,label\nb1.wav,a,bona-fide\ns3.wav,b,spoof\ns1.wav,c,spoof\n"
    )
    scores.write_text("ID,score\nb1,3\ns3,2.5\ns1,0\n")
    r = evaluate(scores, tmp_path / "meta.csv", "in-the-wild")
    assert (r["eer"], r["n_bonafide"], r["n_spoof"], r["per_attack"]) == (0.0, 1, 2, {})
    for rel in ("bonafide/b1.wav", "spoof/tts/s1.wav"):
        (tmp_path / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "corpus" / rel).write_bytes(b"")
    scores.write_text("ID,score\nbonafide/b1,-1\nspoof/tts/s1,1\n")
    r = evaluate(scores, tmp_path / "corpus", "folder")
    assert r["eer"] == 1.0 and "reversed" in r["warnings"][0]


def test_bad_asv_arguments_and_cli_error_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d, _ = _la2019()
    with pytest.raises(ValueError, match="drop --asv-protocol"):
        evaluate(d / "cm_scores_2col.txt", d / "cm_protocol.txt", "asvspoof2019-la",
                 asv_scores=d / "asv_scores.txt", asv_protocol=d / "asv_scores.txt")  # fmt: skip
    with pytest.raises(ValueError, match="needs both --asv-scores"):
        evaluate(d / "x", d / "y", "asvspoof2021-la", asv_scores=d / "asv_scores.txt")
    ids = tmp_path / "ids.txt"
    ids.write_text("LA_E_1\nLA_E_2\n")
    scores = tmp_path / "s.txt"
    scores.write_text("LA_E_1 0.5\nLA_E_2 0.1\n")
    with pytest.raises(ValueError, match="the protocol has no keys"):
        evaluate(scores, ids, "trial-list")
    bad = tmp_path / "bad.txt"
    bad.write_text("LA_E_1 zero\n")
    argv = ["evaluate", "--scores", str(bad), "--protocol", str(d / "cm_protocol.txt"),
            "--protocol-format", "asvspoof2019-la"]  # fmt: skip
    assert main(argv) == 2
    assert "error:" in (err := capsys.readouterr().err) and "bad.txt:1: score 'zero' is not a number" in err


def test_shipped_example_gives_the_documented_numbers() -> None:
    d = Path(__file__).resolve().parents[1] / "examples" / "evaluate"
    r = evaluate(d / "scores.csv", d / "protocol.csv", "csv")
    assert (r["n_bonafide"], r["n_spoof"]) == (8, 12)
    assert (r["eer"], r["eer_threshold"]) == (pytest.approx(0.25), pytest.approx(1.6775))
    assert r["per_attack"] == {"tts_a": 0.0, "vc_b": pytest.approx(7 / 24)}
    assert r["per_condition"] == {"codec": {"none": 0.0, "opus": pytest.approx(2 / 7)}}


def test_asvspoof5_release_protocol_breaks_down_attacks_and_codecs(tmp_path: Path) -> None:
    """10-column ASVspoof5 protocol with the Track 1 fixture scores: the cells select the right trials."""
    from safespeak.metrics import compute_eer

    d = require_shared("fixtures", "metrics", "asvspoof5")
    keys = [line.split("\t") for line in (d / "t1_cm_keys.tsv").read_text().splitlines()[1:]]
    scores = read_scores(d / "t1_cm_scores.tsv")
    lines, want = [], {}
    for i, (fname, key) in enumerate(keys):
        attack = "bonafide" if key == "bonafide" else f"A{17 + i % 3}"
        codec = ("-", "mp3", "opus")[i % 5 % 3]
        lines.append(f"E_{i % 40:04d} {fname} F {codec} - - AC1 {attack} {key} -\n")
        want.setdefault((attack, codec), []).append(scores[fname])
    (tmp_path / "proto.tsv").write_text("".join(lines))
    r = evaluate(d / "t1_cm_scores.tsv", tmp_path / "proto.tsv", "asvspoof5")
    assert r["eer"] == pytest.approx(0.1545, abs=TOL)  # same trials as the keys TSV
    bona = [s for (a, _), v in want.items() if a == "bonafide" for s in v]
    for att in ("A17", "A18", "A19"):
        spoof = [s for (a, _), v in want.items() if a == att for s in v]
        assert r["per_attack"][att] == compute_eer(bona, spoof)[0]
    for codec in ("-", "mp3", "opus"):
        b = want[("bonafide", codec)]
        sp = [s for (a, c), v in want.items() if c == codec and a != "bonafide" for s in v]
        assert r["per_condition"]["codec"][codec] == compute_eer(b, sp)[0]


def test_bootstrap_interval_is_seeded_and_brackets_the_eer(capsys: pytest.CaptureFixture[str]) -> None:
    d = Path(__file__).resolve().parents[1] / "examples" / "evaluate"
    a = evaluate(d / "scores.csv", d / "protocol.csv", "csv", bootstrap=200)
    b = evaluate(d / "scores.csv", d / "protocol.csv", "csv", bootstrap=200)
    lo, hi = a["eer_ci"]
    assert a["eer_ci"] == b["eer_ci"]
    assert 0.0 <= lo <= a["eer"] <= hi <= 1.0 and hi - lo > 0.05  # 20 trials: a wide interval
    assert "eer_ci" not in evaluate(d / "scores.csv", d / "protocol.csv", "csv")
    argv = ["evaluate", "--scores", str(d / "scores.csv"), "--protocol", str(d / "protocol.csv"),
            "--protocol-format", "csv", "--bootstrap", "200"]  # fmt: skip
    assert main(argv) == 0
    assert f"EER 95% CI     {100 * lo:.4f} % .. {100 * hi:.4f} %" in capsys.readouterr().out
