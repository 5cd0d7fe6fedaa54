"""Batched FIR design and FFT filtering for RawBoost.

Design follows `scipy.signal.firwin(numtaps, [f1, f2], window="hamming", fs=fs)` (a band-stop with
`pass_zero=True`) and the RawBoost notch cascade, vectorised over any leading dims. Design runs in
float64 (the tensors are tiny); filtering runs in the signal's dtype with overlap-save FFT blocks.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import signal
from torch import Tensor

__all__ = [
    "FIRBank",
    "band_edges",
    "filter_powers",
    "fir_bank",
    "fir_powers",
    "firwin_bandstop",
    "notch_cascade",
    "notch_cascade_length",
]

# `scipy.signal.freqz(b)` evaluates 512 points on [0, π) (the FFT route: rfft(b, 1024)[:512]).
FREQZ_POINTS = 512


@functools.lru_cache(maxsize=8)
def _tap_tables(max_taps: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Tables for `firwin_bandstop`, over the distance k = |m| from the centre (k < H = (max_taps + 1)/2)
    and per odd tap count c (row c, 0..max_taps): k as a divisor (1 at k = 0), np.sinc(k) (H,); each tap's
    k (max_taps + 1, max_taps) int64; scipy's symmetric Hamming window zero-padded to max_taps (same)."""
    rows, half = max_taps + 1, (max_taps + 1) // 2
    k = np.arange(half, dtype=np.float64)
    dist = np.zeros((rows, max_taps), dtype=np.int64)
    win = np.zeros((rows, max_taps))
    for c in range(1, rows):
        dist[c, :c] = np.abs(np.arange(c) - (c - 1) // 2)
        win[c, :c] = signal.get_window("hamming", c, fftbins=False)
    tabs = (np.where(k == 0, 1.0, k), np.sinc(k), dist, win)
    return tuple(torch.from_numpy(a).to(device) for a in tabs)  # type: ignore[return-value]


def _f_sinc(f: Tensor, m: Tensor) -> Tensor:
    # f·sinc(f·m) in numpy's operation order; m never 0 here (the centre tap is set by the caller).
    y = math.pi * (f * m)
    return f * (torch.sin(y) / y)


def firwin_bandstop(numtaps: Tensor, f1: Tensor, f2: Tensor, fs: float, max_taps: int) -> Tensor:
    """Hamming-windowed sinc band-stop filters, equal to `firwin(c, [f1, f2], window="hamming", fs=fs)`.

    numtaps, f1, f2: same shape (...); numtaps odd integers ≤ max_taps. Returns (..., max_taps)
    float64 taps, left-aligned, zeros after each filter's own `numtaps`.
    """
    dev = f1.device
    c = numtaps.to(device=dev, dtype=torch.int64)
    if c.device.type == "cpu" and c.numel() and (int(c.max()) > max_taps or bool((c % 2 == 0).any())):
        msg = f"firwin_bandstop needs odd numtaps ≤ max_taps={max_taps}, got {c.unique().tolist()}"
        raise ValueError(msg)
    k, sinc_k, dist, win = _tap_tables(max_taps, dev)
    f1n = (f1.to(torch.float64) / (0.5 * fs)).unsqueeze(-1)
    f2n = (f2.to(torch.float64) / (0.5 * fs)).unsqueeze(-1)
    # Bands [0, f1] and [f2, 1] pass, in firwin's order of accumulation; sinc(0) = 1 at the centre. The taps
    # are symmetric (odd c: sin, the products and quotients flip sign exactly), so each distance k from the
    # centre is computed once and spread to both sides: half the sines.
    v = _f_sinc(f1n, k) + sinc_k - _f_sinc(f2n, k)  # (..., H)
    v = torch.cat([f1n + 1 - f2n, v[..., 1:]], dim=-1)
    h = v.gather(-1, dist[c]) * win[c]  # the window is 0 past each filter's numtaps
    # Scale to unit gain at DC (the first pass band starts at 0).
    return h / h.sum(-1, keepdim=True)


def band_edges(fc: Tensor, bw: Tensor, fs: float) -> tuple[Tensor, Tensor]:
    """Notch edges fc ∓ bw/2 (float64), clipped as the original: f1 ≤ 0 → 0.001, f2 ≥ fs/2 → fs/2 − 0.001."""
    fc, bw = fc.to(torch.float64), bw.to(torch.float64)
    f1 = fc - bw / 2
    f2 = fc + bw / 2
    f1 = torch.where(f1 <= 0, torch.full_like(f1, 1e-3), f1)
    f2 = torch.where(f2 >= fs / 2, torch.full_like(f2, fs / 2 - 1e-3), f2)
    return f1, f2


def notch_cascade_length(n_bands: int, max_taps: int) -> int:
    """Length of the tap axis `notch_cascade` returns for `n_bands` filters of at most `max_taps` taps."""
    return n_bands * (max_taps - 1) + 1


def notch_cascade(
    fc: Tensor, bw: Tensor, numtaps: Tensor, gain_db: Tensor, fs: float, max_taps: int
) -> tuple[Tensor, Tensor]:
    """RawBoost multi-notch filters: convolve `nb` band-stops, normalise by the peak of `freqz`, apply gain.

    fc, bw, numtaps: (..., nb) notch centres (Hz), widths (Hz) and odd tap counts; gain_db: (...).
    Band edges are clipped as in the original (f1 ≤ 0 → 0.001, f2 ≥ fs/2 → fs/2 − 0.001).
    Returns `b` (..., L) float64 left-aligned taps with L = `notch_cascade_length(nb, max_taps)`, and the
    true lengths (...) int64 (sum of the band tap counts − (nb − 1)); taps past a filter's length are 0.
    """
    f1, f2 = band_edges(fc, bw, fs)
    taps = firwin_bandstop(numtaps, f1, f2, fs, max_taps)  # (..., nb, K)
    nb = taps.shape[-2]
    length = notch_cascade_length(nb, max_taps)
    # Convolution of the bands = product of their spectra (no wrap-around: n_conv ≥ length).
    n_conv = 1 << (length - 1).bit_length()
    b = torch.fft.irfft(torch.fft.rfft(taps, n=n_conv).prod(dim=-2), n=n_conv)[..., :length]  # (..., L)
    # freqz grid: bins k·step, k < 512, of an FFT whose size is a multiple of 1024.
    n_fft = 2 * FREQZ_POINTS * math.ceil(length / (2 * FREQZ_POINTS))
    step = n_fft // (2 * FREQZ_POINTS)
    h = torch.fft.rfft(b, n=n_fft)[..., : step * FREQZ_POINTS : step]  # (..., 512)
    # max |H| without a complex abs per bin; re² + im² as two planes (a sum over a size-2 dim is ~10× slower)
    peak = (h.real.square() + h.imag.square()).amax(-1, keepdim=True).sqrt()
    gain = torch.pow(10.0, gain_db.to(torch.float64) / 20).unsqueeze(-1)
    lengths = numtaps.to(device=b.device, dtype=torch.int64).sum(-1) - (nb - 1)
    # The FFT leaves ~1e-17 residue past each filter's end; clear it so the taps are exactly finite-length.
    b = torch.where(torch.arange(length, device=b.device) < lengths.unsqueeze(-1), b, 0.0)
    return gain * b / peak, lengths


def _block_size(taps: int, n: int) -> int:
    # Blocks ~8× the filter keep FFTs small and cache-friendly (4096 for the defaults, faster per sample
    # on CPU than 8192 or one long FFT); no need to exceed one block per signal.
    want = max(8 * taps, 1024)
    cap = n + 2 * taps
    return 1 << (min(want, cap) - 1).bit_length()


@dataclass(frozen=True)
class FIRBank:
    """Per-example FIR filters prepared for overlap-save filtering of length-T signals.

    h: (B, F, m/2 + 1) spectra of the circularly shifted taps; m: block size; lead/hop: block layout.
    Built by `fir_bank`; rows can be sliced (h[rows]) to filter a chunk of the batch.
    """

    h: Tensor
    m: int
    lead: int
    hop: int


def fir_bank(b: Tensor, lengths: Tensor, t: int, dtype: torch.dtype = torch.float32) -> FIRBank:
    """Prepare `b` (B, F, L) left-aligned taps with true odd `lengths` (B, F) for signals of length t."""
    if b.ndim != 3 or lengths.shape != b.shape[:2]:
        raise ValueError(f"fir_bank expects b (B, F, L) and lengths (B, F); got {tuple(b.shape)}, "
                         f"{tuple(lengths.shape)}")
    bsz, n_filt, ell = b.shape
    m = _block_size(ell, t)
    lead = (ell - 1) // 2  # ≥ max over filters of the causal reach (L − 3)/2
    hop = m - lead - (ell + 2) // 2  # (ell + 2)//2 ≥ the largest look-ahead N/2
    # Circularly shifted taps: tap j sits at (j − N/2) mod m, so block outputs come out already aligned.
    shift = (lengths.to(b.device) + 1) // 2  # (B, F)
    idx = (torch.arange(ell, device=b.device) - shift.unsqueeze(-1)) % m  # (B, F, L)
    g = torch.zeros(bsz, n_filt, m, dtype=dtype, device=b.device)
    g.scatter_(2, idx, b.to(dtype))
    # One spare bin per spectrum: complex products with h then never merge rows into one flat loop, so a
    # row's bins get the same vector/scalar-tail rounding whatever the number of rows filtered together.
    spec = torch.fft.rfft(g)
    h = spec.new_empty(bsz, n_filt, spec.shape[-1] + 1)[..., :-1].copy_(spec)
    return FIRBank(h=h, m=m, lead=lead, hop=hop)


def fir_powers(x: Tensor, bank: FIRBank) -> Tensor:
    """Σ_i FIR_i(x^(i+1)) for a prepared bank; x: (B, T) with the bank's B and T. Returns (B, T)."""
    bsz, t = x.shape
    h, m, lead, hop = bank.h, bank.m, bank.lead, bank.hop
    n_blk = -(-t // hop)
    xp = torch.nn.functional.pad(x, (lead, (n_blk - 1) * hop + m - lead - t))
    blocks = xp.unfold(1, m, hop)  # (B, n_blk, m), overlapping view
    acc = torch.fft.rfft(blocks).mul_(h[:, :1])  # (B, n_blk, m/2 + 1)
    if h.shape[1] > 1:
        power = blocks * blocks  # x^(i+1), block by block, updated in place
        for i in range(1, h.shape[1]):
            if i > 1:
                power.mul_(blocks)
            acc.addcmul_(torch.fft.rfft(power), h[:, i : i + 1])
    y = torch.fft.irfft(acc, n=m)[..., lead : lead + hop]  # (B, n_blk, hop)
    # Gathered into a contiguous (B, T): later row reductions then don't depend on the number of rows.
    out = x.new_empty(bsz, t)
    full = t // hop
    out[:, : full * hop].unflatten(1, (full, hop)).copy_(y[:, :full])
    if full < n_blk:
        out[:, full * hop :].copy_(y[:, full, : t - full * hop])
    return out


def filter_powers(x: Tensor, b: Tensor, lengths: Tensor) -> Tensor:
    """Σ_i FIR(x^(i+1), b[:, i]) with the original RawBoost alignment, by overlap-save FFT.

    x: (B, T); b: (B, F, L) left-aligned taps (any float dtype, cast to x's); lengths: (B, F) true tap
    counts (odd). Each filter is applied like the original `filterFIR`: `lfilter(b, 1, pad(x, (0, N)))`
    trimmed to `[N/2 : len − N/2]` with N = length + 1, i.e. output[t] = Σ_j b[j]·x[t + N/2 − j],
    so the output keeps length T. Returns (B, T) in x's dtype.
    """
    if x.ndim != 2 or b.ndim != 3 or b.shape[0] != x.shape[0]:
        msg = f"filter_powers expects x (B, T) and b (B, F, L); got {tuple(x.shape)}, {tuple(b.shape)}"
        raise ValueError(msg)
    return fir_powers(x, fir_bank(b.to(x.device), lengths, x.shape[1], x.dtype))
