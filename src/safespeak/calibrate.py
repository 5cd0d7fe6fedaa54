"""Score calibration (logistic regression to log-likelihood ratios) and score-level fusion.

Fusion and calibration always align score sets by trial id, never by row order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from safespeak.errors import SafespeakError, UsageError

__all__ = [
    "NO_THRESHOLD",
    "Calibration",
    "FusionResult",
    "ThresholdPolicy",
    "align_scores",
    "calibrate_files",
    "fit_calibration",
    "fit_fusion",
    "fuse_files",
    "fuse_scores",
]


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Calibration:
    """Affine map from raw score to log-likelihood ratio: llr = scale·score + offset.

    `prior` is the bona fide prior the map was trained for (only the weighting of the two classes).
    """

    scale: float
    offset: float
    prior: float = 0.5

    def llr(self, score: float | np.ndarray) -> float | np.ndarray:
        """Natural-log likelihood ratio (bona fide vs spoof)."""
        return self.scale * score + self.offset

    def probability(self, score: float | np.ndarray, prior: float = 0.5) -> float | np.ndarray:
        """Posterior P(bona fide | score) for a bona fide prior `prior`."""
        return 1.0 / (1.0 + np.exp(-(self.llr(score) + _logit(prior))))

    def threshold(self, prior: float = 0.5) -> float:
        """Raw score where the posterior is 1/2 (the Bayes decision for equal costs)."""
        return (-_logit(prior) - self.offset) / self.scale

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        return cls(float(d["scale"]), float(d["offset"]), float(d.get("prior", 0.5)))


# what `detect` and the server say when a checkpoint gives no decision threshold
NO_THRESHOLD = (
    "no label: the checkpoint has neither a calibration nor a dev-EER threshold "
    "(pass --threshold, or run `safespeak calibrate --checkpoint`)"
)
BONAFIDE, SPOOF = "bonafide", "spoof"


@dataclass(frozen=True)
class ThresholdPolicy:
    """Where a label comes from: calibration if present, else the checkpoint's dev-EER threshold, else none.

    With a calibration the label is the Bayes decision at prior 0.5 (probability >= 0.5), i.e. the raw
    score against `Calibration.threshold()`, and the probability is reported too.
    """

    threshold: float | None
    source: str
    calibration: Mapping[str, float] | None = None

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | Any, override: float | None = None) -> ThresholdPolicy:
        """The policy of a checkpoint's metadata (`CheckpointMeta` or a schema-1 dict)."""
        cal = meta.get("calibration") or None
        if override is not None:
            return cls(float(override), "override", cal)
        if cal:
            return cls(float(Calibration.from_dict(cal).threshold()), "calibration", cal)
        thr = meta.get("threshold")
        if thr is None:
            thr = meta.get("dev_eer_threshold")  # schema-1 sidecars
        if thr is not None:
            return cls(float(thr), "dev-eer", None)
        return cls(None, "none", None)

    def decide(self, score: float) -> tuple[str | None, float | None, float | None, str | None]:
        """(label, probability, llr, reason) for a raw score."""
        prob = llr = None
        if self.calibration:
            cal = Calibration.from_dict(self.calibration)
            prob, llr = float(cal.probability(score)), float(cal.llr(score))
        if self.threshold is None:
            return None, prob, llr, NO_THRESHOLD
        return (BONAFIDE if score >= self.threshold else SPOOF), prob, llr, None


def _weighted_logreg(x: np.ndarray, y: np.ndarray, prior: float, iters: int = 50) -> np.ndarray:
    """Prior-weighted logistic regression by Newton's method; x (N, D) without bias, y in {0,1}.

    Returns weights (D+1,), the last one the bias, of the log-odds minus logit(prior) (an LLR).
    """
    n1, n0 = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    w_obs = np.where(y == 1, prior / n1, (1 - prior) / n0)  # each class weighs its prior in total
    xb = np.hstack([x, np.ones((x.shape[0], 1))])  # (N, D+1)
    off = _logit(prior)
    theta = np.zeros(xb.shape[1])
    for _ in range(iters):
        z = xb @ theta + off
        p = 1.0 / (1.0 + np.exp(-z))
        grad = xb.T @ (w_obs * (p - y))
        hess = (xb * (w_obs * p * (1 - p))[:, None]).T @ xb + 1e-9 * np.eye(xb.shape[1])
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta


def fit_calibration(scores: np.ndarray, labels: np.ndarray, prior: float = 0.5) -> Calibration:
    """Fit score -> LLR on a labelled (dev) set; labels 1 = bona fide, 0 = spoof."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D of equal length, got {s.shape} and {y.shape}")
    if not (0 < y.sum() < len(y)):
        raise ValueError("calibration needs both bona fide and spoof trials")
    mu, sd = s.mean(), s.std() or 1.0  # standardise for a well-conditioned Newton solve
    theta = _weighted_logreg(((s - mu) / sd)[:, None], y, prior)
    scale = theta[0] / sd
    return Calibration(float(scale), float(theta[1] - theta[0] * mu / sd), prior)


def align_scores(
    sets: Sequence[Mapping[str, float]], names: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """Ids common to all sets (sorted) and a (N, K) score matrix; any id mismatch is an error."""
    names = list(names or [f"set {i}" for i in range(len(sets))])
    ids = set(sets[0])
    for name, s in zip(names[1:], sets[1:], strict=True):
        if set(s) != ids:
            only_a, only_b = sorted(ids - set(s)), sorted(set(s) - ids)
            raise ValueError(
                f"{names[0]} and {name} hold different trials: {len(only_a)} only in the first "
                f"(e.g. {only_a[:5]}), {len(only_b)} only in the second (e.g. {only_b[:5]})"
            )
    order = sorted(ids)
    return order, np.array([[s[i] for s in sets] for i in order], dtype=np.float64)


def fuse_scores(
    sets: Sequence[Mapping[str, float]], weights: Sequence[float] | None = None, bias: float = 0.0
) -> dict[str, float]:
    """Weighted sum of score sets aligned by id (default: equal weights summing to 1)."""
    ids, mat = align_scores(sets)
    w = np.full(mat.shape[1], 1.0 / mat.shape[1]) if weights is None else np.asarray(weights, float)
    if w.shape != (mat.shape[1],):
        raise ValueError(f"expected {mat.shape[1]} weights, got {len(w)}")
    fused = mat @ w + bias
    return dict(zip(ids, fused.tolist(), strict=True))


def fit_fusion(
    sets: Sequence[Mapping[str, float]], labels: Mapping[str, int], prior: float = 0.5
) -> tuple[np.ndarray, float]:
    """Logistic-regression fusion weights and bias learnt on a labelled (dev) set; output is an LLR."""
    ids, mat = align_scores(sets)
    missing = [i for i in ids if i not in labels]
    if missing:
        raise ValueError(f"{len(missing)} scored trials have no label, e.g. {missing[:5]}")
    y = np.array([labels[i] for i in ids], dtype=np.float64)
    mu, sd = mat.mean(0), mat.std(0)
    sd[sd == 0] = 1.0
    theta = _weighted_logreg((mat - mu) / sd, y, prior)
    w = theta[:-1] / sd
    return w, float(theta[-1] - (w * mu).sum())


def _labels(protocol: str, fmt: str, subset: str) -> dict[str, int]:
    from safespeak.protocols import read_protocol

    trials = read_protocol(protocol, fmt, subset=subset)
    return {t.trial_id: int(t.label) for t in trials if t.label is not None}


def _labelled(
    scores: Mapping[str, float], labels: Mapping[str, int], name: str
) -> tuple[np.ndarray, np.ndarray]:
    missing = sorted(set(labels) - set(scores))
    if missing:
        raise SafespeakError(f"{len(missing)} protocol trials have no score, e.g. {missing[:5]}", path=name)
    ids = sorted(labels)
    return np.array([scores[i] for i in ids]), np.array([labels[i] for i in ids])


@dataclass(frozen=True)
class FusionResult:
    """What `fuse_files` wrote: the fused trial count, the weights (None: equal) and the bias."""

    output: Path
    n_systems: int
    n_trials: int
    weights: tuple[float, ...] | None
    bias: float


def fuse_files(
    score_paths: Sequence[str | Path],
    output: str | Path,
    *,
    weights: Sequence[float] | None = None,
    train_scores: Sequence[str | Path] | None = None,
    protocol: str | Path | None = None,
    protocol_format: str | None = None,
    subset: str = "all",
) -> FusionResult:
    """The `safespeak fuse` workflow: fuse score files by id, with given or learnt weights; write a CSV."""
    from safespeak.scorefiles import read_scores, write_scores_csv

    sets = [read_scores(p) for p in score_paths]
    bias = 0.0
    if train_scores:
        if len(train_scores) != len(sets) or not (protocol and protocol_format):
            raise UsageError("--train-scores needs one dev file per system plus --protocol/--protocol-format")
        w, bias = fit_fusion(
            [read_scores(p) for p in train_scores], _labels(protocol, protocol_format, subset)
        )
        weights = [float(v) for v in w]
    fused = fuse_scores(sets, None if weights is None else list(weights), bias)
    write_scores_csv(output, fused)
    shown = None if weights is None else tuple(float(v) for v in weights)
    return FusionResult(Path(output), len(sets), len(fused), shown, float(bias))


def calibrate_files(
    scores: str | Path,
    protocol: str | Path,
    protocol_format: str,
    *,
    subset: str = "all",
    prior: float = 0.5,
    checkpoint: str | Path | None = None,
    apply: str | Path | None = None,
    output: str | Path | None = None,
) -> Calibration:
    """The `safespeak calibrate` workflow: fit on labelled dev scores; optionally store it in a checkpoint
    and map another score file to LLRs."""
    from safespeak.scorefiles import read_scores, write_scores_csv

    if apply and not output:
        raise UsageError("--apply needs --output")
    s, y = _labelled(read_scores(scores), _labels(protocol, protocol_format, subset), str(scores))
    cal = fit_calibration(s, y, prior)
    if checkpoint:
        from safespeak.checkpoint import update_meta

        update_meta(checkpoint, calibration=cal.to_dict())
    if apply:
        raw = read_scores(apply)
        write_scores_csv(output, {k: float(cal.llr(v)) for k, v in raw.items()})  # type: ignore[arg-type]
    return cal
