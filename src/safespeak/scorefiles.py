"""Score files -> ids and float64 scores, joined to protocols by trial id (never by line order).

| format | layout | detected by |
|---|---|---|
| `two-column` | `trial score` (ASVspoof 2021 submissions, many toolkits) | 2 whitespace columns |
| `asvspoof2019` | `utt attack key score` (clovaai/aasist `produce_evaluation_file`) | 4 whitespace columns |
| `asvspoof5` | TSV header `filename cm-score` (Track 1) | the header |
| `asvspoof5-sasv` | TSV header `spk filename cm-score asv-score sasv-score` (Track 2) | the header |
| `csv` | the project's `ID,score` (more columns allowed; ids stay strings) | a comma header with ID, score |

Blank lines and lines starting with `#` are skipped. Every problem raises `ScoreFileError` naming the file
(and `file:line` for a bad row); a join that leaves trials unscored or scores unused is an error too.
ASV score files for the t-DCF have their own readers (`read_asv_scores_2019`, `read_asv_scores_2021`).
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from safespeak.errors import SafespeakError
from safespeak.protocols import sasv_trial_id

__all__ = [
    "SCORE_FORMATS",
    "AsvScores2021",
    "ScoreFileError",
    "ScoreTable",
    "align_scores_to_ids",
    "detect_score_format",
    "read_asv_scores_2019",
    "read_asv_scores_2021",
    "read_score_table",
    "read_scores",
    "write_scores_csv",
]

SCORE_FORMATS = ("auto", "two-column", "asvspoof2019", "asvspoof5", "asvspoof5-sasv", "csv")


class ScoreFileError(SafespeakError):
    """A score file that cannot be used; the message names the file (and line) and what was wrong."""


@dataclass(frozen=True)
class ScoreTable:
    """A parsed score file: `ids[i]` has CM score `scores[i]` (file order).

    `extra` holds per-row side columns: `asv`, `sasv` (float arrays, Track 2) or `attack`, `key`
    (string lists, 2019 4-column files).
    """

    path: str
    fmt: str
    ids: list[str]
    scores: np.ndarray  # (N,) float64
    extra: dict[str, np.ndarray | list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """{id: score}."""
        return dict(zip(self.ids, self.scores.tolist(), strict=True))


def _rows(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) for non-blank, non-comment lines."""
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                s = line.strip()
                if s and not s.startswith("#"):
                    yield n, s
    except FileNotFoundError:
        raise ScoreFileError("score file not found", path=path) from None
    except UnicodeDecodeError as exc:
        raise ScoreFileError(f"not a UTF-8 text file ({exc.reason})", path=path) from None


def _float(path: Path, n: int, text: str, what: str = "score") -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScoreFileError(f"{what} {text!r} is not a number", path=path, line=n) from None
    if not math.isfinite(value):
        raise ScoreFileError(f"{what} {text!r} is not finite", path=path, line=n)
    return value


def detect_score_format(path: str | os.PathLike[str]) -> str:
    """Score format of a file from its first line (header or column count); see the module table."""
    p = Path(path)
    first = next(_rows(p), None)
    if first is None:
        raise ScoreFileError("score file is empty", path=p)
    n, line = first
    tokens = [t.lower() for t in line.split()]
    if "filename" in tokens and "cm-score" in tokens:
        return "asvspoof5-sasv" if "spk" in tokens else "asvspoof5"
    cells = [c.strip().lower() for c in line.split(",")]
    if len(cells) > 1 and "id" in cells and "score" in cells:
        return "csv"
    by_columns = {2: "two-column", 4: "asvspoof2019"}
    if len(tokens) in by_columns:
        return by_columns[len(tokens)]
    raise ScoreFileError(
        f"cannot tell the score format from {len(tokens)} columns ({line[:80]!r}); "
        f"name it explicitly (one of {', '.join(SCORE_FORMATS[1:])})",
        path=p,
        line=n,
    )


def _read_columns(path: Path, ncols: int, layout: str) -> tuple[list[list[str]], list[float]]:
    """Whitespace rows of exactly `ncols` columns; the last column is the score."""
    try:  # fast path for well-formed files; any problem re-reads line by line for a file:line error
        rows = [r for r in (ln.split() for ln in path.read_text(encoding="utf-8").splitlines()) if r]
        rows = [r for r in rows if not r[0].startswith("#")]
        if all(len(r) == ncols for r in rows):
            scores = list(map(float, (r[-1] for r in rows)))
            if all(map(math.isfinite, scores)):
                return rows, scores
    except (ValueError, OSError):  # UnicodeDecodeError is a ValueError
        pass
    rows, scores = [], []
    for n, line in _rows(path):
        parts = line.split()
        if len(parts) != ncols:
            raise ScoreFileError(f"expected {ncols} columns ({layout}), got {len(parts)}", path=path, line=n)
        scores.append(_float(path, n, parts[-1]))
        rows.append(parts)
    return rows, scores


def _read_tsv(path: Path, header: list[str]) -> tuple[list[list[str]], list[int]]:
    rows, lines = [], []
    it = _rows(path)
    first = next(it, None)
    if first is None or first[1].split() != header:
        got = first[1] if first else "an empty file"
        raise ScoreFileError(
            f"expected the header {header}, got {got!r}", path=path, line=first[0] if first else 1
        )
    for n, line in it:
        parts = line.split()
        if len(parts) != len(header):
            raise ScoreFileError(f"expected {len(header)} columns ({' '.join(header)})", path=path, line=n)
        rows.append(parts)
        lines.append(n)
    return rows, lines


def _read_csv(path: Path) -> tuple[list[str], list[float]]:
    """`ID,score[,...]` with a header; rows whose first cell starts with `#` are comments."""
    try:
        return _read_csv_rows(path)
    except UnicodeDecodeError as exc:
        raise ScoreFileError(f"not a UTF-8 text file ({exc.reason})", path=path) from None
    except csv.Error as exc:  # e.g. a NUL byte
        raise ScoreFileError(f"unreadable CSV ({exc})", path=path) from None


def _read_csv_rows(path: Path) -> tuple[list[str], list[float]]:
    ids, scores = [], []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)  # read from the file itself so that `line_num` is the file's line
        rows = (r for r in reader if any(c.strip() for c in r) and not r[0].lstrip().startswith("#"))
        first = next(rows, None)
        if first is None:
            raise ScoreFileError("score file is empty (no CSV header)", path=path)
        header = [h.strip().lower() for h in first]
        if "id" not in header or "score" not in header:
            raise ScoreFileError(
                f"CSV header must name ID and score columns, got {header}", path=path, line=reader.line_num
            )
        i_id, i_score = header.index("id"), header.index("score")
        for row in rows:
            if len(row) != len(header):
                raise ScoreFileError(
                    f"expected {len(header)} fields, got {len(row)}", path=path, line=reader.line_num
                )
            ids.append(row[i_id].strip())
            scores.append(_float(path, reader.line_num, row[i_score].strip()))
    return ids, scores


def read_score_table(path: str | os.PathLike[str], fmt: str = "auto") -> ScoreTable:
    """Parse a score file (`fmt` one of `SCORE_FORMATS`; `auto` detects it from the content).

    Raises `ScoreFileError` for a malformed row (`file:line`), a non-numeric or non-finite score, or
    duplicate ids (with how many and up to 5 examples).
    """
    p = Path(path)
    if not p.is_file():
        raise ScoreFileError("score file not found" + (" (a directory)" if p.is_dir() else ""), path=p)
    if fmt == "auto":
        fmt = detect_score_format(p)
    extra: dict[str, np.ndarray | list[str]] = {}
    if fmt == "two-column":
        rows, scores = _read_columns(p, 2, "trial score")
        ids = [r[0] for r in rows]
    elif fmt == "asvspoof2019":
        rows, scores = _read_columns(p, 4, "utterance attack key score")
        ids = [r[0] for r in rows]
        extra = {"attack": [r[1] for r in rows], "key": [r[2] for r in rows]}
    elif fmt == "asvspoof5":
        rows, lines = _read_tsv(p, ["filename", "cm-score"])
        ids = [r[0] for r in rows]
        scores = [_float(p, n, r[1], "cm-score") for r, n in zip(rows, lines, strict=True)]
    elif fmt == "asvspoof5-sasv":
        rows, lines = _read_tsv(p, ["spk", "filename", "cm-score", "asv-score", "sasv-score"])
        ids = [sasv_trial_id(r[0], r[1]) for r in rows]
        cols = [[_float(p, n, r[k], name) for r, n in zip(rows, lines, strict=True)] for k, name in
                ((2, "cm-score"), (3, "asv-score"), (4, "sasv-score"))]  # fmt: skip
        scores = cols[0]
        extra = {"asv": np.asarray(cols[1]), "sasv": np.asarray(cols[2])}
    elif fmt == "csv":
        ids, scores = _read_csv(p)
    else:
        raise ScoreFileError(
            f"unknown score format {fmt!r}; choose one of {', '.join(SCORE_FORMATS)}", path=p
        )
    _check_unique(p, ids)
    return ScoreTable(str(p), fmt, ids, np.asarray(scores, dtype=np.float64), extra)


def read_scores(path: str | os.PathLike[str], fmt: str = "auto") -> dict[str, float]:
    """{trial id: CM score} of a score file (see `read_score_table`)."""
    return read_score_table(path, fmt).as_dict()


def _check_unique(path: Path, ids: Sequence[str]) -> None:
    if len(set(ids)) == len(ids):
        return
    counts = Counter(ids)
    if len(counts) != len(ids):
        dups = [i for i, c in counts.items() if c > 1]
        raise ScoreFileError(
            f"{len(dups)} trial ids appear more than once ({len(ids) - len(counts)} extra rows), "
            f"e.g. {dups[:5]}",
            path=path,
        )


def align_scores_to_ids(
    table: ScoreTable,
    trial_ids: Sequence[str],
    protocol: str = "the protocol",
    ignore: Collection[str] = (),
) -> np.ndarray:
    """Row index into `table` for every trial id, in `trial_ids` order, as an (N,) int array.

    The join is by id: trials without a score and scores without a trial both raise `ScoreFileError`
    (counts and up to 5 examples of each), so an evaluation never runs on part of a set. Scored ids in
    `ignore` (e.g. trials of the other 2021 subsets) are allowed and skipped.
    """
    pos = {tid: i for i, tid in enumerate(table.ids)}
    missing = [t for t in trial_ids if t not in pos]
    if missing or len(table.ids) != len(trial_ids):
        wanted = set(trial_ids)
        extra = [i for i in table.ids if i not in wanted and i not in ignore]
        parts = []
        if missing:
            parts.append(f"{len(missing)} trials of {protocol} have no score (e.g. {missing[:5]})")
        if extra:
            parts.append(f"{len(extra)} scored ids are not trials of {protocol} (e.g. {extra[:5]})")
        if parts:
            raise ScoreFileError("; ".join(parts), path=table.path)
    return np.fromiter((pos[t] for t in trial_ids), dtype=np.int64, count=len(trial_ids))


def read_asv_scores_2019(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """ASVspoof 2019 ASV scores `source key score` -> {"target", "nontarget", "spoof"}: (N_k,) arrays."""
    p = Path(path)
    out: dict[str, list[float]] = {"target": [], "nontarget": [], "spoof": []}
    for n, line in _rows(p):
        parts = line.split()
        if len(parts) != 3:
            raise ScoreFileError(f"expected 3 columns (source key score), got {len(parts)}", path=p, line=n)
        if parts[1] not in out:
            raise ScoreFileError(f"key must be target, nontarget or spoof, got {parts[1]!r}", path=p, line=n)
        out[parts[1]].append(_float(p, n, parts[2]))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


@dataclass(frozen=True)
class AsvScores2021:
    """ASV trials of one ASVspoof 2021 subset: `label` target/nontarget/spoof, `codec`, `attack`."""

    scores: np.ndarray  # (N,) float64
    label: np.ndarray  # (N,) str
    codec: np.ndarray  # (N,) str
    attack: np.ndarray  # (N,) str

    def split(
        self, mask: np.ndarray | None = None, spoof_mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """(target, nontarget, spoof) scores; `mask` restricts all three, `spoof_mask` the spoofs only."""
        m = np.ones(len(self.scores), bool) if mask is None else mask
        ms = m if spoof_mask is None else m & spoof_mask
        lab = self.label
        return (
            self.scores[m & (lab == "target")],
            self.scores[m & (lab == "nontarget")],
            self.scores[ms & (lab == "spoof")],
        )


def read_asv_scores_2021(
    score_path: str | os.PathLike[str], metadata_path: str | os.PathLike[str], subset: str = "all"
) -> AsvScores2021:
    """ASVspoof 2021 ASV scores (`speaker trial score`) paired **by line** with the ASV `trial_metadata.txt`
    (8 columns `speaker trial codec transmission attack label trim subset`), as the official code pairs
    them; each line's speaker and trial must agree, so a misaligned file is an error, not a wrong number.
    """
    sp, mp = Path(score_path), Path(metadata_path)
    meta = list(_rows(mp))
    scores = list(_rows(sp))
    if len(meta) != len(scores):
        raise ScoreFileError(
            f"{len(scores)} ASV scores but {len(meta)} trials in {mp} (line-aligned)", path=sp
        )
    vals, label, codec, attack = [], [], [], []
    for (nm, m), (ns, s) in zip(meta, scores, strict=True):
        mparts, sparts = m.split(), s.split()
        if len(mparts) != 8:
            raise ScoreFileError(f"expected 8 columns (speaker trial codec transmission attack label trim "
                                 f"subset), got {len(mparts)}", path=mp, line=nm)  # fmt: skip
        if len(sparts) != 3:
            raise ScoreFileError(
                f"expected 3 columns (speaker trial score), got {len(sparts)}", path=sp, line=ns
            )
        if sparts[:2] != mparts[:2]:
            theirs = " ".join(mparts[:2])
            raise ScoreFileError(f"{' '.join(sparts[:2])!r} does not match {mp}:{nm} {theirs!r}; the files "
                                 "must be line-aligned", path=sp, line=ns)  # fmt: skip
        if mparts[5] not in ("target", "nontarget", "spoof"):
            raise ScoreFileError(
                f"label must be target, nontarget or spoof, got {mparts[5]!r}", path=mp, line=nm
            )
        if subset != "all" and mparts[7] != subset:
            continue
        vals.append(_float(sp, ns, sparts[2]))
        codec.append(mparts[2])
        attack.append(mparts[4])
        label.append(mparts[5])
    return AsvScores2021(
        np.asarray(vals, np.float64), np.asarray(label), np.asarray(codec), np.asarray(attack)
    )


def write_scores_csv(path: str | os.PathLike[str], scores: dict[str, float]) -> None:
    """Write `ID,score` rows sorted by id (ids as strings, scores with full float precision)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "score"])
        for tid in sorted(scores):
            w.writerow([tid, repr(float(scores[tid]))])
