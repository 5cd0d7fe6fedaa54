"""Shortcut audit: it must catch a planted shortcut and pass a corpus without one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from safespeak.audio import save_audio
from safespeak.corpus.audit import FEATURES, audit_corpus, trivial_features
from safespeak.corpus.build import corpus_split

SR = 16000


def _utterance(rng: np.random.Generator, lead_s: float, gain: float) -> np.ndarray:
    dur = rng.uniform(0.4, 1.0)
    t = np.arange(int(dur * SR)) / SR
    x = gain * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    x = x + 0.01 * gain * rng.standard_normal(t.size)
    return np.concatenate([np.zeros(int(lead_s * SR)), x]).astype(np.float32)


def _fake_corpus(root: Path, shortcut: bool, n: int = 24) -> Path:
    """train/dev/eval with `n` files per class; spoofs louder and late-starting when `shortcut`."""
    rng = np.random.default_rng(0)
    for code, split in zip("TDE", ("train", "dev", "eval"), strict=True):
        protocol, audio_dir = corpus_split(root, split)
        lines = []
        for i in range(2 * n):
            spoof = i % 2 == 1
            lead = 0.05 + (0.5 if spoof and shortcut else 0.0) + rng.uniform(0, 0.05)
            gain = (0.8 if spoof and shortcut else 0.2) * rng.uniform(0.8, 1.2)
            utt = f"SS_{code}_{i:07d}"
            save_audio(audio_dir / f"{utt}.flac", _utterance(rng, lead, gain))
            lines.append(f"SPK{i % 3} {utt} - {'A01 spoof' if spoof else '- bonafide'}\n")
        protocol.parent.mkdir(parents=True, exist_ok=True)
        protocol.write_text("".join(lines))
    return root


def test_features_measure_what_they_name() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([np.zeros(SR // 2), 0.5 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)])
    f = dict(zip(FEATURES, trivial_features(x.astype(np.float32)), strict=True))
    assert f["duration_s"] == pytest.approx(1.5)
    assert f["peak_db"] == pytest.approx(20 * np.log10(0.5), abs=0.05)
    assert f["leading_silence_s"] == pytest.approx(0.5, abs=0.04)
    assert f["rolloff_hz"] == pytest.approx(1000, abs=60)
    assert f["bandwidth_hz"] < 100  # a pure tone has almost no spread
    noise = trivial_features(rng.standard_normal(SR).astype(np.float32) * 0.1)
    assert noise[FEATURES.index("rolloff_hz")] > 6000 and noise[FEATURES.index("bandwidth_hz")] > 2000


def test_audit_catches_a_planted_shortcut(tmp_path: Path) -> None:
    report = audit_corpus(_fake_corpus(tmp_path, shortcut=True))
    assert report["eer"] < 0.1 and not report["passed"]
    assert report["single_feature_eer"]["leading_silence_s"] < 0.1  # type: ignore[index]
    assert report["n_train"] == 48 and report["n_eval"] == 48


def test_audit_passes_a_matched_corpus(tmp_path: Path) -> None:
    report = audit_corpus(_fake_corpus(tmp_path, shortcut=False))
    assert report["eer"] >= 0.3 and report["passed"]
    json.dumps(report)  # the CLI prints it with --json
