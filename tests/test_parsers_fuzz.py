"""Fuzz the protocol and score-file parsers: random lines either parse or raise the documented error type
(`ProtocolError` / `ScoreFileError`) that names the file, and the line when a line is to blame."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safespeak.errors import SafespeakError
from safespeak.protocols import FORMATS, ProtocolError, read_protocol
from safespeak.scorefiles import SCORE_FORMATS, ScoreFileError, read_asv_scores_2019, read_score_table

# tokens that real files hold, plus hostile ones; lines are joined with the separators the formats use
TOKENS = st.sampled_from([
    "LA_0079", "LA_T_1", "LA_T_2", "E_0001", "-", "A01", "A07", "bonafide", "spoof", "bona-fide", "target",
    "nontarget", "eval", "progress", "hidden", "none", "alaw", "C1", "0.5", "-1e3", "1e5", "nan", "inf",
    "010", "ID", "score", "filename", "cm-label", "cm-score", "spk", "asv-label", "asv-score", "sasv-score",
    "file", "speaker", "label", "path", "#", '"', "x,y", "ñ", "\x00", "",
])  # fmt: skip
SEPARATORS = st.sampled_from([" ", "\t", ",", "  "])
LINE = st.builds(lambda toks, sep: sep.join(toks), st.lists(TOKENS, max_size=14), SEPARATORS)
TEXT = st.lists(LINE, max_size=8).map(lambda lines: "\n".join(lines) + "\n")
RAW = st.one_of(TEXT.map(lambda t: t.encode("utf-8")), st.binary(max_size=200))

FILE_FORMATS = [f for f in FORMATS if f != "folder"]  # `folder` reads a directory tree, not lines


def _check(exc: SafespeakError, path: Path, n_lines: int) -> None:
    assert exc.path == str(path), exc
    assert str(exc).startswith(str(path)), exc
    if exc.line is not None:
        assert 1 <= exc.line <= n_lines + 1, exc
        assert str(exc).startswith(f"{path}:{exc.line}: "), exc


def _write(data: bytes) -> tuple[Path, int]:
    d = Path(tempfile.mkdtemp(prefix="fuzz-"))
    p = d / "input.txt"
    p.write_bytes(data)
    return p, len(re.findall(rb"\r\n|\r|\n", data))  # line ends as Python's text mode reads them


@pytest.mark.parametrize("fmt", FILE_FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=RAW, subset=st.sampled_from(["all", "eval"]))
def test_protocol_parsers_raise_only_protocol_errors_with_file_and_line(
    fmt: str, data: bytes, subset: str
) -> None:
    path, n = _write(data)
    try:
        trials = read_protocol(path, fmt, subset=subset)
    except ProtocolError as exc:
        _check(exc, path, n)
    else:
        assert len({t.trial_id for t in trials}) == len(trials)  # ids unique, or it would have raised


@pytest.mark.parametrize("fmt", SCORE_FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=RAW)
def test_score_parsers_raise_only_score_file_errors_with_file_and_line(fmt: str, data: bytes) -> None:
    path, n = _write(data)
    try:
        table = read_score_table(path, fmt)
    except ScoreFileError as exc:
        _check(exc, path, n)
    else:
        assert len(table.ids) == len(set(table.ids)) == table.scores.shape[0]
        assert all(isinstance(i, str) for i in table.ids)


@settings(max_examples=60, deadline=None)
@given(data=RAW)
def test_asv_score_parser_2019(data: bytes) -> None:
    path, n = _write(data)
    try:
        read_asv_scores_2019(path)
    except ScoreFileError as exc:
        _check(exc, path, n)
