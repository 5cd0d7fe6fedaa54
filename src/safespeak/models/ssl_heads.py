"""Back ends for SSL front ends: the SSL-AASIST head (Tak et al., Odyssey 2022) and the SSL-SEMAA head.

Both take SSL features (B, frames, in_dim) and return (B, 2) logits. A linear layer maps the features to
`filts[0]` (128) dims, treated as an image (1, 128, frames), max-pooled 3x3, then the AASIST encoder
without time pooling. The SSL backbones themselves live in `safespeak.models.ssl`, which composes them
with these heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from safespeak.models.aasist import aasist_key_map
from safespeak.models.base import CountermeasureModel
from safespeak.models.blocks import AttentiveStatsPool, GraphBackend, graph_readout, residual_encoder
from safespeak.models.registry import register
from safespeak.models.semaa import SEMAAHead, semaa_key_map

__all__ = ["SSLAASISTHead", "SSLSEMAAHead", "ssl_aasist_head", "ssl_semaa_head"]

SSL_FILTS = (128, (1, 32), (32, 32), (32, 64), (64, 64))


class SSLFrontEnd(nn.Module):
    """(B, frames, in_dim) -> (B, 1, out_dim // 3, frames // 3): linear, (|.|), 3x3 max-pool, BN, SELU.

    `rectify`: take |.| before pooling (the SEMAA head does; the SSL-AASIST head does not).
    """

    def __init__(self, in_dim: int, out_dim: int, *, rectify: bool) -> None:
        super().__init__()
        self.rectify = rectify
        self.proj = nn.Linear(in_dim, out_dim)
        self.first_bn = nn.BatchNorm2d(1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, frames, in_dim) -> (B, 1, out_dim // 3, frames // 3)."""
        if feats.dim() != 3 or feats.shape[2] != self.proj.in_features or feats.shape[1] < 3:
            raise ValueError(
                f"expected SSL features (B, frames >= 3, {self.proj.in_features}), "
                f"got shape {tuple(feats.shape)}"
            )
        x = self.proj(feats).transpose(1, 2).unsqueeze(1)  # (B, 1, out_dim, frames)
        if self.rectify:
            x = x.abs()
        return F.selu(self.first_bn(F.max_pool2d(x, (3, 3))))


class _SSLHead(CountermeasureModel):
    """Shared shape of the two heads: `forward_features(feats) -> (last_hidden, logits)`."""

    def forward_features(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, frames, in_dim) -> last hidden layer (B, H)."""
        return self.forward_features(feats)[0]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, frames, in_dim) -> (B, 2) logits."""
        return self.forward_features(feats)[1]


class SSLAASISTHead(_SSLHead):
    """SSL-AASIST back end (TakHemlata/SSL_Anti-spoofing): (B, frames, in_dim) -> (B, 2) logits.

    After the encoder: BN + SELU, then an attention network whose softmax weights average the map
    along time (spectral nodes) and along frequency (temporal nodes); AASIST graph back end and readout.
    """

    def __init__(
        self,
        in_dim: int = 1024,
        filts: Sequence = SSL_FILTS,
        gat_dims: Sequence[int] = (64, 32),
        pool_ratios: Sequence[float] = (0.5, 0.5, 0.5, 0.5),
        temperatures: Sequence[float] = (2.0, 2.0, 100.0, 100.0),
        nb_samp: int = 64_600,
    ) -> None:
        super().__init__()
        self.input_length = int(nb_samp)
        channels = int(filts[-1][-1])
        self.frontend = SSLFrontEnd(in_dim, int(filts[0]), rectify=False)
        self.encoder = residual_encoder(list(filts), pool=False)
        self.encoder_bn = nn.BatchNorm2d(channels)
        self.att_pool = AttentiveStatsPool(channels, 2 * channels, with_std=False)
        self.graph = GraphBackend(
            channels, tuple(gat_dims), tuple(pool_ratios), tuple(temperatures), int(filts[0]) // 3
        )
        self.drop = nn.Dropout(0.5)
        self.out_layer = nn.Linear(5 * int(gat_dims[1]), 2)

    def forward_features(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, frames, in_dim) -> (last_hidden (B, 5 * gat_dims[1]), logits (B, 2))."""
        e = F.selu(self.encoder_bn(self.encoder(self.frontend(feats))))  # (B, C, F, T)
        e_s, e_t = self.att_pool(e)  # (B, F, C), (B, T, C)
        t1, t2, s1, s2, m1, m2 = self.graph(e_s, e_t)
        hidden = graph_readout(torch.maximum(t1, t2), torch.maximum(s1, s2), torch.maximum(m1, m2))
        hidden = self.drop(hidden)
        return hidden, self.out_layer(hidden)


class SSLSEMAAHead(_SSLHead):
    """SSL-SEMAA back end (AntiSpoof-Hackathon `ModelWithSEMAA`): (B, frames, in_dim) -> (B, 2) logits.

    |linear| features max-pooled, the AASIST encoder without time pooling, then the SEMAA head
    (attentive statistics pooling, graph back end, self-attention readout). The reference also builds
    an unused sinc layer; it has no weights and is left out.
    """

    def __init__(
        self,
        in_dim: int = 1024,
        filts: Sequence = SSL_FILTS,
        gat_dims: Sequence[int] = (64, 32),
        pool_ratios: Sequence[float] = (0.5, 0.5, 0.5, 0.5),
        temperatures: Sequence[float] = (2.0, 2.0, 100.0, 100.0),
        nb_samp: int = 64_600,
        noise_std: float = 1e-5,
    ) -> None:
        super().__init__()
        self.input_length = int(nb_samp)
        self.frontend = SSLFrontEnd(in_dim, int(filts[0]), rectify=True)
        self.encoder = residual_encoder(list(filts), pool=False)
        self.head = SEMAAHead(
            int(filts[-1][-1]), int(filts[0]) // 3, gat_dims, pool_ratios, temperatures, noise_std
        )

    def forward_features(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, frames, in_dim) -> (last_hidden (B, 9 * gat_dims[1]), logits (B, 2))."""
        return self.head(self.encoder(self.frontend(feats)))


_SSL_FRONT = (("LL.", "frontend.proj."),)


@register(
    "ssl-aasist-head",
    description="SSL-AASIST back end on SSL features (B, frames, 1024)",
    reference_key_map=(
        *_SSL_FRONT,
        ("first_bn1.", "encoder_bn."),
        ("attention.", "att_pool.attention."),
        *aasist_key_map(),
    ),
)
def ssl_aasist_head(**overrides: object) -> SSLAASISTHead:
    """SSL-AASIST head with the SSL_Anti-spoofing values (in_dim 1024 = XLS-R 300M)."""
    return SSLAASISTHead(**overrides)  # type: ignore[arg-type]


@register(
    "ssl-semaa-head",
    description="SSL-SEMAA back end on SSL features (B, frames, 1024)",
    reference_key_map=(*_SSL_FRONT, *semaa_key_map()),
)
def ssl_semaa_head(**overrides: object) -> SSLSEMAAHead:
    """SSL-SEMAA head with the AntiSpoof-Hackathon values (in_dim 1024 wav2vec; 768 for DPHuBERT)."""
    return SSLSEMAAHead(**overrides)  # type: ignore[arg-type]
