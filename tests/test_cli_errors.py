"""Broken checkpoints and bad files end in one stderr line naming the file, exit code 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from safespeak.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from safespeak.cli import main
from scoring_helpers import MeanModel, write_wav


def _good(d: Path) -> Path:
    save_checkpoint(d / "good", MeanModel(w=2.0), arch="test-mean", model_config={"w": 2.0}, threshold=0.1)
    return d / "good"


def _truncated(d: Path) -> Path:
    p = _good(d)
    w = p.with_suffix(".safetensors")
    w.write_bytes(w.read_bytes()[:20])
    return w


def _garbage_weights(d: Path) -> Path:
    p = _good(d)
    p.with_suffix(".safetensors").write_bytes(np.random.default_rng(0).bytes(300))
    return p


def _garbage_json(d: Path) -> Path:
    p = _good(d)
    p.with_suffix(".json").write_text('{"format": "safespeak-checkpoint",\n  "arch": oops\n')
    return p


def _no_json(d: Path) -> Path:
    p = _good(d)
    p.with_suffix(".json").unlink()
    return p.with_suffix(".safetensors")


def _no_weights(d: Path) -> Path:
    p = _good(d)
    p.with_suffix(".safetensors").unlink()
    return p


def _wrong_arch(d: Path) -> Path:
    p = _good(d)
    doc = json.loads(p.with_suffix(".json").read_text())
    doc.update(arch="aasist-l", model_config={})
    p.with_suffix(".json").write_text(json.dumps(doc))
    return p


def _unknown_arch(d: Path) -> Path:
    p = _good(d)
    doc = json.loads(p.with_suffix(".json").read_text())
    doc.update(arch="no-such-model")
    p.with_suffix(".json").write_text(json.dumps(doc))
    return p


def _newer_schema(d: Path) -> Path:
    p = _good(d)
    doc = json.loads(p.with_suffix(".json").read_text())
    doc.update(schema_version=99)
    p.with_suffix(".json").write_text(json.dumps(doc))
    return p


def _pickled_pth(d: Path) -> Path:
    p = d / "model.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": Path("x")}, p)  # needs full unpickling
    return p


def _bare_pth(d: Path) -> Path:
    p = d / "weights.pth"
    torch.save(MeanModel().state_dict(), p)
    return p


BROKEN: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    # kind: (maker, file named in the message, what the message says)
    "missing": (lambda d: d / "nowhere", "nowhere", "checkpoint not found"),
    "truncated": (_truncated, "good.safetensors", "truncated or not safetensors"),
    "garbage-weights": (_garbage_weights, "good.safetensors", "truncated or not safetensors"),
    "garbage-json": (_garbage_json, "good.json:2", "not valid JSON"),
    "no-metadata": (_no_json, "good.safetensors", "good.json is missing"),
    "no-weights": (_no_weights, "good.safetensors", "weights file missing"),
    "wrong-arch": (_wrong_arch, "good.safetensors", "weights do not fit arch 'aasist-l'"),
    "unknown-arch": (_unknown_arch, "good.json", "cannot build arch 'no-such-model'"),
    "newer-schema": (_newer_schema, "good.json", "schema_version 99 is newer"),
    "pickled-pth": (_pickled_pth, "model.pth", "needs unpickling beyond weights_only"),
    "bare-pth": (_bare_pth, "weights.pth", "safespeak convert"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_load_checkpoint_raises_checkpoint_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    make, where, what = BROKEN[kind]
    path = make(tmp_path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert where in str(exc.value) and what in str(exc.value)
    assert (
        exc.value.path is not None and Path(exc.value.path).name in where.split(":")[0] + ".json.safetensors"
    )


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_detector_loading_raises_checkpoint_error(tmp_path: Path, kind: str) -> None:
    from safespeak.inference import Detector  # the API the server and `detect` load through

    make, where, what = BROKEN[kind]
    with pytest.raises(CheckpointError) as exc:
        Detector.from_checkpoint(make(tmp_path))
    assert where in str(exc.value) and what in str(exc.value)


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    audio = write_wav(tmp_path / "in" / "LA_T_1.flac", np.full(1600, 0.2))
    write_wav(tmp_path / "in" / "LA_T_2.flac", np.full(1600, -0.2))
    proto = tmp_path / "dev.txt"
    proto.write_text("LA_0001 LA_T_1 - - bonafide\nLA_0001 LA_T_2 - A01 spoof\n")
    scores = tmp_path / "dev_scores.txt"
    scores.write_text("LA_T_1 0.4\nLA_T_2 -0.4\n")
    return {"audio": audio, "dir": audio.parent, "protocol": proto, "scores": scores}


def _commands(ckpt: Path, inputs: dict[str, Path], out: Path) -> dict[str, list[str]]:
    return {
        "detect": ["detect", str(inputs["audio"]), "--checkpoint", str(ckpt)],
        "score": ["score", "--checkpoint", str(ckpt), "--input", str(inputs["dir"]), "--output", str(out)],
        "calibrate": [
            "calibrate", "--scores", str(inputs["scores"]), "--protocol", str(inputs["protocol"]),
            "--protocol-format", "asvspoof2019-la", "--checkpoint", str(ckpt),
        ],
    }  # fmt: skip


# calibrate only reads and rewrites the JSON sidecar, so weights-only breakage does not concern it
_CALIBRATE_KINDS = {"missing", "garbage-json", "no-metadata", "newer-schema", "unknown-arch"}


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        (c, k)
        for c in ("detect", "score", "calibrate")
        for k in sorted(BROKEN)
        if c != "calibrate" or k in _CALIBRATE_KINDS
    ],
)
def test_commands_report_broken_checkpoints_in_one_line(
    tmp_path: Path, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str], command: str, kind: str
) -> None:
    make, where, what = BROKEN[kind]
    if command == "calibrate" and kind == "unknown-arch":
        where, what = "good.json", ""  # the sidecar is fine for calibrate: it stores the calibration
    ckpt = make(tmp_path)
    capsys.readouterr()
    rc = main(_commands(ckpt, inputs, tmp_path / "out.csv")[command])
    err = capsys.readouterr().err
    if command == "calibrate" and kind == "unknown-arch":
        assert rc == 0 and read_meta(ckpt).calibration is not None
        return
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("safespeak: error: ") and "Traceback" not in err
    assert where in err and what in err


def test_real_process_prints_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    garbage = _garbage_weights(tmp_path)
    wav = write_wav(tmp_path / "a.wav", np.full(1600, 0.1))
    cmd = [sys.executable, "-m", "safespeak", "detect", str(wav), "--checkpoint", str(garbage)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "good.safetensors: weights are truncated" in proc.stderr
    debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True, timeout=120)
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "CheckpointError" in debug.stderr


def test_schema_1_sidecars_still_load_and_round_trip(tmp_path: Path) -> None:
    p = _good(tmp_path)
    legacy = {
        "format": "safespeak-checkpoint/1", "arch": "test-mean", "model_config": {"w": 2.0},
        "safespeak_version": "0.1.0", "torch_version": "2.13.0+cpu", "input_length": 3200,
        "dev_eer_threshold": 0.25, "epoch": 4, "weights_sha256": read_meta(p).weights_sha256,
    }  # fmt: skip
    p.with_suffix(".json").write_text(json.dumps(legacy))
    _, meta = load_checkpoint(p)
    assert (meta.train_window, meta.threshold, meta.extra, meta["epoch"]) == (3200, 0.25, {"epoch": 4}, 4)
    assert meta.versions == {"safespeak": "0.1.0", "torch": "2.13.0+cpu"}
    assert CheckpointMeta.from_json(meta.to_json()) == meta
    doc = json.loads(meta.to_json())
    doc["colour"] = "blue"
    with pytest.raises(CheckpointError, match=r"x\.json: unknown field\(s\) 'colour'"):
        CheckpointMeta.from_json(json.dumps(doc), "x.json")
    del doc["colour"], doc["arch"]
    with pytest.raises(CheckpointError, match="arch"):
        CheckpointMeta.from_json(json.dumps(doc), "x.json")


def test_bad_score_and_protocol_files_name_file_and_line(
    tmp_path: Path, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("LA_T_1 0.4\nLA_T_2 zero\n")
    argv = ["evaluate", "--scores", str(bad), "--protocol", str(inputs["protocol"]),
            "--protocol-format", "asvspoof2019-la"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.txt:2: score 'zero' is not a number" in err
    proto = tmp_path / "p.txt"
    proto.write_text("LA_0001 LA_T_1 - - bonafide\nLA_0001 LA_T_2 - A01 maybe\n")
    argv = ["evaluate", "--scores", str(inputs["scores"]), "--protocol", str(proto),
            "--protocol-format", "asvspoof2019-la"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "p.txt:2: key must be bonafide or spoof" in err
