"""Linear probe on a frozen Whisper encoder: per-layer mean and std over frames -> standardise -> logit.

`WhisperProbe` is a complete `CountermeasureModel` (raw waveform in, `[spoof, bonafide]` logits out), so
it saves, loads and scores like any other checkpoint. Its only trained part is one linear layer on the
pooled statistics, fitted in closed-form-like fashion (L-BFGS on the L2-regularised, class-balanced
logistic loss, `fit_linear_probe`) from pooled features computed once per file -- no epochs, no
gradient through the encoder. On the offline corpus the probe's errors differ from a raw-waveform CM's,
which is what a score fusion needs (see docs/experiments.md).

Pooling: mean and standard deviation over frames of each selected hidden state (0 = the conv stem +
positions, i = layer i's output), concatenated: (B, len(layers) * 2 * width). Encoder layers after the
last selected state are dropped when the probe is built: they cannot change it, and skipping them makes
the feature pass cheaper (layers [0, 1] of tiny.en: the stem and 2 of 4 layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from safespeak.models.base import CountermeasureModel
from safespeak.models.registry import register

__all__ = ["WhisperProbe", "fit_linear_probe", "whisper_probe"]


class WhisperProbe(CountermeasureModel):
    """(B, T) waveform -> frozen Whisper hidden states -> pooled stats (B, D) -> (B, 2) logits `[0, z]`."""

    def __init__(
        self,
        backbone: nn.Module,
        layers: Sequence[int] = (0, 1, 2, 3, 4),
        nb_samp: int = 64_000,
    ) -> None:
        super().__init__()
        n = int(backbone.num_hidden_states)
        bad = [i for i in layers if not 0 <= int(i) < n]
        if bad or not layers:
            raise ValueError(f"probe layers {list(layers)}: the backbone has hidden states 0..{n - 1}")
        self.ssl = backbone.requires_grad_(False).eval()
        self.layers = tuple(int(i) for i in layers)
        self.input_length = int(nb_samp)
        dim = len(self.layers) * 2 * int(backbone.hidden_size)
        self.register_buffer("feat_mean", torch.zeros(dim))
        self.register_buffer("feat_scale", torch.ones(dim))
        self.linear = nn.Linear(dim, 1)
        self._export: dict[str, Any] = {}

    def train(self, mode: bool = True) -> WhisperProbe:
        super().train(mode)
        self.ssl.eval()  # frozen: never dropout or statistics updates
        return self

    @torch.no_grad()
    def pooled_all(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> (B, L, 2C): mean and std over frames of every hidden state (cacheable)."""
        if x.dim() != 2:
            raise ValueError(f"expected a (B, T) waveform batch, got shape {tuple(x.shape)}")
        hidden, _ = self.ssl.extract_features(x)
        h = torch.stack(hidden, 1).float()  # (B, L, frames, C)
        return torch.cat([h.mean(2), h.std(2)], -1)  # (B, L, 2C)

    def select(self, stats: torch.Tensor) -> torch.Tensor:
        """(B, L, 2C) pooled stats of all hidden states -> (B, D) features of the probe's layers."""
        return stats[:, list(self.layers)].flatten(1)

    def logits_from_pooled(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) pooled features -> (B, 2) logits `[0, z]` (z: the bona fide log-odds)."""
        z = self.linear((feats - self.feat_mean) / self.feat_scale)  # (B, 1)
        return torch.cat([torch.zeros_like(z), z], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 2) logits."""
        return self.logits_from_pooled(self.select(self.pooled_all(x)))

    def checkpoint_config(self) -> dict[str, Any]:
        """Build overrides that recreate the architecture without reading the backbone's files."""
        return {**self._export, "layers": list(self.layers), "nb_samp": self.input_length}


def fit_linear_probe(
    probe: WhisperProbe, feats: np.ndarray, labels: np.ndarray, l2: float = 10.0, iters: int = 300
) -> None:
    """Fit the probe's standardiser and linear layer (in place) on pooled features (N, D), labels (N,).

    Class-balanced logistic loss + `l2 * |w|^2 / N`, minimised with L-BFGS in float64.
    """
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    if set(y.unique().tolist()) != {0.0, 1.0}:
        raise ValueError("fit_linear_probe needs both bona fide (1) and spoof (0) examples")
    x = torch.as_tensor(np.asarray(feats), dtype=torch.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x = (x - mu) / sd
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    pos = y.mean()
    weight = torch.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.LBFGS([w], max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = x @ w[:-1] + w[-1]
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
        loss = (weight * bce).mean() + l2 * (w[:-1] ** 2).sum() / len(y)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        probe.feat_mean.copy_(mu.float())
        probe.feat_scale.copy_(sd.float())
        probe.linear.weight.copy_(w[:-1].float()[None])
        probe.linear.bias.copy_(w[-1:].float())


@register(
    "whisper-probe",
    description="frozen Whisper encoder (default: the bundled tiny.en) + linear probe on per-layer "
    "mean/std pooled hidden states",
)
def whisper_probe(
    source: str | None = None,
    backbone_config: dict[str, Any] | None = None,
    layers: Sequence[int] = (0, 1, 2, 3, 4),
    nb_samp: int = 64_000,
) -> WhisperProbe:
    """`source`: a CTranslate2 / transformers Whisper folder (None: the bundled tiny.en);
    `backbone_config`: a saved encoder config instead (random weights, filled from a checkpoint)."""
    from safespeak.models.ssl.ct2 import build_whisper_backbone

    module = build_whisper_backbone(source, backbone_config)
    keep = max(int(i) for i in layers) + 1 if layers else 0
    if 0 < keep < module.config.layers:  # layers past the last used state never reach it: drop them
        # (keep one more than the last used index: the encoder's final LayerNorm goes on its last layer)
        module.encoder.layers = module.encoder.layers[:keep]
        module.config = replace(module.config, layers=keep)
    probe = WhisperProbe(module, layers, nb_samp)
    probe._export = {"backbone_config": module.config_dict()}
    return probe
