"""Rawformer-S, Rawformer-L and SE-Rawformer (Liu et al., "Leveraging positional-related local-global
dependency for synthetic speech detection").

Waveform -> fixed sinc filterbank -> |.| max-pool -> residual 2-D conv front end (HFM, (B, 64, 23, t))
-> flatten frequency x time into a sequence with a fixed sinusoidal position table -> post-LN transformer
encoders -> attentive sequence pooling -> one spoof logit.

Module and parameter names follow the reference (Alphonsce/AntiSpoof-Hackathon `rawformer_asv_spoof`) so
its state dicts load with `strict=True`. Differences from the reference, all on purpose:

- `forward` returns the spoof logit `(B, 1)` *before* the sigmoid (the reference returns a squeezed
  probability, 0-d for a batch of one). Higher logit = spoof; the bona fide score is its negation.
- Batch size 1 works everywhere (no bare `squeeze()`).
- Pre-emphasis (0.97, reflect pad of one sample on the left) is `preprocess`, run by trainer and scorer.
- The position table covers exactly the positions of a ~4 s input, as in the reference. Longer inputs
  raise a `ValueError` naming the maximum length instead of crashing with a shape error: the flattened
  position of a (frequency, time) cell depends on the input's frame count, so extending the table would
  give positions the model never saw. Long files are scored in windows of `input_length`.

Use: `model = build("rawformer-se").eval()`; `model.score(wave)` maps a (B, T) 16 kHz batch to (B,)
bona fide scores (pre-emphasis included); `from_reference("rawformer-se", path)` loads reference weights.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from safespeak.models.base import CountermeasureModel
from safespeak.models.blocks import SincFilterbank
from safespeak.models.registry import register

PRE_EMPHASIS = 0.97
SAMPLE_RATE = 16_000
_SINC_CHANNELS = 70
_SINC_KERNEL = 128  # made odd (129) by the filterbank
_SINC_POOL = 3  # |sinc| max-pool over (frequency, time)
_D_MODEL = 64  # channels of the last front-end block = transformer width


def positional_table(positions: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal position table (positions, dim), float32, with **zero first and last rows**.

    Rows 1..positions-2 hold sin (even columns) and cos (odd columns) of position p at frequency
    10000^(-2i/dim); the zero end rows are a quirk of the reference that trained models depend on.
    Computed in float32 like the reference so large positions round identically.
    """
    if positions < 2 or dim % 2:
        raise ValueError(f"need positions >= 2 and an even dim, got {positions}, {dim}")
    pos = torch.arange(1, positions - 1, dtype=torch.float32).unsqueeze(1)  # (P-2, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float32).unsqueeze(0)  # (1, D/2)
    angle = pos / (10000 ** (two_i / dim))  # (P-2, D/2)
    table = torch.zeros(positions, dim)
    table[1:-1, 0::2] = torch.sin(angle)
    table[1:-1, 1::2] = torch.cos(angle)
    return table


class PositionalAggregator(nn.Module):
    """HFM (B, C, F, T) -> sequence (B, F*T, C) plus the fixed position table (non-persistent buffer).

    The sequence is frequency-major: cell (f, t) sits at position f*T + t.
    """

    def __init__(self, channels: int, max_positions: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.register_buffer("encoding", positional_table(max_positions, channels), persistent=False)

    def forward(self, hfm: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) -> (B, F*T, C)."""
        if hfm.dim() != 4 or hfm.shape[1] != self.encoding.shape[1]:
            raise ValueError(f"expected (B, {self.encoding.shape[1]}, F, T), got shape {tuple(hfm.shape)}")
        n = hfm.shape[2] * hfm.shape[3]
        if n > self.max_positions:
            raise ValueError(f"{n} positions exceed the position table ({self.max_positions} rows)")
        seq = hfm.flatten(2).transpose(1, 2)  # (B, F*T, C)
        return seq + self.encoding[:n].to(seq.dtype)


class LayerNorm(nn.Module):
    """Layer norm over the last dim with the reference's names (`gamma`, `beta`) and eps 1e-12."""

    def __init__(self, dim: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D); biased variance, like `F.layer_norm`."""
        # the parameter's size, not x's: a traced x.shape[-1] is a tensor, and layer_norm needs an int
        return F.layer_norm(x, (self.gamma.shape[0],), self.gamma, self.beta, self.eps)


class MultiHeadSelfAttention(nn.Module):
    """Unmasked multi-head self-attention with separate Q/K/V/output projections."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.W_Q = nn.Linear(dim, dim)
        self.W_K = nn.Linear(dim, dim)
        self.W_V = nn.Linear(dim, dim)
        self.W_after_attention = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)  # (B, H, N, D/H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        b, n, d = x.shape
        out = F.scaled_dot_product_attention(
            self._heads(self.W_Q(x)), self._heads(self.W_K(x)), self._heads(self.W_V(x))
        )  # (B, H, N, D/H)
        return self.W_after_attention(out.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear (kept in `network` for the reference key names)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        return self.network(x)


class TransformerEncoderLayer(nn.Module):
    """Post-LN encoder layer: x = LN(x + Drop(MHSA(x))); x = LN(x + Drop(FFN(x)))."""

    def __init__(self, dim: int, n_heads: int, ffn_hidden: int, dropout: float) -> None:
        super().__init__()
        self.attention = MultiHeadSelfAttention(dim, n_heads)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_hidden, dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        x = self.norm1(x + self.dropout1(self.attention(x)))
        return self.norm2(x + self.dropout2(self.ffn(x)))


class SequencePooling(nn.Module):
    """Attention pooling over the sequence: softmax of a learned per-position score, then a weighted sum."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, D)."""
        w = torch.softmax(self.linear(x), dim=1)  # (B, N, 1)
        return torch.bmm(w.transpose(1, 2), x).squeeze(1)  # (B, D)


class RawformerClassifier(nn.Module):
    """Transformer encoders -> sequence pooling -> linear spoof logit."""

    def __init__(self, dim: int, n_encoders: int, ffn_hidden: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.encoders = nn.Sequential(
            OrderedDict(
                (f"encoder{i}", TransformerEncoderLayer(dim, n_heads, ffn_hidden, dropout))
                for i in range(n_encoders)
            )
        )
        self.seq_pooling = SequencePooling(dim)
        self.linear = nn.Linear(dim, 1)

    def embed(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> pooled (B, D)."""
        return self.seq_pooling(self.encoders(seq))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> spoof logit (B, 1)."""
        return self.linear(self.embed(seq))


class ResConvBlock(nn.Module):
    """Residual 2-D conv block of Rawformer-S/L (the AASIST residual block with the pre-BN actually used).

    [BN -> SELU] -> Conv(2, k) -> BN -> SELU -> Conv(2, 3), plus the (1x3-conv projected) input, then a
    (1, pool) max-pool over time. The first block has no leading BN/SELU. Height is preserved
    (the first conv pads one row, the second removes it), width is preserved until the pool.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_w: int, pool: int, first: bool = False) -> None:
        super().__init__()
        self.normalizer = None if first else nn.Sequential(nn.BatchNorm2d(in_ch), nn.SELU())
        self.layers = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, (2, kernel_w), padding=(1, kernel_w // 2)),
            nn.BatchNorm2d(out_ch),
            nn.SELU(),
            nn.Conv2d(out_ch, out_ch, (2, 3), padding=(0, 1)),
        )
        self.downsampler = None
        if in_ch != out_ch:
            self.downsampler = nn.Sequential(nn.Conv2d(in_ch, out_ch, (1, 3), padding=(0, 1)))
        self.pooling = nn.MaxPool2d((1, pool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, F, T) -> (B, out_ch, F, T // pool)."""
        identity = x if self.downsampler is None else self.downsampler(x)
        if self.normalizer is not None:
            x = self.normalizer(x)
        return self.pooling(self.layers(x) + identity)


class SqueezeExcite(nn.Module):
    """Channel gating from the (F, T) mean: Linear -> ReLU -> Linear -> Sigmoid."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) -> (B, C, F, T)."""
        gate = self.fc(x.mean(dim=(2, 3)))  # (B, C)
        return x * gate[:, :, None, None]


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=(kernel[0] // 2, kernel[1] // 2)),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(),
    )


class Res2NetSEBlock(nn.Module):
    """SE-Rawformer block: BN -> SELU -> 1x7 conv -> Res2Net hierarchy of 3x9 convs over `scale` channel
    groups -> 1x7 conv -> squeeze-excitation, plus the (1x7-conv projected) input, then a (1, 6) max-pool.
    """

    def __init__(self, in_ch: int, out_ch: int, scale: int = 8, reduction: int = 8, pool: int = 6) -> None:
        super().__init__()
        self.scale = scale
        self.width = out_ch // scale
        hidden = self.width * scale
        self.normalizer = nn.Sequential(nn.BatchNorm2d(in_ch), nn.SELU())
        self.conv1 = _conv_bn_relu(in_ch, hidden, (1, 7))
        self.conv2 = nn.ModuleList(_conv_bn_relu(self.width, self.width, (3, 9)) for _ in range(scale - 1))
        self.conv3 = _conv_bn_relu(hidden, out_ch, (1, 7))
        self.se_module = SqueezeExcite(out_ch, reduction)
        self.downsampler = None
        if in_ch != out_ch:
            self.downsampler = nn.Sequential(nn.Conv2d(in_ch, out_ch, (1, 7), padding=(0, 3)))
        self.pooling = nn.MaxPool2d((1, pool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, F, T) -> (B, out_ch, F, T // pool)."""
        identity = x if self.downsampler is None else self.downsampler(x)
        groups = torch.split(self.conv1(self.normalizer(x)), self.width, dim=1)  # scale x (B, w, F, T)
        outs = [groups[0]]
        for i, conv in enumerate(self.conv2, start=1):
            # Each group also sees the previous group's output (the Res2Net hierarchy), except group 1.
            outs.append(conv(groups[i] if i == 1 else groups[i] + outs[-1]))
        y = self.se_module(self.conv3(torch.cat(outs, dim=1)))
        return self.pooling(y + identity)


_VARIANTS = ("s", "l", "se")


def _front_end_blocks(variant: str) -> tuple[list[nn.Module], int, int]:
    """(blocks, per-block time pool, number of blocks) of the S / L / SE front ends."""
    if variant == "l":
        plan = [(1, 32), (32, 32), (32, 64), (64, 64), (64, 64), (64, 64)]
        return [ResConvBlock(i, o, 3, 3, first=n == 0) for n, (i, o) in enumerate(plan)], 3, len(plan)
    first = ResConvBlock(1, 32, 5, 6, first=True)
    plan = [(32, 32), (32, 64), (64, 64)]
    if variant == "s":
        rest: list[nn.Module] = [ResConvBlock(i, o, 5, 6) for i, o in plan]
    else:
        rest = [Res2NetSEBlock(i, o) for i, o in plan]
    return [first, *rest], 6, 1 + len(plan)


class RawformerFrontEnd(nn.Module):
    """(B, T) waveform -> HFM (B, 64, 23, t): sinc filterbank, |.| (3, 3) max-pool, BN, SELU, conv blocks."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        if variant not in _VARIANTS:
            raise ValueError(f"unknown Rawformer front end {variant!r}; expected one of {_VARIANTS}")
        self.sinc = SincFilterbank(_SINC_CHANNELS, _SINC_KERNEL, SAMPLE_RATE)
        self.bn = nn.BatchNorm2d(1)
        self.selu = nn.SELU()
        blocks, pool, n_blocks = _front_end_blocks(variant)
        self.conv_blocks = nn.Sequential(*blocks)
        self.time_reduction = pool**n_blocks  # all block pools together
        self.n_freq = _SINC_CHANNELS // _SINC_POOL

    def frames(self, length: int) -> int:
        """Time bins t of the HFM for `length` samples (nested floors collapse to one)."""
        return (length - self.sinc.kernel_size + 1) // _SINC_POOL // self.time_reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 64, 23, t)."""
        x = self.sinc(x.unsqueeze(1)).unsqueeze(1)  # (B, 1, 70, T - 128)
        x = F.max_pool2d(x.abs(), _SINC_POOL)  # (B, 1, 23, T')
        return self.conv_blocks(self.selu(self.bn(x)))  # (B, 64, 23, t)


class Rawformer(CountermeasureModel):
    """Rawformer countermeasure: (B, T) 16 kHz waveform -> spoof logit (B, 1).

    `variant` picks the front end ("s": 4 residual blocks with (1, 6) pools; "l": 6 blocks with (1, 3)
    pools; "se": the S first block + 3 Res2Net-SE blocks). `max_frames` is the HFM time-bin count the
    position table is sized for (23 * max_frames rows): 16 (S, SE) or 29 (L) for a 4 s input.
    Valid input lengths are `min_input_length`..`max_input_length` samples; others raise `ValueError`.
    """

    input_length = 64_000  # the reference trains on random 4 s crops (repeat-padded if shorter)

    def __init__(
        self,
        variant: str = "s",
        n_encoders: int = 2,
        transformer_hidden: int = 64,
        max_frames: int = 16,
        n_heads: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.variant = variant
        self.front_end = RawformerFrontEnd(variant)
        self.positional_embedding = PositionalAggregator(_D_MODEL, self.front_end.n_freq * max_frames)
        self.classifier = RawformerClassifier(_D_MODEL, n_encoders, transformer_hidden, n_heads, dropout)
        fe = self.front_end
        per_frame = _SINC_POOL * fe.time_reduction  # samples per HFM time bin
        self.min_input_length = fe.sinc.kernel_size - 1 + per_frame
        self.max_input_length = fe.sinc.kernel_size - 1 + per_frame * (max_frames + 1) - 1

    @property
    def name(self) -> str:
        """Display name, e.g. "Rawformer-S"."""
        return f"Rawformer-{self.variant.upper()}"

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2:
            raise ValueError(f"{self.name} expects a (B, T) waveform batch, got shape {tuple(x.shape)}")
        n = x.shape[1]
        if n < self.min_input_length:
            raise ValueError(
                f"{self.name} needs at least {self.min_input_length:,} samples "
                f"({self.min_input_length / SAMPLE_RATE:.3f} s at 16 kHz), got {n:,}; repeat-pad short audio"
            )
        if n > self.max_input_length:
            raise ValueError(
                f"{self.name} accepts at most {self.max_input_length:,} samples "
                f"({self.max_input_length / SAMPLE_RATE:.2f} s at 16 kHz; its position table covers "
                f"{self.positional_embedding.max_positions} positions), "
                f"got {n:,}; score longer audio in windows of {self.input_length:,} samples"
            )

    def hfm(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> front-end feature map (B, 64, 23, t)."""
        self._check_input(x)
        return self.front_end(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> pooled utterance embedding (B, 64), the input of the final linear layer."""
        return self.classifier.embed(self.positional_embedding(self.hfm(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform (pre-emphasised, see `preprocess`) -> spoof logit (B, 1), before the sigmoid."""
        return self.classifier.linear(self.embed(x))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-emphasis y[n] = x[n] - 0.97 x[n-1], with x[-1] := x[1] (reflect pad); (B, T) -> (B, T)."""
        if x.dim() != 2 or x.shape[1] < 2:
            raise ValueError(f"pre-emphasis expects a (B, T >= 2) waveform batch, got shape {tuple(x.shape)}")
        prev = torch.cat([x[:, 1:2], x[:, :-1]], dim=1)  # (B, T)
        return x - PRE_EMPHASIS * prev

    def bonafide_score(self, out: torch.Tensor) -> torch.Tensor:
        """(B, 1) spoof logit -> (B,) bona fide score = minus the spoof logit."""
        return -out[:, 0]

    def logits2(self, out: torch.Tensor) -> torch.Tensor:
        """(B, 1) spoof logit s -> (B, 2) `[spoof, bonafide]` logits `[0, -s]`.

        softmax([0, -s]) = [sigmoid(s), 1 - sigmoid(s)], so cross-entropy on these logits equals binary
        cross-entropy on the spoof logit (as the reference trains), class weights included; and
        column 1 equals `bonafide_score`.
        """
        return torch.cat([torch.zeros_like(out), -out], dim=1)


# The released hackathon checkpoint was saved from DistributedDataParallel (`module.` prefix) and with an
# older SE-layer name (`se_fc`). The registry applies the first matching *prefix*, so the SE rename is
# spelled out per block, with and without the DDP prefix, before the bare prefix strip.
_DDP_KEYS: tuple[tuple[str, str], ...] = (("module.", ""),)
_SE_KEYS: tuple[tuple[str, str], ...] = (
    *(
        (f"{ddp}front_end.conv_blocks.{i}.se_fc.", f"front_end.conv_blocks.{i}.se_module.fc.")
        for ddp in ("module.", "")
        for i in (1, 2, 3)
    ),
    *_DDP_KEYS,
)


def _build(defaults: dict[str, Any], overrides: dict[str, Any]) -> Rawformer:
    return Rawformer(**{**defaults, **overrides})


@register(
    "rawformer-s",
    description="Rawformer-S: sinc + 4 residual conv blocks + 2 transformer encoders (FFN 64)",
    reference_key_map=_DDP_KEYS,
)
def rawformer_s(**overrides: Any) -> Rawformer:
    """Rawformer-S (191,364 parameters)."""
    return _build(dict(variant="s", n_encoders=2, transformer_hidden=64, max_frames=16), overrides)


@register(
    "rawformer-l",
    description="Rawformer-L: sinc + 6 residual conv blocks + 3 transformer encoders (FFN 80)",
    reference_key_map=_DDP_KEYS,
)
def rawformer_l(**overrides: Any) -> Rawformer:
    """Rawformer-L (293,044 parameters)."""
    return _build(dict(variant="l", n_encoders=3, transformer_hidden=80, max_frames=29), overrides)


@register(
    "rawformer-se",
    description="SE-Rawformer: sinc + Res2Net-SE conv blocks + 2 transformer encoders (FFN 660)",
    reference_key_map=_SE_KEYS,
)
def rawformer_se(**overrides: Any) -> Rawformer:
    """SE-Rawformer (371,476 parameters); the architecture of the released hackathon checkpoint."""
    return _build(dict(variant="se", n_encoders=2, transformer_hidden=660, max_frames=16), overrides)
