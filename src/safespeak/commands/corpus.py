"""`safespeak corpus build|audit|fetch`: thin wrappers over the corpus library functions."""

from __future__ import annotations

import argparse
import json
import sys
import time

from safespeak.commands._common import Subparsers


def _build(args: argparse.Namespace) -> int:
    from safespeak.corpus.build import build_corpus
    from safespeak.corpus.sources import SourceUnavailable

    start = time.perf_counter()
    try:
        info = build_corpus(
            args.out, size=args.size, seed=args.seed, progress=not args.quiet, workers=args.workers
        )
    except SourceUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from safespeak.corpus.summary import build_lines

    print("\n".join(build_lines(info, time.perf_counter() - start)))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from safespeak.corpus.audit import audit_corpus

    report = audit_corpus(args.dir)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"trivial-feature logistic regression, train n={report['n_train']}, eval n={report['n_eval']}")
        print(f"eval EER {100 * report['eer']:.1f} %  (must stay >= {100 * report['min_eer']:.0f} %)")
        for name, eer in report["single_feature_eer"].items():  # type: ignore[union-attr]
            print(f"  {name:18s} alone: EER {100 * eer:5.1f} %")
        for attack, eer in report["per_attack_eer"].items():  # type: ignore[union-attr]
            print(f"  {attack:18s} vs bona fide: EER {100 * eer:5.1f} %")
    return 0 if report["passed"] else 3


def _fetch(args: argparse.Namespace) -> int:
    from safespeak.corpus.sources import SourceUnavailable
    from safespeak.corpus.summary import fetch_lines, source_stats

    try:
        stats = source_stats()
    except SourceUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(fetch_lines(stats)))
    return 0


def register(sub: Subparsers) -> None:
    """Add `corpus build`, `corpus audit` and `corpus fetch`."""
    corpus = sub.add_parser(
        "corpus",
        help="build and audit the offline real-speech spoofing corpus",
        description="Offline spoofing corpus from Debian speech packages and local TTS.",
    )
    csub = corpus.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)

    build = csub.add_parser(
        "build",
        help="build (or reuse) the corpus under --out",
        description="Fetch the bona fide packages, synthesise spoofs, write an "
        "ASVspoof 2019 LA-like tree with protocols and corpus.json.",
    )
    build.add_argument("--out", required=True, help="output folder (reused when seed/size/versions match)")
    build.add_argument(
        "--size",
        choices=["mini", "full"],
        default="mini",
        help="mini: ~3,000 files in minutes; full: every bona fide utterance (default mini)",
    )
    build.add_argument("--seed", type=int, default=0, help="selection and synthesis seed (default 0)")
    build.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_build)

    audit = csub.add_parser(
        "audit",
        help="shortcut audit: trivial-feature classifier EER on eval",
        description="Logistic regression on duration, RMS, peak, roll-off, bandwidth "
        "and leading silence, fitted on train; exit code 3 when eval EER < 30 %%.",
    )
    audit.add_argument("dir", help="corpus folder written by `safespeak corpus build`")
    audit.add_argument("--json", action="store_true", help='print {"eer": fraction, ...} as JSON')
    audit.set_defaults(func=_audit)

    fetch = csub.add_parser(
        "fetch",
        help="download and unpack the bona fide packages into the cache",
        description="apt-get download + dpkg-deb -x of the source packages into "
        "$SAFESPEAK_CACHE (default ~/.cache/safespeak), then index them.",
    )
    fetch.set_defaults(func=_fetch)
