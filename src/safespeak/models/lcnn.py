"""LFCC-LCNN (Wang & Yamagishi, Interspeech 2021; the ASVspoof 2021 baseline B03 family), CPU-friendly.

Front end: pre-emphasis, STFT (20 ms Hann window, 10 ms hop, 512 bins), linear-spaced triangular
filterbank, log, DCT -> LFCC, plus first and second deltas. Back end: light CNN with max-feature-map
(MFM) activations, then mean + standard-deviation pooling over time and a linear layer to two logits.
With `n_lfcc=0` the log filterbank energies are used directly (no DCT) — a log linear spectrogram.

Unlike the raw-waveform models, every convolution here runs on a ~100-frame-per-second feature map, so
a training step costs a small fraction of AASIST's on CPU; the demo uses it for that reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from safespeak.models.base import CountermeasureModel
from safespeak.models.registry import register

__all__ = ["LCNN", "LFCCFrontEnd", "MaxFeatureMap", "lcnn", "linear_filterbank"]


def linear_filterbank(n_filters: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    """(n_fft // 2 + 1, n_filters) triangular filters with linearly spaced centres over [0, fs/2]."""
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.linspace(0, sample_rate / 2, n_filters + 2, dtype=torch.float64)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    up = (bins[:, None] - lo) / (mid - lo)
    down = (hi - bins[:, None]) / (hi - mid)
    return torch.clamp(torch.minimum(up, down), min=0).to(torch.float32)


def _dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_in, n_out) orthonormal DCT-II basis (scipy's `dct(type=2, norm="ortho")` columns)."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)
    basis = torch.cos(math.pi / n_in * (n[:, None] + 0.5) * k[None, :]) * math.sqrt(2 / n_in)
    basis[:, 0] /= math.sqrt(2)
    return basis.to(torch.float32)


def _delta(x: torch.Tensor) -> torch.Tensor:
    """First-order regression delta over the last axis with a ±1 frame window (edges replicated)."""
    padded = F.pad(x, (1, 1), mode="replicate")
    return 0.5 * (padded[..., 2:] - padded[..., :-2])


class LFCCFrontEnd(nn.Module):
    """(B, T) waveform -> (B, 1, D, N) features: LFCC (or log energies) and their deltas, N frames.

    D = (n_lfcc or n_filters) * (1 + deltas). STFT window, filterbank and DCT basis are buffers.
    """

    def __init__(
        self,
        n_filters: int = 20,
        n_lfcc: int = 20,
        deltas: int = 2,
        n_fft: int = 512,
        win_length: int = 320,
        hop_length: int = 160,
        pre_emphasis: float = 0.97,
        sample_rate: int = 16_000,
    ) -> None:
        super().__init__()
        if n_lfcc > n_filters:
            raise ValueError(f"n_lfcc ({n_lfcc}) must not exceed n_filters ({n_filters})")
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.pre_emphasis, self.deltas = float(pre_emphasis), int(deltas)
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        fb = linear_filterbank(n_filters, n_fft, sample_rate)
        self.register_buffer("filterbank", fb, persistent=False)  # (n_fft/2 + 1, n_filters)
        dct = _dct_matrix(n_filters, n_lfcc) if n_lfcc else None
        self.register_buffer("dct", dct, persistent=False)  # (n_filters, n_lfcc) or None
        self.out_dim = (n_lfcc or n_filters) * (1 + self.deltas)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 1, D, N) with N = T // hop + 1."""
        if x.ndim != 2:
            raise ValueError(f"LFCC front end expects a (B, T) waveform, got shape {tuple(x.shape)}")
        if self.pre_emphasis:
            x = torch.cat([x[:, :1], x[:, 1:] - self.pre_emphasis * x[:, :-1]], dim=1)
        # a trace (ONNX export) takes the real/imaginary STFT only; both give (B, n_fft/2 + 1, N, 2)
        tracing = torch.jit.is_tracing()
        n_fft, hop, win = self.n_fft, self.hop_length, self.win_length
        spec = torch.stft(x, n_fft, hop, win, self.window, center=True, return_complex=not tracing)
        power = (spec if tracing else torch.view_as_real(spec)).square().sum(-1)  # (B, n_fft/2 + 1, N)
        feats = torch.log(power.transpose(1, 2) @ self.filterbank + 1e-7)  # (B, N, n_filters)
        if self.dct is not None:
            feats = feats @ self.dct  # (B, N, n_lfcc)
        feats = feats.transpose(1, 2)  # (B, C, N)
        parts = [feats]
        for _ in range(self.deltas):
            parts.append(_delta(parts[-1]))
        return torch.cat(parts, dim=1).unsqueeze(1)  # (B, 1, D, N)


class MaxFeatureMap(nn.Module):
    """MFM activation: split the channels in two halves and keep the element-wise maximum (C -> C/2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2C, ...) -> (B, C, ...)."""
        half = int(x.shape[1]) // 2  # a Python int even in a trace: ONNX export needs static channels
        return torch.maximum(x[:, :half], x[:, half:])


def _mfm_conv(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """Conv with 2·c_out channels + MFM -> c_out channels (same padding)."""
    return nn.Sequential(nn.Conv2d(c_in, 2 * c_out, kernel, padding=kernel // 2), MaxFeatureMap())


class LCNN(CountermeasureModel):
    """LFCC-LCNN: (B, T) waveform -> (B, 2) logits `[spoof, bonafide]`.

    `channels` = MFM output channels of the five stages (the B03 baseline: 32, 48, 64, 32, 32); stage 1
    is a 5x5 MFM conv, stages 2-5 a 1x1 then 3x3 MFM conv pair; 2x2 max-pools follow stages 1, 2, 3, 5.
    Pooling over time: mean and standard deviation of the flattened (channel x feature) map per frame.
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 48, 64, 32, 32),
        n_filters: int = 20,
        n_lfcc: int = 20,
        deltas: int = 2,
        dropout: float = 0.3,
        input_length: int = 64_600,
    ) -> None:
        super().__init__()
        if len(channels) != 5:
            raise ValueError(f"LCNN needs 5 stage widths, got {list(channels)}")
        self.input_length = int(input_length)
        self.frontend = LFCCFrontEnd(n_filters=n_filters, n_lfcc=n_lfcc, deltas=deltas)
        c1, c2, c3, c4, c5 = (int(c) for c in channels)
        pool = nn.MaxPool2d(2, 2)
        self.body = nn.Sequential(
            _mfm_conv(1, c1, 5), pool,
            _mfm_conv(c1, c1, 1), nn.BatchNorm2d(c1, affine=False), _mfm_conv(c1, c2, 3), pool,
            nn.BatchNorm2d(c2, affine=False), _mfm_conv(c2, c2, 1), nn.BatchNorm2d(c2, affine=False),
            _mfm_conv(c2, c3, 3), pool,
            _mfm_conv(c3, c3, 1), nn.BatchNorm2d(c3, affine=False), _mfm_conv(c3, c4, 3),
            nn.BatchNorm2d(c4, affine=False), _mfm_conv(c4, c4, 1), nn.BatchNorm2d(c4, affine=False),
            _mfm_conv(c4, c5, 3), pool,
        )  # fmt: skip
        feat_rows = self.frontend.out_dim // 16  # four 2x2 pools
        if feat_rows < 1:
            raise ValueError(f"feature dimension {self.frontend.out_dim} is too small for four 2x2 pools")
        self.embed_dim = c5 * feat_rows
        self.dropout = nn.Dropout(dropout)
        self.out_layer = nn.Linear(2 * self.embed_dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 2)."""
        feats = self.frontend(x)  # (B, 1, D, N)
        if feats.shape[-1] < 16:
            raise ValueError(f"input of {x.shape[-1]} samples is too short for LCNN (needs ≥ 16 frames)")
        h = self.body(feats)  # (B, C5, D/16, N/16)
        h = h.flatten(1, 2)  # (B, E, N')
        std = h.std(dim=-1, unbiased=False) if h.shape[-1] > 1 else torch.zeros_like(h[..., 0])
        return self.out_layer(self.dropout(torch.cat([h.mean(dim=-1), std], dim=1)))


@register("lcnn", description="LFCC-LCNN (ASVspoof 2021 baseline family), light CNN on LFCC + deltas")
def lcnn(**overrides: object) -> LCNN:
    """LFCC-LCNN with the baseline's LFCC (20 linear filters, 20 coefficients, Δ and ΔΔ) and widths."""
    return LCNN(**overrides)  # type: ignore[arg-type]
