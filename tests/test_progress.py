"""Progress off a terminal: a few whole lines and a final summary instead of carriage-return updates."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from safespeak.progress import Progress, progress_mode
from safespeak.score import ScoreItem, score_items
from scoring_helpers import MeanModel, write_wav


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_mode_rate_limits_lines_and_ends_with_a_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAFESPEAK_PROGRESS", raising=False)
    clock, out = _Clock(), io.StringIO()
    bar: Progress[int] = Progress(
        total=1080, desc="scoring", unit="file", stream=out, interval=30, clock=clock
    )
    assert bar.mode == "log"
    for _ in range(1080):  # 0.1 s per file: 108 s in all
        clock.t += 0.1
        bar.update()
    bar.close()
    bar.close()  # idempotent: one summary line
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 4  # at 30, 60, 90 s, then the summary
    assert lines[0] == "scoring: 300/1080 files (28%), 30 s, 10.0 files/s"
    assert lines[-1] == "scoring: 1080/1080 files in 108.0 s (10.0 files/s)"


def test_iteration_postfix_and_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAFESPEAK_PROGRESS", raising=False)
    out = io.StringIO()
    bar = Progress(range(5), desc="epoch 0", unit="batch", stream=out, interval=1e9)
    total = 0
    for x in bar:
        total += x
        bar.set_postfix(loss="0.5000")
    assert total == 10 and out.getvalue().startswith("epoch 0: 5/5 batches in ")
    assert out.getvalue().rstrip().endswith("batches/s), loss=0.5000")
    assert progress_mode(_Tty()) == "bar" and progress_mode(io.StringIO()) == "log"
    assert progress_mode(_Tty(), enabled=False) == "off"
    monkeypatch.setenv("SAFESPEAK_PROGRESS", "off")
    quiet = io.StringIO()
    Progress(total=3, stream=quiet).close()
    assert quiet.getvalue() == ""
    monkeypatch.setenv("SAFESPEAK_PROGRESS", "bar")
    tty = _Tty()
    p = Progress(total=3, desc="x", stream=tty)
    p.update(3)
    p.close()
    assert "\r" in tty.getvalue()  # the live bar on a terminal


def test_scoring_off_a_terminal_writes_one_summary_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAFESPEAK_PROGRESS", raising=False)
    items = [ScoreItem(str(i), str(write_wav(tmp_path / f"{i}.wav", np.full(1600, 0.1)))) for i in range(30)]
    score_items(MeanModel(), items, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("\n") == 1 and err.startswith("scoring: 30/30 files in ")
