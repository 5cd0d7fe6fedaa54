"""A micro corpus from the real Debian packages: layout, protocol, determinism, channel matching.

The packages must already be in the cache (`safespeak corpus fetch`, which CI runs before the tests);
the tests never download. Without them they skip, or fail under CI=true.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from safespeak.corpus import SOURCES, SizeSpec, build_corpus, corpus_split
from safespeak.corpus.attacks import ATTACKS
from safespeak.corpus.sources import cache_dir

MICRO = SizeSpec("micro", {"train": 2, "dev": 1, "eval": 2}, {"train": 1, "dev": 1, "eval": 1})
SPLITS = ("train", "dev", "eval")


def _require_packages() -> None:
    missing = [p for s in SOURCES.values() for p in s.packages
               if not (cache_dir() / "extracted" / p / ".complete").is_file()]
    if missing:
        msg = f"bona fide packages not in {cache_dir()}: {missing}; run `safespeak corpus fetch` first"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same micro corpus built twice: with 2 workers and with 1 (scheduling must not matter)."""
    _require_packages()
    a, b = tmp_path_factory.mktemp("corpus_a"), tmp_path_factory.mktemp("corpus_b")
    build_corpus(a, MICRO, seed=7, progress=False, workers=2)
    build_corpus(b, MICRO, seed=7, progress=False, workers=1)
    return a, b


def _protocol_rows(root: Path, split: str) -> list[list[str]]:
    protocol, _ = corpus_split(root, split)
    return [line.split() for line in protocol.read_text().splitlines()]


def test_protocols_follow_the_asvspoof2019_la_layout(micro: tuple[Path, Path]) -> None:
    from safespeak.protocols import read_protocol

    root = micro[0]
    for split in SPLITS:
        protocol, audio_dir = corpus_split(root, split)
        trials = read_protocol(protocol, "asvspoof2019-la", audio_dir=audio_dir)
        attacks = {t.attack for t in trials if t.label == 0}
        assert attacks == {a for a, at in ATTACKS.items() if split in at.splits}
        assert sum(t.label == 1 for t in trials) == MICRO.bonafide[split]
        assert all(t.attack == "-" for t in trials if t.label == 1)
        assert all(Path(t.path).is_file() for t in trials)  # type: ignore[arg-type]
        assert {p.stem for p in audio_dir.glob("*.flac")} == {t.trial_id for t in trials}
        assert all(t.trial_id.startswith(f"SS_{split[0].upper()}_") for t in trials)


def test_same_seed_gives_identical_protocols_and_audio(micro: tuple[Path, Path]) -> None:
    a, b = micro
    for split in SPLITS:
        assert corpus_split(a, split)[0].read_bytes() == corpus_split(b, split)[0].read_bytes()
        meta = Path("metadata") / f"{split}.tsv"
        assert (a / meta).read_bytes() == (b / meta).read_bytes()  # includes every file's sha256
    ma, mb = (json.loads((r / "corpus.json").read_text()) for r in micro)
    assert ma == mb and ma["seed"] == 7 and ma["dropped"] == []


def test_audio_shares_one_channel(micro: tuple[Path, Path]) -> None:
    levels: dict[int, list[float]] = {0: [], 1: []}
    peaks: list[float] = []
    for split in SPLITS:
        _, audio_dir = corpus_split(micro[0], split)
        for _spk, utt, _, _, key in _protocol_rows(micro[0], split):
            info = sf.info(str(audio_dir / f"{utt}.flac"))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
            x, _ = sf.read(str(audio_dir / f"{utt}.flac"), dtype="float64")
            frames = x[: x.size // 160 * 160].reshape(-1, 160)
            db = 10 * np.log10((frames**2).mean(1) + 1e-12)
            active = db[db > db.max() - 40]
            levels[int(key == "bonafide")].append(10 * np.log10(np.mean(10 ** (active / 10))))
            peaks.append(20 * np.log10(np.abs(x).max()))
            assert np.abs(x[:1600]).max() < 0.05  # the 150 ms lead-in is only the noise floor
    for cls in (0, 1):
        np.testing.assert_allclose(levels[cls], -26.0, atol=1.0)
    assert max(peaks) <= -1.0 + 0.1  # the hard cap
    assert np.median(peaks) == pytest.approx(-26 + 10, abs=2.0)  # the limiter ceiling, for both classes


def test_splits_are_speaker_and_text_disjoint(micro: tuple[Path, Path]) -> None:
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        rows = (micro[0] / "metadata" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        cols = [r.split("\t") for r in rows]
        seen[split] = {c[6] for c in cols}  # source keys: the bona fide recording and its text
        speakers = {c[5] for c in cols if c[5] != "AST_allison"}  # asterisk has a single speaker
        seen[split + "_spk"] = speakers
    for x, y in (("train", "dev"), ("train", "eval"), ("dev", "eval")):
        assert not seen[x] & seen[y]
        assert not seen[x + "_spk"] & seen[y + "_spk"]


def test_matching_build_is_reused(micro: tuple[Path, Path]) -> None:
    info = build_corpus(micro[0], MICRO, seed=7, progress=False)
    assert info.reused
    assert info.split("eval") == corpus_split(micro[0], "eval")
    assert sum(info.splits["train"].counts.values()) == len(_protocol_rows(micro[0], "train"))
    with pytest.raises(ValueError, match="unknown corpus size"):
        build_corpus(micro[0], "huge")
