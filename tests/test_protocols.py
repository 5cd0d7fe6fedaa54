"""Protocol readers: real ASVspoof 2019 LA files, the 2021/ASVspoof5 fixtures, and small generated files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conftest import require_shared
from safespeak.protocols import FORMATS, ProtocolError, audio_path, read_protocol

LA2019_COUNTS = {  # file: (lines, bona fide) from the ASVspoof 2019 LA release
    "ASVspoof2019.LA.cm.train.trn.txt": (25_380, 2_580),
    "ASVspoof2019.LA.cm.dev.trl.txt": (24_844, 2_548),
    "ASVspoof2019.LA.cm.eval.trl.txt": (71_237, 7_355),
}


@pytest.mark.parametrize("name", sorted(LA2019_COUNTS))
def test_la2019_real_protocol_counts(name: str) -> None:
    path = require_shared("fixtures", "protocols", name)
    trials = read_protocol(path, "asvspoof2019-la", audio_dir="/data/flac")
    n, n_bona = LA2019_COUNTS[name]
    assert len(trials) == n
    assert sum(t.label for t in trials) == n_bona
    assert all(t.attack == "-" for t in trials if t.label == 1)
    attacks = {t.attack for t in trials if t.label == 0}
    expected = {f"A{i:02d}" for i in (range(7, 20) if "eval" in name else range(1, 7))}
    assert attacks == expected
    first = trials[0]
    assert first.path == str(Path("/data/flac") / f"{first.trial_id}.flac")
    assert first.speaker.startswith("LA_")


def test_la2019_corrupted_copy_names_file_and_line(tmp_path: Path) -> None:
    src = require_shared("fixtures", "protocols", "ASVspoof2019.LA.cm.dev.trl.txt")
    lines = src.read_text().splitlines()
    lines[41] = "LA_0069 LA_D_1047731 - A01"  # a column lost on line 42
    bad = tmp_path / "dev.txt"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ProtocolError, match=r"dev\.txt:42: expected 5 columns"):
        read_protocol(bad, "asvspoof2019-la")
    lines[41] = "LA_0069 LA_D_1047731 - A01 spooof"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ProtocolError, match=r"dev\.txt:42: key must be bonafide or spoof, got 'spooof'"):
        read_protocol(bad, "asvspoof2019-la")


def test_duplicate_trial_ids_are_reported_with_examples(tmp_path: Path) -> None:
    p = tmp_path / "p.txt"
    p.write_text("S1 U1 - - bonafide\nS1 U2 - A01 spoof\nS2 U1 - A02 spoof\nS2 U2 - A02 spoof\n")
    with pytest.raises(ProtocolError, match=r"2 duplicate trial ids.*'U1', 'U2'"):
        read_protocol(p, "asvspoof2019-la")


LA2021_COUNTS = {"eval": (885, 8_541), "progress": (239, 2_496), "hidden": (137, 1_378)}


@pytest.mark.parametrize("subset", [*LA2021_COUNTS, "all"])
def test_la2021_keys_subsets(subset: str) -> None:
    path = require_shared("fixtures", "metrics", "la2021", "keys", "LA", "CM", "trial_metadata.txt")
    trials = read_protocol(path, "asvspoof2021-la", subset=subset)
    counts = Counter(t.label for t in trials)
    want = LA2021_COUNTS.get(subset) or tuple(map(sum, zip(*LA2021_COUNTS.values(), strict=True)))
    assert (counts[1], counts[0]) == want
    assert all(t.attack == "-" for t in trials if t.label == 1)  # the key file says `bonafide` there
    if subset != "all":
        assert {t.conditions["subset"] for t in trials} == {subset}
    codecs = {t.conditions["codec"] for t in trials}
    assert codecs == {"none", "alaw", "pstn", "g722", "ulaw", "gsm", "opus"}
    assert {t.conditions["transmission"] for t in trials if t.conditions["codec"] == "none"} == {"-"}


def test_df2021_keys_and_bonafide_dash_attack(tmp_path: Path) -> None:
    path = require_shared("fixtures", "metrics", "df2021", "keys", "DF", "CM", "trial_metadata.txt")
    trials = read_protocol(path, "asvspoof2021-df", subset="eval")
    assert Counter(t.label for t in trials) == {1: 679, 0: 10_599}
    t = next(t for t in trials if t.label == 0 and t.conditions["source"] == "vcc2020")
    assert set(t.conditions) == {"codec", "source", "trim", "subset", "vocoder"}
    assert t.attack.startswith("Task")
    p = tmp_path / "df.txt"  # DF bona fide rows may carry `-` as attack; the key column decides
    p.write_text("LA_0023 DF_E_1 nocodec asvspoof - bonafide notrim eval bonafide - - - -\n")
    (only,) = read_protocol(p, "asvspoof2021-df")
    assert (only.label, only.attack, only.conditions["vocoder"]) == (1, "-", "bonafide")


def test_2021_bad_subset_and_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "la.txt"
    p.write_text("LA_0009 LA_E_1 alaw ita_tx A07 spoof notrim eval\nLA_0009 LA_E_2 alaw ita_tx A07 spoof\n")
    with pytest.raises(ProtocolError, match=r"la\.txt:2: expected 8 columns"):
        read_protocol(p, "asvspoof2021-la")
    with pytest.raises(ProtocolError, match="unknown subset 'dev'"):
        read_protocol(p, "asvspoof2021-la", subset="dev")
    p.write_text("LA_0009 LA_E_1 alaw ita_tx A07 spoof notrim evaluation\n")
    with pytest.raises(ProtocolError, match=r"la\.txt:1: subset must be eval, progress or hidden"):
        read_protocol(p, "asvspoof2021-la")
    with pytest.raises(ProtocolError, match="has no subsets"):
        read_protocol(p, "asvspoof2019-la", subset="eval")


def test_asvspoof5_keys_tsv_and_release_protocol(tmp_path: Path) -> None:
    keys = require_shared("fixtures", "metrics", "asvspoof5", "t1_cm_keys.tsv")
    trials = read_protocol(keys, "asvspoof5")
    assert Counter(t.label for t in trials) == {1: 2000, 0: 8000}
    proto = tmp_path / "ASVspoof5.eval.track_1.tsv"
    proto.write_text(
        "E_0001 E_0000000001 F - - - bonafide bonafide bonafide -\n"
        "E_0002 E_0000000002 M mp3 3 1 AC1 A17 spoof -\n"
    )
    bona, spoof = read_protocol(proto, "asvspoof5", audio_dir="flac_E")
    assert (bona.label, bona.attack, spoof.label, spoof.attack) == (1, "-", 0, "A17")
    assert spoof.conditions == {
        "gender": "M",
        "codec": "mp3",
        "codec_q": "3",
        "codec_seed": "1",
        "attack_tag": "AC1",
    }
    assert spoof.path == audio_path("E_0000000002", "flac_E")
    with pytest.raises(ProtocolError, match="asvspoof5-keys expects"):
        read_protocol(proto, "asvspoof5-keys")
    with pytest.raises(ProtocolError, match="asvspoof5-protocol expects"):
        read_protocol(keys, "asvspoof5-protocol")
    proto.write_text("E_0001 E_0000000001 F - - - bonafide bonafide bonafide\n")
    with pytest.raises(ProtocolError, match=r"track_1\.tsv:1: expected 10 columns"):
        read_protocol(proto, "asvspoof5")


def test_asvspoof5_sasv_keys() -> None:
    keys = require_shared("fixtures", "metrics", "asvspoof5", "t2_sasv_keys.tsv")
    trials = read_protocol(keys, "asvspoof5-sasv")
    assert Counter(t.conditions["asv_label"] for t in trials) == {
        "target": 2000,
        "nontarget": 3000,
        "spoof": 4500,
    }
    assert all(t.label == (t.conditions["asv_label"] != "spoof") for t in trials)
    first = trials[0]
    assert first.trial_id == f"{first.speaker}|{first.conditions['filename']}"


def test_in_the_wild_csv_and_folder(tmp_path: Path) -> None:
    meta = tmp_path / "meta.csv"
    meta.write_text('file,speaker,label\n0.wav,"Doe, Jane",spoof\n1.wav,Alec Guinness,bona-fide\n')
    a, b = read_protocol(meta, "in-the-wild")
    assert (a.trial_id, a.speaker, a.label, b.label) == ("0", "Doe, Jane", 0, 1)
    assert a.path == str(tmp_path / "0.wav")
    meta.write_text("file,speaker,label\n0.wav,X,fake\n")
    with pytest.raises(ProtocolError, match=r"meta\.csv:2: label must be bona-fide or spoof"):
        read_protocol(meta, "in-the-wild")

    gen = tmp_path / "list.csv"
    gen.write_text("path,label,attack,codec\na/x.wav,bonafide,,opus\nb/y.flac,0,tts1,none\nc.wav,1,,none\n")
    x, y, c = read_protocol(gen, "csv", audio_dir="/audio")
    assert (c.label, c.attack) == (1, "-")
    assert (x.trial_id, x.label, x.attack, x.conditions) == ("a/x.wav", 1, "-", {"codec": "opus"})
    assert (y.label, y.attack, y.path) == (0, "tts1", str(Path("/audio/b/y.flac")))
    gen.write_text("path,label\na.wav,maybe\n")
    with pytest.raises(ProtocolError, match=r"list\.csv:2: label must be"):
        read_protocol(gen, "csv")

    root = tmp_path / "corpus"
    for rel in ("bonafide/s1/a.wav", "bonafide/b.flac", "spoof/tts/c.wav", "spoof/d.wav", "spoof/e.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    trials = {t.trial_id: t for t in read_protocol(root, "folder")}
    assert set(trials) == {"bonafide/b", "bonafide/s1/a", "spoof/d", "spoof/tts/c"}
    assert (trials["spoof/tts/c"].attack, trials["spoof/d"].attack) == ("tts", "-")
    assert trials["bonafide/b"].label == 1


def test_2021_trial_list_has_ids_but_no_keys(tmp_path: Path) -> None:
    path = require_shared("fixtures", "protocols", "ASVspoof2021.LA.cm.eval.trl.txt")
    trials = read_protocol(path, "trial-list", audio_dir="/la21/flac")
    assert len(trials) == 181_566
    assert {t.label for t in trials} == {None}
    assert trials[0].path == str(Path("/la21/flac") / f"{trials[0].trial_id}.flac")
    bad = tmp_path / "trl.txt"
    bad.write_text("LA_E_1\nLA_E_2 0.5\n")
    with pytest.raises(ProtocolError, match=r"trl\.txt:2: expected 1 columns"):
        read_protocol(bad, "trial-list")


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="unknown protocol format 'la2019'"):
        read_protocol(tmp_path, "la2019")
    with pytest.raises(ProtocolError, match="protocol not found"):
        read_protocol(tmp_path / "nope.txt", "asvspoof2019-la")
    assert "folder" in FORMATS and "asvspoof5-sasv" in FORMATS
