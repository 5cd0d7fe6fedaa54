"""LFCC-LCNN: front end against an independent numpy/scipy LFCC, shapes, score convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dct

from safespeak.models import build
from safespeak.models.lcnn import LFCCFrontEnd, linear_filterbank


def _numpy_lfcc(x: np.ndarray, n_filters: int, n_lfcc: int) -> np.ndarray:
    """LFCC of one waveform: pre-emphasis, centred Hann STFT (zero padding), linear filters, log, DCT."""
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    n_fft, win, hop = 512, 320, 160
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2
    window[start : start + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    padded = np.pad(x, n_fft // 2, mode="reflect")
    n_frames = 1 + len(x) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (N, 257)
    freqs = np.linspace(0, 8000, n_fft // 2 + 1)
    edges = np.linspace(0, 8000, n_filters + 2)
    fb = np.zeros((len(freqs), n_filters))
    for j in range(n_filters):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        fb[:, j] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    logfb = np.log(power @ fb + 1e-7)
    return dct(logfb, type=2, norm="ortho", axis=1)[:, :n_lfcc].T  # (n_lfcc, N)


def test_lfcc_matches_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(4000)).astype(np.float32)
    ours = LFCCFrontEnd(n_filters=20, n_lfcc=20, deltas=2)(torch.from_numpy(x)[None])[0, 0].double().numpy()
    ref = _numpy_lfcc(x.astype(np.float64), 20, 20)
    assert ours.shape == (60, 1 + 4000 // 160)
    np.testing.assert_allclose(ours[:20], ref, atol=2e-3)
    # Δ is the ±1-frame regression of the static part, ΔΔ that of Δ (edges replicated).
    edge = np.pad(ref, ((0, 0), (1, 1)), mode="edge")
    delta = 0.5 * (edge[:, 2:] - edge[:, :-2])
    np.testing.assert_allclose(ours[20:40], delta, atol=2e-3)


def test_linear_filterbank_is_a_partition_of_unity_inside_the_band() -> None:
    fb = linear_filterbank(20, 512, 16_000)
    assert fb.shape == (257, 20)
    total = fb.sum(dim=1)
    # Between the first and last centre the overlapping triangles sum to 1.
    centre_bins = slice(13, 243)
    torch.testing.assert_close(total[centre_bins], torch.ones_like(total[centre_bins]), atol=1e-5, rtol=0)


def test_lcnn_shapes_batch_one_and_parameter_count() -> None:
    torch.manual_seed(0)
    model = build("lcnn").eval()
    assert sum(p.numel() for p in model.parameters()) == 157_890
    assert not any("window" in k or "dct" in k for k in model.state_dict())  # fixed tensors not saved
    x = 0.1 * torch.randn(3, 16_000)
    out = model(x)
    assert out.shape == (3, 2)
    one = model(x[1:2])
    torch.testing.assert_close(one[0], out[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.score(x), out[:, 1])


def test_lcnn_log_spectrogram_variant_and_too_short_input() -> None:
    model = build("lcnn", n_lfcc=0, n_filters=64, deltas=0, channels=[8, 8, 8, 8, 8]).eval()
    assert model.frontend.out_dim == 64
    assert model(0.1 * torch.randn(2, 8000)).shape == (2, 2)
    with pytest.raises(ValueError, match="too short"):
        model(torch.zeros(1, 1000))
    with pytest.raises(ValueError, match="n_lfcc"):
        build("lcnn", n_lfcc=30, n_filters=20)
