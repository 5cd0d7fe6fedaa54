"""`safespeak convert`: reference weights (original code's .pth/.safetensors) -> safespeak checkpoint."""

from __future__ import annotations

import argparse

from safespeak.commands._common import Subparsers, add_set_option


def register(sub: Subparsers) -> None:
    """Add `convert`."""
    c = sub.add_parser(
        "convert",
        help="convert reference weights (original code's .pth/.safetensors) to a safespeak checkpoint",
        description="Load a reference state dict with its original key names, map the keys, check that "
        "it loads strictly, and write a safespeak checkpoint (safetensors + JSON sidecar).",
    )
    c.add_argument("--arch", required=True, help="registered model name (see `safespeak models`)")
    c.add_argument("--reference", required=True, help="reference weights file (.pth or .safetensors)")
    c.add_argument(
        "--output", required=True, help="output checkpoint: a directory (model.*) or a file stem/.safetensors"
    )
    add_set_option(c, "in_dim=768", "model hyperparameter override")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert and print what was written."""
    from safespeak.checkpoint import convert_reference
    from safespeak.config import parse_set

    out, n = convert_reference(args.arch, args.reference, args.output, parse_set(args.overrides))
    print(f"wrote {out} ({args.arch}, {n:,} parameters)")
    return 0
