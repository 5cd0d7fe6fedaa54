"""Two complementary detectors fused on dev: a trained raw-waveform CM and a Whisper linear probe.

The workflow the demo runs when its recipe has `fusion.whisper_probe: true`:

1. `train_whisper_probe`: pooled Whisper statistics of every train/dev/eval trial are computed once into a
   `safespeak.features.FeatureCache` (fingerprinted by the encoder weights), the probe's linear layer is
   fitted on train, and the probe is saved as an ordinary checkpoint (`whisper-probe`);
2. `fit_score_fusion`: logistic-regression fusion weights of the systems' *dev* scores
   (`safespeak.calibrate.fit_fusion`) and the fused dev EER threshold -- never anything from eval;
3. `ScoreFusion.apply`: the fused eval scores (an LLR-like bona fide score, higher = bona fide).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "FusedRun",
    "ProbeRun",
    "ScoreFusion",
    "fit_score_fusion",
    "fuse_cm_with_whisper_probe",
    "probe_stats",
    "train_whisper_probe",
]

FUSION_FORMAT = "safespeak-fusion/1"


@dataclass(frozen=True)
class ProbeRun:
    """A fitted Whisper probe: its checkpoint, scores per split (trial id -> score) and timings."""

    checkpoint: Path
    scores: dict[str, dict[str, float]]
    dev_eer: float
    feature_seconds: float
    fit_seconds: float
    n_trained: int


def probe_stats(
    probe: Any,
    trials: Sequence[Any],
    cache_root: str | os.PathLike[str],
    *,
    progress: bool = False,
) -> np.ndarray:
    """(N, L, 2C) pooled stats of every trial, read from (or first written to) the feature cache.

    Use one `cache_root` per trial list: a cache folder's index lists the trials of its last build.

    The crop policy is the first `probe.input_length` samples, repeat-padded, as the scorer's window.
    """
    from safespeak.features import CropPolicy, FeatureCache, module_fingerprint

    fingerprint = module_fingerprint(probe.ssl, {**probe.ssl.config_dict(), "pool": "mean+std/all"})
    cache = FeatureCache(cache_root, fingerprint, CropPolicy("first", probe.input_length))
    cache.build(trials, probe.pooled_all, batch_size=16, progress=progress)
    return np.stack([cache.get(t.trial_id).float().numpy() for t in trials])


def train_whisper_probe(
    splits: Mapping[str, Sequence[Any]],
    out: str | os.PathLike[str],
    *,
    layers: Sequence[int] = (0, 1),
    l2: float = 10.0,
    crop_samples: int = 64_000,
    source: str | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> ProbeRun:
    """Fit a `whisper-probe` on `splits["train"]`; score every split in `splits` (dev at least).

    The checkpoint `out` (stem) carries the dev EER; features go to `cache_root` (default: beside `out`).
    """
    from safespeak.checkpoint import save_checkpoint
    from safespeak.metrics import compute_eer
    from safespeak.models import build
    from safespeak.models.probe import fit_linear_probe

    out = Path(out)
    probe = build("whisper-probe", source=source, layers=list(layers), nb_samp=crop_samples)
    root = Path(cache_root) if cache_root is not None else out.parent / "features"
    t0 = time.perf_counter()
    stats = {s: probe_stats(probe, trials, root / s, progress=progress) for s, trials in splits.items()}
    t1 = time.perf_counter()
    labels = np.array([t.label for t in splits["train"]])
    fit_linear_probe(probe, probe.select(torch.from_numpy(stats["train"])).numpy(), labels, l2=l2)
    scores = {}
    with torch.no_grad():
        for s, trials in splits.items():
            z = probe.logits_from_pooled(probe.select(torch.from_numpy(stats[s])))[:, 1]
            scores[s] = {str(t.trial_id): float(v) for t, v in zip(trials, z.tolist(), strict=True)}
    dev = [(scores["dev"][str(t.trial_id)], t.label) for t in splits["dev"]]
    sc, lb = np.array([d[0] for d in dev]), np.array([d[1] for d in dev])
    dev_eer, threshold = compute_eer(sc[lb == 1], sc[lb == 0])
    meta = {"dev_metrics": {"eer": dev_eer}, "probe_l2": l2}
    ckpt = save_checkpoint(
        out,
        probe,
        arch="whisper-probe",
        model_config=probe.checkpoint_config(),
        meta=meta,
        train_window=crop_samples,
        threshold=threshold,
    )
    n = probe.linear.weight.numel() + probe.linear.bias.numel()
    return ProbeRun(ckpt, scores, dev_eer, t1 - t0, time.perf_counter() - t1, n)


@dataclass(frozen=True)
class ScoreFusion:
    """Linear score fusion `sum(w_i * s_i) + bias` fitted on dev, with the fused dev EER threshold."""

    systems: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    dev_eer: float
    threshold: float

    def apply(self, score_sets: Sequence[Mapping[str, float]]) -> dict[str, float]:
        """Fused scores of the trials every system scored (trial id -> fused score)."""
        from safespeak.calibrate import fuse_scores

        if len(score_sets) != len(self.systems):
            raise ValueError(f"expected scores of {len(self.systems)} systems, got {len(score_sets)}")
        return fuse_scores(score_sets, np.array(self.weights), self.bias)

    def to_json(self) -> str:
        """JSON text with a format tag (what `fusion.json` holds)."""
        return json.dumps({"format": FUSION_FORMAT, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ScoreFusion:
        """Inverse of `to_json`."""
        d = json.loads(text)
        if d.pop("format", None) != FUSION_FORMAT:
            raise ValueError(f"not a {FUSION_FORMAT} document")
        return cls(tuple(d["systems"]), tuple(d["weights"]), d["bias"], d["dev_eer"], d["threshold"])


def fit_score_fusion(
    systems: Sequence[str], dev_sets: Sequence[Mapping[str, float]], dev_labels: Mapping[str, int]
) -> ScoreFusion:
    """Fusion weights (logistic regression, `calibrate.fit_fusion`) and EER threshold from dev only."""
    from safespeak.calibrate import fit_fusion, fuse_scores
    from safespeak.metrics import compute_eer

    w, b = fit_fusion(dev_sets, dev_labels)
    fused = fuse_scores(dev_sets, w, b)
    sc = np.array([fused[i] for i in fused])
    lb = np.array([dev_labels[i] for i in fused])
    eer, thr = compute_eer(sc[lb == 1], sc[lb == 0])[:2]
    return ScoreFusion(tuple(systems), tuple(float(x) for x in w), float(b), float(eer), float(thr))


@dataclass(frozen=True)
class FusedRun:
    """What `fuse_cm_with_whisper_probe` produced: fused eval scores, each system's, the fusion, timings."""

    eval_scores: dict[str, float]
    system_scores: dict[str, dict[str, float]]  # system name -> eval scores
    system_dev_eer: dict[str, float]
    fusion: ScoreFusion
    probe: ProbeRun
    seconds: dict[str, float]


def fuse_cm_with_whisper_probe(
    cm_checkpoint: str | os.PathLike[str],
    cm_eval_scores: Mapping[str, float],
    splits: Mapping[str, Sequence[Any]],
    dev_source: tuple[str | os.PathLike[str], str, str | os.PathLike[str]],
    fusion_cfg: Any,
    out: str | os.PathLike[str],
    *,
    progress: bool = False,
) -> FusedRun:
    """Fit a Whisper probe on train, score dev with both systems, fuse on dev, apply to eval.

    `splits` holds the train/dev/eval trials; `dev_source` = (dev protocol, its format, audio folder) for
    scoring the CM on dev exactly as it scored eval; `fusion_cfg` a `safespeak.config.FusionConfig`.
    Writes `out/probe.*` (checkpoint), `out/scores_dev_cm.csv` and `out/fusion.json`.
    """
    from safespeak.metrics import compute_eer
    from safespeak.score import ScoreOptions, score_to_files
    from safespeak.scorefiles import read_scores

    out = Path(out)
    t0 = time.perf_counter()
    probe = train_whisper_probe(
        {s: splits[s] for s in ("train", "dev", "eval")},
        out / "probe",
        layers=fusion_cfg.probe_layers,
        l2=fusion_cfg.probe_l2,
        crop_samples=fusion_cfg.probe_crop_samples,
        source=fusion_cfg.probe_source,
        cache_root=out / "features",
        progress=progress,
    )
    t1 = time.perf_counter()
    protocol, fmt, audio_dir = dev_source
    run = score_to_files(
        cm_checkpoint, protocol, out / "scores_dev_cm.csv", options=ScoreOptions(crop="full"),
        protocol_format=fmt, audio_dir=audio_dir, progress=progress,
    )  # fmt: skip
    cm_dev = read_scores(run.output)
    labels = {str(t.trial_id): int(t.label) for t in splits["dev"]}
    names = ("cm", "whisper-probe")
    fusion = fit_score_fusion(names, [cm_dev, probe.scores["dev"]], labels)
    (out / "fusion.json").write_text(fusion.to_json())
    fused = fusion.apply([cm_eval_scores, probe.scores["eval"]])
    sc = np.array([cm_dev[i] for i in labels])
    lb = np.array(list(labels.values()))
    cm_dev_eer = float(compute_eer(sc[lb == 1], sc[lb == 0])[0])
    return FusedRun(
        eval_scores=fused,
        system_scores={"cm": dict(cm_eval_scores), "whisper-probe": probe.scores["eval"]},
        system_dev_eer={"cm": cm_dev_eer, "whisper-probe": probe.dev_eer},
        fusion=fusion,
        probe=probe,
        seconds={"probe": round(t1 - t0, 1), "cm_dev_scoring": round(time.perf_counter() - t1, 1)},
    )
