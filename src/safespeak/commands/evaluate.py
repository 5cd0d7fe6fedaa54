"""`safespeak evaluate`: score file + protocol -> metrics table (or JSON)."""

from __future__ import annotations

import argparse
import json
import sys

from safespeak.commands._common import Subparsers
from safespeak.protocols import FORMATS, SUBSETS
from safespeak.scorefiles import SCORE_FORMATS


def register(sub: Subparsers) -> None:
    """Add `evaluate`."""
    p = sub.add_parser(
        "evaluate",
        help="score file + protocol -> EER, t-DCF, DCF, Cllr, a-DCF, t-EER and breakdowns",
        description="Evaluate a score file against a protocol/key file, as the official ASVspoof code does.",
    )
    p.add_argument(
        "--scores", required=True, help="score file (2-col, 2019 4-col, ASVspoof5 TSV or ID,score CSV)"
    )
    p.add_argument(
        "--scores-format", default="auto", choices=SCORE_FORMATS, help="score file format (default: detect)"
    )
    p.add_argument(
        "--protocol", required=True, help="protocol / key file (a directory for --protocol-format folder)"
    )
    p.add_argument(
        "--protocol-format", required=True, choices=FORMATS, help="protocol format (never guessed)"
    )
    p.add_argument(
        "--subset",
        default="all",
        choices=SUBSETS,
        help="2021 keys: eval, progress, hidden or all (default all)",
    )
    p.add_argument(
        "--asv-scores",
        help="ASV scores for the t-DCF: 2019 `source key score` file or 2021 ASVTorch_Kaldi score.txt",
    )
    p.add_argument("--asv-protocol", help="2021 ASV trial_metadata.txt, line-aligned with --asv-scores")
    p.add_argument(
        "--bootstrap", type=int, default=0, metavar="N",
        help="add a 95%% bootstrap interval of the EER from N resamples (0: none)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table (or JSON); warnings go to stderr."""
    from safespeak.evaluate import evaluate, format_table, result_json

    result = evaluate(
        args.scores, args.protocol, args.protocol_format, subset=args.subset,
        asv_scores=args.asv_scores, asv_protocol=args.asv_protocol, scores_format=args.scores_format,
        bootstrap=args.bootstrap,
    )  # fmt: skip
    for w in result["warnings"]:
        print(f"safespeak evaluate: warning: {w}", file=sys.stderr)
    print(json.dumps(result_json(result), indent=2, allow_nan=False) if args.json else format_table(result))
    return 0
