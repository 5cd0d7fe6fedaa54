"""Turning an SSL backbone's list of hidden states into one (B, frames, D) feature sequence.

- `last-layer`: the last hidden state (what the seed's XLS-R front-end returns).
- `weighted-sum`: a learnable weight per hidden state, `softmax(layer_logits)`, so the weights stay
  positive and sum to one. `layer_logits` is a registered `nn.Parameter`: it is trained and saved.

Initialisation (`layer_init`):
- `uniform`: all logits 0 -> every layer weighs 1/L.
- `last3`: the seed's intent of "0.5 on the last three layers, 0 elsewhere" (its weights were not
  normalised, so the last three layers shared the mix equally). Softmax weights cannot be exactly 0, so
  the logits are set to 0 on the last three layers and log(0.02) elsewhere: each earlier layer starts at
  1/50 of a last-three layer (with 13 hidden states: 0.313 each for the last three, 0.006 each elsewhere),
  small but with a gradient, so training can still move weight onto them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AGGREGATIONS", "LAYER_INITS", "LayerAggregation"]

AGGREGATIONS = ("last-layer", "weighted-sum")
LAYER_INITS = ("uniform", "last3")
_LAST3_FLOOR = 0.02  # weight of an early layer relative to one of the last three, at init


class LayerAggregation(nn.Module):
    """list of L tensors (B, frames, D) -> (B, frames, D)."""

    def __init__(self, num_layers: int, mode: str = "last-layer", layer_init: str = "uniform") -> None:
        super().__init__()
        if mode not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {mode!r}; choose one of {', '.join(AGGREGATIONS)}")
        if layer_init not in LAYER_INITS:
            raise ValueError(f"unknown layer_init {layer_init!r}; choose one of {', '.join(LAYER_INITS)}")
        self.mode, self.num_layers = mode, num_layers
        if mode == "weighted-sum":
            logits = torch.zeros(num_layers)
            if layer_init == "last3" and num_layers > 3:
                logits[:-3] = math.log(_LAST3_FLOOR)
            self.layer_logits = nn.Parameter(logits)

    def weights(self) -> torch.Tensor | None:
        """Current normalised layer weights (L,), or None for `last-layer`."""
        return torch.softmax(self.layer_logits, dim=0) if self.mode == "weighted-sum" else None

    def forward(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        if len(hidden) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} hidden states, got {len(hidden)}")
        if self.mode == "last-layer":
            return hidden[-1]
        w = torch.softmax(self.layer_logits, dim=0).to(hidden[0].dtype)  # (L,)
        return torch.einsum("l,lbtd->btd", w, torch.stack(hidden))  # (L, B, T, D) -> (B, T, D)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, num_layers={self.num_layers}"
