"""Batched, variable-length scoring to submission CSV files, and single-file detection.

Every file is cut into fixed-length windows (`crop="full"`: windows over the whole file, scores
averaged; `crop="first"`: only the first window, the seed's first-4 s behaviour). Windows of many files
are packed into one batch, so files of any length are scored in batches. Files that cannot be read
are reported, never dropped: `ScoreResult.errors` lists them and the CLI writes an error report.
Scores follow the library convention: higher = bona fide, for every architecture.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safespeak import SAMPLE_RATE, __version__
from safespeak.audio import AudioError, load_audio, repeat_pad, windows

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif")

__all__ = [
    "ScoreItem",
    "ScoreOptions",
    "ScoreResult",
    "collect_inputs",
    "score_items",
    "write_scores_csv",
]


@dataclass(frozen=True)
class ScoreItem:
    """One file to score: its id (kept as a string) and its path."""

    trial_id: str
    path: str


@dataclass(frozen=True)
class ScoreOptions:
    """How files are turned into windows and scores.

    `window`/`hop` in samples (None: the model's input length, no overlap); `crop` is "full" or "first";
    `sigmoid` maps scores through a sigmoid (probability-like, same ordering).
    """

    crop: str = "full"
    window: int | None = None
    hop: int | None = None
    batch_size: int = 16
    sigmoid: bool = False
    num_workers: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.crop not in {"full", "first"}:
            raise ValueError(f"crop must be 'full' or 'first', got {self.crop!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class ScoreResult:
    """Scores by trial id, files that failed (id, path, reason) and window counts."""

    scores: dict[str, float] = field(default_factory=dict)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    n_windows: int = 0
    seconds: float = 0.0


def collect_inputs(
    source: str | Path,
    *,
    protocol_format: str | None = None,
    subset: str = "all",
    audio_dir: str | Path | None = None,
    audio_ext: str = ".flac",
) -> list[ScoreItem]:
    """Files to score from a directory, a protocol (with `protocol_format`) or a list file.

    - directory: every audio file below it; id = relative path without suffix (the stem in a flat
      folder);
    - protocol: `safespeak.protocols.read_protocol`; audio paths from the protocol or `audio_dir`;
    - list file: one path per line, or `id path` per line; blank lines and `#` comments are skipped.
    """
    src = Path(source)
    if src.is_dir():
        return _items_from_dir(src)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: input not found (expected a directory, protocol or list file)")
    if protocol_format:
        return _items_from_protocol(src, protocol_format, subset, audio_dir, audio_ext)
    return _items_from_list(src)


def _items_from_dir(root: Path) -> list[ScoreItem]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ValueError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
    # relative path without suffix: the stem for a flat folder (ASVspoof), and the same ids as the
    # `folder` protocol format (bonafide/x, spoof/A01/y) for class folders
    ids = [p.relative_to(root).with_suffix("").as_posix() for p in files]
    return [ScoreItem(i, str(p)) for i, p in zip(ids, files, strict=True)]


def _items_from_protocol(
    path: Path, fmt: str, subset: str, audio_dir: str | Path | None, audio_ext: str
) -> list[ScoreItem]:
    from safespeak.protocols import read_protocol

    trials = read_protocol(path, fmt, subset=subset, audio_dir=audio_dir, audio_ext=audio_ext)
    items = []
    for t in trials:
        p = t.path or (str(Path(audio_dir) / f"{t.trial_id}{audio_ext}") if audio_dir else None)
        if p is None:
            raise ValueError(f"{path}: trial {t.trial_id} has no audio path; pass --audio-dir")
        items.append(ScoreItem(t.trial_id, p))
    return items


def _items_from_list(path: Path) -> list[ScoreItem]:
    items = []
    base = path.parent
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) == 1:
            p = Path(parts[0])
            items.append(ScoreItem(p.stem, str(p if p.is_absolute() else base / p)))
        elif len(parts) == 2:
            p = Path(parts[1])
            items.append(ScoreItem(parts[0], str(p if p.is_absolute() else base / p)))
        else:
            raise ValueError(f"{path}:{n}: expected 'path' or 'id path', got {len(parts)} fields")
    ids = [i.trial_id for i in items]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if dupes:
        raise ValueError(f"{path}: {len(dupes)} duplicate ids, e.g. {', '.join(dupes[:5])}")
    return items


class _WindowReader(torch.utils.data.Dataset):
    """Reads one file and cuts it into windows; a failure is returned, not raised."""

    def __init__(self, items: Sequence[ScoreItem], window: int, hop: int, crop: str) -> None:
        self.items, self.window, self.hop, self.crop = items, window, hop, crop

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        item = self.items[i]
        try:
            x = load_audio(item.path)
        except AudioError as exc:
            return i, None, exc.reason
        except Exception as exc:  # a decoder crash on one file must not end a 10,000-file run
            return i, None, f"{type(exc).__name__}: {exc}"
        if self.crop == "first":
            return i, repeat_pad(x, self.window)[None, :], None
        return i, windows(x, self.window, self.hop), None  # (N, window)


def _iter_windows(
    items: Sequence[ScoreItem], opts: ScoreOptions, window: int
) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    reader = _WindowReader(items, window, opts.hop or window, opts.crop)
    loader = torch.utils.data.DataLoader(
        reader, batch_size=None, shuffle=False, num_workers=opts.num_workers, collate_fn=lambda b: b
    )
    yield from loader


@torch.inference_mode()
def score_items(
    model: torch.nn.Module,
    items: Sequence[ScoreItem],
    opts: ScoreOptions | None = None,
    *,
    progress: bool = True,
) -> ScoreResult:
    """Score files with a `CountermeasureModel`; windows of several files share a batch."""
    from tqdm.auto import tqdm

    opts = opts or ScoreOptions()
    window = int(opts.window or model.input_length)
    # a model with a bounded input (Rawformer's positional table) scores long files in windows it accepts
    window = min(window, int(getattr(model, "max_input_length", None) or window))
    model = model.to(opts.device).eval()
    result = ScoreResult()
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    pending: list[tuple[int, np.ndarray]] = []  # (item index, (window,) array)
    t0 = time.perf_counter()

    def flush() -> None:
        batch = torch.from_numpy(np.stack([w for _, w in pending])).to(opts.device)  # (B, window)
        s = model.score(batch).float().cpu().numpy()  # (B,)
        for (idx, _), v in zip(pending, s, strict=True):
            sums[idx] = sums.get(idx, 0.0) + float(v)
            counts[idx] = counts.get(idx, 0) + 1
        result.n_windows += len(pending)
        pending.clear()

    bar = tqdm(total=len(items), desc="scoring", unit="file", disable=not progress)
    for idx, wins, err in _iter_windows(items, opts, window):
        bar.update(1)
        if wins is None:
            result.errors.append((items[idx].trial_id, items[idx].path, str(err)))
            continue
        for w in wins:
            pending.append((idx, w))
            if len(pending) >= opts.batch_size:
                flush()
    if pending:
        flush()
    bar.close()
    for idx, total in sums.items():
        s = total / counts[idx]
        result.scores[items[idx].trial_id] = 1.0 / (1.0 + math.exp(-s)) if opts.sigmoid else s
    result.seconds = time.perf_counter() - t0
    return result


def write_scores_csv(path: str | Path, scores: dict[str, float]) -> None:
    """Write `ID,score` rows sorted by id (ids as strings, scores with full float precision)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "score"])
        for tid in sorted(scores):
            w.writerow([tid, repr(float(scores[tid]))])


def write_error_report(path: str | Path, errors: Sequence[tuple[str, str, str]]) -> None:
    """Write the files that could not be scored as `ID,path,error`."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "path", "error"])
        w.writerows(sorted(errors))


def evaluation_card(
    checkpoint: str | Path,
    meta: dict[str, Any],
    opts: ScoreOptions,
    window: int,
    result: ScoreResult,
    *,
    source: str,
    protocol_format: str | None,
    subset: str,
    n_inputs: int,
) -> dict[str, Any]:
    """The sidecar describing how a score file was made."""
    from safespeak.checkpoint import checkpoint_paths, file_sha256

    weights, _ = checkpoint_paths(checkpoint)
    return {
        "format": "safespeak-evaluation-card/1",
        "safespeak_version": __version__,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(weights),
        "arch": meta.get("arch"),
        "model_config": meta.get("model_config", {}),
        "crop": opts.crop,
        "window_samples": window,
        "hop_samples": opts.hop or window,
        "sample_rate": SAMPLE_RATE,
        "sigmoid": opts.sigmoid,
        "score_convention": "higher = bona fide",
        "input": source,
        "protocol_format": protocol_format,
        "subset": subset if protocol_format else None,
        "n_inputs": n_inputs,
        "n_scored": len(result.scores),
        "n_failed": len(result.errors),
        "n_windows": result.n_windows,
        "seconds": round(result.seconds, 3),
        "options": asdict(opts),
    }


def default_window(model: torch.nn.Module, meta: dict[str, Any]) -> int:
    """Scoring window: the checkpoint's training crop if recorded, else the model's input length."""
    return int(meta.get("input_length") or model.input_length)


def register_cli(sub: argparse._SubParsersAction) -> None:
    """`safespeak score` and `safespeak detect`."""
    p = sub.add_parser("score", help="score a directory, protocol or file list into an ID,score CSV")
    p.add_argument("--checkpoint", required=True, help="safespeak checkpoint (dir, .safetensors or .json)")
    p.add_argument("--input", required=True, help="audio directory, protocol file or list file")
    p.add_argument("--output", required=True, help="output CSV (ID,score); card and errors go beside it")
    p.add_argument("--protocol-format", default=None, help="read --input as a protocol of this format")
    p.add_argument("--subset", default="all", help="protocol subset (2021: eval|progress|hidden|all)")
    p.add_argument("--audio-dir", default=None, help="audio folder for protocol trials")
    p.add_argument("--audio-ext", default=".flac", help="audio suffix for protocol trials (default .flac)")
    _add_scoring_options(p)
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any file failed")
    p.set_defaults(func=_cmd_score)

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
    _add_scoring_options(d)
    d.set_defaults(func=_cmd_detect)


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--crop",
        choices=["full", "first"],
        default="full",
        help="full: windows over the whole file, averaged (default); first: first window only",
    )
    p.add_argument("--window", type=int, default=None, help="window length in samples (default: model's)")
    p.add_argument("--hop", type=int, default=None, help="hop between windows in samples (default: window)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    p.add_argument("--sigmoid", action="store_true", help="map scores through a sigmoid")
    p.add_argument("--workers", type=int, default=0, help="file-reading worker processes")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def _options(args: argparse.Namespace) -> ScoreOptions:
    return ScoreOptions(
        crop=args.crop,
        window=args.window,
        hop=args.hop,
        batch_size=args.batch_size,
        sigmoid=args.sigmoid,
        num_workers=args.workers,
        device=args.device,
    )


def _cmd_score(args: argparse.Namespace) -> int:
    from safespeak.checkpoint import load_checkpoint

    model, meta = load_checkpoint(args.checkpoint, map_location=args.device)
    opts = _options(args)
    window = opts.window or default_window(model, meta)
    opts = ScoreOptions(**{**asdict(opts), "window": window})
    items = collect_inputs(
        args.input,
        protocol_format=args.protocol_format,
        subset=args.subset,
        audio_dir=args.audio_dir,
        audio_ext=args.audio_ext,
    )
    result = score_items(model, items, opts)
    out = Path(args.output)
    write_scores_csv(out, result.scores)
    card = evaluation_card(
        args.checkpoint,
        meta,
        opts,
        window,
        result,
        source=str(args.input),
        protocol_format=args.protocol_format,
        subset=args.subset,
        n_inputs=len(items),
    )
    card_path = out.with_name(out.stem + ".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"scored {len(result.scores)} of {len(items)} files -> {out} (card: {card_path})")
    if result.errors:
        err_path = out.with_name(out.stem + ".errors.csv")
        write_error_report(err_path, result.errors)
        print(f"{len(result.errors)} file(s) could not be scored; see {err_path}", file=sys.stderr)
        for tid, path, reason in result.errors[:5]:
            print(f"  {tid}: {path}: {reason}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from safespeak.calibrate import Calibration
    from safespeak.checkpoint import load_checkpoint

    model, meta = load_checkpoint(args.checkpoint, map_location=args.device)
    opts = _options(args)
    opts = ScoreOptions(
        **{**asdict(opts), "window": opts.window or default_window(model, meta), "sigmoid": False}
    )
    items = [ScoreItem(str(i), f) for i, f in enumerate(args.files)]  # two files may share a name
    result = score_items(model, items, opts, progress=False)
    cal = Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None
    threshold = args.threshold
    if threshold is None:
        threshold = cal.threshold() if cal else float(meta.get("dev_eer_threshold", 0.0))
    status = 0
    for item in items:
        if item.trial_id not in result.scores:
            reason = next(r for i, _, r in result.errors if i == item.trial_id)
            print(f"{item.path}: ERROR {reason}", file=sys.stderr)
            status = 1
            continue
        s = result.scores[item.trial_id]
        rec: dict[str, Any] = {
            "file": item.path,
            "score": s,
            "label": "bonafide" if s >= threshold else "spoof",
        }
        if cal:
            rec["llr"] = cal.llr(s)
            rec["p_bonafide"] = cal.probability(s)
        if args.json:
            print(json.dumps(rec))
        else:
            prob = f"  P(bona fide)={rec['p_bonafide']:.3f}" if cal else ""
            print(f"{item.path}: {rec['label']:<8} score={s:+.4f}{prob}")
    return status
