"""Detector: the same scores as `safespeak score`, per-window timeline, threshold policy, backends."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from safespeak.checkpoint import save_checkpoint
from safespeak.errors import SafespeakError
from safespeak.inference import Detector
from safespeak.models import build

TINY = {"filts": [20, [1, 8], [8, 8], [8, 16], [16, 16]], "gat_dims": [16, 8], "nb_samp": 8_000}
WINDOW = 8_000


def _checkpoint(path: Path, **meta: object) -> Path:
    torch.manual_seed(0)
    model = build("aasist", **TINY).eval()
    save_checkpoint(path, model, arch="aasist", model_config=TINY, meta=dict(meta))
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ck") / "model")


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files shorter than, equal to and several windows long; one stereo 22.05 kHz file."""
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    for name, n in (("short", 3_000), ("one", WINDOW), ("long", 2 * WINDOW + 2_500)):
        t = np.arange(n) / 16_000
        x = 0.3 * np.sin(2 * np.pi * (150 + 40 * rng.random()) * t) + 0.05 * rng.standard_normal(n)
        sf.write(d / f"{name}.wav", x.astype(np.float32), 16_000, subtype="FLOAT")
    stereo = 0.1 * rng.standard_normal((33_075, 2)).astype(np.float32)
    sf.write(d / "stereo.wav", stereo, 22_050, subtype="FLOAT")
    return d


def _score_workflow(ckpt: Path, audio_dir: Path, out: Path) -> dict[str, float]:
    from safespeak.cli import main

    assert main(["score", "--checkpoint", str(ckpt), "--input", str(audio_dir), "--output", str(out)]) == 0
    with open(out) as fh:
        return {row["ID"]: float(row["score"]) for row in csv.DictReader(fh)}


def test_scores_equal_the_score_workflow(ckpt: Path, audio_dir: Path, tmp_path: Path) -> None:
    expected = _score_workflow(ckpt, audio_dir, tmp_path / "scores.csv")
    det = Detector.from_checkpoint(ckpt)
    assert det.window == WINDOW
    for name, want in expected.items():
        r = det.score_file(audio_dir / f"{name}.wav")
        assert r.score == pytest.approx(want, abs=1e-5), name
        assert r.score == pytest.approx(np.mean([w.score for w in r.windows]), abs=1e-9)
    batch = det.score_batch(
        [sf.read(audio_dir / f"{n}.wav", dtype="float32")[0] for n in ("short", "long")], ["a", "b"]
    )
    assert [r.name for r in batch] == ["a", "b"]
    assert batch[1].score == pytest.approx(expected["long"], abs=1e-5)


def test_windows_cover_the_file_with_the_last_one_aligned_to_the_end(ckpt: Path, audio_dir: Path) -> None:
    det = Detector.from_checkpoint(ckpt)
    long = det.score_file(audio_dir / "long.wav")
    assert long.duration_s == pytest.approx((2 * WINDOW + 2_500) / 16_000)
    assert [(w.start_s, w.end_s) for w in long.windows] == [
        (0.0, 0.5), (0.5, 1.0), (long.duration_s - 0.5, long.duration_s)
    ]  # fmt: skip
    short = det.score_file(audio_dir / "short.wav")  # one repeat-padded window
    assert [(w.start_s, w.end_s) for w in short.windows] == [(0.0, 3_000 / 16_000)]


def test_score_waveform_resamples_and_mixes_to_mono(ckpt: Path, audio_dir: Path) -> None:
    det = Detector.from_checkpoint(ckpt)
    x, sr = sf.read(audio_dir / "stereo.wav", dtype="float32")
    assert sr == 22_050 and x.ndim == 2
    from_file = det.score_file(audio_dir / "stereo.wav")
    from_array = det.score_waveform(x, sr, name="stereo")
    assert from_array.score == pytest.approx(from_file.score, abs=1e-6)
    assert from_array.duration_s == pytest.approx(1.5, abs=1e-3)
    with pytest.raises(SafespeakError, match="empty"):
        det.score_waveform(np.zeros(0, dtype=np.float32))
    with pytest.raises(SafespeakError, match="finite"):
        det.score_waveform(np.full(100, np.nan, dtype=np.float32))


def test_threshold_policy_calibration_then_dev_eer_then_none(tmp_path: Path, audio_dir: Path) -> None:
    wav = audio_dir / "one.wav"
    plain = Detector.from_checkpoint(_checkpoint(tmp_path / "plain")).score_file(wav)
    assert plain.label is None and plain.threshold_source == "none" and plain.probability is None
    assert "calibrat" in plain.reason

    s = plain.score
    dev = Detector.from_checkpoint(_checkpoint(tmp_path / "dev", dev_eer_threshold=s - 1.0)).score_file(wav)
    assert (dev.label, dev.threshold_source, dev.threshold) == ("bonafide", "dev-eer", s - 1.0)
    assert dev.probability is None and dev.reason is None

    # calibration wins over the dev-EER threshold: llr = 2 * score + offset, threshold = -offset / 2
    cal = {"scale": 2.0, "offset": -2.0 * s - 0.4}  # llr = -0.4 at this score: spoof, p = sigmoid(-0.4)
    c = Detector.from_checkpoint(
        _checkpoint(tmp_path / "cal", dev_eer_threshold=s - 1.0, calibration=cal)
    ).score_file(wav)
    assert (c.label, c.threshold_source) == ("spoof", "calibration")
    assert c.threshold == pytest.approx(s + 0.2)
    assert c.probability == pytest.approx(1 / (1 + np.exp(0.4)), abs=1e-6)
    assert c.llr == pytest.approx(-0.4, abs=1e-6)

    over = Detector.from_checkpoint(tmp_path / "cal", threshold=s - 5).score_file(wav)
    assert (over.label, over.threshold_source) == ("bonafide", "override")
    assert over.to_dict()["windows"][0]["score"] == pytest.approx(s)


def test_onnx_backend_gives_the_torch_scores(ckpt: Path, audio_dir: Path) -> None:
    pytest.importorskip("onnxruntime")
    torch_det = Detector.from_checkpoint(ckpt)
    onnx_det = Detector.from_checkpoint(ckpt, backend="onnx")
    assert onnx_det.card.backend == "onnx" and onnx_det.card.window_samples == WINDOW
    for name in ("short", "long"):
        a, b = torch_det.score_file(audio_dir / f"{name}.wav"), onnx_det.score_file(audio_dir / f"{name}.wav")
        assert b.score == pytest.approx(a.score, abs=1e-5)
        assert len(a.windows) == len(b.windows)


def test_bad_arguments_are_user_errors(ckpt: Path) -> None:
    with pytest.raises(SafespeakError, match="backend"):
        Detector.from_checkpoint(ckpt, backend="tensorrt")
    with pytest.raises(SafespeakError, match="not found"):
        Detector.from_checkpoint(ckpt.parent / "missing").score_file("x.wav")


def test_detect_command_json_timeline_keeps_good_files(
    tmp_path: Path, audio_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import safespeak
    from safespeak.cli import main

    assert safespeak.Detector is Detector
    ckpt = _checkpoint(tmp_path / "ck", dev_eer_threshold=0.0)
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio at all\n")
    files = [str(audio_dir / "long.wav"), str(broken), str(audio_dir / "short.wav")]
    assert main(["detect", *files, "--checkpoint", str(ckpt), "--json", "--timeline"]) == 1  # one failed
    captured = capsys.readouterr()
    recs = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["file"] for r in recs] == [files[0], files[2]]
    assert "broken.wav: ERROR unreadable audio" in captured.err
    det = Detector.from_checkpoint(ckpt)
    for rec, path in zip(recs, (files[0], files[2]), strict=True):
        want = det.score_file(path)
        assert rec["score"] == pytest.approx(want.score, abs=1e-6)
        assert rec["label"] == want.label and rec["threshold_source"] == "dev-eer"
        got = rec["windows"]
        assert [(w["start_s"], w["end_s"]) for w in got] == [(w.start_s, w.end_s) for w in want.windows]
        assert [w["score"] for w in got] == pytest.approx([w.score for w in want.windows], abs=1e-6)

    assert main(["detect", files[0], "--checkpoint", str(ckpt), "--timeline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{files[0]}: ") and "score=" in lines[0]
    assert len(lines) == 1 + 3 and lines[1].split()[:3] == ["0.00", "-", "0.50"]
