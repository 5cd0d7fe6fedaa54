"""Codec and channel augmentation on batched waveforms (B, T), any device, no torchaudio/FFmpeg.

Building blocks (pure functions): μ-law and A-law companding with 8-bit quantisation, FFT resampling
(e.g. 16 kHz → 8 kHz → 16 kHz, a telephone band limit), white noise at a given SNR. `ChannelTransform`
draws, per example and from a `torch.Generator`, which of them to apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "CODECS",
    "ChannelConfig",
    "ChannelTransform",
    "add_noise_snr",
    "alaw",
    "mulaw",
    "resample_fft",
]


def _quantise(y: Tensor, bits: int) -> Tensor:
    # Sign + (bits − 1)-bit magnitude, as G.711 codes are laid out: zero stays exactly zero (no DC offset).
    levels = (1 << (bits - 1)) - 1
    return torch.sign(y) * torch.round(y.abs().clamp(max=1) * levels) / levels


def mulaw(x: Tensor, mu: float = 255.0, bits: int = 8) -> Tensor:
    """μ-law encode (clip to [-1, 1], compand, quantise to `bits`) and decode; same shape as x."""
    log1p_mu = math.log1p(mu)
    y = torch.sign(x) * torch.log1p(mu * x.abs().clamp(max=1)) / log1p_mu
    y = _quantise(y, bits)
    return torch.sign(y) * torch.expm1(y.abs() * log1p_mu) / mu


def alaw(x: Tensor, a: float = 87.6, bits: int = 8) -> Tensor:
    """A-law encode (clip to [-1, 1], compand, quantise to `bits`) and decode; same shape as x."""
    k = 1 + math.log(a)
    ax = x.abs().clamp(max=1)
    # The log branch is evaluated everywhere; clamp keeps log() finite where the linear branch wins.
    y = torch.where(ax < 1 / a, a * ax / k, (1 + torch.log((a * ax).clamp(min=1))) / k)
    y = _quantise(torch.sign(x) * y, bits)
    ay = y.abs()
    out = torch.where(ay < 1 / k, ay * k / a, torch.exp((ay * k - 1).clamp(max=k - 1)) / a)
    return torch.sign(y) * out


CODECS = {"mulaw": mulaw, "alaw": alaw}


def resample_fft(
    x: Tensor, orig_sr: int, new_sr: int, rolloff: float = 0.9, length: int | None = None
) -> Tensor:
    """Band-limited FFT resampling along the last axis: (..., T) → (..., round(T·new_sr/orig_sr)).

    `length` overrides the output length (e.g. to return exactly to the original T after a round trip).
    Frequencies above `rolloff`·(min rate)/2 are tapered to zero with a raised cosine, so going down
    and back up acts as a low-pass (e.g. 16 k → 8 k → 16 k keeps about 0–3.6 kHz).
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} → {new_sr}")
    t = x.shape[-1]
    n_out = length if length is not None else max(1, round(t * new_sr / orig_sr))
    if n_out == t and new_sr == orig_sr:
        return x
    spec = torch.fft.rfft(x)  # (..., t/2 + 1)
    keep = min(spec.shape[-1], n_out // 2 + 1)
    f = torch.arange(keep, device=x.device, dtype=x.dtype) * (orig_sr / t)  # bin frequencies in Hz
    edge = min(orig_sr, new_sr) / 2
    taper = ((edge - f) / (edge * (1 - rolloff))).clamp(0, 1)
    taper = 0.5 - 0.5 * torch.cos(math.pi * taper)  # 1 below rolloff·edge, 0 at the edge
    return torch.fft.irfft(spec[..., :keep] * taper, n=n_out) * (n_out / t)


def add_noise_snr(x: Tensor, noise: Tensor, snr_db: Tensor) -> Tensor:
    """x + noise scaled per row to the SNR (dB); x, noise (B, T), snr_db (B,). Silent rows stay silent."""
    px = x.pow(2).sum(-1, keepdim=True)
    pn = noise.pow(2).sum(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    scale = torch.sqrt(px / pn) * torch.pow(10.0, -snr_db.to(x.dtype).unsqueeze(-1) / 20)
    return x + noise * scale


@dataclass(frozen=True)
class ChannelConfig:
    """Per-example probabilities and ranges of the channel transforms (all off by default).

    narrowband_p: resample to `narrowband_sr` and back (a codec, if drawn, then runs at that rate);
    codec_p: companding codec chosen uniformly from `codecs` ("mulaw", "alaw"), 8-bit;
    noise_p: white Gaussian noise at SNR U(snr_min, snr_max) dB.
    """

    narrowband_p: float = 0.0
    narrowband_sr: int = 8000
    codec_p: float = 0.0
    codecs: tuple[str, ...] = ("mulaw", "alaw")
    noise_p: float = 0.0
    snr_min: float = 10.0
    snr_max: float = 40.0

    def __post_init__(self) -> None:
        for name in ("narrowband_p", "codec_p", "noise_p"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"channel.{name} is a probability in [0, 1], got {v}")
        unknown = [c for c in self.codecs if c not in CODECS]
        if unknown or not self.codecs:
            raise ValueError(f"channel.codecs {list(self.codecs)}: choose from {sorted(CODECS)}")
        if self.narrowband_sr <= 0 or self.snr_min > self.snr_max:
            raise ValueError(f"channel: need narrowband_sr > 0 and snr_min ≤ snr_max, got {self}")

    @property
    def enabled(self) -> bool:
        return self.narrowband_p > 0 or self.codec_p > 0 or self.noise_p > 0


@dataclass(frozen=True)
class ChannelTransform:
    """Batch transform: narrowband round trip, codec, noise, each drawn per example. x: (B, T) → (B, T)."""

    cfg: ChannelConfig
    sample_rate: int = 16_000

    def __call__(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if x.ndim != 2:
            raise ValueError(f"ChannelTransform expects (B, T), got shape {tuple(x.shape)}")
        c, bsz = self.cfg, x.shape[0]
        gdev = generator.device if generator is not None else x.device
        u = torch.rand((4, bsz), generator=generator, device=gdev).to(x.device)  # one row per decision
        narrow = (u[0] < c.narrowband_p).unsqueeze(-1)
        coded = (u[1] < c.codec_p).unsqueeze(-1)
        which = (u[2] * len(c.codecs)).long().clamp(max=len(c.codecs) - 1).unsqueeze(-1)
        noisy = (u[3] < c.noise_p).unsqueeze(-1)
        if c.narrowband_p > 0:
            low = resample_fft(x, self.sample_rate, c.narrowband_sr)  # (B, T')
            low = torch.where(coded, self._codec(low, which), low)
            back = resample_fft(low, c.narrowband_sr, self.sample_rate, length=x.shape[1])  # (B, T)
            x = torch.where(narrow, back, x)
        if c.codec_p > 0:
            x = torch.where(coded & ~narrow, self._codec(x, which), x)
        if c.noise_p > 0:
            noise = torch.randn(x.shape, generator=generator, device=gdev).to(x.device)
            snr = c.snr_min + (c.snr_max - c.snr_min) * torch.rand((bsz,), generator=generator, device=gdev)
            x = torch.where(noisy, add_noise_snr(x, noise, snr.to(x.device)), x)
        return x

    def _codec(self, x: Tensor, which: Tensor) -> Tensor:
        out = x
        for i, name in enumerate(self.cfg.codecs):
            out = torch.where(which == i, CODECS[name](x), out)
        return out
