"""`safespeak detect FILE|DIR ...`: label, score, probability (when calibrated) and per-window timeline."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from safespeak.commands._common import Subparsers, add_scoring_options


def register(sub: Subparsers) -> None:
    """Add `detect`."""
    d = sub.add_parser(
        "detect",
        help="score audio files (or the audio files in folders) and print label, score and probability",
        description="The label uses --threshold, else the checkpoint's calibration, else its dev-EER "
        "threshold; a checkpoint with none of them gets scores without labels. Same API as `safespeak "
        "serve` (safespeak.Detector).",
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
    d.add_argument("--timeline", action="store_true", help="also print each window's start, end and score")
    d.add_argument("--backend", choices=["torch", "onnx"], default="torch", help="torch (default) or onnx")
    add_scoring_options(d, sigmoid=False)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per file; exit 1 if any file failed."""
    from safespeak.inference import NO_THRESHOLD, detect_paths

    dets = detect_paths(
        args.checkpoint, args.files, threshold=args.threshold, window=args.window, hop=args.hop,
        crop=args.crop, batch_size=args.batch_size, device=args.device, backend=args.backend,
        workers=args.workers,
    )  # fmt: skip
    status = 0
    for det in dets:
        if det.result is None:
            print(f"{det.path}: ERROR {det.error}", file=sys.stderr)
            status = 1
            continue
        r = det.result
        if args.json:
            print(json.dumps(_record(det.path, r, args.timeline)))
            continue
        prob = f"  P(bona fide)={r.probability:.3f}" if r.probability is not None else ""
        print(f"{det.path}: {r.label or '-':<8} score={r.score:+.4f}{prob}")
        if args.timeline:
            for w in r.windows:
                mark = "" if r.threshold is None else ("bonafide" if w.score >= r.threshold else "spoof")
                print(f"  {w.start_s:8.2f} - {w.end_s:8.2f} s  score={w.score:+.4f}  {mark}".rstrip())
    if any(d.result is not None and d.result.label is None for d in dets):
        print(f"safespeak detect: {NO_THRESHOLD}", file=sys.stderr)
    return status


def _record(path: str, r: Any, timeline: bool) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "file": path, "score": r.score, "label": r.label, "threshold": r.threshold,
        "threshold_source": r.threshold_source, "duration_s": r.duration_s,
    }  # fmt: skip
    if r.llr is not None:
        rec.update(llr=r.llr, p_bonafide=r.probability)
    if timeline:
        rec["windows"] = [{"start_s": w.start_s, "end_s": w.end_s, "score": w.score} for w in r.windows]
    return rec
