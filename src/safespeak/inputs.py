"""What to score: folders, protocols, list files and command-line paths -> `ScoreItem(id, path)`.

Ids are unique and stable, so every input appears exactly once across the score and error rows:

- a folder gives each audio file the id of `safespeak.audiofiles` (relative path without suffix, or
  with it where two files would collide), the ids the `folder` protocol gives;
- a protocol gives the trial ids; a list file `path` or `id path` lines (duplicate ids are an error);
- `expand_paths` (for `detect FILE|DIR ...`) keeps each file argument as given and expands a directory
  into its audio files as above, prefixed with the directory.

No audio is read here (decoding failures become error rows when scoring).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from safespeak.audiofiles import AUDIO_SUFFIXES, audio_files, unique_ids
from safespeak.errors import SafespeakError, UsageError

__all__ = ["ScoreItem", "collect_inputs", "expand_paths"]


@dataclass(frozen=True)
class ScoreItem:
    """One file to score: its id (kept as a string) and its path."""

    trial_id: str
    path: str


def _items_from_dir(root: Path, prefix: str = "") -> list[ScoreItem]:
    files = audio_files(root)
    if not files:
        raise UsageError(f"a directory with no audio files ({' '.join(AUDIO_SUFFIXES)})", path=root)
    ids = unique_ids([p.relative_to(root) for p in files])
    return [ScoreItem(prefix + i, str(p)) for i, p in zip(ids, files, strict=True)]


def collect_inputs(
    source: str | os.PathLike[str],
    *,
    protocol_format: str | None = None,
    subset: str = "all",
    audio_dir: str | os.PathLike[str] | None = None,
    audio_ext: str = ".flac",
) -> list[ScoreItem]:
    """Files to score from a directory, a protocol (with `protocol_format`) or a list file.

    - directory: every audio file below it (ids as in the module docstring);
    - protocol: `safespeak.protocols.read_protocol`; audio paths from the protocol or `audio_dir`;
    - list file: one path per line, or `id path` per line; blank lines and `#` comments are skipped.
    """
    src = Path(source)
    if src.is_dir():
        return _items_from_dir(src)
    if protocol_format:
        return _items_from_protocol(src, protocol_format, subset, audio_dir, audio_ext)
    if not src.is_file():
        raise UsageError("input not found (expected a directory, protocol or list file)", path=src)
    return _items_from_list(src)


def _items_from_protocol(
    path: Path, fmt: str, subset: str, audio_dir: str | os.PathLike[str] | None, audio_ext: str
) -> list[ScoreItem]:
    from safespeak.protocols import read_protocol

    trials = read_protocol(path, fmt, subset=subset, audio_dir=audio_dir, audio_ext=audio_ext)
    items = []
    for t in trials:
        p = t.path or (str(Path(audio_dir) / f"{t.trial_id}{audio_ext}") if audio_dir else None)
        if p is None:
            raise UsageError(f"trial {t.trial_id} has no audio path; pass --audio-dir", path=path)
        items.append(ScoreItem(t.trial_id, p))
    return items


def _items_from_list(path: Path) -> list[ScoreItem]:
    items = []
    base = path.parent
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SafespeakError(f"list file is not UTF-8 text ({exc.reason})", path=path) from None
    for n, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) > 2:
            raise SafespeakError(f"expected 'path' or 'id path', got {len(parts)} fields", path=path, line=n)
        p = Path(parts[-1])
        tid = p.stem if len(parts) == 1 else parts[0]
        items.append(ScoreItem(tid, str(p if p.is_absolute() else base / p)))
    counts = Counter(i.trial_id for i in items)
    dupes = sorted(i for i, c in counts.items() if c > 1)
    if dupes:
        raise SafespeakError(f"{len(dupes)} duplicate ids, e.g. {', '.join(dupes[:5])}", path=path)
    return items


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[ScoreItem]:
    """`detect`'s arguments: files kept as given (id = the argument), directories expanded.

    A missing file stays an item (it becomes an error row when scored); a directory without audio files
    raises `UsageError` naming it. Ids of directory members are `<dir>/<id within dir>`.
    """
    items: list[ScoreItem] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            items += _items_from_dir(p, prefix=str(arg).rstrip("/\\") + "/")
        else:
            items.append(ScoreItem(str(arg), str(arg)))
    seen: Counter[str] = Counter()
    out = []
    for item in items:  # the same file named twice is scored twice, under distinct ids
        seen[item.trial_id] += 1
        k = seen[item.trial_id]
        out.append(item if k == 1 else ScoreItem(f"{item.trial_id}#{k}", item.path))
    return out
