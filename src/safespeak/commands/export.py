"""`safespeak export`: a checkpoint -> an ONNX model with its metadata (needs `safespeak[deploy]`)."""

from __future__ import annotations

import argparse

from safespeak.commands._common import Subparsers


def register(sub: Subparsers) -> None:
    """Add `export`."""
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (dynamic batch and length), checked against torch",
        description="Input 'waveform' (batch, samples) float32 at 16 kHz; output 'logits' (batch, 2) "
        "[spoof, bonafide]. The checkpoint's arch, window, calibration and threshold go into the "
        "model's metadata_props.",
    )
    p.add_argument("--checkpoint", required=True, help="safespeak checkpoint (dir, .safetensors or .json)")
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument(
        "--window", type=int, default=None, help="scoring window in samples (default: the checkpoint's)"
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print what was written and the parity measured."""
    from safespeak.errors import UsageError

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"safespeak export needs {exc.name}: pip install 'safespeak[deploy]'") from None
    from safespeak.export import export_onnx

    res = export_onnx(args.checkpoint, args.output, window=args.window, opset=args.opset)
    shapes = ", ".join(f"{b}x{t}" for b, t in res.checked_shapes)
    print(
        f"exported {res.metadata['arch']} -> {res.path} (window {res.metadata['window_samples']} samples; "
        f"onnxruntime vs torch max |diff| {res.max_abs_diff:.2g} at batch x samples {shapes})"
    )
    return 0
