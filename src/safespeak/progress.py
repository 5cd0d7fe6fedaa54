"""Progress display that suits where it goes: a live bar on a terminal, a few whole lines in a log.

On a terminal (`stream.isatty()`) `Progress` is a tqdm bar. Anywhere else (CI logs, `> log`) a bar's
carriage-return updates pile up in one huge line, so it writes a plain line at most every `interval`
seconds and one summary line at the end (`scoring: 1080/1080 files in 88.1 s (12.3 files/s)`).
`SAFESPEAK_PROGRESS=bar|log|off` overrides the choice.

Status lines (a training epoch's dev EER, the demo's stages) go to the `safespeak` logger at INFO level,
never to `print`: the CLI shows them on stderr, a library caller decides with `logging`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TextIO, TypeVar

__all__ = ["LOG_INTERVAL_S", "Progress", "logger", "progress_mode"]

logger = logging.getLogger("safespeak")

T = TypeVar("T")
LOG_INTERVAL_S = 30.0


def progress_mode(stream: TextIO, enabled: bool = True) -> str:
    """'bar' on a terminal, 'log' elsewhere, 'off' when disabled (or as `SAFESPEAK_PROGRESS` says)."""
    if not enabled:
        return "off"
    forced = os.environ.get("SAFESPEAK_PROGRESS", "").strip().lower()
    if forced in {"bar", "log", "off"}:
        return forced
    isatty = getattr(stream, "isatty", None)
    return "bar" if callable(isatty) and isatty() else "log"


class Progress(Generic[T]):
    """A counter over `total` units (optionally wrapping an iterable) shown as `progress_mode` says.

    >>> import io
    >>> p = Progress(total=3, desc="scoring", unit="file", stream=io.StringIO())  # not a TTY: 'log'
    >>> for _ in range(3):
    ...     p.update()
    >>> p.close()
    >>> p.stream.getvalue().startswith("scoring: 3/3 files in ")
    True
    """

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = LOG_INTERVAL_S,
        leave: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.iterable = iterable
        self.total = total if total is not None else _len(iterable)
        self.desc, self.unit, self.interval, self.clock = desc, unit, interval, clock
        self.stream = stream if stream is not None else sys.stderr
        self.mode = progress_mode(self.stream, enabled)
        self.n = 0
        self.postfix = ""
        self.t0 = self.last = clock()
        self.closed = False
        self.bar: Any = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=unit, leave=leave, file=self.stream)

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("Progress was not given an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        """Count `n` more units; in log mode write a line when `interval` has passed since the last."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode == "log" and self.clock() - self.last >= self.interval:
            self.last = self.clock()
            self._write(self._line(final=False))

    def set_postfix(self, **values: Any) -> None:
        """Extra `key=value` fields shown after the counts (e.g. the running loss)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def close(self) -> None:
        """Finish the bar; in log mode write the summary line (once)."""
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "log":
            self._write(self._line(final=True))

    def _line(self, *, final: bool) -> str:
        elapsed = max(self.clock() - self.t0, 1e-9)
        units = _plural(self.unit)
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        head = f"{self.desc}: " if self.desc else ""
        tail = f", {self.postfix}" if self.postfix else ""
        if final:
            return f"{head}{count} {units} in {elapsed:.1f} s ({self.n / elapsed:.1f} {units}/s){tail}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        return f"{head}{count} {units}{pct}, {elapsed:.0f} s, {self.n / elapsed:.1f} {units}/s{tail}"

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def _plural(unit: str) -> str:
    if unit == "it" or unit.endswith("s"):
        return unit
    return unit + ("es" if unit.endswith(("ch", "sh", "x")) else "s")


def _len(iterable: Iterable[Any] | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
