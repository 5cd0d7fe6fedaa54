"""The command layer: one module per `safespeak` command.

Each module in `COMMANDS` (a submodule of this package) exposes `register(subparsers)`, which adds its
sub-parser and sets `func`, a handler that turns the parsed arguments into one library workflow call
and prints the outcome. Command modules import only the standard library at module level (heavy
libraries load inside the handler), so `safespeak --help` stays fast.
"""

from __future__ import annotations

COMMANDS: tuple[str, ...] = (
    "evaluate",
    "train",
    "score",
    "detect",
    "fuse",
    "calibrate",
    "convert",
    "models",
    "corpus",
    "demo",
    "export",
    "serve",
)
