"""RawBoost data augmentation (Tak et al., ICASSP 2022) on batched waveforms (B, T), any device.

Algorithms: 1 LnL convolutive noise, 2 ISD impulsive noise, 3 SSI coloured additive noise,
4 = 1→2→3, 5 = 1→2, 6 = 1→3, 7 = 2→3, 8 = peak-normalised LnL(x) + ISD(x), 0 = none.
Defaults and semantics are those of the original code; every example in a batch gets its own
random parameters from a seedable `torch.Generator`.

Random draws (`draw_lnl`, `draw_isd`, `draw_ssi`) are separate from the deterministic maths
(`lnl_apply`, `isd_apply`, `ssi_apply`), so recorded parameters of the original can be replayed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from safespeak.augment.filters import FIRBank, fir_bank, fir_powers, notch_cascade

__all__ = [
    "ALGORITHMS",
    "ISDDraw",
    "NotchDraw",
    "RawBoostParams",
    "SSIDraw",
    "draw_isd",
    "draw_lnl",
    "draw_ssi",
    "isd_apply",
    "lnl_apply",
    "rawboost",
    "rawboost_batch",
    "ssi_apply",
]

# Stages per algorithm, applied in series (8 is the parallel combination, handled apart).
ALGORITHMS: dict[int, str] = {0: "", 1: "L", 2: "I", 3: "S", 4: "LIS", 5: "LI", 6: "LS", 7: "IS", 8: "L+I"}


@dataclass(frozen=True)
class RawBoostParams:
    """RawBoost parameters; defaults are the original `main_SSL_LA.py` arguments.

    Names map to the original: n_bands=nBands, min_f/max_f=minF/maxF (Hz), min_bw/max_bw (Hz),
    min_coeff/max_coeff (FIR taps), min_g/max_g (dB), min_bias/max_bias=min/maxBiasLinNonLin (dB),
    n_f=N_f, p=P (% of samples), g_sd, snr_min/snr_max (dB), fs (Hz).
    """

    n_bands: int = 5
    min_f: float = 20.0
    max_f: float = 8000.0
    min_bw: float = 100.0
    max_bw: float = 1000.0
    min_coeff: int = 10
    max_coeff: int = 100
    min_g: float = 0.0
    max_g: float = 0.0
    min_bias: float = 5.0
    max_bias: float = 20.0
    n_f: int = 5
    p: float = 10.0
    g_sd: float = 2.0
    snr_min: float = 10.0
    snr_max: float = 40.0
    fs: int = 16000

    def __post_init__(self) -> None:
        if self.n_bands < 1 or self.n_f < 1:
            raise ValueError(f"RawBoost n_bands and n_f must be ≥ 1, got {self.n_bands}, {self.n_f}")
        if not 1 <= self.min_coeff <= self.max_coeff:
            msg = f"RawBoost needs 1 ≤ min_coeff ≤ max_coeff, got {self.min_coeff}..{self.max_coeff}"
            raise ValueError(msg)
        if not 0 <= self.p <= 100:
            raise ValueError(f"RawBoost p is a percentage of samples (0..100), got {self.p}")
        if self.fs <= 0:
            raise ValueError(f"RawBoost fs must be positive, got {self.fs}")

    @property
    def max_taps(self) -> int:
        """Upper bound on one band's (odd) tap count."""
        return int(self.max_coeff) | 1


@dataclass(frozen=True)
class NotchDraw:
    """Per-example notch-filter parameters: fc, bw (Hz) and numtaps (B, F, n_bands); gain_db (B, F)."""

    fc: Tensor
    bw: Tensor
    numtaps: Tensor
    gain_db: Tensor


@dataclass(frozen=True)
class ISDDraw:
    """Impulse positions (B, K) and factors f_r (B, K); f_r = 0 marks unused slots.

    Positions with f_r ≠ 0 must be distinct within a row; unused slots may repeat any position.
    """

    positions: Tensor
    f_r: Tensor


@dataclass(frozen=True)
class SSIDraw:
    """White noise (B, T), its notch filter (F = 1) and the SNR in dB (B,)."""

    noise: Tensor
    notch: NotchDraw
    snr_db: Tensor


Gen = torch.Generator | None


def _uniform(shape: tuple[int, ...], lo: float, hi: float, gen: Gen, dev: torch.device) -> Tensor:
    # lo + (hi − lo)·u also covers the original's uniform(low > high) for the LnL gains.
    u = torch.rand(shape, generator=gen, dtype=torch.float64, device=_gen_device(gen, dev))
    return (lo + (hi - lo) * u).to(dev)


def _gen_device(gen: Gen, dev: torch.device) -> torch.device:
    return gen.device if gen is not None else dev


def _draw_notch(
    bsz: int, gains: list[tuple[float, float]], p: RawBoostParams, gen: Gen, dev: torch.device
) -> NotchDraw:
    shape = (bsz, len(gains), p.n_bands)
    fc = _uniform(shape, p.min_f, p.max_f, gen, dev)
    bw = _uniform(shape, p.min_bw, p.max_bw, gen, dev)
    c = _uniform(shape, p.min_coeff, p.max_coeff, gen, dev).floor().to(torch.int64)
    c = c + (c % 2 == 0).to(torch.int64)  # odd tap counts, as the original
    g = torch.stack([_uniform((bsz,), lo, hi, gen, dev) for lo, hi in gains], dim=1)  # (B, F)
    return NotchDraw(fc=fc, bw=bw, numtaps=c, gain_db=g)


def draw_lnl(bsz: int, p: RawBoostParams, gen: Gen, dev: torch.device) -> NotchDraw:
    """Random LnL filters (B, n_f, n_bands).

    Gains (dB): U(min_g, max_g) for filter 0, U(min_g − min_bias, max_g − max_bias) for the others.
    """
    later = (p.min_g - p.min_bias, p.max_g - p.max_bias)
    return _draw_notch(bsz, [(p.min_g, p.max_g)] + [later] * (p.n_f - 1), p, gen, dev)


def draw_isd(bsz: int, t: int, p: RawBoostParams, gen: Gen, dev: torch.device) -> ISDDraw:
    """Random ISD impulses: n = int(T·β/100) distinct positions with β ~ U(0, P), f_r = (2u−1)(2v−1)."""
    beta = _uniform((bsz,), 0.0, p.p, gen, dev)
    n = (t * (beta / 100)).floor().to(torch.int64)  # (B,)
    k = min(t, int(t * p.p / 100) + 1)  # static bound on n
    positions, keep = _distinct_positions(bsz, t, k, n, gen, dev)  # (B, M)
    u = torch.rand((2, *positions.shape), generator=gen, device=_gen_device(gen, dev)).to(dev)
    f_r = (2 * u[0] - 1) * (2 * u[1] - 1)
    return ISDDraw(positions=positions, f_r=torch.where(keep, f_r, 0.0))


def _distinct_positions(
    bsz: int, t: int, k: int, n: Tensor, gen: Gen, dev: torch.device
) -> tuple[Tensor, Tensor]:
    """Uniform random n-subsets of range(t) per row, as (positions (B, M), keep mask (B, M)).

    The first n distinct values of i.i.d. uniform indices are a uniform n-subset (sampling without
    replacement by rejection). Drawing ~1.25·k candidates is far cheaper than a permutation or sort
    of all T samples; if a row is short of distinct values (only for P near 100 %), the batch falls
    back to the n smallest of T random keys.
    """
    gdev = _gen_device(gen, dev)
    if k <= t // 4:
        m = k + k // 4 + 32
        cand = torch.randint(t, (bsz, m), generator=gen, device=gdev).to(dev)
        # First occurrence of each value: the smallest draw index written to its slot of a (B, T) table.
        order = torch.arange(m, device=dev, dtype=torch.int32).expand(bsz, m)
        table = torch.full((bsz, t), m, device=dev, dtype=torch.int32)
        table.scatter_reduce_(1, cand, order, reduce="amin")
        first = table.gather(1, cand) == order
        rank = first.to(torch.int32).cumsum(dim=1, dtype=torch.int32)
        if bool((rank[:, -1] >= n).all()):
            return cand, first & (rank <= n.unsqueeze(1))
    keys = torch.rand((bsz, t), generator=gen, device=gdev).to(dev)
    positions = keys.topk(max(k, 1), dim=1, largest=False, sorted=True).indices  # (B, K)
    return positions, torch.arange(positions.shape[1], device=dev) < n.unsqueeze(1)


def draw_ssi(bsz: int, t: int, p: RawBoostParams, gen: Gen, dev: torch.device) -> SSIDraw:
    """Random SSI draws: N(0, 1) noise, one notch filter (gain U(min_g, max_g)), SNR U(snr_min, snr_max)."""
    noise = torch.randn((bsz, t), generator=gen, device=_gen_device(gen, dev)).to(dev)
    notch = _draw_notch(bsz, [(p.min_g, p.max_g)], p, gen, dev)
    snr = _uniform((bsz,), p.snr_min, p.snr_max, gen, dev)
    return SSIDraw(noise=noise, notch=notch, snr_db=snr)


def _peak_norm(y: Tensor, inplace: bool = False) -> Tensor:
    """Divide each row by its peak only when the peak exceeds 1 (the original `normWav(x, 0)`)."""
    peak = torch.maximum(y.amax(dim=-1, keepdim=True), y.amin(dim=-1, keepdim=True).neg_())  # no |y| copy
    scale = peak.clamp_(min=1)  # peak ≤ 1 → divide by 1; silent rows never divide by 0
    return y.div_(scale) if inplace else y / scale


def _bank(d: NotchDraw, p: RawBoostParams, t: int, dtype: torch.dtype, dev: torch.device) -> FIRBank:
    max_taps = p.max_taps
    if d.numtaps.device.type == "cpu":  # replayed draws may exceed the bound; don't sync a GPU to check
        max_taps = max(max_taps, int(d.numtaps.max()))
    b, lengths = notch_cascade(d.fc, d.bw, d.numtaps, d.gain_db, p.fs, max_taps)
    return fir_bank(b.to(dev), lengths.to(dev), t, dtype)


def _lnl(x: Tensor, bank: FIRBank) -> Tensor:
    y = fir_powers(x, bank)  # a fresh tensor: in-place updates are safe
    return _peak_norm(y.sub_(y.mean(dim=-1, keepdim=True)), inplace=True)


def lnl_apply(x: Tensor, d: NotchDraw, p: RawBoostParams) -> Tensor:
    """LnL convolutive noise: Σ_i filter_i(x^i), mean removed, peak-normalised if the peak exceeds 1."""
    return _lnl(x, _bank(d, p, x.shape[1], x.dtype, x.device))


def isd_apply(x: Tensor, d: ISDDraw, p: RawBoostParams) -> Tensor:
    """ISD impulsive noise: x[pos] ← x[pos]·(1 + g_sd·f_r), then peak-normalised if the peak exceeds 1.

    Positions may repeat where f_r = 0 (unused draws); the impulses are summed, so those add nothing.
    """
    impulses = x.gather(1, d.positions) * (p.g_sd * d.f_r.to(x.dtype))  # (B, K): g_sd·x[p]·f_r
    return _peak_norm(x.scatter_add(1, d.positions, impulses), inplace=True)


@dataclass(frozen=True)
class _SSIReady:
    noise: Tensor  # (B, T) white noise
    bank: FIRBank  # its designed notch filter (F = 1)
    snr_db: Tensor  # (B,)


def _ssi(x: Tensor, r: _SSIReady) -> Tensor:
    noise = fir_powers(r.noise.to(x.dtype), r.bank)
    # The original peak-normalises the noise first; that factor cancels in the energy scaling below.
    tiny = torch.finfo(x.dtype).tiny
    nn = torch.linalg.vector_norm(noise, dim=-1, keepdim=True).clamp_min(tiny)
    nx = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    snr = r.snr_db.to(x.dtype).unsqueeze(-1)
    return x + noise * (nx / (nn * torch.pow(10.0, 0.05 * snr)))


def ssi_apply(x: Tensor, d: SSIDraw, p: RawBoostParams) -> Tensor:
    """SSI additive noise: the filtered noise, scaled to the drawn SNR relative to x, is added to x."""
    return _ssi(x, _SSIReady(d.noise, _bank(d.notch, p, x.shape[1], x.dtype, x.device), d.snr_db))


def _params(params: dict[str, object]) -> RawBoostParams:
    known = {f.name for f in dataclasses.fields(RawBoostParams)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown RawBoost parameter(s) {unknown}; known: {sorted(known)}")
    return RawBoostParams(**params)  # type: ignore[arg-type]


Ready = FIRBank | ISDDraw | _SSIReady  # a stage's draws with its filters designed for the whole batch

# On CPU, rows are processed in chunks of about this many samples so that the FFT blocks, powers and
# spectra of a chunk stay in cache; whole-batch passes over (B, T) are memory-bound and several times slower.
CPU_CHUNK_SAMPLES = 1 << 17


def _rows(r: Ready, rows: slice) -> Ready:
    """The same prepared stage restricted to a chunk of rows (tensors sliced, block sizes kept)."""
    fields = {}
    for f in dataclasses.fields(r):
        v = getattr(r, f.name)
        if dataclasses.is_dataclass(v):
            v = _rows(v, rows)
        elif torch.is_tensor(v):
            v = v[rows]
        fields[f.name] = v
    return type(r)(**fields)


def _prepare(stage: str, bsz: int, t: int, p: RawBoostParams, gen: Gen, dev: torch.device) -> Ready:
    # Draws, then filter design, for the whole batch at once (small tensors, one call each).
    if stage == "L":
        return _bank(draw_lnl(bsz, p, gen, dev), p, t, torch.float32, dev)
    if stage == "I":
        return draw_isd(bsz, t, p, gen, dev)
    d = draw_ssi(bsz, t, p, gen, dev)
    return _SSIReady(d.noise, _bank(d.notch, p, t, torch.float32, dev), d.snr_db)


def _apply_stages(x: Tensor, algo: int, ready: list[Ready], p: RawBoostParams) -> Tensor:
    if algo == 8:  # parallel: both see the input; the sum is peak-normalised
        return _peak_norm(_lnl(x, ready[0]) + isd_apply(x, ready[1], p))
    for stage, r in zip(ALGORITHMS[algo], ready, strict=True):
        x = _lnl(x, r) if stage == "L" else isd_apply(x, r, p) if stage == "I" else _ssi(x, r)
    return x


def rawboost_batch(x: Tensor, algo: int, gen: Gen, p: RawBoostParams) -> Tensor:
    """`rawboost` with a ready `RawBoostParams`; x: (B, T) float32. Returns (B, T).

    All random parameters are drawn for the whole batch first, so the result does not depend on the
    row chunking used on CPU.
    """
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown RawBoost algo {algo!r}; expected one of {sorted(ALGORITHMS)}")
    bsz, t = x.shape
    stages = ALGORITHMS[algo].replace("+", "")
    ready = [_prepare(s, bsz, t, p, gen, x.device) for s in stages]
    step = max(1, CPU_CHUNK_SAMPLES // t) if x.device.type == "cpu" else bsz
    if step >= bsz or not stages:
        return _apply_stages(x, algo, ready, p)
    out = torch.empty_like(x)
    for start in range(0, bsz, step):
        rows = slice(start, start + step)
        out[rows] = _apply_stages(x[rows], algo, [_rows(r, rows) for r in ready], p)
    return out


def rawboost(x: Tensor, algo: int, generator: torch.Generator | None = None, **params: object) -> Tensor:
    """Apply RawBoost algorithm `algo` (0–8) to a batch, each example with its own random parameters.

    x: (B, T) or (T,) waveforms on any device; computed in float32, returned in x's dtype and shape.
    generator: the source of every random draw (its device may differ from x's; draws are moved);
    None uses torch's global RNG. params: `RawBoostParams` field overrides, e.g. `snr_min=5`.

    >>> g = torch.Generator().manual_seed(0)
    >>> rawboost(torch.randn(2, 16000) * 0.1, 5, g).shape
    torch.Size([2, 16000])
    """
    if x.ndim not in (1, 2) or not x.is_floating_point() or x.shape[-1] == 0:
        msg = f"rawboost expects a float (B, T) or (T,) tensor, T > 0; got {x.dtype} {tuple(x.shape)}"
        raise ValueError(msg)
    y = rawboost_batch(x.reshape(-1, x.shape[-1]).to(torch.float32), algo, generator, _params(params))
    return y.reshape(x.shape).to(x.dtype)
