"""The public inference API: a checkpoint becomes a `Detector` that scores files and waveforms.

`Detector.from_checkpoint(path)` loads the model once and fixes the three values that decide a verdict:
the scoring window (the checkpoint's window policy, `safespeak.score`), the decision threshold (see
`ThresholdPolicy`) and the backend (torch, or the same model exported to ONNX and run by onnxruntime).
Scores are those of `safespeak score` (`crop="full"`): the file is cut into windows by
`safespeak.audio.windows`, each window gets the bona fide logit, and the file's score is their mean.

>>> det = Detector.from_checkpoint("runs/demo/model")  # doctest: +SKIP
>>> r = det.score_file("clip.wav")  # doctest: +SKIP
>>> r.label, r.score, [w.score for w in r.windows]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from safespeak import SAMPLE_RATE
from safespeak.audio import load_audio, repeat_pad, resample, window_starts, windows
from safespeak.calibrate import NO_THRESHOLD, ThresholdPolicy  # the threshold's owner; re-exported
from safespeak.errors import UsageError

__all__ = [
    "BACKENDS",
    "NO_THRESHOLD",
    "DetectionResult",
    "Detector",
    "FileDetection",
    "ModelCard",
    "ThresholdPolicy",
    "WindowScore",
    "detect_paths",
]

BACKENDS = ("torch", "onnx")

WindowScorer = Callable[[np.ndarray], np.ndarray]  # (B, window) float32 -> (B,) bona fide scores


@dataclass(frozen=True)
class WindowScore:
    """One scoring window: where it lies in the input (seconds) and its bona fide score."""

    start_s: float
    end_s: float
    score: float


@dataclass(frozen=True)
class DetectionResult:
    """The verdict on one input.

    `score`: mean bona fide score of the windows (higher = bona fide, as in `safespeak score`);
    `probability`/`llr`: P(bona fide) and log-likelihood ratio, only with a calibrated checkpoint;
    `label`: "bonafide" / "spoof", or None when there is no threshold (`reason` says why);
    `threshold_source`: "calibration", "dev-eer" (the checkpoint's dev-EER threshold), "override"
    (given by the caller) or "none".
    """

    name: str
    score: float
    label: str | None
    probability: float | None
    llr: float | None
    threshold: float | None
    threshold_source: str
    reason: str | None
    duration_s: float
    windows: tuple[WindowScore, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (windows as a list of objects)."""
        d = asdict(self)
        d["windows"] = [asdict(w) for w in self.windows]
        return d


@dataclass(frozen=True)
class ModelCard:
    """What a `Detector` runs (served as `GET /v1/model`)."""

    arch: str
    checkpoint_sha256: str | None
    sample_rate: int
    window_samples: int
    hop_samples: int
    calibrated: bool
    threshold: float | None
    threshold_source: str
    backend: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_window(model: Any, meta: Any | None, requested: int | None) -> int:
    """The scoring window in samples: `safespeak.score.scoring_window`, the one owner of that policy.

    `meta` is the checkpoint's `CheckpointMeta`, or None for a bare model (its input length).
    """
    from safespeak.score import scoring_window

    return int(scoring_window(model, meta, requested))


def _torch_scorer(model: Any, device: str) -> WindowScorer:
    import torch

    @torch.inference_mode()
    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(device)  # (B, window)
        return model.score(x).float().cpu().numpy()  # (B,)

    return run


def _onnx_scorer(model: Any, meta: Any, window: int) -> WindowScorer:
    import onnxruntime as ort
    import torch

    from safespeak.export import onnx_bytes

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()  # the same CPU budget as the torch backend
    data = onnx_bytes(model, meta, window=window)
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {name: batch})[0][:, 1]  # logits (B, 2) -> bona fide column

    return run


class Detector:
    """A loaded model with its window and threshold policy; scores files, waveforms and batches.

    Not thread-safe for concurrent calls on one instance (one model, one backend session); the server
    funnels every request through a single worker.
    """

    def __init__(
        self,
        scorer: WindowScorer,
        *,
        window: int,
        hop: int | None = None,
        policy: ThresholdPolicy,
        card: ModelCard,
        batch_size: int = 16,
        crop: str = "full",
    ) -> None:
        if window < 1 or batch_size < 1:
            raise UsageError(f"window and batch_size must be >= 1, got {window} and {batch_size}")
        if crop not in ("full", "first"):
            raise UsageError(f"crop must be 'full' or 'first', got {crop!r}")
        self.crop = crop
        self._scorer = scorer
        self.window = int(window)
        self.hop = int(hop or window)
        self.policy = policy
        self.card = card
        self.batch_size = int(batch_size)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str = "cpu",
        *,
        backend: str = "torch",
        window: int | None = None,
        hop: int | None = None,
        threshold: float | None = None,
        batch_size: int = 16,
        crop: str = "full",
    ) -> Detector:
        """Load a checkpoint once. `backend="onnx"` exports it in memory and runs onnxruntime (CPU).

        `crop="first"` scores only the first window (as `safespeak score --crop first`).
        """
        from safespeak.checkpoint import file_sha256, load_checkpoint

        if backend not in BACKENDS:
            raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "onnx" and device != "cpu":
            raise UsageError("the onnx backend runs on the CPU; use --device cpu or --backend torch")
        model, meta = load_checkpoint(path, map_location=device)
        win = resolve_window(model, meta, window)
        policy = ThresholdPolicy.from_meta(meta, threshold)
        sha = meta.get("weights_sha256")
        if sha is None:
            from safespeak.checkpoint import checkpoint_paths

            sha = file_sha256(checkpoint_paths(path)[0])
        card = ModelCard(
            arch=str(meta.get("arch")),
            checkpoint_sha256=sha,
            sample_rate=SAMPLE_RATE,
            window_samples=win,
            hop_samples=int(hop or win),
            calibrated=bool(meta.get("calibration")),
            threshold=policy.threshold,
            threshold_source=policy.source,
            backend=backend,
        )
        scorer = _onnx_scorer(model, meta, win) if backend == "onnx" else _torch_scorer(model, device)
        return cls(scorer, window=win, hop=hop, policy=policy, card=card, batch_size=batch_size, crop=crop)

    def score_file(self, path: str | os.PathLike[str]) -> DetectionResult:
        """Read (any rate, mixed to mono) and score one file; `AudioError` names it when unreadable."""
        return self.score_batch([load_audio(path)], [str(path)])[0]

    def score_waveform(self, x: np.ndarray, sr: int = SAMPLE_RATE, name: str = "waveform") -> DetectionResult:
        """Score a (T,) or (T, channels) signal at rate `sr` (mixed to mono, resampled to 16 kHz)."""
        a = np.asarray(x, dtype=np.float32)
        if a.ndim == 2:
            a = a.mean(axis=1)
        if a.ndim != 1:
            raise UsageError(f"{name}: expected a (T,) or (T, channels) waveform, got shape {a.shape}")
        return self.score_batch([resample(a, int(sr))], [name])[0]

    def score_batch(self, waveforms: Sequence[np.ndarray], names: Sequence[str]) -> list[DetectionResult]:
        """Score many 16 kHz (T,) waveforms; the windows of all of them share forward passes."""
        if len(waveforms) != len(names):
            raise UsageError(f"got {len(waveforms)} waveforms but {len(names)} names")
        spans, chunks = [], []
        for x, name in zip(waveforms, names, strict=True):
            if x.ndim != 1 or x.shape[0] == 0 or not np.isfinite(x).all():
                raise UsageError(f"{name}: need a non-empty, finite (T,) waveform, got shape {x.shape}")
            n = x.shape[0]
            if n <= self.window or self.crop == "first":  # one repeat-padded/cut window, as `score_items`
                wins, starts = repeat_pad(x, self.window)[None, :], [0]
            else:
                wins, starts = windows(x, self.window, self.hop), window_starts(n, self.window, self.hop)
            chunks.append(wins.astype(np.float32, copy=False))  # (N_i, window)
            spans.append(
                [(s / SAMPLE_RATE, min(s + self.window, n) / SAMPLE_RATE) for s in starts]
            )  # seconds
        scores = self._run(np.concatenate(chunks))  # (sum N_i,)
        out, k = [], 0
        for x, name, span in zip(waveforms, names, spans, strict=True):
            s = [float(v) for v in scores[k : k + len(span)]]
            k += len(span)
            out.append(self._result(name, x.shape[0] / SAMPLE_RATE, span, s))
        return out

    def _run(self, wins: np.ndarray) -> np.ndarray:
        parts = [
            np.asarray(self._scorer(np.ascontiguousarray(wins[i : i + self.batch_size])), dtype=np.float32)
            for i in range(0, wins.shape[0], self.batch_size)
        ]
        return np.concatenate(parts)

    def _result(
        self, name: str, duration: float, span: list[tuple[float, float]], scores: list[float]
    ) -> DetectionResult:
        score = sum(scores) / len(scores)  # the mean `score_items` writes
        if not math.isfinite(score):
            raise RuntimeError(f"{name}: the model gave a non-finite score")
        label, prob, llr, reason = self.policy.decide(score)
        wins = tuple(WindowScore(a, b, v) for (a, b), v in zip(span, scores, strict=True))
        return DetectionResult(
            name, score, label, prob, llr, self.policy.threshold, self.policy.source, reason, duration, wins
        )


@dataclass(frozen=True)
class FileDetection:
    """One input of `detect_paths`: its path and either a result or why it could not be scored."""

    path: str
    result: DetectionResult | None = None
    error: str | None = None


def detect_paths(
    checkpoint: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    *,
    threshold: float | None = None,
    window: int | None = None,
    hop: int | None = None,
    crop: str = "full",
    batch_size: int = 16,
    device: str = "cpu",
    backend: str = "torch",
    workers: int = 0,
    files_per_batch: int = 32,
) -> list[FileDetection]:
    """The `safespeak detect` workflow: files (directories: their audio files) -> one result or error each.

    Files are read by `workers` threads (0: in turn); unreadable files become errors and the others are
    still scored; `files_per_batch` files at a time share forward passes.
    """
    from concurrent.futures import ThreadPoolExecutor

    from safespeak.audio import AudioError
    from safespeak.inputs import expand_paths

    items = expand_paths(paths)
    det = Detector.from_checkpoint(
        checkpoint, device, backend=backend, window=window, hop=hop, threshold=threshold,
        batch_size=batch_size, crop=crop,
    )  # fmt: skip

    def read(path: str) -> np.ndarray | str:
        try:
            return load_audio(path)
        except AudioError as exc:
            return exc.reason
        except Exception as exc:  # a decoder crash on one file must not end the run
            return f"{type(exc).__name__}: {exc}"

    out: list[FileDetection] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for i in range(0, len(items), files_per_batch):
            group = items[i : i + files_per_batch]
            data = list(pool.map(read, [it.path for it in group]))
            good = [(it, x) for it, x in zip(group, data, strict=True) if not isinstance(x, str)]
            results = iter(det.score_batch([x for _, x in good], [it.path for it, _ in good]) if good else [])
            for it, x in zip(group, data, strict=True):
                out.append(
                    FileDetection(it.path, error=x)
                    if isinstance(x, str)
                    else FileDetection(it.path, next(results))
                )
    return out
