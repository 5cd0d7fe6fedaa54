"""`safespeak score`: a folder, protocol or list file -> `ID,score` CSV + evaluation card + error report."""

from __future__ import annotations

import argparse
import sys

from safespeak.commands._common import Subparsers, add_scoring_options, scoring_kwargs


def register(sub: Subparsers) -> None:
    """Add `score`."""
    p = sub.add_parser("score", help="score a directory, protocol or file list into an ID,score CSV")
    p.add_argument("--checkpoint", required=True, help="safespeak checkpoint (dir, .safetensors or .json)")
    p.add_argument("--input", required=True, help="audio directory, protocol file or list file")
    p.add_argument("--output", required=True, help="output CSV (ID,score); card and errors go beside it")
    p.add_argument("--protocol-format", default=None, help="read --input as a protocol of this format")
    p.add_argument("--subset", default="all", help="protocol subset (2021: eval|progress|hidden|all)")
    p.add_argument("--audio-dir", default=None, help="audio folder for protocol trials")
    p.add_argument("--audio-ext", default=".flac", help="audio suffix for protocol trials (default .flac)")
    add_scoring_options(p)
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any file failed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score; print the summary line, and the first failures to stderr."""
    from safespeak.score import ScoreOptions, score_to_files
    from safespeak.score_dist import score_to_files_distributed, torchrun_world

    workflow = score_to_files_distributed if torchrun_world() > 1 else score_to_files
    res = workflow(
        args.checkpoint,
        args.input,
        args.output,
        options=ScoreOptions(**scoring_kwargs(args)),
        protocol_format=args.protocol_format,
        subset=args.subset,
        audio_dir=args.audio_dir,
        audio_ext=args.audio_ext,
    )
    if res is None:  # a torchrun rank other than 0: rank 0 merged and reports
        return 0
    print(f"{res.summary} -> {res.output} (card: {res.card})")
    if res.errors:
        print(f"{len(res.errors)} file(s) could not be scored; see {res.errors_file}", file=sys.stderr)
        for tid, path, reason in res.errors[:5]:
            print(f"  {tid}: {path}: {reason}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0
