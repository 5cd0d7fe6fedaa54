"""The demo pipeline end to end on a micro corpus with a tiny model: report, metrics, scores, card."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest

from safespeak.corpus import SizeSpec, corpus_split
from safespeak.demo import run_demo
from safespeak.protocols import read_protocol
from test_corpus_build import _require_packages

MICRO = SizeSpec("micro-demo", {"train": 6, "dev": 3, "eval": 4}, {"train": 2, "dev": 1, "eval": 1})
TINY = (
    "model.overrides.filts=[20, [1, 8], [8, 8], [8, 16], [16, 16]]",
    "model.overrides.gat_dims=[16, 8]",
    "data.crop_samples=8000",
    "data.dev_crop_samples=8000",
    "data.batch_size=4",
    "train.epochs=2",
    "train.tensorboard=false",
)


def test_demo_runs_end_to_end_on_a_micro_corpus(tmp_path: Path) -> None:
    _require_packages()
    out = tmp_path / "report"
    metrics = run_demo(out, corpus_dir=tmp_path / "corpus", corpus_size=MICRO, seed=3, overrides=TINY,
                       progress=False)  # fmt: skip
    for name in ("report.html", "metrics.json", "scores.csv", "scores.card.json", "det.png",
                 "scores_hist.png", "per_attack_eer.png", "training.png"):  # fmt: skip
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["eer"] == metrics["eer"] and 0.0 <= metrics["eer"] <= 1.0
    eval_trials = read_protocol(corpus_split(tmp_path / "corpus", "eval")[0], "asvspoof2019-la")
    with open(out / "scores.csv") as fh:
        ids = [row["ID"] for row in csv.DictReader(fh)]
    assert ids == sorted(t.trial_id for t in eval_trials)  # one row per eval trial, sorted
    attacks = {t.attack for t in eval_trials} - {"-"}
    assert set(metrics["per_attack"]) == attacks
    assert set(metrics["unseen_attacks"]) == attacks - set(metrics["seen_attacks"]) != set()
    assert metrics["eer_unseen_attacks"] is not None
    assert metrics["epochs_run"] == 2 and len(json.loads((out / "scores.card.json").read_text())) > 5
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "A05" in page
    assert "Corpus splits" in page and f"safespeak detect --checkpoint {out / 'run'}" in page
    umask = os.umask(0)
    os.umask(umask)
    for made in (out / "run").rglob("*"):  # checkpoints and state: the umask's mode, not mkstemp's 0600
        assert made.is_dir() or stat.S_IMODE(made.stat().st_mode) == 0o666 & ~umask, made
    # a second run into the same folder starts a fresh training run and reuses the cached corpus
    again = run_demo(out, corpus_dir=tmp_path / "corpus", corpus_size=MICRO, seed=3,
                     overrides=(*TINY, "train.epochs=1"), progress=False)  # fmt: skip
    assert again["corpus_reused"] is True and again["epochs_run"] == 1


@pytest.fixture(autouse=True)
def _no_cache_pollution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
