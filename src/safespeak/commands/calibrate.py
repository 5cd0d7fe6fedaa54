"""`safespeak calibrate`: fit score -> LLR calibration on a labelled dev score set."""

from __future__ import annotations

import argparse
import json

from safespeak.commands._common import Subparsers


def register(sub: Subparsers) -> None:
    """Add `calibrate`."""
    c = sub.add_parser("calibrate", help="fit score->LLR calibration on a labelled dev score set")
    c.add_argument("--scores", required=True, help="dev score file")
    c.add_argument("--protocol", required=True, help="dev protocol with labels")
    c.add_argument("--protocol-format", required=True, help="format of --protocol")
    c.add_argument("--subset", default="all", help="protocol subset")
    c.add_argument("--prior", type=float, default=0.5, help="bona fide prior for the training weights")
    c.add_argument("--checkpoint", default=None, help="store the calibration in this checkpoint's JSON")
    c.add_argument("--apply", default=None, help="score file to map to LLRs (written to --output)")
    c.add_argument("--output", default=None, help="output CSV for --apply")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fit (store, apply) and print the calibration as JSON."""
    from safespeak.calibrate import calibrate_files

    cal = calibrate_files(
        args.scores,
        args.protocol,
        args.protocol_format,
        subset=args.subset,
        prior=args.prior,
        checkpoint=args.checkpoint,
        apply=args.apply,
        output=args.output,
    )
    print(json.dumps(cal.to_dict()))
    return 0
