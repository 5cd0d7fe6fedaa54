"""What the corpus commands show: dropped items with their reason, headed tables with units."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from safespeak.corpus import SOURCES, SizeSpec, build_corpus, corpus_split
from safespeak.corpus import attacks as attacks_mod
from safespeak.corpus import build as build_mod
from safespeak.corpus.build import CorpusInfo, SplitInfo
from safespeak.corpus.sources import cache_dir
from safespeak.corpus.summary import SourceStats, build_lines, fetch_lines, source_stats

MICRO = SizeSpec("micro", {"train": 2, "dev": 1, "eval": 2}, {"train": 1, "dev": 1, "eval": 1})


def _require_packages() -> None:
    missing = [
        p
        for s in SOURCES.values()
        for p in s.packages
        if not (cache_dir() / "extracted" / p / ".complete").is_file()
    ]
    if missing:
        msg = f"bona fide packages not in {cache_dir()}: {missing}; run `safespeak corpus fetch` first"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


def test_engine_crash_names_the_signal(tmp_path: Path) -> None:
    with pytest.raises(attacks_mod.AttackError, match=r"crashed \(signal 11, Segmentation fault\)"):
        attacks_mod._run_engine(["sh", "-c", "kill -SEGV $$"], tmp_path / "out.wav")
    with pytest.raises(attacks_mod.AttackError, match="exit code 3"):
        attacks_mod._run_engine(["sh", "-c", "exit 3"], tmp_path / "out.wav")


def test_dropped_items_reach_manifest_and_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A06 (festival) crashes on every item: the build keeps the rest and names each dropped item."""
    _require_packages()

    def fake_attack(aid: str, utt, audio: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        if aid == "A06":
            return attacks_mod._run_engine(["sh", "-c", "kill -SEGV $$"], tmp_path / "never.wav")
        return audio[::-1].copy(), 16000  # any other attack: fast stand-in

    monkeypatch.setattr(build_mod, "run_attack", fake_attack)
    info = build_corpus(tmp_path / "c", MICRO, seed=3, progress=False, workers=1)
    manifest = json.loads((tmp_path / "c" / "corpus.json").read_text())
    a06_splits = [s for s in ("train", "dev", "eval") if s in attacks_mod.ATTACKS["A06"].splits]
    assert len(info.dropped) == len(a06_splits) == 1 and manifest["dropped"] == info.dropped
    dropped_ids = {d.split()[0] for d in info.dropped}
    for split in ("train", "dev", "eval"):
        ids = {line.split()[1] for line in corpus_split(info.root, split)[0].read_text().splitlines()}
        assert ids and not ids & dropped_ids
        assert "A06" not in info.splits[split].counts
    lines = build_lines(info, seconds=12.4)
    files = sum(sum(s.counts.values()) for s in info.splits.values())
    assert lines[0].endswith(f"in 12 s: {files} files of {files + len(a06_splits)} planned")
    at = next(i for i, line in enumerate(lines) if line.startswith("dropped"))
    assert lines[at].startswith("dropped 1 item that could not be synthesised (all listed in")
    for d_id, line in zip(sorted(dropped_ids), lines[at + 1 :], strict=True):
        assert line.strip().startswith(d_id) and "attack A06" in line and "signal 11" in line


def _info(dropped: list[str]) -> CorpusInfo:
    counts = {"train": {"A01": 3, "bonafide": 5}, "dev": {"bonafide": 2}, "eval": {"A01": 1, "bonafide": 4}}
    splits = {s: SplitInfo(s, Path(f"/c/protocols/{s}.txt"), Path(f"/c/{s}"), c) for s, c in counts.items()}
    return CorpusInfo(Path("/c"), "mini", 0, splits, {}, Path("/c/corpus.json"), reused=True, dropped=dropped)


def test_build_lines_table_and_long_reasons() -> None:
    long = [f"SS_T_{i:07d} (train, attack A06, from x): {'e' * 500}\nmore" for i in range(12)]
    lines = build_lines(_info(long))
    assert lines[0] == "reused corpus /c (size mini, seed 0): 15 files of 27 planned"
    assert lines[1].split() == ["split", "files", "bona", "fide", "spoofs", "spoofs", "per", "attack"]
    assert lines[2].split() == ["train", "8", "5", "3", "A01", "3"]
    assert lines[3].split() == ["dev", "2", "2", "0", "-"]
    shown = [line for line in lines if line.startswith("  SS_T_")]
    assert len(shown) == 10 and all(len(line) <= 2 + 160 + 3 and "\n" not in line for line in shown)
    assert lines[-1] == "  ... and 2 more"
    assert not any(line.startswith("dropped") for line in build_lines(_info([])))


def test_fetch_lines_have_heading_units_and_total(tmp_path: Path) -> None:
    stats = [
        SourceStats("tuxpaint", 7402, 7400, 12, 11, (("tuxpaint-stamps-default", "1:2024"),)),
        SourceStats("asterisk", 1000, 990, 1, 1, (("a", "1"), ("b", "2"))),
    ]
    lines = fetch_lines(stats, tmp_path)
    assert lines[0] == f"bona fide sources, unpacked under {tmp_path}:"
    assert lines[1].split()[:3] == ["source", "recordings", "with"]
    assert lines[2].split()[:5] == ["tuxpaint", "7,402", "7,400", "12", "11"]
    assert lines[3].endswith("a 1, b 2")
    assert lines[-1].split() == ["total", "8,402", "recordings"]


def test_source_stats_count_the_cached_sources() -> None:
    _require_packages()
    stats = {s.name: s for s in source_stats()}
    assert list(stats) == list(SOURCES)
    for s in stats.values():
        assert 0 < s.with_text <= s.utterances and 1 <= s.speakers and 1 <= s.languages <= s.speakers
        assert all(version for _, version in s.packages)
