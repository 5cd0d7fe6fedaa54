"""`safespeak train CONFIG [--set k=v ...] | --resume RUN_DIR`."""

from __future__ import annotations

import argparse
import os

from safespeak.commands._common import Subparsers, add_set_option


def register(sub: Subparsers) -> None:
    """Add `train`."""
    p = sub.add_parser("train", help="train a countermeasure from a YAML recipe (torchrun for DDP)")
    p.add_argument("config", nargs="?", help="YAML recipe (see configs/); omit with --resume")
    add_set_option(p, "train.lr=1e-4", "override a config value")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its state.pt")
    p.add_argument(
        "--allow-leakage",
        action="store_true",
        help="train even if train and dev share trials or audio files (data.allow_overlap)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; rank 0 prints the summary line."""
    from safespeak.train import train_recipe

    result = train_recipe(args.config, args.overrides, resume=args.resume, allow_leakage=args.allow_leakage)
    if os.environ.get("RANK", "0") != "0":  # torchrun: one summary line per job
        return 0
    print(
        f"best dev EER {100 * result.best_dev_eer:.3f}% at epoch {result.best_epoch}; "
        f"final dev EER {100 * result.final_dev_eer:.3f}%; checkpoint {result.checkpoint}"
    )
    return 0
