"""Base class fixing the model contract shared by trainer, scorer and detector."""

from __future__ import annotations

import torch
from torch import nn


class CountermeasureModel(nn.Module):
    """A CM model: `forward(x)` returns the reference's raw outputs for a (B, T) waveform.

    - `preprocess(x)`: the model's input transform (e.g. Rawformer pre-emphasis); trainer and scorer
      call it before `forward`. Identity by default.
    - `bonafide_score(out)`: (B,) bona fide score from `forward`'s output (higher = bona fide). Default:
      two-class logits `[spoof, bonafide]` -> index 1.
    - `score(x)`: preprocess -> forward -> bona fide score, (B,).
    - `input_length`: the training crop length in samples.
    """

    input_length: int = 64_600

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Input transform applied before `forward`; (B, T) -> (B, T)."""
        return x

    def bonafide_score(self, out: torch.Tensor) -> torch.Tensor:
        """(B, 2) logits -> (B,) bona fide logit."""
        return out[:, 1]

    def logits2(self, out: torch.Tensor) -> torch.Tensor:
        """Forward output as (B, 2) `[spoof, bonafide]` logits for the cross-entropy loss."""
        return out

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> (B,) bona fide score."""
        return self.bonafide_score(self.forward(self.preprocess(x)))


def state_mismatch(
    expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], show: int = 3
) -> str | None:
    """Why `state` does not load strictly into a model whose `state_dict()` is `expected`; None if it does.

    Names at most `show` keys per kind (missing, unexpected, shape mismatch) with each kind's count.
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    kinds = (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
    parts = [
        f"{what}: {', '.join(keys[:show])}{' ...' if len(keys) > show else ''} ({len(keys)})"
        for what, keys in kinds
        if keys
    ]
    return "; ".join(parts) or None
