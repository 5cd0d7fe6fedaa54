"""Dataset protocols -> one `Trial` record type.

Formats are always explicit (`--protocol-format`), never guessed from a path:

| format | file | trial id |
|---|---|---|
| `asvspoof2019-la` | `speaker utt - attack key` | utt |
| `asvspoof2021-la` | 8 columns `speaker trial codec transmission attack key trim subset` | trial |
| `asvspoof2021-df` | 13 columns `speaker trial codec source attack key trim subset vocoder - - - -` | trial |
| `asvspoof5` | Track 1: keys TSV `filename<TAB>cm-label` (header) or release protocol (below) | filename |
| `asvspoof5-keys` / `asvspoof5-protocol` | one of the two `asvspoof5` layouts, forced | filename |
| `asvspoof5-sasv` | Track 2 keys TSV `spk filename cm-label asv-label` (with header) | `spk|filename` |
| `in-the-wild` | `meta.csv` with header `file,speaker,label`, label `bona-fide`/`spoof` | file stem |
| `csv` | header `path,label[,attack][,id][,speaker]...`, label bonafide/spoof or 1/0 | `id`, else path |
| `folder` | a directory: `bonafide/**`, `spoof/<attack>/**` audio files | relative path without suffix |
| `trial-list` | one trial id per line, no keys (`ASVspoof2021.LA.cm.eval.trl.txt`): scoring only | the line |

The ASVspoof5 release protocol has 10 columns, no header:
`SPK FILE GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY -`; `asvspoof5` tells it from the
keys TSV by the header line (`filename cm-label`). Malformed input raises `ProtocolError` naming `file:line`.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from safespeak.audiofiles import AUDIO_SUFFIXES, audio_files, unique_ids
from safespeak.errors import SafespeakError

BONAFIDE = 1
SPOOF = 0

__all__ = [
    "BONAFIDE",
    "FORMATS",
    "SPOOF",
    "SUBSETS",
    "ProtocolError",
    "Trial",
    "audio_path",
    "check_unique_ids",
    "read_protocol",
    "sasv_trial_id",
]

SUBSETS = ("all", "eval", "progress", "hidden")
_KEYS = {"bonafide": BONAFIDE, "spoof": SPOOF}


@dataclass(frozen=True)
class Trial:
    """One trial of a protocol.

    `label`: 1 bona fide, 0 spoof, None when the protocol has no key. `attack`: attack id, "-" for
    bona fide and for spoofs of unknown attack. `path`: audio file when known. `conditions`: other
    fields, e.g. codec, transmission, subset, vocoder, source, trim.
    """

    trial_id: str
    label: int | None
    speaker: str = "-"
    path: str | None = None
    attack: str = "-"
    conditions: Mapping[str, str] = field(default_factory=dict)


class ProtocolError(SafespeakError):
    """A protocol file that cannot be used; the message names `file:line` and what was wrong."""


def audio_path(trial_id: str, audio_dir: str | os.PathLike[str], audio_ext: str = ".flac") -> str:
    """`<audio_dir>/<trial_id><audio_ext>`, the ASVspoof layout (e.g. `LA_E_2834763.flac`)."""
    return os.path.join(os.fspath(audio_dir), trial_id + audio_ext)


def sasv_trial_id(speaker: str, filename: str) -> str:
    """Id of an ASVspoof5 Track 2 trial: the (enrolled speaker, test file) pair."""
    return f"{speaker}|{filename}"


def check_unique_ids(trials: Sequence[Trial], source: str | os.PathLike[str]) -> None:
    """Raise `ProtocolError` if two trials share an id (shows up to 5 examples)."""
    counts = Counter(t.trial_id for t in trials)
    if len(counts) == len(trials):
        return
    dups = [i for i, n in counts.items() if n > 1]
    raise ProtocolError(
        f"{len(dups)} duplicate trial ids ({len(trials) - len(counts)} extra rows), e.g. {dups[:5]}",
        path=source,
    )


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) for every non-blank line."""
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                parts = line.split()
                if parts:
                    yield n, parts
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"not a UTF-8 text file ({exc.reason})", path=path) from None


def _fail(path: Path, n: int, what: str, parts: Sequence[str] | None = None) -> ProtocolError:
    shown = f": {' '.join(parts)[:200]!r}" if parts is not None else ""
    return ProtocolError(f"{what}{shown}", path=path, line=n)


def _key(path: Path, n: int, value: str, parts: Sequence[str]) -> int:
    try:
        return _KEYS[value]
    except KeyError:
        raise _fail(path, n, f"key must be bonafide or spoof, got {value!r}", parts) from None


def _columns(path: Path, n: int, parts: list[str], expected: int, layout: str) -> None:
    if len(parts) != expected:
        raise _fail(path, n, f"expected {expected} columns ({layout}), got {len(parts)}", parts)


def _read_2019(path: Path, subset: str, audio_dir: Path | None, ext: str) -> list[Trial]:
    _no_subset(path, subset, "asvspoof2019-la")
    trials = []
    # Checks are inlined (no helper call per line): the eval protocol has 71k lines.
    for n, parts in _lines(path):
        if len(parts) != 5:
            _columns(path, n, parts, 5, "speaker utterance - attack key")
        label = _KEYS.get(parts[4])
        if label is None:
            _key(path, n, parts[4], parts)
        spk, utt, _, attack, _ = parts
        wav = audio_path(utt, audio_dir, ext) if audio_dir is not None else None
        trials.append(Trial(utt, label, spk, wav, attack, {}))
    return trials


_LA2021 = ("speaker", "trial", "codec", "transmission", "attack", "key", "trim", "subset")
_DF2021 = ("speaker", "trial", "codec", "source", "attack", "key", "trim", "subset", "vocoder")


def _read_2021(
    path: Path, subset: str, audio_dir: Path | None, ext: str, columns: tuple[str, ...], total: int
) -> list[Trial]:
    if subset not in SUBSETS:
        raise ProtocolError(f"unknown subset {subset!r}; choose one of {', '.join(SUBSETS)}", path=path)
    layout = " ".join(columns) + " -" * (total - len(columns))
    trials = []
    for n, parts in _lines(path):
        _columns(path, n, parts, total, layout)
        row = dict(zip(columns, parts, strict=False))
        if row["subset"] not in SUBSETS[1:]:
            raise _fail(path, n, f"subset must be eval, progress or hidden, got {row['subset']!r}", parts)
        if subset != "all" and row["subset"] != subset:
            continue
        label = _key(path, n, row["key"], parts)
        # Bona fide rows say `bonafide` (LA keys) or `-` in the attack column; both mean "no attack".
        attack = "-" if label == BONAFIDE else row["attack"]
        cond = {k: row[k] for k in columns[2:] if k not in ("attack", "key")}
        trials.append(_trial(row["trial"], label, row["speaker"], attack, cond, audio_dir, ext))
    return trials


_V5_PROTOCOL = (
    "speaker", "filename", "gender", "codec", "codec_q", "codec_seed", "attack_tag", "attack_label", "key"
)  # fmt: skip


def _read_asvspoof5(
    path: Path, subset: str, audio_dir: Path | None, ext: str, layout: str | None = None
) -> list[Trial]:
    """Track 1: the evaluation-package keys TSV (header `filename cm-label`) or the 10-column protocol."""
    _no_subset(path, subset, "asvspoof5")
    rows = _lines(path)
    first = next(rows, None)
    if first is None:
        return []
    is_keys = first[1][:2] == ["filename", "cm-label"]
    if layout is not None and is_keys != (layout == "keys"):
        want = "a `filename cm-label` header" if layout == "keys" else "no header (10 columns)"
        raise _fail(path, first[0], f"asvspoof5-{layout} expects {want}", first[1])
    trials = []
    if is_keys:
        for n, parts in rows:
            _columns(path, n, parts, 2, "filename cm-label")
            trials.append(_trial(parts[0], _key(path, n, parts[1], parts), "-", "-", {}, audio_dir, ext))
        return trials
    for n, parts in [first, *rows]:
        _columns(path, n, parts, 10, " ".join(_V5_PROTOCOL).upper() + " -")
        row = dict(zip(_V5_PROTOCOL, parts, strict=False))
        label = _key(path, n, row["key"], parts)
        attack = "-" if label == BONAFIDE else row["attack_label"]
        cond = {k: row[k] for k in ("gender", "codec", "codec_q", "codec_seed", "attack_tag")}
        trials.append(_trial(row["filename"], label, row["speaker"], attack, cond, audio_dir, ext))
    return trials


_ASV_LABELS = {"target": BONAFIDE, "nontarget": BONAFIDE, "spoof": SPOOF}


def _read_sasv(path: Path, subset: str, audio_dir: Path | None, ext: str) -> list[Trial]:
    """Track 2 keys: `spk filename cm-label asv-label`; `conditions['asv_label']` keeps the ASV class."""
    _no_subset(path, subset, "asvspoof5-sasv")
    rows = _lines(path)
    first = next(rows, None)
    if first is not None and first[1][:2] != ["spk", "filename"]:
        raise _fail(path, first[0], "expected the header `spk filename cm-label asv-label`", first[1])
    trials = []
    for n, parts in rows:
        _columns(path, n, parts, 4, "spk filename cm-label asv-label")
        spk, fname, cm_label, asv_label = parts
        label = _key(path, n, cm_label, parts)
        if _ASV_LABELS.get(asv_label) != label:
            raise _fail(path, n, f"asv-label {asv_label!r} does not fit cm-label {cm_label!r}", parts)
        cond = {"asv_label": asv_label, "filename": fname}
        wav = audio_path(fname, audio_dir, ext) if audio_dir is not None else None
        trials.append(Trial(sasv_trial_id(spk, fname), label, spk, wav, "-", cond))
    return trials


def _trial(
    tid: str, label: int, spk: str, attack: str, cond: dict[str, str], audio_dir: Path | None, ext: str
) -> Trial:
    path = audio_path(tid, audio_dir, ext) if audio_dir is not None else None
    return Trial(tid, label, spk, path, attack, cond)


def _no_subset(path: Path, subset: str, fmt: str) -> None:
    if subset != "all":
        raise ProtocolError(f"format {fmt} has no subsets (got subset={subset!r}); use 'all'", path=path)


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Lower-cased header and (line number, {column: stripped cell}) for every non-blank row."""
    out = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            for row in reader:
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise _fail(path, reader.line_num, f"expected {len(header)} fields, got {len(row)}", row)
                out.append((reader.line_num, {h: c.strip() for h, c in zip(header, row, strict=True)}))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"not a UTF-8 text file ({exc.reason})", path=path) from None
    return header, out


_LABEL_WORDS = {"bonafide": BONAFIDE, "bona-fide": BONAFIDE, "1": BONAFIDE, "spoof": SPOOF, "0": SPOOF}


def _read_in_the_wild(path: Path, subset: str, audio_dir: Path | None, ext: str) -> list[Trial]:
    """`meta.csv` of In-the-Wild: `file,speaker,label`; the id is the file stem (as `safespeak score`)."""
    _no_subset(path, subset, "in-the-wild")
    header, rows = _csv_rows(path)
    if header[:3] != ["file", "speaker", "label"]:
        raise ProtocolError(
            f"expected the header file,speaker,label, got {','.join(header)!r}", path=path, line=1
        )
    base = audio_dir if audio_dir is not None else path.parent
    trials = []
    for n, row in rows:
        label = {"bona-fide": BONAFIDE, "spoof": SPOOF}.get(row["label"])
        if label is None:
            raise _fail(path, n, f"label must be bona-fide or spoof, got {row['label']!r}")
        tid = Path(row["file"]).with_suffix("").as_posix()
        trials.append(Trial(tid, label, row["speaker"], str(base / row["file"])))
    return trials


def _read_csv(path: Path, subset: str, audio_dir: Path | None, ext: str) -> list[Trial]:
    """Generic CSV: `path,label[,attack][,id][,speaker]`; other columns become conditions."""
    _no_subset(path, subset, "csv")
    header, rows = _csv_rows(path)
    if "path" not in header or "label" not in header:
        raise ProtocolError(
            f"header must name path and label columns, got {','.join(header)!r}", path=path, line=1
        )
    base = audio_dir if audio_dir is not None else path.parent
    trials = []
    for n, row in rows:
        label = _LABEL_WORDS.get(row["label"].lower())
        if label is None:
            raise _fail(path, n, f"label must be bonafide/spoof or 1/0, got {row['label']!r}")
        attack = row.get("attack") or "-"
        cond = {k: v for k, v in row.items() if k not in ("path", "label", "attack", "id", "speaker")}
        trials.append(
            Trial(
                row.get("id") or row["path"], label, row.get("speaker") or "-",
                str(base / row["path"]), "-" if label == BONAFIDE else attack, cond,
            )
        )  # fmt: skip
    return trials


def _read_folder(path: Path, subset: str, audio_dir: Path | None, ext: str) -> list[Trial]:
    """`bonafide/**` and `spoof/<attack>/**` audio files; files right under `spoof/` get attack `-`."""
    _no_subset(path, subset, "folder")
    if not path.is_dir():
        raise ProtocolError("format folder needs a directory holding bonafide/ and spoof/", path=path)
    files = [
        (f, label)
        for cls, label in (("bonafide", BONAFIDE), ("spoof", SPOOF))
        for f in audio_files(path / cls)
    ]
    ids = unique_ids([f.relative_to(path) for f, _ in files])  # the ids folder scoring gives
    trials = []
    for tid, (f, label) in zip(ids, files, strict=True):
        rel = f.relative_to(path)
        attack = rel.parts[1] if label == SPOOF and len(rel.parts) > 2 else "-"
        trials.append(Trial(tid, label, "-", str(f), attack))
    if not trials:
        raise ProtocolError(
            f"no audio files under bonafide/ or spoof/ ({', '.join(AUDIO_SUFFIXES)})", path=path
        )
    return trials


def _read_trial_list(path: Path, subset: str, audio_dir: Path | None, ext: str) -> list[Trial]:
    """Bare trial ids (the 2021 `*.cm.eval.trl.txt` lists): label None, so usable for scoring only."""
    _no_subset(path, subset, "trial-list")
    trials = []
    for n, parts in _lines(path):
        if len(parts) != 1:
            _columns(path, n, parts, 1, "one trial id per line")
        wav = audio_path(parts[0], audio_dir, ext) if audio_dir is not None else None
        trials.append(Trial(parts[0], None, path=wav))
    return trials


_Reader = Callable[[Path, str, "Path | None", str], list[Trial]]
_READERS: dict[str, _Reader] = {
    "asvspoof2019-la": _read_2019,
    "asvspoof2021-la": lambda p, s, a, e: _read_2021(p, s, a, e, _LA2021, 8),
    "asvspoof2021-df": lambda p, s, a, e: _read_2021(p, s, a, e, _DF2021, 13),
    "asvspoof5": _read_asvspoof5,
    "asvspoof5-keys": lambda p, s, a, e: _read_asvspoof5(p, s, a, e, "keys"),
    "asvspoof5-protocol": lambda p, s, a, e: _read_asvspoof5(p, s, a, e, "protocol"),
    "asvspoof5-sasv": _read_sasv,
    "in-the-wild": _read_in_the_wild,
    "csv": _read_csv,
    "folder": _read_folder,
    "trial-list": _read_trial_list,
}
FORMATS = tuple(_READERS)


def read_protocol(
    path: str | os.PathLike[str],
    fmt: str,
    *,
    subset: str = "all",
    audio_dir: str | os.PathLike[str] | None = None,
    audio_ext: str = ".flac",
) -> list[Trial]:
    """Read a protocol / key file of format `fmt` (see the module docstring) into trials, file order.

    `subset` filters the 2021 keys (`eval`, `progress`, `hidden` or `all`); other formats accept only
    `all`. With `audio_dir`, ASVspoof trials get `path = <audio_dir>/<id><audio_ext>`; CSV-like formats
    resolve their relative paths against `audio_dir` (default: the protocol's folder).
    Raises `ProtocolError` for malformed lines (with `file:line`) and duplicate trial ids.
    """
    reader = _READERS.get(fmt)
    if reader is None:
        raise ProtocolError(f"unknown protocol format {fmt!r}; choose one of {', '.join(FORMATS)}")
    p = Path(path)
    if not p.exists():
        raise ProtocolError("protocol not found", path=p)
    if fmt != "folder" and not p.is_file():
        raise ProtocolError(f"format {fmt} needs a file (only the folder format takes a directory)", path=p)
    trials = reader(p, subset, Path(audio_dir) if audio_dir is not None else None, audio_ext)
    check_unique_ids(trials, p)
    return trials
