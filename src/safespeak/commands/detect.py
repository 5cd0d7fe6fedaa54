"""`safespeak detect FILE...`: label, score and (when calibrated) probability per file."""

from __future__ import annotations

import argparse
import json
import sys

from safespeak.commands._common import Subparsers, add_scoring_options, scoring_kwargs


def register(sub: Subparsers) -> None:
    """Add `detect`."""
    d = sub.add_parser("detect", help="score single files and print label, score and probability")
    d.add_argument("files", nargs="+", help="audio files")
    d.add_argument("--checkpoint", required=True, help="safespeak checkpoint")
    d.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold on the raw score (default: calibration, else dev EER threshold, else 0)",
    )
    d.add_argument("--json", action="store_true", help="print one JSON object per file")
    add_scoring_options(d)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per file; exit 1 if any file failed."""
    from safespeak.score import ScoreOptions, detect_files

    status = 0
    for det in detect_files(
        args.checkpoint, args.files, ScoreOptions(**scoring_kwargs(args)), args.threshold
    ):
        if det.error is not None:
            print(f"{det.path}: ERROR {det.error}", file=sys.stderr)
            status = 1
            continue
        rec = {"file": det.path, "score": det.score, "label": det.label}
        if det.llr is not None:
            rec.update(llr=det.llr, p_bonafide=det.p_bonafide)
        if args.json:
            print(json.dumps(rec))
        else:
            prob = f"  P(bona fide)={det.p_bonafide:.3f}" if det.p_bonafide is not None else ""
            print(f"{det.path}: {det.label:<8} score={det.score:+.4f}{prob}")
    return status
