"""MHFA head: multi-head factorized attentive pooling over layer-wise hidden states (Peng et al., SLT 2022).

The head that WeDefense puts on SSL and Whisper front-ends. Keys and values are two *different* learnable
weighted sums of the L hidden states (softmax layer weights, as `LayerAggregation`'s weighted sum), each
compressed to `compression_dim` by a linear layer. Each of `heads` attention heads scores every frame
from the keys; the values are averaged over frames with each head's softmax weights, the heads' outputs
are concatenated, projected to `embed_dim`, and a linear layer gives the `[spoof, bonafide]` logits.

Input: (B, L, frames, in_dim) stacked hidden states (`takes_layers = True` tells `SSLCountermeasure` to
pass them unaggregated); optional `lengths` (B,) masks padded frames out of the attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from safespeak.models.base import CountermeasureModel
from safespeak.models.registry import register

__all__ = ["MHFAHead", "mhfa_head"]


class MHFAHead(CountermeasureModel):
    """(B, L, frames, in_dim) hidden states -> (B, 2) logits; see the module docstring.

    Defaults follow the MHFA reference code (8 heads, compression 128, embedding 256); `num_layers` and
    `in_dim` must match the front-end (13 x 768 for base SSL models, 5 x 384 for Whisper tiny).
    """

    takes_layers = True

    def __init__(
        self,
        in_dim: int = 768,
        num_layers: int = 13,
        heads: int = 8,
        compression_dim: int = 128,
        embed_dim: int = 256,
        dropout: float = 0.0,
        nb_samp: int = 64_600,
    ) -> None:
        super().__init__()
        self.input_length = int(nb_samp)
        self.num_layers = int(num_layers)
        self.key_logits = nn.Parameter(torch.zeros(num_layers))  # softmax -> uniform layer weights
        self.value_logits = nn.Parameter(torch.zeros(num_layers))
        self.key_proj = nn.Linear(in_dim, compression_dim)
        self.value_proj = nn.Linear(in_dim, compression_dim)
        self.att_head = nn.Linear(compression_dim, heads)
        self.pool_proj = nn.Linear(heads * compression_dim, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.out_layer = nn.Linear(embed_dim, 2)

    def layer_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (key, value) layer weights, each (L,)."""
        return torch.softmax(self.key_logits, 0), torch.softmax(self.value_logits, 0)

    def embed(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, frames, in_dim) -> utterance embedding (B, embed_dim)."""
        if (
            hidden.dim() != 4
            or hidden.shape[1] != self.num_layers
            or hidden.shape[3] != self.key_proj.in_features
        ):
            raise ValueError(
                f"expected hidden states (B, {self.num_layers}, frames, {self.key_proj.in_features}), "
                f"got shape {tuple(hidden.shape)}"
            )
        wk, wv = (w.to(hidden.dtype) for w in self.layer_weights())
        keys = self.key_proj(torch.einsum("l,bltd->btd", wk, hidden))  # (B, T, C)
        values = self.value_proj(torch.einsum("l,bltd->btd", wv, hidden))  # (B, T, C)
        scores = self.att_head(keys)  # (B, T, H)
        if lengths is not None:
            pad = torch.arange(hidden.shape[2], device=hidden.device)[None, :] >= lengths[:, None]  # (B, T)
            scores = scores.masked_fill(pad[:, :, None], float("-inf"))
        att = torch.softmax(scores, dim=1)  # over frames, per head
        pooled = torch.einsum("bth,btc->bhc", att, values)  # (B, H, C)
        return self.pool_proj(pooled.flatten(1))  # (B, E)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, frames, in_dim) -> (B, 2) `[spoof, bonafide]` logits."""
        return self.out_layer(self.drop(F.gelu(self.embed(hidden, lengths))))


@register("mhfa-head", description="MHFA back end on stacked hidden states (B, 13, frames, 768)")
def mhfa_head(**overrides: object) -> MHFAHead:
    """MHFA head with the reference defaults (13 hidden states of width 768: a base SSL model)."""
    return MHFAHead(**overrides)  # type: ignore[arg-type]
