"""One channel for both classes, so that level, silence and bandwidth cannot tell them apart.

Applied identically to every bona fide and spoofed file:
1. resample to 16 kHz mono (soxr);
2. band-limit to 60-7000 Hz (G.722 bona fide stops at 7 kHz; TTS at 22.05 kHz would not);
3. trim leading/trailing frames quieter than 40 dB below the loudest 10 ms frame;
4. scale the active frames to -26 dBFS RMS, then limit peaks to 10 dB above that level with a 5 ms
   look-ahead limiter and restore the RMS, twice (TTS and vocoders are peakier than recordings: the
   crest factor was a shortcut); peaks end near the ceiling (in the mini corpus: median +0.8 dB,
   99 % below +5.5 dB) and never above -1 dBFS;
5. pad 150 ms on each side and add a band-limited noise floor at -66 dBFS over the whole file
   (TTS output is digitally silent between words, recordings never are);
6. store as 16-bit FLAC.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.ndimage
import scipy.signal

from safespeak.audio import resample

__all__ = ["CHANNEL_POLICY", "condition", "limit_peaks", "trim_silence"]

SR = 16000
CHANNEL_POLICY = {
    "sample_rate": SR,
    "band_hz": [60, 7000],
    "trim_db_below_peak_frame": 40.0,
    "trim_frame_ms": 10,
    "active_rms_dbfs": -26.0,
    "limiter_db_above_rms": 10.0,
    "limiter_window_ms": 5,
    "limiter_rounds": 2,
    "peak_cap_dbfs": -1.0,
    "pad_ms": 150,
    "noise_floor_dbfs": -66.0,
    "format": "FLAC PCM_16",
}


@cache
def _band_sos() -> np.ndarray:
    lo, hi = CHANNEL_POLICY["band_hz"]
    return scipy.signal.butter(8, [lo, hi], btype="bandpass", fs=SR, output="sos")


def _band_limit(x: np.ndarray) -> np.ndarray:
    if x.shape[0] < 64:
        return x
    return scipy.signal.sosfiltfilt(_band_sos(), x).astype(np.float32)


def _frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    n = max(1, x.shape[0] // frame)
    frames = x[: n * frame].reshape(n, frame) if x.shape[0] >= frame else x[None, :]
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)  # (n,)


def trim_silence(x: np.ndarray) -> np.ndarray:
    """Cut leading/trailing 10 ms frames more than 40 dB below the loudest frame."""
    frame = SR * CHANNEL_POLICY["trim_frame_ms"] // 1000
    db = _frame_db(x, frame)
    active = np.flatnonzero(db > db.max() - CHANNEL_POLICY["trim_db_below_peak_frame"])
    if active.size == 0:
        return x
    return x[active[0] * frame : min(x.shape[0], (active[-1] + 1) * frame)]


def _normalise(x: np.ndarray) -> np.ndarray:
    frame = SR * CHANNEL_POLICY["trim_frame_ms"] // 1000
    db = _frame_db(x, frame)
    active_db = db[db > db.max() - CHANNEL_POLICY["trim_db_below_peak_frame"]]
    rms_db = 10 * np.log10(np.mean(10 ** (active_db / 10)))
    gain = 10 ** ((CHANNEL_POLICY["active_rms_dbfs"] - rms_db) / 20)
    peak = float(np.abs(x).max()) * gain
    cap = 10 ** (CHANNEL_POLICY["peak_cap_dbfs"] / 20)
    if peak > cap:
        gain *= cap / peak
    return (x * gain).astype(np.float32)


def limit_peaks(x: np.ndarray, ceiling: float) -> np.ndarray:
    """Smooth gain reduction so that |y| <= ceiling: min-filter the needed gain over +-L, then average
    over +-L/2 (every averaged value is <= the gain needed at the centre sample)."""
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x.astype(np.float64)), 1e-12))  # (T,)
    half = SR * CHANNEL_POLICY["limiter_window_ms"] // 1000
    gain = scipy.ndimage.minimum_filter1d(need, size=2 * half + 1, mode="nearest")
    gain = scipy.ndimage.uniform_filter1d(gain, size=half + 1, mode="nearest")
    return (x * np.minimum(gain, need)).astype(np.float32)


def condition(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Apply the corpus channel to a (T,) signal; returns (T',) float32 at 16 kHz."""
    y = resample(np.asarray(x, dtype=np.float32), sample_rate, SR)
    if y.shape[0] == 0 or not np.isfinite(y).all() or np.abs(y).max() == 0:
        raise ValueError("empty, silent or non-finite audio cannot be conditioned")
    y = _normalise(trim_silence(_band_limit(y)))
    ceiling = 10 ** ((CHANNEL_POLICY["active_rms_dbfs"] + CHANNEL_POLICY["limiter_db_above_rms"]) / 20)
    for _ in range(CHANNEL_POLICY["limiter_rounds"]):  # limiting lowers the RMS; restore it, limit again
        y = _normalise(limit_peaks(y, ceiling))
    pad = SR * CHANNEL_POLICY["pad_ms"] // 1000
    y = np.pad(y, (pad, pad))
    noise = _band_limit(rng.standard_normal(y.shape[0]).astype(np.float32))
    noise *= 10 ** (CHANNEL_POLICY["noise_floor_dbfs"] / 20) / (np.sqrt(np.mean(noise**2)) + 1e-12)
    return np.clip(y + noise, -1.0, 1.0).astype(np.float32)
