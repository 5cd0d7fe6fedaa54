"""SEMAA (Xia et al., ASVspoof 5): AASIST with attentive statistics pooling and a self-attention readout.

The sinc front end and residual encoder are AASIST's; the encoder map is summarised by attentive
statistics pooling (mean and std along time and along frequency) instead of max-pooling, and the graph
branches are read out by a self-attention pool. `SEMAAHead` is shared with the SSL-SEMAA head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from safespeak.models.aasist import AASIST_FILTS, SincFrontEnd, aasist_key_map, min_length_for_pools
from safespeak.models.base import CountermeasureModel
from safespeak.models.blocks import (
    AttentiveStatsPool,
    GraphBackend,
    SelfAttentionPool,
    residual_encoder,
    semaa_readout,
)
from safespeak.models.registry import register

__all__ = ["SEMAA", "SEMAAHead", "semaa", "semaa_key_map"]


class SEMAAHead(nn.Module):
    """Encoder map (B, C, F, T) -> (last_hidden (B, 9 * gat_dims[1]), logits (B, 2)).

    Attentive statistics pooling gives |[mu, sigma]| nodes (2C features) along frequency (spectral
    nodes, F of them, with a positional embedding) and along time; then the AASIST graph back end and
    the SEMAA self-attention readout.
    """

    def __init__(
        self,
        channels: int,
        spectral_nodes: int,
        gat_dims: Sequence[int],
        pool_ratios: Sequence[float],
        temperatures: Sequence[float],
        noise_std: float = 1e-5,
    ) -> None:
        super().__init__()
        self.asp = AttentiveStatsPool(channels, 2 * channels, with_std=True)
        self.graph = GraphBackend(
            2 * channels, tuple(gat_dims), tuple(pool_ratios), tuple(temperatures), spectral_nodes
        )
        self.node_pool = SelfAttentionPool(int(gat_dims[1]), noise_std)
        self.drop = nn.Dropout(0.5)
        self.out_layer = nn.Linear(9 * int(gat_dims[1]), 2)

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, F, T) -> (last_hidden (B, 9 * D), logits (B, 2))."""
        e_s, e_t = self.asp(e)  # (B, F, 2C), (B, T, 2C)
        hidden = self.drop(semaa_readout(self.node_pool, self.graph(e_s.abs(), e_t.abs())))
        return hidden, self.out_layer(hidden)


class SEMAA(CountermeasureModel):
    """SEMAA: (B, T) waveform -> (B, 2) logits. Hyperparameters as `AASIST` (AASIST.conf values).

    `noise_std`: the reference adds N(0, noise_std^2) before the readout's std; here only in training.
    """

    def __init__(
        self,
        filts: Sequence = AASIST_FILTS,
        gat_dims: Sequence[int] = (64, 32),
        pool_ratios: Sequence[float] = (0.5, 0.7, 0.5, 0.5),
        temperatures: Sequence[float] = (2.0, 2.0, 100.0, 100.0),
        first_conv: int = 128,
        nb_samp: int = 64_600,
        sample_rate: int = 16_000,
        noise_std: float = 1e-5,
    ) -> None:
        super().__init__()
        self.input_length = int(nb_samp)
        self.frontend = SincFrontEnd(int(filts[0]), int(first_conv), sample_rate)
        self.encoder = residual_encoder(list(filts))
        self.head = SEMAAHead(
            int(filts[-1][-1]), int(filts[0]) // 3, gat_dims, pool_ratios, temperatures, noise_std
        )
        self.min_input_length = min_length_for_pools(int(first_conv), 1 + len(self.encoder))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> encoder output (B, C, F, T'')."""
        if x.dim() != 2 or x.shape[1] < self.min_input_length:
            raise ValueError(
                f"expected a waveform batch (B, T) with T >= {self.min_input_length} samples, "
                f"got shape {tuple(x.shape)}"
            )
        return self.encoder(self.frontend(x))

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) -> (last_hidden (B, 9 * gat_dims[1]), logits (B, 2))."""
        return self.head(self.encode(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> last hidden layer (B, 9 * gat_dims[1])."""
        return self.forward_features(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 2) logits."""
        return self.forward_features(x)[1]


def semaa_key_map(first_bn: str = "frontend.first_bn.") -> tuple[tuple[str, str], ...]:
    """Reference SEMAA key prefixes -> ours (the SEMAA-specific parts live under `head.`)."""
    extra = (
        ("attention_asp.", "head.asp.attention."),
        ("attention.", "head.node_pool."),
        ("out_layer.", "head.out_layer."),
    )
    return extra + aasist_key_map(graph="head.graph.", first_bn=first_bn)


@register(
    "semaa",
    description="SEMAA (AASIST + attentive stats pooling + self-attention readout)",
    reference_key_map=semaa_key_map(),
)
def semaa(**overrides: object) -> SEMAA:
    """SEMAA with the AASIST.conf `model_config` values; any hyperparameter can be overridden."""
    return SEMAA(**overrides)  # type: ignore[arg-type]
