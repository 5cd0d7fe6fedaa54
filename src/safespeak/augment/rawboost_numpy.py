"""Per-utterance CPU RawBoost in numpy/scipy, following the original algorithm call by call.

This is the "per-item" mode: one (T,) waveform at a time, e.g. inside a data-loader worker, and the
baseline the batched torch version (`safespeak.augment.rawboost`) is benchmarked and tested against.
The random draws are made in the original's order and with the original's calls (`uniform`,
`permutation`, `rand`, `normal`), so a `np.random.RandomState` seeded like the original process
reproduces its outputs exactly. The only deviation: a silent signal is never divided by its zero peak.
The original's costs are kept too (its list accumulator in LnL, its repeated peak search), since this
is the benchmark baseline.

Output dtypes follow the original for a float32 input: float64, except ISD alone (algo 2), which
writes into a copy of its input and so keeps the input dtype.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from safespeak.augment.rawboost import RawBoostParams

__all__ = ["filter_fir", "isd_numpy", "lnl_numpy", "notch_coeffs_numpy", "rawboost_numpy", "ssi_numpy"]

Rng = np.random.RandomState | np.random.Generator


def _uniform(rng: Rng, low: float, high: float) -> float:
    # The original draws size=(1,) arrays; the same call keeps a RandomState stream aligned.
    return float(rng.uniform(low=low, high=high, size=(1,))[0])


def _rand(rng: Rng, n: int) -> np.ndarray:
    return rng.rand(n) if isinstance(rng, np.random.RandomState) else rng.random(n)


def _norm_peak(x: np.ndarray, always: bool) -> np.ndarray:
    # The original `normWav`, which takes the peak again to divide by it (kept: this is the baseline).
    if not x.size:
        return x
    if always:
        return x / np.amax(abs(x)) if np.amax(abs(x)) > 0 else x
    if np.amax(abs(x)) > 1:
        return x / np.amax(abs(x))
    return x


def notch_coeffs_numpy(rng: Rng, p: RawBoostParams, min_g: float, max_g: float) -> np.ndarray:
    """One random multi-notch FIR: a cascade of `n_bands` firwin band-stops, gain `U(min_g, max_g)` dB."""
    b = np.ones(1)
    for _ in range(p.n_bands):
        fc = _uniform(rng, p.min_f, p.max_f)
        bw = _uniform(rng, p.min_bw, p.max_bw)
        c = int(_uniform(rng, p.min_coeff, p.max_coeff))
        if c % 2 == 0:
            c += 1
        f1, f2 = fc - bw / 2, fc + bw / 2
        if f1 <= 0:
            f1 = 1 / 1000
        if f2 >= p.fs / 2:
            f2 = p.fs / 2 - 1 / 1000
        b = np.convolve(signal.firwin(c, [f1, f2], window="hamming", fs=p.fs), b)
    gain = _uniform(rng, min_g, max_g)
    _, h = signal.freqz(b, 1, fs=p.fs)
    return 10 ** (gain / 20) * b / np.amax(np.abs(h))


def filter_fir(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The original `filterFIR`: FIR-filter x with b and trim so output[t] aligns like the original."""
    # lfilter on a zero-padded copy, then a trim of N/2 samples: the original's delay compensation.
    n = b.shape[0] + 1
    y = signal.lfilter(b, 1, np.pad(x, (0, n), "constant"))
    return y[n // 2 : y.shape[0] - n // 2]


def lnl_numpy(x: np.ndarray, rng: Rng, p: RawBoostParams) -> np.ndarray:
    """Algo 1: linear and non-linear convolutive noise (filters applied to x, x², …, x^N_f and summed)."""
    y: list[int] | np.ndarray = [0] * x.shape[0]  # as the original: a list, made an array by the first sum
    for i in range(p.n_f):
        lo, hi = (p.min_g, p.max_g) if i == 0 else (p.min_g - p.min_bias, p.max_g - p.max_bias)
        y = y + filter_fir(np.power(x, i + 1), notch_coeffs_numpy(rng, p, lo, hi))
    return _norm_peak(y - np.mean(y), always=False)


def isd_numpy(x: np.ndarray, rng: Rng, p: RawBoostParams) -> np.ndarray:
    """Algo 2: impulsive signal-dependent noise on up to P % of the samples."""
    beta = _uniform(rng, 0, p.p)
    y = x.copy()
    n = int(x.shape[0] * (beta / 100))
    pos = rng.permutation(x.shape[0])[:n]
    f_r = (2 * _rand(rng, n) - 1) * (2 * _rand(rng, n) - 1)
    y[pos] = x[pos] + p.g_sd * x[pos] * f_r
    return _norm_peak(y, always=False)


def ssi_numpy(x: np.ndarray, rng: Rng, p: RawBoostParams) -> np.ndarray:
    """Algo 3: stationary signal-independent noise: notch-filtered white noise at SNR U(SNRmin, SNRmax)."""
    noise = rng.normal(0, 1, x.shape[0])
    noise = _norm_peak(filter_fir(noise, notch_coeffs_numpy(rng, p, p.min_g, p.max_g)), always=True)
    snr = _uniform(rng, p.snr_min, p.snr_max)
    nn = np.linalg.norm(noise, 2)
    scale = np.linalg.norm(x, 2) / 10.0 ** (0.05 * snr) / nn if nn > 0 else 0.0
    return x + noise * scale


def rawboost_numpy(x: np.ndarray, algo: int, rng: Rng, params: RawBoostParams | None = None) -> np.ndarray:
    """Apply RawBoost algorithm `algo` (0–8) to one (T,) waveform with the original call order.

    1 LnL, 2 ISD, 3 SSI, 4 = 1→2→3, 5 = 1→2, 6 = 1→3, 7 = 2→3, 8 = peak-normalised LnL(x) + ISD(x), 0 = none.
    """
    p = params or RawBoostParams()
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"rawboost_numpy expects one (T,) waveform, got shape {x.shape}")
    stages = {1: "L", 2: "I", 3: "S", 4: "LIS", 5: "LI", 6: "LS", 7: "IS", 0: ""}
    if algo == 8:
        return _norm_peak(lnl_numpy(x, rng, p) + isd_numpy(x, rng, p), always=False)
    if algo not in stages:
        raise ValueError(f"unknown RawBoost algo {algo!r}; expected 0..8")
    funcs = {"L": lnl_numpy, "I": isd_numpy, "S": ssi_numpy}
    for s in stages[algo]:
        x = funcs[s](x, rng, p)
    return x
