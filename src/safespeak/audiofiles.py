"""Which files count as audio, and the ids folders give them (one list for folder scoring and the
`folder` protocol).

An id is the file's path relative to the folder, without suffix (`sub/x` for `sub/x.wav`; the stem in
a flat folder, the ASVspoof convention). Files whose ids would collide keep their suffix: `x.wav` and
`x.flac` side by side become `x.wav` and `x.flac`, while `sub/x.wav` stays `sub/x`. Nothing is decoded
here; a file with an audio suffix that does not decode becomes an error row when scored.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

__all__ = ["AUDIO_SUFFIXES", "audio_files", "unique_ids"]

# what libsndfile reads, plus containers that need an FFmpeg-enabled build (errors when they do not decode)
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".au", ".caf")


def audio_files(root: str | os.PathLike[str]) -> list[Path]:
    """Audio files below `root` (recursively, by suffix, case-insensitive), sorted."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def unique_ids(rel: Sequence[Path]) -> list[str]:
    """Ids for relative paths: the path without suffix, or with it where that would collide.

    >>> unique_ids([Path("x.wav"), Path("x.flac"), Path("sub/x.wav"), Path("y.wav")])
    ['x.wav', 'x.flac', 'sub/x', 'y']
    """
    ids = [p.with_suffix("").as_posix() for p in rel]
    while True:
        clash = {i for i, n in Counter(ids).items() if n > 1}
        if not clash:
            return ids
        # full relative paths are unique, so this ends (the id "x.wav" of `x.wav.flac` may clash once more)
        ids = [p.as_posix() if i in clash else i for i, p in zip(ids, rel, strict=True)]
