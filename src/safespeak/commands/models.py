"""`safespeak models`: the registered models with parameter counts and input length."""

from __future__ import annotations

import argparse

from safespeak.commands._common import Subparsers


def register(sub: Subparsers) -> None:
    """Add `models`."""
    p = sub.add_parser("models", help="list registered models with parameter counts and input length")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one row per model."""
    from safespeak.models.registry import model_table

    print(f"{'name':<20} {'params':>12} {'input':>8}  description")
    for name, n, length, description in model_table():
        print(f"{name:<20} {n:>12,} {length:>8}  {description}")
    return 0
