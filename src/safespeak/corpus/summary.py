"""What `corpus build`, `corpus fetch` and the demo show about a corpus: lines of text, printed by the caller.

`build_lines(info)` gives a per-split table (files, bona fide, spoofs per attack) and every dropped item
with its reason; `source_stats()` + `fetch_lines(stats)` give a table of the bona fide sources.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from safespeak.corpus.build import CorpusInfo
from safespeak.corpus.sources import SOURCES, cache_dir, enumerate_source, package_version

__all__ = ["SourceStats", "build_lines", "dropped_lines", "fetch_lines", "source_stats"]

MAX_REASON = 160  # an engine's stderr tail can be long; the manifest keeps it whole


@dataclass(frozen=True)
class SourceStats:
    """One bona fide source as fetched: recordings, transcribed ones, speakers, languages, packages."""

    name: str
    utterances: int
    with_text: int
    speakers: int
    languages: int
    packages: tuple[tuple[str, str], ...]  # (package, version)


def source_stats(
    names: Sequence[str] | None = None, root: str | os.PathLike[str] | None = None
) -> list[SourceStats]:
    """Fetch (or reuse from the cache) each source and count what it holds; `SourceUnavailable` if not."""
    stats = []
    for name in names or list(SOURCES):
        utts, trees = enumerate_source(name, Path(root) if root else None)
        stats.append(
            SourceStats(
                name,
                len(utts),
                sum(u.text is not None for u in utts),
                len({(u.source, u.speaker) for u in utts}),
                len({u.language for u in utts}),
                tuple((p, package_version(t)) for p, t in trees.items()),
            )
        )
    return stats


def fetch_lines(stats: Sequence[SourceStats], root: str | os.PathLike[str] | None = None) -> list[str]:
    """A headed table of the fetched sources (units in the column names) and a total line."""
    where = Path(root) if root else cache_dir()
    lines = [
        f"bona fide sources, unpacked under {where}:",
        f"  {'source':<11}{'recordings':>11}{'with text':>11}{'speakers':>10}{'languages':>11}  packages",
    ]
    for s in stats:
        pkgs = ", ".join(f"{p} {v}" for p, v in s.packages)
        lines.append(
            f"  {s.name:<11}{s.utterances:>11,}{s.with_text:>11,}{s.speakers:>10,}{s.languages:>11,}  {pkgs}"
        )
    total = sum(s.utterances for s in stats)
    lines.append(f"  {'total':<11}{total:>11,} recordings")
    return lines


def dropped_lines(dropped: Sequence[str], manifest: str | os.PathLike[str], limit: int = 10) -> list[str]:
    """One line per item the build had to leave out (the first `limit`), with its reason."""
    if not dropped:
        return []
    noun = "item" if len(dropped) == 1 else "items"
    lines = [f"dropped {len(dropped)} {noun} that could not be synthesised (all listed in {manifest}):"]
    for entry in dropped[:limit]:
        text = " ".join(entry.split())  # stderr tails carry newlines
        lines.append(f"  {text[:MAX_REASON]}{'...' if len(text) > MAX_REASON else ''}")
    if len(dropped) > limit:
        lines.append(f"  ... and {len(dropped) - limit} more")
    return lines


def build_lines(info: CorpusInfo, seconds: float | None = None) -> list[str]:
    """Summary of a built (or reused) corpus: headline, per-split table with units, dropped items."""
    files = sum(sum(s.counts.values()) for s in info.splits.values())
    verb = "reused" if info.reused else "built"
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    planned = f" of {files + len(info.dropped):,} planned" if info.dropped else ""
    lines = [
        f"{verb} corpus {info.root} (size {info.size}, seed {info.seed}){took}: {files:,} files{planned}",
        f"  {'split':<6}{'files':>7}{'bona fide':>11}{'spoofs':>8}  spoofs per attack",
    ]
    for name, split in info.splits.items():
        bona = split.counts.get("bonafide", 0)
        total = sum(split.counts.values())
        attacks = ", ".join(f"{k} {v}" for k, v in split.counts.items() if k != "bonafide")
        lines.append(f"  {name:<6}{total:>7,}{bona:>11,}{total - bona:>8,}  {attacks or '-'}")
    lines += [f"  protocols: {next(iter(info.splits.values())).protocol.parent}"] if info.splits else []
    return lines + dropped_lines(info.dropped, info.manifest)
