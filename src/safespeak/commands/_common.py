"""Argument groups shared by several commands."""

from __future__ import annotations

import argparse
from typing import Any

Subparsers = Any  # argparse._SubParsersAction is private; its public surface is `add_parser`


def add_set_option(p: argparse.ArgumentParser, example: str, help_text: str) -> None:
    """`--set KEY=VALUE` (repeatable; VALUE read by YAML 1.2 rules, see `safespeak.config.parse_set`)."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{help_text}, e.g. --set {example} (VALUE read as YAML; repeatable)",
    )


def add_scoring_options(p: argparse.ArgumentParser, *, sigmoid: bool = True) -> None:
    """Window, batch and device options of `score` (and `detect`)."""
    p.add_argument(
        "--crop",
        choices=["full", "first"],
        default="full",
        help="full: windows over the whole file, averaged (default); first: first window only",
    )
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="window length in samples (default: the checkpoint's training crop, else the model's input)",
    )
    p.add_argument("--hop", type=int, default=None, help="hop between windows in samples (default: window)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    if sigmoid:
        p.add_argument("--sigmoid", action="store_true", help="map scores through a sigmoid")
    p.add_argument("--workers", type=int, default=0, help="file-reading worker processes")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def scoring_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The `safespeak.score.ScoreOptions` fields given on the command line."""
    return {
        "crop": args.crop,
        "window": args.window,
        "hop": args.hop,
        "batch_size": args.batch_size,
        "sigmoid": bool(getattr(args, "sigmoid", False)),
        "num_workers": args.workers,
        "device": args.device,
    }
