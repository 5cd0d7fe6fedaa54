"""Command-line entry point: `safespeak [--debug] <command> ...`.

The parser is built from the modules named in `safespeak.commands.COMMANDS` (each exposes
`register(subparsers)` and sets `func`). Errors a user can fix (`SafespeakError`, and `ValueError` /
`OSError` from the library) print one line `safespeak: error: <file>[:line]: <what>` and exit 2;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

from safespeak import __version__
from safespeak.commands import COMMANDS

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Return the full `safespeak` argument parser."""
    parser = argparse.ArgumentParser(
        prog="safespeak",
        description="Voice anti-spoofing toolkit: train, score and evaluate countermeasures.",
    )
    parser.add_argument("--version", action="version", version=f"safespeak {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"safespeak.commands.{name}").register(sub)
    return parser


def error_line(exc: BaseException) -> str:
    """The one-line message for a user error: `<file>[:line]: <what>` where the error knows the file."""
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in str(exc):
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


class _StderrHandler(logging.Handler):
    """Library status lines (`safespeak` logger, INFO) to the current `sys.stderr`, message only."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr, flush=True)


def _show_status_lines() -> None:
    log = logging.getLogger("safespeak")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())
    log.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    _show_status_lines()
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # SafespeakError and library argument/file errors
        if args.debug:
            traceback.print_exc()
        print(f"safespeak: error: {error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("safespeak: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
