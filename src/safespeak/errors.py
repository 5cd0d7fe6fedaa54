"""The base class of errors a user can fix: a bad file, argument or config.

`safespeak.cli` prints such an error as one line `safespeak: error: <file>[:line]: <what>` and exits 2;
anything else is a bug and keeps its traceback. Library modules subclass `SafespeakError`
(`AudioError`, `ConfigError`, `ProtocolError`, `ScoreFileError`, `CheckpointError`, ...).
"""

from __future__ import annotations

import os
import re

__all__ = ["CheckpointError", "SafespeakError", "UsageError", "unpickle_reason"]


class SafespeakError(ValueError):
    """A user-fixable error; `path` and `line` say where (either may be None), `what` says what is wrong.

    `str(err)` is `path:line: what` (the parts present), so it reads the same in a log and on the console.

    >>> str(SafespeakError("expected 3 columns", path="keys.txt", line=7))
    'keys.txt:7: expected 3 columns'
    """

    def __init__(
        self, what: str, *, path: str | os.PathLike[str] | None = None, line: int | None = None
    ) -> None:
        self.what = what
        self.path = None if path is None else str(path)
        self.line = line
        where = self.path if self.path is not None else ""
        if where and line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {what}" if where else what)


class UsageError(SafespeakError):
    """Arguments that do not fit together (the command line, or a library call's options)."""


class CheckpointError(SafespeakError):
    """A checkpoint that cannot be used (missing, truncated, garbage, wrong architecture, pickled code)."""


def unpickle_reason(exc: BaseException) -> str:
    """Short reason of a `torch.load(weights_only=True)` refusal: the object it names, else its first line.

    >>> unpickle_reason(RuntimeError("... Unsupported global: GLOBAL pathlib.Path was not allowed"))
    'it holds GLOBAL pathlib.Path'
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch bolds part of its message with ANSI codes
    found = re.search(r"Unsupported global: (GLOBAL [\w.]+)", text)
    if found:
        return f"it holds {found.group(1)}"
    lines = text.strip().splitlines()
    return lines[0][:160] if lines else type(exc).__name__
