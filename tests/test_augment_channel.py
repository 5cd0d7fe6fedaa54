"""Codec / channel transforms: companding accuracy, band limiting, SNR, per-example selection."""

from __future__ import annotations

import math

import pytest
import torch

from safespeak.augment.channel import (
    ChannelConfig,
    ChannelTransform,
    add_noise_snr,
    alaw,
    mulaw,
    resample_fft,
)

SR = 16_000


def _tone(freq: float, n: int = 8000, amp: float = 0.5, sr: int = SR) -> torch.Tensor:
    return amp * torch.sin(2 * math.pi * freq * torch.arange(n) / sr)


def _snr_db(ref: torch.Tensor, test: torch.Tensor) -> float:
    return 10 * math.log10(ref.pow(2).sum() / (test - ref).pow(2).sum())


@pytest.mark.parametrize("codec", [mulaw, alaw])
def test_companding_is_8_bit_and_accurate(codec):
    x = _tone(440.0)
    y = codec(x)
    assert y.unique().numel() <= 256
    assert 30 < _snr_db(x, y) < 45  # 8-bit log-PCM gives ~38 dB on a loud tone
    torch.testing.assert_close(codec(y), y, atol=1e-6, rtol=0)  # decoded values are codebook points
    quiet = _tone(440.0, amp=0.01)  # companding keeps small signals far better than linear 8-bit
    assert _snr_db(quiet, codec(quiet)) > 25


def test_mulaw_known_values_and_clipping():
    x = torch.tensor([0.0, 1.0, -1.0, 3.0])
    y = mulaw(x)
    assert y[0] == 0  # silence stays silent (sign-magnitude codes, no DC offset)
    torch.testing.assert_close(y[1:], torch.tensor([1.0, -1.0, 1.0]), atol=1e-6, rtol=0)  # clips at ±1


def test_alaw_is_continuous_across_its_breakpoint():
    a = 87.6
    x = torch.linspace(0.5 / a, 2 / a, 200)
    y = alaw(x)
    assert (y.diff() >= 0).all()  # monotone through |x| = 1/A
    assert (y - x).abs().max() < 2e-3


def test_narrowband_round_trip_keeps_speech_band_and_removes_highs():
    low, high = _tone(1000.0), _tone(6000.0)
    down = resample_fft(low.unsqueeze(0), SR, 8000)
    assert down.shape == (1, 4000)
    torch.testing.assert_close(down[0], _tone(1000.0, n=4000, sr=8000), atol=1e-4, rtol=0)
    back = resample_fft(down, 8000, SR, length=8000)[0]
    assert _snr_db(low, back) > 60
    gone = resample_fft(resample_fft(high.unsqueeze(0), SR, 8000), 8000, SR, length=8000)
    assert gone.pow(2).sum() < 1e-6 * high.pow(2).sum()


def test_add_noise_hits_the_snr_and_keeps_silence():
    x = torch.randn(3, 2000, generator=torch.Generator().manual_seed(0))
    x[2] = 0
    noise = torch.randn(3, 2000, generator=torch.Generator().manual_seed(1))
    snr = torch.tensor([5.0, 20.0, 10.0])
    y = add_noise_snr(x, noise, snr)
    for i in range(2):
        assert abs(_snr_db(x[i], y[i]) - snr[i].item()) < 1e-3
    assert y[2].abs().max() == 0


def test_transform_probabilities_select_examples():
    x = torch.randn(400, 64, generator=torch.Generator().manual_seed(2)) * 0.1
    cfg = ChannelConfig(noise_p=0.3, snr_min=20.0, snr_max=30.0)
    y = ChannelTransform(cfg)(x, torch.Generator().manual_seed(3))
    changed = (y != x).any(1)
    assert 90 < int(changed.sum()) < 150
    snr = 10 * torch.log10(x[changed].pow(2).sum(1) / (y - x)[changed].pow(2).sum(1))
    assert snr.min() >= 20 - 1e-3 and snr.max() <= 30 + 1e-3


def test_codec_only_transform_equals_the_codec_and_repeats_with_seed():
    x = torch.randn(4, 500, generator=torch.Generator().manual_seed(4)) * 0.2
    t = ChannelTransform(ChannelConfig(codec_p=1.0, codecs=("alaw",)))
    torch.testing.assert_close(t(x, torch.Generator().manual_seed(5)), alaw(x))
    full = ChannelTransform(ChannelConfig(narrowband_p=0.5, codec_p=0.5, noise_p=0.5))
    a = full(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, full(x, torch.Generator().manual_seed(6)))
    assert a.shape == x.shape and torch.isfinite(a).all()


def test_narrowband_with_codec_applies_the_codec_at_8k():
    x = _tone(1000.0).unsqueeze(0)
    t = ChannelTransform(ChannelConfig(narrowband_p=1.0, codec_p=1.0, codecs=("mulaw",)))
    want = resample_fft(mulaw(resample_fft(x, SR, 8000)), 8000, SR, length=x.shape[1])
    torch.testing.assert_close(t(x, torch.Generator().manual_seed(0)), want)


def test_config_validation():
    with pytest.raises(ValueError, match="codec_p"):
        ChannelConfig(codec_p=1.5)
    with pytest.raises(ValueError, match="gsm"):
        ChannelConfig(codecs=("gsm",))
    assert not ChannelConfig().enabled and ChannelConfig(noise_p=0.1).enabled
