"""`safespeak detect FILE|DIR ...`: label, score and (when calibrated) probability per file."""

from __future__ import annotations

import argparse
import json
import sys

from safespeak.commands._common import Subparsers, add_scoring_options, scoring_kwargs


def register(sub: Subparsers) -> None:
    """Add `detect`."""
    d = sub.add_parser(
        "detect",
        help="score audio files (or the audio files in folders) and print label, score and probability",
        description="The label uses --threshold, else the checkpoint's calibration, else its dev-EER "
        "threshold; a checkpoint with none of them gets scores without labels.",
    )
    d.add_argument("files", nargs="+", metavar="FILE|DIR", help="audio files or folders of audio files")
    d.add_argument("--checkpoint", required=True, help="safespeak checkpoint")
    d.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold on the raw score (default: calibration, else the dev-EER threshold)",
    )
    d.add_argument("--json", action="store_true", help="print one JSON object per file")
    add_scoring_options(d, sigmoid=False)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per file; exit 1 if any file failed."""
    from safespeak.score import NO_THRESHOLD, ScoreOptions, detect_files

    opts = ScoreOptions(**scoring_kwargs(args))
    dets = detect_files(args.checkpoint, args.files, opts, args.threshold)
    status = 0
    for det in dets:
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
            print(f"{det.path}: {det.label or '-':<8} score={det.score:+.4f}{prob}")
    if any(d.error is None and d.label is None for d in dets):
        print(f"safespeak detect: {NO_THRESHOLD}", file=sys.stderr)
    return status
