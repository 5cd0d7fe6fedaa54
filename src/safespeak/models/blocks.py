"""Shared building blocks of the AASIST family (AASIST, AASIST-L, SEMAA, SSL heads) and Rawformer.

One home per block: models import from here. Module and parameter names follow the reference code
(clovaai/aasist) so that reference state dicts load with a small key map.
"""

from __future__ import annotations

import itertools
from typing import Any

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


def _window_starts(freq: int, k: int, width: int, device: torch.device) -> torch.Tensor:
    """Flat index (row * width + 3 * window) of each (1, 3) window's first step in a (freq, width) plane."""
    rows = torch.arange(freq, device=device).unsqueeze(1) * width  # (F, 1)
    return rows + 3 * torch.arange(k, device=device)  # (F, k) int64


def _pool3(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`max_pool2d(x, (1, 3))` of (B, C, F, T) and the uint8 position (0..2) of each maximum in its window.

    ATen's pooling kernel is vectorised over channels-last maps; its int64 indices are only transient.
    """
    out, idx = F.max_pool2d(x, (1, 3), return_indices=True)  # (B, C, F, T // 3): trailing steps dropped
    return out, idx.sub_(_window_starts(x.shape[2], out.shape[3], x.shape[3], x.device)).to(torch.uint8)


def _unpool3(g: torch.Tensor, pos: torch.Tensor, t: int) -> torch.Tensor:
    """Gradient of `_pool3`: (B, C, F, k) output gradient and positions -> (B, C, F, t) input gradient."""
    idx = _window_starts(g.shape[2], g.shape[3], t, g.device) + pos  # (B, C, F, k) int64
    like = torch.empty(  # only its shape and layout are read
        *g.shape[:3], t, dtype=g.dtype, device=g.device, memory_format=torch.channels_last
    )
    return torch.ops.aten.max_pool2d_with_indices_backward(
        g, like, [1, 3], [1, 3], [0, 0], [1, 1], False, idx
    )


class _MaxPoolTime3(torch.autograd.Function):
    """Max over non-overlapping windows of 3 along the last axis of (B, C, F, T) -> (B, C, F, T // 3).

    Same values and gradient routing as `max_pool2d(x, (1, 3))` (it is computed by it), but autograd
    keeps only a uint8 window position per output instead of the full input plus int64 indices.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out, pos = _pool3(x)  # (B, C, F, T // 3)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(pos)
            ctx.in_time = x.shape[3]
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (pos,) = ctx.saved_tensors
        return _unpool3(grad, pos, ctx.in_time)


class _PatchLinear(torch.autograd.Function):
    """`patches @ weight.T + bias` for (..., K) patches with a tall-skinny-friendly backward.

    The default backward forms the weight gradient as grad.T @ patches, which BLAS runs an order of
    magnitude slower than the equivalent (patches.T @ grad).T for K = 3..6 and millions of rows.
    """

    @staticmethod
    def forward(ctx: Any, patches: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(patches, weight)
        return torch.addmm(bias, patches.reshape(-1, patches.shape[-1]), weight.t()).view(
            *patches.shape[:-1], weight.shape[0]
        )

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        patches, weight = ctx.saved_tensors
        # under autocast the output (and grad) may be half precision while the saved inputs are not
        g = grad.reshape(-1, grad.shape[-1]).to(patches.dtype)  # (N, C_out)
        p = patches.reshape(-1, patches.shape[-1])  # (N, K)
        grad_p = (g @ weight.to(g.dtype)).view(patches.shape) if ctx.needs_input_grad[0] else None
        grad_w = (p.t() @ g).t().to(weight.dtype)
        return grad_p, grad_w, g.sum(0).to(weight.dtype)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _time_chunks(bsz: int, t: int, chunk: int) -> list[tuple[int, int, int]]:
    """(batch row, t0, t1) pieces of a (B, ., ., T) map: one row and `chunk` steps (a multiple of 3) each."""
    return [(b, t0, min(t0 + chunk, t)) for b in range(bsz) for t0 in range(0, t, chunk)]


def _taps(zp: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """The six 2x3 conv1 taps of a 1-channel map at time steps [lo, hi) -> (B, F + 1, hi - lo, 6).

    `zp` is the (B, F, T) map zero-padded by 1 row and 2 time steps on each side, (B, F + 2, T + 4), so
    -1 <= lo and hi <= T + 1. Tap 3r + c of output row i reads input row i + r - 1 at time t + c - 1;
    taps 3..5 at rows 0..F-1 are the 1x3 skip convolution's patch.
    """
    f = zp.shape[1] - 2
    return torch.stack(
        [zp[:, r : r + f + 1, lo + 1 + c : hi + 1 + c] for r in range(2) for c in range(3)], -1
    )


def _scatter_taps(gzp: torch.Tensor, gtaps: torch.Tensor, lo: int) -> None:
    """Adjoint of `_taps` on one batch row: add the (6, F + 1, L) tap gradients of steps [lo, lo + L)."""
    f, n = gtaps.shape[1] - 1, gtaps.shape[2]
    for r in range(2):
        for c in range(3):
            gzp[r : r + f + 1, lo + 1 + c : lo + 1 + c + n] += gtaps[3 * r + c]


def _linear_taps(taps: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(..., K) taps @ weight.T -> (..., C): a 1-channel convolution without bias as one matmul.

    Callers fold the bias into a later elementwise op: `addmm` would first copy it into the whole output.
    """
    return (taps.reshape(-1, taps.shape[-1]) @ weight.t()).view(*taps.shape[:-1], weight.shape[0])


def _single_channel_bn_stats(
    z: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel mean and biased variance (float64) of conv1's (B, C, F + 1, T) output, and the count.

    conv1 is linear in its 6 taps, so its moments follow from the taps' mean and 6 x 6 second moment
    (summed chunk by chunk in float64): no C-channel map is computed at all.
    """
    zp = F.pad(z[:, 0], (2, 2, 1, 1))  # (B, F + 2, T + 4)
    tap_sum = torch.zeros(6, dtype=torch.float64)
    gram = torch.zeros(6, 6, dtype=torch.float64)
    for b, t0, t1 in _time_chunks(z.shape[0], z.shape[3], 4 * chunk):
        taps = _taps(zp[b : b + 1], t0, t1).flatten(0, 2).double()  # (N_chunk, 6)
        tap_sum += taps.sum(0)
        gram += taps.t() @ taps
    n = z.shape[0] * (z.shape[2] + 1) * z.shape[3]
    tap_mean = tap_sum / n
    cov = gram / n - torch.outer(tap_mean, tap_mean)  # (6, 6)
    w = w1.double()  # (C, 6)
    var = ((w @ cov) * w).sum(1).clamp_min(0.0)
    return w @ tap_mean + b1.double(), var, n


def _unpool_range(g: torch.Tensor, pos: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Pool-input gradient at time steps [lo, hi), zero outside the pooled steps: (1, C, F, hi - lo).

    `g`, `pos`: one batch row of the pooled gradient and positions, (1, F, K, C).
    """
    k = pos.shape[2]
    w0, w1 = max(lo, 0) // 3, min(-(-hi // 3), k)
    cl = torch.channels_last
    if w1 <= w0:
        return g.new_zeros(1, g.shape[3], g.shape[1], hi - lo).contiguous(memory_format=cl)
    full = _unpool3(
        g[:, :, w0:w1].permute(0, 3, 1, 2), pos[:, :, w0:w1].permute(0, 3, 1, 2), 3 * (w1 - w0)
    )  # (1, C, F, 3 (w1 - w0)): steps [3 w0, 3 w1)
    if lo >= 3 * w0 and hi <= 3 * w1:
        return full[..., lo - 3 * w0 : hi - 3 * w0]
    out = g.new_zeros(1, g.shape[3], g.shape[1], hi - lo).contiguous(memory_format=cl)
    a, e = max(lo, 3 * w0), min(hi, 3 * w1)
    out[..., a - lo : e - lo] = full[..., a - 3 * w0 : e - 3 * w0]
    return out


def _bn_selu_chunk(
    taps: torch.Tensor,
    w1: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    lo: int,
    t: int,
    c1: torch.Tensor | None = None,
) -> torch.Tensor:
    """SELU(c1 * scale + shift), c1 = conv1 without bias, at steps [lo - 1, lo + L + 1) from their taps
    (1, F + 1, L + 2, 6) -> (1, F + 1, L + 2, C).

    `c1` (overwritten) saves the matmul when the caller has it. Steps outside [0, t) are conv2's zero
    padding, not a function of the input: they are set to 0.
    """
    c1 = _linear_taps(taps, w1) if c1 is None else c1
    s = F.selu(c1.mul_(scale).add_(shift), inplace=True)
    if lo == 0:
        s[:, :, 0] = 0
    if lo + taps.shape[2] - 2 >= t:
        s[:, :, -1] = 0
    return s


def _conv_grad(
    grad: torch.Tensor, s: torch.Tensor, weight: torch.Tensor, time_pad: int, *, input_grad: bool
) -> torch.Tensor:
    """conv2's input gradient (`input_grad`) or weight gradient, for input `s` (1, F + 1, L, C) and output
    gradient `grad` (1, C, F, L + 2 time_pad - 2), one oneDNN backward call (stride 1, no row padding)."""
    mask = [input_grad, not input_grad, False]
    grads = torch.ops.aten.convolution_backward(
        grad, s.permute(0, 3, 1, 2), weight, None, [1, 1], [0, time_pad], [1, 1], False, [0, 0], 1, mask
    )
    return grads[0] if input_grad else grads[1]


class _ChunkedSingleChannelBlock(torch.autograd.Function):
    """The 1-channel residual block (first encoder block) in time chunks, with recomputation in backward.

    Input (B, 1, F, T) -> (B, C, F, T // 3) channels-last. Per chunk of one batch row: conv1 taps with a
    one-step halo, BN with the given statistics, SELU, conv2, skip conv, max-pool 3. Only the input, the
    uint8 pool positions and the output are kept: no (B, C, F, T) map is ever alive, and the chunk-sized
    temporaries stay in cache and in the allocator's heap (fresh full-size maps cost page faults).

    Backward recomputes each chunk (conv1 taps, BN, SELU; not conv2) and runs conv2's backward on it.
    With batch statistics the BN gradient dL/dc1 = a * g - a * mean(g) - a * xhat * mean(g * xhat)
    (a = gamma / std) needs two global sums; since everything after it is linear, the a * g part is
    propagated chunk by chunk and the two per-channel terms are applied at the end, through chunk-summed
    tap moments (conv1 weight) and a 6 x 6 tap map (input), instead of storing g for a second pass.
    """

    @staticmethod
    def forward(
        ctx: Any,
        z: torch.Tensor,
        w1: torch.Tensor,
        b1: torch.Tensor,
        gamma: torch.Tensor,
        beta: torch.Tensor,
        w2: torch.Tensor,
        b2: torch.Tensor,
        wd: torch.Tensor,
        bd: torch.Tensor,
        mean: torch.Tensor,
        invstd: torch.Tensor,
        batch_stats: bool,
        chunk: int,
    ) -> torch.Tensor:
        bsz, _, f, t = z.shape
        zp = F.pad(z[:, 0], (2, 2, 1, 1))  # (B, F + 2, T + 4)
        scale = gamma * invstd
        shift = beta + (b1 - mean) * scale  # BN shift with conv1's bias folded in
        bias = b2 + bd  # conv2's and the skip conv's outputs are summed: one bias
        out = z.new_empty(bsz, f, t // 3, w1.shape[0])  # (B, F, T // 3, C)
        pos = torch.empty(out.shape, dtype=torch.uint8)
        for b, t0, t1 in _time_chunks(bsz, t, chunk):
            taps = _taps(zp[b : b + 1], t0 - 1, t1 + 1)  # (1, F + 1, L + 2, 6): conv2 needs a 1-step halo
            s = _bn_selu_chunk(taps, w1, scale, shift, t0, t)
            y = F.conv2d(s.permute(0, 3, 1, 2), w2, bias)  # (1, C, F, L)
            v = _linear_taps(taps[:, :f, 1:-1, 3:], wd).add_(y.permute(0, 2, 3, 1))  # (1, F, L, C)
            k0, k1 = t0 // 3, t0 // 3 + (t1 - t0) // 3
            if k1 > k0:  # a last chunk of 1 or 2 steps only feeds BN statistics and its neighbour's conv2
                pooled, where = _pool3(v.permute(0, 3, 1, 2))  # (1, C, F, L // 3)
                out[b, :, k0:k1], pos[b, :, k0:k1] = pooled[0].permute(1, 2, 0), where[0].permute(1, 2, 0)
        ctx.save_for_backward(z, w1, b1, gamma, beta, w2, wd, mean, invstd, pos)
        ctx.batch_stats, ctx.chunk = batch_stats, chunk
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, w1, b1, gamma, beta, w2, wd, mean, invstd, pos = ctx.saved_tensors
        bsz, _, f, t = z.shape
        ch = w1.shape[0]
        f64 = torch.float64
        zp = F.pad(z[:, 0], (2, 2, 1, 1))  # (B, F + 2, T + 4)
        g = grad.permute(0, 2, 3, 1).to(z.dtype).contiguous()  # (B, F, T // 3, C)
        scale = gamma * invstd  # a = gamma / std
        shift = beta + (b1 - mean) * scale
        offset = (b1 - mean) * invstd  # xhat = c1 * invstd + offset
        w1a = w1 * scale[:, None]  # (C, 6)
        gzp = torch.zeros_like(zp) if ctx.needs_input_grad[0] else None
        gw2 = torch.zeros_like(w2, dtype=f64)
        gb2, s1, s2, sx = (torch.zeros(ch, dtype=f64) for _ in range(4))
        gwd, p1, p3 = (
            torch.zeros(3, ch, dtype=f64),
            torch.zeros(6, ch, dtype=f64),
            torch.zeros(6, ch, dtype=f64),
        )
        p2 = torch.zeros(6, dtype=f64)
        for b, t0, t1 in _time_chunks(bsz, t, ctx.chunk):
            taps = _taps(zp[b : b + 1], t0 - 1, t1 + 1)  # (1, F + 1, L + 2, 6)
            c1 = _linear_taps(taps, w1)  # (1, F + 1, L + 2, C), without bias
            xhat = torch.addcmul(offset, c1[:, :, 1:-1], invstd).flatten(0, 2)  # (N, C): own steps only
            s = _bn_selu_chunk(taps, w1, scale, shift, t0, t, c1)  # (1, F + 1, L + 2, C)
            gext = _unpool_range(g[b : b + 1], pos[b : b + 1], t0 - 1, t1 + 1)  # (1, C, F, L + 2)
            gout = gext[..., 1:-1]  # (1, C, F, L): conv2 and skip output gradient
            # conv2's input gradient over the halo'd range; only the chunk's own steps [1, L] are complete
            gs = _conv_grad(gext, s, w2, 1, input_grad=True)[..., 1:-1]  # (1, C, F + 1, L)
            gw2 += _conv_grad(gout, s, w2, 0, input_grad=False)
            gout = gout.permute(0, 2, 3, 1).flatten(0, 2)  # (N_out, C)
            gb2 += gout.sum(0)
            skip_taps = taps[:, :f, 1:-1, 3:].flatten(0, 2)  # (N_out, 3)
            gwd += skip_taps.t() @ gout
            # SELU backward from its result; the halo steps belong to the neighbouring chunks
            gbn = torch.ops.aten.elu_backward(
                gs.permute(0, 2, 3, 1), _SELU_ALPHA, _SELU_SCALE, 1, True, s[:, :, 1:-1]
            ).flatten(0, 2)  # (N, C)
            s1 += gbn.sum(0)
            s2 += (gbn * xhat).sum(0)
            sx += xhat.sum(0)
            own = taps[:, :, 1:-1].flatten(0, 2)  # (N, 6)
            p1 += own.t() @ gbn
            p3 += own.t() @ xhat
            p2 += own.sum(0)
            if gzp is not None:
                # (6, N) = w.T @ g.T: BLAS runs these narrow products several times faster than g @ w
                gtaps = (w1a.t() @ gbn.t()).view(6, f + 1, t1 - t0)
                gtaps[3:, :f] += (wd.t() @ gout.t()).view(3, f, t1 - t0)
                _scatter_taps(gzp[b], gtaps, t0)
        n = bsz * (f + 1) * t
        a = scale.to(f64)
        # dL/dc1 = a * gbn + bco + cco * xhat: the two per-channel terms need the global sums
        bco = -a * s1 / n if ctx.batch_stats else torch.zeros_like(a)
        cco = -a * s2 / n if ctx.batch_stats else torch.zeros_like(a)
        gw1 = a[:, None] * p1.t() + bco[:, None] * p2 + cco[:, None] * p3.t()  # (C, 6)
        gb1 = a * s1 + bco * n + cco * sx
        gz = None
        if gzp is not None:
            if ctx.batch_stats:
                # (bco + cco * xhat) @ w1 with xhat = (taps @ w1.T + b1 - mean) * invstd: affine in the taps
                w64 = w1.to(f64)
                cw = (cco * invstd.to(f64))[:, None] * w64  # (C, 6)
                tap_map = (w64.t() @ cw).to(z.dtype)  # (6, 6)
                tap_bias = ((bco + cco * invstd.to(f64) * (b1.to(f64) - mean.to(f64))) @ w64).to(z.dtype)
                for b, t0, t1 in _time_chunks(bsz, t, 4 * ctx.chunk):
                    taps = _taps(zp[b : b + 1], t0, t1)  # (1, F + 1, L, 6)
                    gtaps = torch.addmm(tap_bias[:, None], tap_map.t(), taps.flatten(0, 2).t())  # (6, N)
                    _scatter_taps(gzp[b], gtaps.view(6, f + 1, t1 - t0), t0)
            gz = gzp[:, 1:-1, 2:-2].unsqueeze(1)  # (B, 1, F, T)
        dt = w1.dtype
        # the skip conv's bias gradient is conv2's: both outputs get the same gradient
        return (
            gz,
            gw1.to(dt),
            gb1.to(dt),
            s2.to(dt),
            s1.to(dt),
            gw2.to(dt),
            gb2.to(dt),
            gwd.t().to(dt),
            gb2.to(dt),
            None,
            None,
            None,
            None,  # the skip conv shares conv2's output gradient
        )


def max_pool_time3(x: torch.Tensor) -> torch.Tensor:
    """`max_pool2d(x, (1, 3))` for (B, C, F, T), computed on the channels-last view (see `_MaxPoolTime3`)."""
    _check_dims(x, 4, "(B, C, F, T)")
    if x.shape[-1] < 3:
        raise ValueError(f"need at least 3 time steps to pool, got shape {tuple(x.shape)}")
    return _MaxPoolTime3.apply(x)


class ResidualBlock(nn.Module):
    """RawNet2-style 2-D residual block of the AASIST encoder: (B, C_in, F, T) -> (B, C_out, F, T // 3).

    conv(2x3) -> BN -> SELU -> conv(2x3), plus a 1x3 convolution on the skip path when the channel
    count changes, then max-pooling (1, 3) over time (`pool=False` in the SSL heads).
    The reference computes `SELU(bn1(x))` and then discards it (conv1 reads the block input), so `bn1`
    has no effect on any output. It is kept (for every block but the first) only so that reference
    state dicts load strictly; it is never computed, so its running statistics do not change in training.
    A pooled block with one input channel and a skip conv (the first encoder block, whose maps are the
    largest) runs in time chunks of `chunk_steps` (see `_ChunkedSingleChannelBlock`).
    """

    chunk_steps: int = 1536  # time steps per chunk of the chunked path (a multiple of 3)

    def __init__(
        self, in_channels: int, out_channels: int, *, first: bool = False, pool: bool = True
    ) -> None:
        super().__init__()
        self.first = first
        self.pool = pool
        if not first:
            self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(2, 3), padding=(1, 1))
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=(2, 3), padding=(0, 1))
        self.conv_downsample: nn.Conv2d | None = None
        if in_channels != out_channels:
            self.conv_downsample = nn.Conv2d(in_channels, out_channels, kernel_size=(1, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, F, T) -> (B, C_out, F, T // 3) (or T without pooling)."""
        _check_dims(x, 4, "(B, C, F, T)")
        # channels-last makes the small 2x3 convolutions about twice as fast on CPU (oneDNN)
        x = x.contiguous(memory_format=torch.channels_last)
        # a trace (ONNX export) records plain ATen ops: the custom autograd paths have no ONNX form
        tracing = torch.jit.is_tracing()
        if not tracing and self._can_chunk(x):
            return self._chunked(x)
        if x.shape[1] == 1 and not tracing:
            c1, skip = self._single_channel_convs(x)
        else:
            c1 = self.conv1(x)
            skip = x if self.conv_downsample is None else self.conv_downsample(x)
        # SELU in place on the fresh BN output: autograd keeps one tensor (also conv2's input), not two
        out = self.conv2(F.selu(self.bn2(c1), inplace=True))  # (B, C_out, F, T)
        out += skip
        if not self.pool:
            return out
        return F.max_pool2d(out, (1, 3)) if tracing else max_pool_time3(out)

    def _can_chunk(self, x: torch.Tensor) -> bool:
        bn = self.bn2
        return (
            x.shape[1] == 1
            and self.pool
            and self.conv_downsample is not None
            and bn.affine
            and x.dtype in (torch.float32, torch.float64)
            and x.device.type == "cpu"  # chunking is about CPU caches; GPUs keep the batched kernels
            and not torch.is_autocast_enabled("cpu")  # the chunks would mix precisions
        )

    def _chunked(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` of the 1-channel block through `_ChunkedSingleChannelBlock`; BN as `nn.BatchNorm2d`."""
        bn, d = self.bn2, self.conv_downsample
        assert d is not None and self.chunk_steps % 3 == 0
        w1 = self.conv1.weight.flatten(1)  # (C, 6)
        batch_stats = bn.training or bn.running_mean is None
        if batch_stats:
            with torch.no_grad():
                mean, var, n = _single_channel_bn_stats(x, w1, self.conv1.bias, self.chunk_steps)
                if bn.training and bn.running_mean is not None and bn.running_var is not None:
                    assert bn.num_batches_tracked is not None
                    bn.num_batches_tracked.add_(1)
                    m = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
                    bn.running_mean.mul_(1 - m).add_(mean.to(x.dtype), alpha=m)
                    bn.running_var.mul_(1 - m).add_((var * (n / max(n - 1, 1))).to(x.dtype), alpha=m)
            mean, var = mean.to(x.dtype), var.to(x.dtype)
        else:
            assert bn.running_mean is not None and bn.running_var is not None
            mean, var = bn.running_mean, bn.running_var
        return _ChunkedSingleChannelBlock.apply(
            x, w1, self.conv1.bias, bn.weight, bn.bias, self.conv2.weight, self.conv2.bias,
            d.weight.flatten(1), d.bias, mean, torch.rsqrt(var + bn.eps), batch_stats, self.chunk_steps,
        )  # fmt: skip

    def _single_channel_convs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """conv1 and the skip conv of a 1-channel input as one 6-tap patch tensor times small matrices.

        oneDNN handles 1-input-channel convolutions (and above all their backward) poorly; as
        matmuls they run at memory speed and produce channels-last outputs directly.
        """
        f, t = x.shape[2], x.shape[3]
        patches = _taps(F.pad(x[:, 0], (2, 2, 1, 1)), 0, t)  # (B, F + 1, T, 6)
        c1 = _PatchLinear.apply(patches, self.conv1.weight.flatten(1), self.conv1.bias)  # (B, F + 1, T, C)
        skip = x.permute(0, 2, 3, 1)  # (B, F, T, 1) broadcasts when there is no skip conv
        if self.conv_downsample is not None:
            d = self.conv_downsample
            skip = _PatchLinear.apply(patches[:, :f, :, 3:], d.weight.flatten(1), d.bias)  # (B, F, T, C)
        return c1.permute(0, 3, 1, 2), skip.permute(0, 3, 1, 2)


def residual_encoder(filts: list, *, pool: bool = True) -> nn.Sequential:
    """The 6-block AASIST encoder from `filts[1:5]` ([in, out] pairs); the last pair is used three times."""
    if len(filts) != 5:
        raise ValueError(f"filts needs [sinc channels, 4 x [in, out]], got {filts!r}")
    pairs = [filts[1], filts[2], filts[3], filts[4], filts[4], filts[4]]
    for i, (prev, cur) in enumerate(itertools.pairwise(pairs)):
        if int(prev[1]) != int(cur[0]):
            msg = (f"filts: encoder block {i + 2} takes {cur[0]} channels but block {i + 1} gives {prev[1]} "
                   f"(the last pair is used three times, so it must be [c, c]); got {filts!r}")
            raise ValueError(msg)
    return nn.Sequential(
        *(ResidualBlock(int(a), int(b), first=(i == 0), pool=pool) for i, (a, b) in enumerate(pairs))
    )


def _xavier_param(*size: int) -> nn.Parameter:
    p = nn.Parameter(torch.empty(*size))
    nn.init.xavier_normal_(p)
    return p


def _bn_nodes(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over every node of a (B, N, D) graph; returns (B, N, D)."""
    return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class GraphAttentionLayer(nn.Module):
    """Graph attention over a fully connected graph (AASIST GAT): (B, N, in_dim) -> (B, N, out_dim).

    Edge weights come from the element-wise product of node pairs, projected, tanh, scored and
    softmax-normalised over neighbours with a temperature; output = proj(att @ x) + proj(x) -> BN -> SELU.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = _xavier_param(out_dim, 1)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(0.2)
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, in_dim) -> (B, N, out_dim)."""
        _check_dims(x, 3, "(B, nodes, dim)")
        x = self.input_drop(x)
        pair = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B, N, N, out)
        att = torch.softmax((pair @ self.att_weight).squeeze(-1) / self.temperature, dim=-1)  # (B, N, N)
        out = self.proj_with_att(att @ x) + self.proj_without_att(x)
        return F.selu(_bn_nodes(self.bn, out))


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous graph attention over two node types plus a master node (AASIST HS-GAL).

    (B, N1, in_dim), (B, N2, in_dim), master (B | 1, 1, in_dim) ->
    (B, N1, out_dim), (B, N2, out_dim), master (B, 1, out_dim). Edges within type 1, within type 2 and
    across types have their own scoring vectors; the master node attends to all nodes.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = _xavier_param(out_dim, 1)
        self.att_weight22 = _xavier_param(out_dim, 1)
        self.att_weight12 = _xavier_param(out_dim, 1)
        self.att_weightM = _xavier_param(out_dim, 1)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(0.2)
        self.temperature = float(temperature)

    def _edge_scores(self, x: torch.Tensor, n1: int) -> torch.Tensor:
        pair = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B, N, N, out)
        weights = (self.att_weight11, self.att_weight22, self.att_weight12)
        s11, s22, s12 = ((pair @ w).squeeze(-1) for w in weights)  # 3 x (B, N, N)
        # pick the scoring vector by the (row type, column type) block of the adjacency
        is1 = torch.arange(x.shape[1], device=x.device) < n1  # (N,)
        same1 = is1.unsqueeze(1) & is1.unsqueeze(0)
        same2 = ~is1.unsqueeze(1) & ~is1.unsqueeze(0)
        return torch.where(same1, s11, torch.where(same2, s22, s12))  # (B, N, N)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N1, D), (B, N2, D), (B | 1, 1, D) -> (B, N1, out), (B, N2, out), (B, 1, out)."""
        _check_dims(x1, 3, "(B, nodes, dim)")
        _check_dims(x2, 3, "(B, nodes, dim)")
        n1 = x1.shape[1]
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)  # (B, N1 + N2, D)
        x = self.input_drop(x)
        att = torch.softmax(self._edge_scores(x, n1) / self.temperature, dim=-1)  # (B, N, N)
        m_score = (torch.tanh(self.att_projM(x * master)) @ self.att_weightM) / self.temperature  # (B, N, 1)
        m_att = torch.softmax(m_score, dim=1).transpose(1, 2)  # (B, 1, N)
        master = self.proj_with_attM(m_att @ x) + self.proj_without_attM(master)  # (B, 1, out)
        out = self.proj_with_att(att @ x) + self.proj_without_att(x)
        out = F.selu(_bn_nodes(self.bn, out))
        return out[:, :n1], out[:, n1:], master


class GraphPool(nn.Module):
    """Keep the top `max(int(N * ratio), 1)` nodes by a learned sigmoid score, scaled by that score.

    (B, N, D) -> (B, N', D); nodes are returned in descending score order.
    """

    def __init__(self, ratio: float, in_dim: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.ratio = float(ratio)
        self.proj = nn.Linear(in_dim, 1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, max(int(N * ratio), 1), D)."""
        _check_dims(h, 3, "(B, nodes, dim)")
        scores = torch.sigmoid(self.proj(self.drop(h)))  # (B, N, 1)
        keep: int | torch.Tensor = max(int(h.shape[1] * self.ratio), 1)
        if torch.jit.is_tracing():  # a traced node count is a tensor: keep k a function of it (ONNX export)
            n = torch.as_tensor(h.shape[1]).to(torch.float64)  # float64, like the Python int(N * ratio)
            keep = torch.clamp(torch.floor(n * self.ratio), min=1).to(torch.int64)
        idx = torch.topk(scores, keep, dim=1).indices  # (B, N', 1)
        return torch.gather(h * scores, 1, idx.expand(-1, -1, h.shape[-1]))


class GraphBackend(nn.Module):
    """AASIST graph back end shared by AASIST, SEMAA and the SSL heads.

    Spectral nodes (B, N_s, D) get a learned positional embedding; both node sets go through a GAT and
    a graph pool, then two parallel branches of two heterogeneous (spectral-temporal) GAT layers, each
    with its own master node. Returns the six branch outputs (temporal 1/2, spectral 1/2, master 1/2)
    so that the models choose their readout.
    """

    def __init__(
        self,
        in_dim: int,
        gat_dims: tuple[int, int],
        pool_ratios: tuple[float, ...],
        temperatures: tuple[float, ...],
        spectral_nodes: int,
    ) -> None:
        super().__init__()
        d0, d1 = int(gat_dims[0]), int(gat_dims[1])
        self.pos_s = nn.Parameter(torch.randn(1, spectral_nodes, in_dim))
        self.master1 = nn.Parameter(torch.randn(1, 1, d0))
        self.master2 = nn.Parameter(torch.randn(1, 1, d0))
        self.gat_s = GraphAttentionLayer(in_dim, d0, temperatures[0])
        self.gat_t = GraphAttentionLayer(in_dim, d0, temperatures[1])
        self.htrg_st11 = HtrgGraphAttentionLayer(d0, d1, temperatures[2])
        self.htrg_st12 = HtrgGraphAttentionLayer(d1, d1, temperatures[2])
        self.htrg_st21 = HtrgGraphAttentionLayer(d0, d1, temperatures[2])
        self.htrg_st22 = HtrgGraphAttentionLayer(d1, d1, temperatures[2])
        self.pool_s = GraphPool(pool_ratios[0], d0)
        self.pool_t = GraphPool(pool_ratios[1], d0)
        self.pool_hs1 = GraphPool(pool_ratios[2], d1)
        self.pool_ht1 = GraphPool(pool_ratios[2], d1)
        self.pool_hs2 = GraphPool(pool_ratios[2], d1)
        self.pool_ht2 = GraphPool(pool_ratios[2], d1)
        self.drop_way = nn.Dropout(0.2)

    def _branch(
        self,
        out_t: torch.Tensor,
        out_s: torch.Tensor,
        master: torch.Tensor,
        layers: tuple[HtrgGraphAttentionLayer, HtrgGraphAttentionLayer],
        pools: tuple[GraphPool, GraphPool],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t, s, m = layers[0](out_t, out_s, master)
        t, s = pools[0](t), pools[1](s)
        t_aug, s_aug, m_aug = layers[1](t, s, m)
        return self.drop_way(t + t_aug), self.drop_way(s + s_aug), self.drop_way(m + m_aug)

    def forward(self, e_s: torch.Tensor, e_t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, N_s, D), (B, N_t, D) -> (t1, t2, s1, s2, master1, master2), (B, nodes | 1, gat_dims[1])."""
        _check_dims(e_s, 3, "spectral nodes (B, N_s, D)")
        _check_dims(e_t, 3, "temporal nodes (B, N_t, D)")
        if e_s.shape[1:] != self.pos_s.shape[1:]:
            raise ValueError(
                f"expected spectral nodes (B, {self.pos_s.shape[1]}, {self.pos_s.shape[2]}), "
                f"got shape {tuple(e_s.shape)}"
            )
        out_s = self.pool_s(self.gat_s(e_s + self.pos_s))  # (B, N_s', d0)
        out_t = self.pool_t(self.gat_t(e_t))  # (B, N_t', d0)
        t1, s1, m1 = self._branch(
            out_t, out_s, self.master1, (self.htrg_st11, self.htrg_st12), (self.pool_ht1, self.pool_hs1)
        )
        t2, s2, m2 = self._branch(
            out_t, out_s, self.master2, (self.htrg_st21, self.htrg_st22), (self.pool_ht2, self.pool_hs2)
        )
        return t1, t2, s1, s2, m1, m2


def graph_readout(out_t: torch.Tensor, out_s: torch.Tensor, master: torch.Tensor) -> torch.Tensor:
    """AASIST readout: [max |T|, mean T, max |S|, mean S, master] over nodes -> (B, 5 * D)."""
    return torch.cat(
        [
            out_t.abs().amax(dim=1),
            out_t.mean(dim=1),
            out_s.abs().amax(dim=1),
            out_s.mean(dim=1),
            master.flatten(1),
        ],
        dim=1,
    )


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling of a (B, C, F, T) map along time and along frequency.

    A 1x1-conv attention network (C -> hidden -> C) gives per-element logits; softmax over one axis
    weights the mean (and, with `with_std`, the standard deviation sqrt(E[x^2] - mu^2), clamped at 1e-4
    inside the root). Returns (spectral (B, F, C'), temporal (B, T, C')) with C' = C or 2C.
    """

    def __init__(self, channels: int, hidden: int = 128, *, with_std: bool = True) -> None:
        super().__init__()
        self.with_std = with_std
        self.attention = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.SELU(),
            nn.BatchNorm2d(hidden),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )

    def _pool(self, e: torch.Tensor, w: torch.Tensor, dim: int) -> torch.Tensor:
        w = torch.softmax(w, dim=dim)
        mu = (e * w).sum(dim=dim)  # (B, C, L)
        if not self.with_std:
            return mu.transpose(1, 2)
        var = ((e * e) * w).sum(dim=dim) - mu * mu
        return torch.cat([mu, var.clamp(min=1e-4).sqrt()], dim=1).transpose(1, 2)  # (B, L, 2C)

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, F, T) -> spectral (B, F, C'), temporal (B, T, C')."""
        _check_dims(e, 4, "(B, C, F, T)")
        w = self.attention(e)  # (B, C, F, T)
        return self._pool(e, w, 3), self._pool(e, w, 2)


class SelfAttentionPool(nn.Module):
    """SEMAA node readout: tanh-scored softmax weights over nodes -> [weighted sum, weighted std].

    (B, N, D) -> (B, 2D). The std is unbiased (N - 1), as in the reference; for a single node (short
    inputs) the reference returns NaN, here the std is 0. In training mode a tiny
    Gaussian noise (`noise_std`) is added before the std, as the reference does to keep the gradient of
    a zero std finite; in eval mode it is off, so inference is deterministic.
    """

    def __init__(self, dim: int, noise_std: float = 1e-5) -> None:
        super().__init__()
        self.att_weights = nn.Parameter(torch.empty(1, dim))
        nn.init.kaiming_uniform_(self.att_weights)
        self.noise_std = float(noise_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, 2D)."""
        _check_dims(x, 3, "(B, nodes, dim)")
        att = torch.softmax(torch.tanh(x @ self.att_weights.t()), dim=1)  # (B, N, 1)
        weighted = x * att  # (B, N, D)
        noisy = weighted
        if self.training and self.noise_std > 0:
            noisy = weighted + self.noise_std * torch.randn_like(weighted)
        if x.shape[1] == 1:  # unbiased std of one node is NaN in the reference; use 0 so short inputs work
            return torch.cat([weighted.sum(dim=1), torch.zeros_like(weighted[:, 0])], dim=1)
        return torch.cat([weighted.sum(dim=1), noisy.std(dim=1)], dim=1)


def semaa_readout(pool: SelfAttentionPool, branches: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """SEMAA readout of `GraphBackend` outputs: [|T|, T, |S|, S, master] with T, S the element-wise max
    of the two branches' self-attention pools -> (B, 4 * 2D + D)."""
    t1, t2, s1, s2, m1, m2 = branches
    out_t = torch.maximum(pool(t1), pool(t2))  # (B, 2D)
    out_s = torch.maximum(pool(s1), pool(s2))
    master = torch.maximum(m1, m2).flatten(1)  # (B, D)
    return torch.cat([out_t.abs(), out_t, out_s.abs(), out_s, master], dim=1)
