"""Channel policy of the corpus: both classes leave it with the same rate, level, silence and band."""

from __future__ import annotations

import numpy as np
import pytest

from safespeak.corpus.channel import CHANNEL_POLICY, condition, limit_peaks, trim_silence

SR = 16000


def _tone(seconds: float, sr: int, amp: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _active_rms_db(y: np.ndarray) -> float:
    frames = y[: y.size // 160 * 160].reshape(-1, 160).astype(np.float64)
    db = 10 * np.log10((frames**2).mean(1) + 1e-12)
    active = db[db > db.max() - 40]
    return float(10 * np.log10(np.mean(10 ** (active / 10))))


def test_trim_silence_cuts_quiet_edges_only() -> None:
    x = np.concatenate([np.zeros(8000), _tone(0.5, SR, 0.5), np.zeros(4000)]).astype(np.float32)
    y = trim_silence(x)
    assert abs(y.size - 8000) <= 160  # the tone, to within one 10 ms frame
    assert np.abs(y[:160]).max() > 0.1


def test_condition_equalises_level_and_silence_across_inputs() -> None:
    rng = np.random.default_rng(0)
    quiet_late = np.concatenate([np.zeros(16000), _tone(0.8, 22050, 0.01)[: int(0.8 * SR)]])
    loud_early = _tone(0.8, 44100, 0.9, freq=300.0)
    outs = [condition(quiet_late, SR, rng), condition(loud_early, 44100, rng)]
    pad = SR * CHANNEL_POLICY["pad_ms"] // 1000
    for y in outs:
        assert y.dtype == np.float32
        assert _active_rms_db(y) == pytest.approx(CHANNEL_POLICY["active_rms_dbfs"], abs=0.6)
        ceiling_db = CHANNEL_POLICY["active_rms_dbfs"] + CHANNEL_POLICY["limiter_db_above_rms"]
        assert 20 * np.log10(np.abs(y).max()) <= ceiling_db + 1.5
        lead = np.flatnonzero(np.abs(y) > 0.01)[0]  # first sample above the noise floor
        assert abs(lead - pad) < 480  # within 30 ms: the band filter smears onsets a little
    assert outs[0].size == pytest.approx(outs[1].size, abs=400)  # same 0.8 s tone after trimming


def test_condition_band_limits_and_adds_noise_floor() -> None:
    rng = np.random.default_rng(1)
    x = np.random.default_rng(2).standard_normal(SR).astype(np.float32) * 0.1  # white: energy up to 8 kHz
    y = condition(x, SR, rng)
    spec = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(y.size, 1 / SR)
    above = spec[freqs > 7500].sum() / spec.sum()
    assert above < 1e-3
    pad = SR * CHANNEL_POLICY["pad_ms"] // 1000
    floor_db = 10 * np.log10(np.mean(y[: pad - 200].astype(np.float64) ** 2))
    assert floor_db == pytest.approx(CHANNEL_POLICY["noise_floor_dbfs"], abs=3.0)  # never digital silence


def test_limiter_caps_peaks_and_spares_quiet_signals() -> None:
    x = np.sin(2 * np.pi * 200 * np.arange(SR) / SR).astype(np.float32) * 0.1
    x[8000:8040] = 0.9  # a click
    y = limit_peaks(x, 0.2)
    assert np.abs(y).max() <= 0.2 + 1e-6
    np.testing.assert_allclose(y[:7000], x[:7000], atol=1e-6)  # far from the click: untouched


def test_condition_rejects_silent_input() -> None:
    with pytest.raises(ValueError, match="silent"):
        condition(np.zeros(1600, dtype=np.float32), SR, np.random.default_rng(0))
