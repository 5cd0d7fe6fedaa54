"""`safespeak demo`: offline corpus -> compact CM -> scores -> evaluation -> HTML report."""

from __future__ import annotations

import argparse

from safespeak.commands._common import Subparsers, add_set_option


def register(sub: Subparsers) -> None:
    """Add `demo`."""
    p = sub.add_parser("demo", help="build the offline corpus, train a compact CM, score, evaluate, report")
    p.add_argument("--out", default="demo_out", help="report folder (default demo_out)")
    p.add_argument("--minutes", type=float, default=None, help="cap on the training time in minutes")
    p.add_argument("--corpus-dir", default=None, help="corpus folder (default: the cache)")
    p.add_argument("--size", choices=["mini", "full"], default="mini", help="corpus size (default mini)")
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus and the training")
    add_set_option(p, "train.epochs=2", "override a key of the demo recipe")
    p.add_argument("--recipe", default=None, help="training recipe YAML (default: the built-in demo-cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo (stage lines on stderr unless --quiet) and print its summary."""
    from safespeak.demo import demo_summary, run_demo

    metrics = run_demo(
        args.out,
        corpus_dir=args.corpus_dir,
        corpus_size=args.size,
        seed=args.seed,
        minutes=args.minutes,
        overrides=tuple(args.overrides),
        progress=not args.quiet,
        recipe=args.recipe,
    )
    print(demo_summary(metrics, args.out))
    return 0
