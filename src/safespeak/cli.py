"""Command-line entry point: `safespeak <command> ...`.

Each command lives next to the library code it calls: a module in `_COMMAND_MODULES` exposes
`register_cli(subparsers)`, which adds its sub-parser(s) and sets `func` (a callable taking the parsed
namespace and returning an exit code). The CLI only parses arguments; the work is library functions.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from safespeak import __version__

_COMMAND_MODULES = (
    "safespeak.evaluate",  # evaluate
    "safespeak.train",  # train
    "safespeak.score",  # score, detect
    "safespeak.calibrate",  # fuse, calibrate
    "safespeak.models.registry",  # models, convert
    "safespeak.corpus.cli",  # corpus build / audit
    "safespeak.demo",  # demo
)


def build_parser() -> argparse.ArgumentParser:
    """Return the full `safespeak` argument parser."""
    parser = argparse.ArgumentParser(
        prog="safespeak",
        description="Voice anti-spoofing toolkit: train, score and evaluate countermeasures.",
    )
    parser.add_argument("--version", action="version", version=f"safespeak {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command whose module is not part of this install
            if exc.name == name:
                continue
            raise
        module.register_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
