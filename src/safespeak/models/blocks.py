"""Shared building blocks of the AASIST family (AASIST, AASIST-L, SEMAA, SSL heads) and Rawformer.

One home per block: models import from here. Module and parameter names follow the reference code
(clovaai/aasist) so that reference state dicts load with a small key map.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _check_dims(x: torch.Tensor, ndim: int, what: str) -> None:
    if x.dim() != ndim:
        raise ValueError(f"expected {what} ({ndim}-D), got shape {tuple(x.shape)}")


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def sinc_band_pass_table(out_channels: int, kernel_size: int, sample_rate: int = 16_000) -> torch.Tensor:
    """Fixed Hamming-windowed mel-spaced band-pass filters, (out_channels, kernel_size | 1) float32.

    The band edges are `out_channels + 1` points spaced evenly on the mel scale between 0 Hz and
    Nyquist (measured on a 512-point FFT grid). An even `kernel_size` is made odd (symmetric filters).
    The sinc is evaluated in float32 and the band scale in float64, as the reference does; a pure
    float64 computation would differ by up to 4e-6 relative.
    """
    k = kernel_size + 1 if kernel_size % 2 == 0 else kernel_size
    freqs = (sample_rate // 2) * np.linspace(0.0, 1.0, 257)
    mel = _hz_to_mel(freqs)
    edges = _mel_to_hz(np.linspace(mel.min(), mel.max(), out_channels + 1))
    taps = torch.arange(-(k - 1) / 2, (k - 1) / 2 + 1)  # (K,) float32
    window = torch.from_numpy(np.hamming(k)).float()
    rows = []
    for lo, hi in itertools.pairwise(edges):
        # The sinc argument is rounded to float32 step by step (torch scalar ops), np.sinc keeps float32,
        # and the float64 band scale promotes the difference to float64 before the final float32 cast.
        h_hi = (2 * hi / sample_rate) * np.sinc((2 * float(hi) * taps / sample_rate).numpy())
        h_lo = (2 * lo / sample_rate) * np.sinc((2 * float(lo) * taps / sample_rate).numpy())
        rows.append(window * torch.from_numpy(h_hi - h_lo).float())
    return torch.stack(rows)  # (C, K)


class SincFilterbank(nn.Module):
    """Fixed sinc band-pass filterbank (AASIST / RawNet2 front end); no trainable parameters.

    Input (B, in_channels, T) -> output (B, out_channels, T - K + 1) (no padding, stride 1), where K is
    `kernel_size` made odd. With `in_channels > 1` every filter is applied to each input channel and the
    results are summed (a plain convolution whose weight repeats the filter over input channels).
    The filters are a non-persistent buffer: they follow `.to(device)` but are not in the state dict.
    """

    def __init__(
        self, out_channels: int = 70, kernel_size: int = 128, sample_rate: int = 16_000, in_channels: int = 1
    ) -> None:
        super().__init__()
        if out_channels < 1 or kernel_size < 1 or in_channels < 1:
            raise ValueError(
                f"out_channels, kernel_size and in_channels must be >= 1, got "
                f"{out_channels}, {kernel_size}, {in_channels}"
            )
        self.out_channels = out_channels
        self.in_channels = in_channels
        self.sample_rate = sample_rate
        self.register_buffer(
            "band_pass", sinc_band_pass_table(out_channels, kernel_size, sample_rate), persistent=False
        )
        self.kernel_size = int(self.band_pass.shape[1])

    def weight(self) -> torch.Tensor:
        """Convolution weight (out_channels, in_channels, K)."""
        return self.band_pass.unsqueeze(1).expand(-1, self.in_channels, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, T) -> (B, out_channels, T - K + 1)."""
        _check_dims(x, 3, "(B, in_channels, T)")
        if x.shape[1] != self.in_channels or x.shape[2] < self.kernel_size:
            raise ValueError(
                f"expected (B, {self.in_channels}, T >= {self.kernel_size}), got shape {tuple(x.shape)}"
            )
        return F.conv1d(x, self.weight().to(x.dtype))
