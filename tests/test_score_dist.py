"""Scoring under torchrun: duration-balanced shards, exact parts, and 2 gloo ranks == one process.

The end-to-end tests launch `python -m torch.distributed.run` on an entry script that registers the
test model and calls the real CLI, and compare the merged files with a single-process run byte for
byte (`test-mean` gives every window the same score whatever shares its batch).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from safespeak.checkpoint import save_checkpoint
from safespeak.score import ScoreItem, ScoreOptions
from safespeak.score_dist import ShardPart, file_cost, item_costs, shard_fingerprint
from scoring_helpers import MeanModel, write_wav

TESTS = Path(__file__).parent


def test_costs_read_headers_pad_short_files_and_zero_broken(tmp_path: Path) -> None:
    long = write_wav(tmp_path / "long.wav", np.zeros(48000), sr=16000)
    short = write_wav(tmp_path / "short.flac", np.zeros(800), sr=16000)
    other = write_wav(tmp_path / "rate.wav", np.zeros(22050), sr=22050)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio")
    items = [ScoreItem(p.stem, str(p)) for p in (long, short, other, bad)]
    assert item_costs(items, window=16000, crop="full") == [3.0, 1.0, 1.0, 0.0]
    assert item_costs(items, window=8000, crop="first") == [0.5, 0.5, 0.5, 0.0]
    assert file_cost(str(tmp_path / "missing.wav"), 16000, "full") == 0.0


def test_parts_round_trip_exactly_and_check_the_fingerprint(tmp_path: Path) -> None:
    f = write_wav(tmp_path / "a.wav", np.zeros(1600))
    items = [ScoreItem("a", str(f))]
    fp = shard_fingerprint(items, "abc", ScoreOptions(window=1600))
    part = ShardPart(3, fp, (("a", 0.1 + 0.2), ("b", -1e-300)), (("c", "/x.wav", "bad, header"),), 7, 0.5)
    path = tmp_path / "part.json"
    path.write_text(part.to_json())
    assert ShardPart.read(path, fp) == part  # floats come back bit for bit
    assert ShardPart.read(path, "other") is None
    path.write_text(part.to_json()[:-20])  # a torn file is not a finished shard
    assert ShardPart.read(path, fp) is None
    # what changes the rows changes the fingerprint; what does not, does not
    assert shard_fingerprint(items, "abd", ScoreOptions(window=1600)) != fp
    assert shard_fingerprint(items, "abc", ScoreOptions(window=1601)) != fp
    assert shard_fingerprint(items, "abc", ScoreOptions(window=1600, num_workers=2)) == fp
    write_wav(f, np.ones(1600))
    os.utime(f, ns=(1, 1))
    assert shard_fingerprint(items, "abc", ScoreOptions(window=1600)) != fp


# ------------------------------------------------------------------------------------ torchrun runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """40 files of 0.05-3 s (one at 22.05 kHz), 3 broken ones, a test-mean checkpoint, an entry script."""
    root = tmp_path_factory.mktemp("score_dist")
    rng = np.random.default_rng(5)
    audio = root / "audio"
    for i in range(40):
        n = int(rng.uniform(0.05, 3.0) * 16000)
        write_wav(audio / f"utt{i:03d}.flac", 0.3 * rng.standard_normal(n) + rng.uniform(-0.2, 0.2))
    write_wav(audio / "sub" / "resampled.wav", 0.1 * rng.standard_normal(22050), sr=22050)
    (audio / "broken_header.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (audio / "empty.flac").write_bytes(b"")
    good = (audio / "utt000.flac").read_bytes()
    (audio / "truncated.flac").write_bytes(good[: len(good) // 3])
    ckpt = root / "ckpt"
    save_checkpoint(ckpt, MeanModel(w=3.0, b=0.25), arch="test-mean", model_config={"w": 3.0, "b": 0.25})
    entry = root / "entry.py"
    entry.write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nimport scoring_helpers  # noqa: F401\n"
        "from safespeak.cli import main\nraise SystemExit(main())\n"
    )
    return {"root": root, "audio": audio, "ckpt": ckpt, "entry": entry}


def _score(job: dict[str, Path], out: Path, nproc: int, env_extra: dict[str, str] | None = None) -> int:
    args = ["score", "--checkpoint", str(job["ckpt"]), "--input", str(job["audio"]), "--output", str(out)]
    args += ["--batch-size", "5"]
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
                     "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SAFESPEAK_PROGRESS": "off", **(env_extra or {})}
    proc = subprocess.run([*launcher, str(job["entry"]), *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    if env_extra is None:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.returncode


def _outputs(out: Path) -> tuple[bytes, bytes, dict]:
    card = json.loads(out.with_name(out.stem + ".card.json").read_text())
    return out.read_bytes(), out.with_name(out.stem + ".errors.csv").read_bytes(), card


def _same_as_single(single: tuple[bytes, bytes, dict], multi: tuple[bytes, bytes, dict]) -> dict:
    assert multi[0] == single[0]  # scores.csv, byte for byte
    assert multi[1] == single[1]  # errors.csv
    drop = {"seconds", "distributed"}
    assert {k: v for k, v in multi[2].items() if k not in drop} == {
        k: v for k, v in single[2].items() if k not in drop
    }
    assert single[2]["distributed"] is None
    return multi[2]["distributed"]


@pytest.mark.slow
def test_two_gloo_ranks_write_the_single_process_files(job: dict[str, Path]) -> None:
    _score(job, job["root"] / "one" / "scores.csv", 1)
    single = _outputs(job["root"] / "one" / "scores.csv")
    rows = single[0].decode().splitlines()
    assert len(rows) - 1 == 41 and single[1].decode().count("\n") - 1 == 3  # 41 scored, 3 failed
    out = job["root"] / "two" / "scores.csv"
    _score(job, out, 2)
    info = _same_as_single(single, _outputs(out))
    assert info["world_size"] == 2 and info["shards"] == 8
    ranks = info["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["files"] > 0 for r in ranks)
    assert sum(r["scored"] for r in ranks) == 41 and sum(r["failed"] for r in ranks) == 3
    assert sum(r["files"] for r in ranks) == 44 and sum(r["resumed_shards"] for r in ranks) == 0
    assert not (out.parent / "scores.parts").exists()


@pytest.mark.slow
def test_a_rank_dies_and_the_rerun_resumes_to_the_same_files(job: dict[str, Path]) -> None:
    single_out = job["root"] / "one" / "scores.csv"
    if not single_out.is_file():
        _score(job, single_out, 1)
    out = job["root"] / "killed" / "scores.csv"
    rc = _score(job, out, 2, {"SAFESPEAK_TEST_SCORE_EXIT": "1:7"})  # rank 1 dies in its second shard
    assert rc != 0 and not out.exists()
    parts = out.parent / "scores.parts"
    left = sorted(p.name for p in parts.glob("shard-*.json"))
    assert 1 <= len(left) < 8  # rank 1's first shard (and whatever rank 0 finished) survived
    _score(job, out, 2)
    info = _same_as_single(_outputs(single_out), _outputs(out))
    assert sum(r["resumed_shards"] for r in info["ranks"]) == len(left)
    assert info["ranks"][1]["resumed_shards"] >= 1
