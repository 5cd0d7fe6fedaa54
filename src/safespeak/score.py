"""Batched, variable-length scoring to submission CSV files, and single-file detection.

Every file is cut into fixed-length windows (`crop="full"`: windows over the whole file, scores
averaged; `crop="first"`: only the first window, the seed's first-4 s behaviour). Windows of many files
are packed into one batch, so files of any length are scored in batches. Files that cannot be read
are reported, never dropped: `ScoreResult.errors` lists them and the CLI writes an error report.
Scores follow the library convention: higher = bona fide, for every architecture.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safespeak import SAMPLE_RATE, __version__
from safespeak.audio import AudioError, load_audio, repeat_pad, windows
from safespeak.scorefiles import write_scores_csv

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif")

__all__ = [
    "Detection",
    "ScoreItem",
    "ScoreOptions",
    "ScoreResult",
    "ScoreRun",
    "collect_inputs",
    "detect_files",
    "score_items",
    "score_to_files",
    "write_score_outputs",
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


@dataclass(frozen=True)
class ScoreRun:
    """What `score_to_files` wrote and how many inputs were scored or failed (`errors`: id, path, why)."""

    output: Path
    card: Path
    errors_file: Path | None
    n_inputs: int
    n_scored: int
    errors: tuple[tuple[str, str, str], ...]


def score_to_files(
    checkpoint: str | Path,
    source: str | Path,
    output: str | Path,
    *,
    options: ScoreOptions | None = None,
    protocol_format: str | None = None,
    subset: str = "all",
    audio_dir: str | Path | None = None,
    audio_ext: str = ".flac",
    progress: bool = True,
) -> ScoreRun:
    """The `safespeak score` workflow: checkpoint + inputs -> `ID,score` CSV, evaluation card, error report.

    The card goes to `<output stem>.card.json`, failures (if any) to `<output stem>.errors.csv`.
    """
    from safespeak.checkpoint import load_checkpoint

    opts = options or ScoreOptions()
    model, meta = load_checkpoint(checkpoint, map_location=opts.device)
    window = opts.window or default_window(model, meta)
    opts = replace(opts, window=window)
    items = collect_inputs(
        source, protocol_format=protocol_format, subset=subset, audio_dir=audio_dir, audio_ext=audio_ext
    )
    result = score_items(model, items, opts, progress=progress)
    card = evaluation_card(
        checkpoint, meta, opts, window, result, source=str(source), protocol_format=protocol_format,
        subset=subset, n_inputs=len(items),
    )  # fmt: skip
    return write_score_outputs(output, result, card, len(items))


def write_score_outputs(
    output: str | Path, result: ScoreResult, card: dict[str, Any], n_inputs: int
) -> ScoreRun:
    """Write the `ID,score` CSV, `<stem>.card.json` and (if any failed) `<stem>.errors.csv`."""
    out = Path(output)
    write_scores_csv(out, result.scores)
    card_path = out.with_name(out.stem + ".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    err_path = None
    if result.errors:
        err_path = out.with_name(out.stem + ".errors.csv")
        write_error_report(err_path, result.errors)
    return ScoreRun(out, card_path, err_path, n_inputs, len(result.scores), tuple(result.errors))


@dataclass(frozen=True)
class Detection:
    """One file's verdict: score (higher = bona fide), label, calibrated LLR/probability, or an error."""

    path: str
    score: float | None = None
    label: str | None = None
    llr: float | None = None
    p_bonafide: float | None = None
    error: str | None = None


def detect_files(
    checkpoint: str | Path,
    files: Sequence[str],
    options: ScoreOptions | None = None,
    threshold: float | None = None,
) -> list[Detection]:
    """The `safespeak detect` workflow: score each file and decide a label (one `Detection` per file)."""
    from safespeak.calibrate import Calibration
    from safespeak.checkpoint import load_checkpoint

    opts = options or ScoreOptions()
    model, meta = load_checkpoint(checkpoint, map_location=opts.device)
    opts = replace(opts, window=opts.window or default_window(model, meta), sigmoid=False)
    items = [ScoreItem(str(i), f) for i, f in enumerate(files)]  # two files may share a name
    result = score_items(model, items, opts, progress=False)
    cal = Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None
    if threshold is None:
        threshold = cal.threshold() if cal else float(meta.get("dev_eer_threshold", 0.0))
    reasons = {i: r for i, _, r in result.errors}
    out = []
    for item in items:
        if item.trial_id not in result.scores:
            out.append(Detection(item.path, error=reasons[item.trial_id]))
            continue
        s = result.scores[item.trial_id]
        label = "bonafide" if s >= threshold else "spoof"
        if cal:
            out.append(Detection(item.path, s, label, float(cal.llr(s)), float(cal.probability(s))))
        else:
            out.append(Detection(item.path, s, label))
    return out
