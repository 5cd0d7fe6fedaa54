"""`safespeak fuse`: fuse score files aligned by trial id."""

from __future__ import annotations

import argparse

from safespeak.commands._common import Subparsers
from safespeak.errors import UsageError


def register(sub: Subparsers) -> None:
    """Add `fuse`."""
    f = sub.add_parser("fuse", help="fuse score files aligned by trial id")
    f.add_argument("scores", nargs="+", help="score files (any format `safespeak evaluate` reads)")
    f.add_argument("--output", required=True, help="fused ID,score CSV")
    f.add_argument("--weights", default=None, help="comma-separated weights (default: equal)")
    f.add_argument(
        "--train-scores",
        nargs="+",
        default=None,
        help="dev score files (same systems, same order) to learn weights by logistic regression",
    )
    f.add_argument("--protocol", default=None, help="labels for --train-scores")
    f.add_argument("--protocol-format", default=None, help="format of --protocol")
    f.add_argument("--subset", default="all", help="protocol subset")
    f.set_defaults(func=run)


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--weights {text!r}: expected comma-separated numbers") from None


def run(args: argparse.Namespace) -> int:
    """Fuse and print one summary line."""
    from safespeak.calibrate import fuse_files

    res = fuse_files(
        args.scores,
        args.output,
        weights=_weights(args.weights),
        train_scores=args.train_scores,
        protocol=args.protocol,
        protocol_format=args.protocol_format,
        subset=args.subset,
    )
    shown = "equal" if res.weights is None else ", ".join(f"{v:.4g}" for v in res.weights)
    print(
        f"fused {res.n_systems} systems, {res.n_trials} trials (weights {shown}; bias {res.bias:.4g})"
        f" -> {res.output}"
    )
    return 0
