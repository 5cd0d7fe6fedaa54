"""Offline real-speech spoofing corpus: bona fide speech from Debian packages, spoofs made locally.

`build_corpus(out_dir, size="mini", seed=0)` returns a `CorpusInfo` with per-split protocol and audio
paths; `audit_corpus(root)` checks that trivial features (duration, level, bandwidth, silence) cannot
separate the classes. See `build.py` for the layout and `attacks.py` for the attack table.
"""

from __future__ import annotations

from safespeak.corpus.attacks import ATTACKS, Attack
from safespeak.corpus.audit import audit_corpus
from safespeak.corpus.build import SIZES, CorpusInfo, SizeSpec, SplitInfo, build_corpus, corpus_split
from safespeak.corpus.sources import SOURCES, SourceUnavailable, Utterance

__all__ = [
    "ATTACKS",
    "SIZES",
    "SOURCES",
    "Attack",
    "CorpusInfo",
    "SizeSpec",
    "SourceUnavailable",
    "SplitInfo",
    "Utterance",
    "audit_corpus",
    "build_corpus",
    "corpus_split",
]
