"""Every input accounted for: a folder of hostile files scores each file exactly once (score or error row)
under a unique id; `--strict` fails; `detect` takes folders, refuses `--sigmoid`, and prints no label
without a threshold."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from safespeak.audiofiles import AUDIO_SUFFIXES, audio_files, unique_ids
from safespeak.checkpoint import save_checkpoint
from safespeak.cli import main
from safespeak.protocols import read_protocol
from safespeak.scorefiles import read_scores
from scoring_helpers import MeanModel, write_wav

SR = 16000


def _pcm(path: Path, x: np.ndarray, sr: int = SR, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="PCM_16", format=fmt)


def _hostile(root: Path) -> dict[str, str]:
    """Write the folder; returns {relative path: 'ok' | 'error' | 'either'} (what scoring must do)."""
    rng = np.random.default_rng(3)
    speech = (0.1 * rng.standard_normal(4000)).astype(np.float32)
    kinds: dict[str, str] = {}

    def add(rel: str, kind: str) -> Path:
        kinds[rel] = kind
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        return root / rel

    add("empty.wav", "error").write_bytes(b"")
    sf.write(str(add("zero_length.wav", "error")), np.zeros(0, np.float32), SR, subtype="PCM_16")
    nan = speech.copy()
    nan[10] = np.nan
    write_wav(add("nan.wav", "error"), nan)
    inf = speech.copy()
    inf[20] = np.inf
    write_wav(add("inf.wav", "error"), inf)
    add("text_as.wav", "error").write_text("RIFF? no, just a text file pretending to be audio\n" * 20)
    full = io.BytesIO()
    sf.write(full, np.tile(speech, 4), SR, format="FLAC", subtype="PCM_16")
    add("truncated.flac", "either").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    _pcm(add("stereo.wav", "ok"), np.stack([speech, -speech], axis=1))
    _pcm(add("rate_8k.wav", "ok"), speech[:2000], sr=8000)
    _pcm(add("rate_44k1.flac", "ok"), np.tile(speech, 3)[:11025], sr=44100)
    _pcm(add("two_samples.wav", "ok"), np.array([0.1, -0.1], np.float32))
    _pcm(add("silent.wav", "ok"), np.zeros(3000, np.float32))
    _pcm(add("clipped.wav", "ok"), np.clip(5 * np.sin(np.arange(3000) / 7), -1, 1).astype(np.float32))
    _pcm(add("ñandú 🎤 voz.wav", "ok"), speech)
    _pcm(add("日本語の声.flac", "ok"), speech)
    _pcm(add('comma, "quote".wav', "ok"), speech)
    add("fake.m4a", "error").write_bytes(b"\x00\x00\x00\x18ftypM4A garbage" * 10)  # does not decode
    for rel in ("x.wav", "x.flac", "sub/x.wav"):  # three files sharing a stem
        _pcm(add(rel, "ok"), speech)
    (root / "notes.txt").write_text("not audio: not an input\n")
    return kinds


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, MeanModel(w=2.0), arch="test-mean", model_config={"w": 2.0})
    return ckpt


def test_every_hostile_file_is_scored_or_reported_once(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "hostile"
    kinds = _hostile(root)
    out = tmp_path / "out" / "scores.csv"
    argv = ["score", "--checkpoint", str(checkpoint), "--input", str(root), "--output", str(out)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    scores = read_scores(out)
    with open(out.with_name("scores.errors.csv"), newline="", encoding="utf-8") as fh:
        errors = {r["ID"]: r for r in csv.DictReader(fh)}
    assert not set(scores) & set(errors)  # never both
    by_path = {Path(r["path"]).relative_to(root).as_posix(): i for i, r in errors.items()}
    ids = unique_ids([Path(k) for k in sorted(kinds)])
    id_of = dict(zip(sorted(kinds), ids, strict=True))
    assert len(scores) + len(errors) == len(kinds)  # every file exactly once, nothing else (notes.txt)
    assert set(scores) | set(errors) == set(ids)
    for rel, kind in kinds.items():
        tid = id_of[rel]
        if kind == "ok":
            assert tid in scores and np.isfinite(scores[tid]), rel
        elif kind == "error":
            assert by_path.get(rel) == tid and errors[tid]["error"], rel
    # stems collide: suffixes keep the ids apart; the file in sub/ keeps the plain relative id
    assert {"x.wav", "x.flac", "sub/x"} <= set(scores)
    assert "NaN" in errors[id_of["nan.wav"]]["error"] and "empty" in errors[id_of["empty.wav"]]["error"]
    assert scores[id_of["silent.wav"]] == pytest.approx(0.0, abs=1e-6)
    n_err = len(errors)
    assert f"scored {len(scores)} / failed {n_err} / total {len(kinds)}" in stdout
    card = json.loads(out.with_name("scores.card.json").read_text())
    assert (card["n_inputs"], card["n_scored"], card["n_failed"]) == (len(kinds), len(scores), n_err)
    assert (card["window_samples"], card["window_source"]) == (1600, "model")
    assert main([*argv, "--strict"]) == 1


def test_folder_protocol_and_folder_scoring_share_suffixes_and_ids(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for rel in ("bonafide/x.wav", "bonafide/x.flac", "bonafide/y.opus", "spoof/A01/x.wav", "spoof/z.ogg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")  # only names matter here
    trials = read_protocol(root, "folder")
    from safespeak.inputs import collect_inputs

    assert sorted(t.trial_id for t in trials) == sorted(i.trial_id for i in collect_inputs(root))
    assert sorted(t.trial_id for t in trials) == [
        "bonafide/x.flac", "bonafide/x.wav", "bonafide/y", "spoof/A01/x", "spoof/z",
    ]  # fmt: skip
    assert {".opus", ".m4a", ".aac", ".wav", ".flac", ".mp3", ".ogg"} <= set(AUDIO_SUFFIXES)
    assert [p.name for p in audio_files(root / "spoof")] == ["x.wav", "z.ogg"]


def test_detect_scores_a_directory_and_rejects_sigmoid(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "clips"
    write_wav(d / "hi.wav", np.full(1600, 0.3))
    write_wav(d / "lo.flac", np.full(1600, -0.3))
    single = write_wav(tmp_path / "one.wav", np.full(1600, 0.1))
    save_checkpoint(checkpoint, MeanModel(w=2.0), arch="test-mean", model_config={"w": 2.0}, threshold=0.0)
    assert main(["detect", str(d), str(single), "--checkpoint", str(checkpoint), "--json"]) == 0
    recs = {Path(r["file"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert {k: v["label"] for k, v in recs.items()} == {
        "hi.wav": "bonafide",
        "lo.flac": "spoof",
        "one.wav": "bonafide",
    }
    assert recs["hi.wav"]["score"] == pytest.approx(0.6, abs=1e-6)
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main(["detect", str(empty), "--checkpoint", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing: a directory with no audio files" in err
    with pytest.raises(SystemExit) as exc:  # accepted-and-ignored before; now an argparse error
        main(["detect", str(single), "--checkpoint", str(checkpoint), "--sigmoid"])
    assert exc.value.code == 2 and "--sigmoid" in capsys.readouterr().err


def test_detect_without_threshold_prints_no_label_and_says_why(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_wav(tmp_path / "a.wav", np.full(1600, 0.2))
    assert main(["detect", str(f), "--checkpoint", str(checkpoint), "--json"]) == 0
    captured = capsys.readouterr()
    rec = json.loads(captured.out)
    assert rec["label"] is None and rec["score"] == pytest.approx(0.4, abs=1e-6)
    assert "no label: the checkpoint has neither a calibration nor a dev-EER threshold" in captured.err
    assert main(["detect", str(f), "--checkpoint", str(checkpoint), "--threshold", "0.5"]) == 0
    assert "spoof" in capsys.readouterr().out
