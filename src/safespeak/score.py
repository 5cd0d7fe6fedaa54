"""Batched, variable-length scoring to submission CSV files (`detect` and the server: `safespeak.inference`).

Every file is cut into fixed-length windows (`crop="full"`: windows over the whole file, scores
averaged; `crop="first"`: only the first window, the seed's first-4 s behaviour). The window length has
one owner, `scoring_window`: the length asked for, else the checkpoint's training crop, else the
model's input length (capped by a model's maximum input). Windows of many files are packed into one
batch, so files of any length are scored in batches. Every input ends up exactly once in
`ScoreResult.scores` or `ScoreResult.errors` under a unique id (see `safespeak.inputs`); nothing is
dropped. Scores follow the library convention: higher = bona fide, for every architecture.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from safespeak import SAMPLE_RATE, __version__
from safespeak.audio import AudioError, load_audio, repeat_pad, windows
from safespeak.errors import SafespeakError
from safespeak.inputs import ScoreItem, collect_inputs
from safespeak.progress import Progress
from safespeak.scorefiles import write_scores_csv

if TYPE_CHECKING:
    from safespeak.checkpoint import CheckpointMeta

__all__ = [
    "EvaluationCard",
    "ScoreItem",
    "ScoreOptions",
    "ScoreResult",
    "ScoreRun",
    "collect_inputs",
    "score_items",
    "score_to_files",
    "scoring_window",
    "write_score_outputs",
    "write_scores_csv",
]


@dataclass(frozen=True)
class ScoreOptions:
    """How files are turned into windows and scores.

    `window`/`hop` in samples (None: `scoring_window` decides, no overlap); `crop` is "full" or "first";
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
        for name in ("window", "hop"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 sample, got {value}")


@dataclass
class ScoreResult:
    """Scores by trial id, files that failed (id, path, reason) and window counts."""

    scores: dict[str, float] = field(default_factory=dict)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    n_windows: int = 0
    seconds: float = 0.0


def scoring_window(
    model: torch.nn.Module,
    meta: CheckpointMeta | None = None,
    requested: int | None = None,
    *,
    train_window: int | None = None,
) -> int:
    """The scoring window in samples, for `score`, `detect`, the dev EER, the server and the demo.

    `requested` (a `--window`) wins; else the training crop (`meta.train_window`, or `train_window` while
    training); else the model's input length. A model with a bounded input (Rawformer's positional
    table) caps it, so long files are scored in windows it accepts.
    """
    window = requested or (meta.train_window if meta is not None else None) or train_window
    window = int(window or model.input_length)
    cap = getattr(model, "max_input_length", None)
    return min(window, int(cap)) if cap else window


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


def _identity(batch: Any) -> Any:  # a named function: worker processes must pickle the collate_fn
    return batch


def _iter_windows(
    items: Sequence[ScoreItem], opts: ScoreOptions, window: int
) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    reader = _WindowReader(items, window, opts.hop or window, opts.crop)
    loader = torch.utils.data.DataLoader(
        reader, batch_size=None, shuffle=False, num_workers=opts.num_workers, collate_fn=_identity
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
    """Score files with a `CountermeasureModel`; windows of several files share a batch.

    Each item lands once in `scores` or in `errors` (unreadable audio, a non-finite model score).
    """
    opts = opts or ScoreOptions()
    ids = [i.trial_id for i in items]
    if len(set(ids)) != len(ids):
        raise ValueError("score_items needs unique trial ids")
    window = scoring_window(model, requested=opts.window)
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

    bar: Progress[Any] = Progress(total=len(items), desc="scoring", unit="file", enabled=progress)
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
        if not math.isfinite(s):
            result.errors.append((items[idx].trial_id, items[idx].path, "the model gave a non-finite score"))
            continue
        result.scores[items[idx].trial_id] = 1.0 / (1.0 + math.exp(-s)) if opts.sigmoid else s
    result.seconds = time.perf_counter() - t0
    return result


def write_error_report(path: str | Path, errors: Sequence[tuple[str, str, str]]) -> None:
    """Write the files that could not be scored as `ID,path,error`."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "path", "error"])
        w.writerows(sorted(errors))


EVALUATION_CARD_FORMAT = "safespeak-evaluation-card"
EVALUATION_CARD_SCHEMA = 2


@dataclass(frozen=True)
class EvaluationCard:
    """The sidecar describing how a score file was made (`<scores>.card.json`).

    `window_samples` is the window actually used and `window_source` who chose it: `requested`
    (`--window`), `checkpoint` (the training crop) or `model` (its input length).
    """

    checkpoint: str
    checkpoint_sha256: str
    arch: str
    model_config: dict[str, Any]
    crop: str
    window_samples: int
    window_source: str
    hop_samples: int
    sigmoid: bool
    input: str
    protocol_format: str | None
    subset: str | None
    n_inputs: int
    n_scored: int
    n_failed: int
    n_windows: int
    seconds: float
    options: dict[str, Any]
    sample_rate: int = SAMPLE_RATE
    score_convention: str = "higher = bona fide"
    safespeak_version: str = __version__
    schema_version: int = EVALUATION_CARD_SCHEMA
    # torchrun runs only (`safespeak.score_dist`): world size, shards, per-rank counts
    distributed: dict[str, Any] | None = None

    def to_json(self) -> str:
        """The card as indented JSON with a `format` tag."""
        return json.dumps({"format": EVALUATION_CARD_FORMAT, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str | Path = "<json>") -> EvaluationCard:
        """Parse a card; a foreign, newer or incomplete file raises `SafespeakError` naming the field."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SafespeakError(f"not valid JSON ({exc.msg})", path=source, line=exc.lineno) from None
        if not isinstance(doc, dict) or doc.get("format") != EVALUATION_CARD_FORMAT:
            got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise SafespeakError(f"not an evaluation card (field 'format' is {got!r})", path=source)
        if doc.get("schema_version") != EVALUATION_CARD_SCHEMA:
            raise SafespeakError(f"unsupported schema_version {doc.get('schema_version')!r}", path=source)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - names - {"format"})
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = sorted(name for name in required if name not in doc)
        if unknown or missing:
            what = "; ".join(
                f"{k} field(s) {', '.join(v)}" for k, v in (("unknown", unknown), ("missing", missing)) if v
            )
            raise SafespeakError(what, path=source)
        return cls(**{k: v for k, v in doc.items() if k != "format"})


def evaluation_card(
    checkpoint: str | Path,
    meta: CheckpointMeta,
    opts: ScoreOptions,
    window: int,
    result: ScoreResult,
    *,
    source: str,
    protocol_format: str | None,
    subset: str,
    n_inputs: int,
    window_source: str = "requested",
) -> EvaluationCard:
    """The card of one scoring run."""
    from safespeak.checkpoint import checkpoint_paths, file_sha256

    weights, _ = checkpoint_paths(checkpoint)
    return EvaluationCard(
        checkpoint=str(checkpoint),
        checkpoint_sha256=meta.weights_sha256 or file_sha256(weights),
        arch=meta.arch,
        model_config=dict(meta.model_config),
        crop=opts.crop,
        window_samples=window,
        window_source=window_source,
        hop_samples=opts.hop or window,
        sigmoid=opts.sigmoid,
        input=source,
        protocol_format=protocol_format,
        subset=subset if protocol_format else None,
        n_inputs=n_inputs,
        n_scored=len(result.scores),
        n_failed=len(result.errors),
        n_windows=result.n_windows,
        seconds=round(result.seconds, 3),
        options=asdict(opts),
    )


def _window_source(opts: ScoreOptions, meta: CheckpointMeta) -> str:
    if opts.window:
        return "requested"
    return "checkpoint" if meta.train_window else "model"


@dataclass(frozen=True)
class ScoreRun:
    """What `score_to_files` wrote and how many inputs were scored or failed (`errors`: id, path, why)."""

    output: Path
    card: Path
    errors_file: Path | None
    n_inputs: int
    n_scored: int
    errors: tuple[tuple[str, str, str], ...]

    @property
    def summary(self) -> str:
        """`scored N / failed M / total T`."""
        return f"scored {self.n_scored} / failed {len(self.errors)} / total {self.n_inputs}"


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
    items = collect_inputs(
        source, protocol_format=protocol_format, subset=subset, audio_dir=audio_dir, audio_ext=audio_ext
    )
    model, meta = load_checkpoint(checkpoint, map_location=opts.device)
    window = scoring_window(model, meta, opts.window)
    result = score_items(model, items, replace(opts, window=window), progress=progress)
    card = evaluation_card(
        checkpoint, meta, replace(opts, window=window), window, result, source=str(source),
        protocol_format=protocol_format, subset=subset, n_inputs=len(items),
        window_source=_window_source(opts, meta),
    )  # fmt: skip
    return write_score_outputs(output, result, card, len(items))


def write_score_outputs(
    output: str | Path, result: ScoreResult, card: EvaluationCard, n_inputs: int
) -> ScoreRun:
    """Write the `ID,score` CSV, `<stem>.card.json` and (if any input failed) `<stem>.errors.csv`."""
    out = Path(output)
    write_scores_csv(out, result.scores)
    card_path = out.with_name(out.stem + ".card.json")
    card_path.write_text(card.to_json())
    err_path = None
    if result.errors:
        err_path = out.with_name(out.stem + ".errors.csv")
        write_error_report(err_path, result.errors)
    return ScoreRun(out, card_path, err_path, n_inputs, len(result.scores), tuple(result.errors))
