"""`safespeak serve`: the detection API and web page for one checkpoint (needs `safespeak[deploy]`)."""

from __future__ import annotations

import argparse
import os
import sys

from safespeak.commands._common import Subparsers

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def register(sub: Subparsers) -> None:
    """Add `serve`."""
    p = sub.add_parser(
        "serve",
        help="serve a checkpoint over HTTP: POST /v1/detect and a web page at /",
        description="Loads the model once and batches concurrent requests on it. Binds 127.0.0.1 unless "
        "--host says otherwise; with --token (or SAFESPEAK_TOKEN) every /v1 call needs "
        "'Authorization: Bearer TOKEN'.",
    )
    p.add_argument("--checkpoint", required=True, help="safespeak checkpoint (dir, .safetensors or .json)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this host only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request in MiB (default 20)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="longest audio accepted (default 120 s)")
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch", help="torch (default) or onnx")
    p.add_argument(
        "--token",
        default=os.environ.get("SAFESPEAK_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' on /v1 calls (default: $SAFESPEAK_TOKEN, else none)",
    )
    p.add_argument("--device", default="cpu", help="torch device for the torch backend (default cpu)")
    p.add_argument("--batch-window-ms", type=float, default=10.0, help="wait this long to batch requests")
    p.add_argument("--max-batch", type=int, default=16, help="most requests scored in one batch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the detector, then serve until interrupted."""
    from safespeak.errors import UsageError

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"safespeak serve needs {exc.name}: pip install 'safespeak[deploy]'") from None
    from safespeak.inference import Detector
    from safespeak.serve import ServeSettings
    from safespeak.serve import run as serve

    settings = ServeSettings(
        host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
        token=args.token, batch_window_ms=args.batch_window_ms, max_batch=args.max_batch,
    )  # fmt: skip
    detector = Detector.from_checkpoint(args.checkpoint, args.device, backend=args.backend)
    if args.host not in _LOOPBACK and args.token is None:
        print(f"safespeak serve: warning: {args.host} is reachable from other machines and no --token is set",
              file=sys.stderr)  # fmt: skip
    card = detector.card
    auth = ", token required" if args.token else ""
    print(
        f"safespeak serve: {card.arch} ({card.backend}, threshold: {card.threshold_source}) on "
        f"http://{args.host}:{args.port}/{auth}",
        flush=True,
    )
    serve(detector, settings)
    return 0
