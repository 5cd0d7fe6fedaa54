"""AASIST and AASIST-L (Jung et al., ICASSP 2022): sinc front end, residual encoder, graph back end.

Module names follow clovaai/aasist where sensible; `registry.from_reference` maps the reference keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from safespeak.models.base import CountermeasureModel
from safespeak.models.blocks import GraphBackend, SincFilterbank, graph_readout, residual_encoder
from safespeak.models.registry import register

__all__ = ["AASIST", "SincFrontEnd", "aasist", "aasist_l", "aasist_l_cpu", "min_length_for_pools"]

AASIST_FILTS = (70, (1, 32), (32, 32), (32, 64), (64, 64))
AASIST_L_FILTS = (70, (1, 32), (32, 32), (32, 24), (24, 24))
# The demo's compact variant: ~1/4 of AASIST-L's parameters, ~25x its training speed on 2 CPU cores.
AASIST_L_CPU_FILTS = (20, (1, 8), (8, 8), (8, 16), (16, 16))


def min_length_for_pools(kernel_size: int, time_pools: int) -> int:
    """Shortest waveform whose sinc output survives `time_pools` successive /3 max-pools with >= 1 frame."""
    k = kernel_size + 1 if kernel_size % 2 == 0 else kernel_size
    return 3**time_pools + k - 1


class SincFrontEnd(nn.Module):
    """(B, T) waveform -> (B, 1, C // 3, T' // 3): |sinc filterbank| max-pooled 3x3, then BN and SELU.

    Only the first 3 * (C // 3) filters are computed: max-pooling with floor division drops the rest.
    Without autograd, |.| runs in place on the fresh convolution output (no second full-size map).
    """

    def __init__(self, channels: int, kernel_size: int, sample_rate: int = 16_000) -> None:
        super().__init__()
        self.sinc = SincFilterbank(channels, kernel_size, sample_rate)
        self.first_bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 1, C // 3, (T - K + 1) // 3)."""
        used = 3 * (self.sinc.out_channels // 3)
        weight = self.sinc.band_pass[:used].unsqueeze(1).to(x.dtype)  # (C_used, 1, K)
        y = F.conv1d(x.unsqueeze(1), weight)  # (B, C_used, T')
        y = y.abs_() if not y.requires_grad else y.abs()
        y = F.max_pool2d(y.unsqueeze(1), (3, 3))  # (B, 1, C // 3, T' // 3)
        return F.selu(self.first_bn(y))


class AASIST(CountermeasureModel):
    """AASIST: (B, T) waveform -> (B, 2) logits `[spoof, bonafide]`.

    `filts` = [sinc channels, [in, out] x 4] (the last pair repeats for encoder blocks 4-6);
    `gat_dims` = [GAT dim, heterogeneous GAT dim]; `pool_ratios`/`temperatures` as in AASIST.conf
    (entries 0-2 used). `first_conv` is the sinc kernel size (made odd).
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
    ) -> None:
        super().__init__()
        self.input_length = int(nb_samp)
        self.frontend = SincFrontEnd(int(filts[0]), int(first_conv), sample_rate)
        self.encoder = residual_encoder(list(filts))
        self.graph = GraphBackend(
            int(filts[-1][-1]), tuple(gat_dims), tuple(pool_ratios), tuple(temperatures), int(filts[0]) // 3
        )
        self.drop = nn.Dropout(0.5)
        self.out_layer = nn.Linear(5 * int(gat_dims[1]), 2)
        # 1 front-end pool + one per encoder block
        self.min_input_length = min_length_for_pools(int(first_conv), 1 + len(self.encoder))

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] < self.min_input_length:
            raise ValueError(
                f"expected a waveform batch (B, T) with T >= {self.min_input_length} samples, "
                f"got shape {tuple(x.shape)}"
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> encoder output (B, C, F, T'')."""
        self._check_input(x)
        return self.encoder(self.frontend(x))

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) -> (last_hidden (B, 5 * gat_dims[1]), logits (B, 2)), the reference's two outputs."""
        e = self.encode(x).abs()  # (B, C, F, T'')
        e_s = e.amax(dim=3).transpose(1, 2)  # (B, F, C): max over time
        e_t = e.amax(dim=2).transpose(1, 2)  # (B, T'', C): max over frequency
        t1, t2, s1, s2, m1, m2 = self.graph(e_s, e_t)
        hidden = graph_readout(torch.maximum(t1, t2), torch.maximum(s1, s2), torch.maximum(m1, m2))
        hidden = self.drop(hidden)
        return hidden, self.out_layer(hidden)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> last hidden layer (B, 5 * gat_dims[1])."""
        return self.forward_features(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 2) logits."""
        return self.forward_features(x)[1]


def aasist_key_map(
    graph: str = "graph.", first_bn: str = "frontend.first_bn."
) -> tuple[tuple[str, str], ...]:
    """Reference (clovaai/aasist) state-dict key prefixes -> ours, shared by the AASIST family.

    `graph` is where our model keeps its `GraphBackend`, `first_bn` where the post-pool BatchNorm lives.
    """
    pairs = [(f"encoder.{i}.0.", f"encoder.{i}.") for i in range(6)]
    pairs += [("first_bn.", first_bn), ("pos_S", f"{graph}pos_s")]
    pairs += [("master1", f"{graph}master1"), ("master2", f"{graph}master2")]
    pairs += [("GAT_layer_S.", f"{graph}gat_s."), ("GAT_layer_T.", f"{graph}gat_t.")]
    pairs += [(f"HtrgGAT_layer_ST{i}.", f"{graph}htrg_st{i}.") for i in ("11", "12", "21", "22")]
    pairs += [(f"pool_{a}.", f"{graph}pool_{a.lower()}.") for a in ("S", "T", "hS1", "hT1", "hS2", "hT2")]
    return tuple(pairs)


@register(
    "aasist",
    description="AASIST (sinc + graph attention), 4 s raw waveform",
    reference_key_map=aasist_key_map(),
)
def aasist(**overrides: object) -> AASIST:
    """AASIST with the AASIST.conf `model_config` values; any hyperparameter can be overridden."""
    return AASIST(**overrides)  # type: ignore[arg-type]


@register(
    "aasist-l", description="AASIST-L (light AASIST, 85k parameters)", reference_key_map=aasist_key_map()
)
def aasist_l(**overrides: object) -> AASIST:
    """AASIST-L with the AASIST-L.conf `model_config` values."""
    cfg: dict[str, object] = {
        "filts": AASIST_L_FILTS,
        "gat_dims": (24, 32),
        "pool_ratios": (0.4, 0.5, 0.7, 0.5),
    }
    cfg.update(overrides)
    return AASIST(**cfg)  # type: ignore[arg-type]


@register(
    "aasist-l-cpu",
    description="AASIST-L narrowed for CPU training (20 sinc filters, 8/16 channels), the demo's model",
    reference_key_map=aasist_key_map(),
)
def aasist_l_cpu(**overrides: object) -> AASIST:
    """AASIST-L with 20 sinc filters, 8/16-channel residual blocks and GAT dims (16, 8) (19,674 params)."""
    return aasist_l(**{"filts": AASIST_L_CPU_FILTS, "gat_dims": (16, 8), **overrides})
