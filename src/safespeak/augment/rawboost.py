"""RawBoost data augmentation (Tak et al., ICASSP 2022) on batched waveforms (B, T), any device.

Algorithms: 1 LnL convolutive noise, 2 ISD impulsive noise, 3 SSI coloured additive noise,
4 = 1→2→3, 5 = 1→2, 6 = 1→3, 7 = 2→3, 8 = peak-normalised LnL(x) + ISD(x), 0 = none.
Defaults and semantics are those of the original code; every example in a batch gets its own
random parameters from a seedable `torch.Generator`.

Random draws (`draw_lnl`, `draw_isd`, `draw_ssi`) are separate from the deterministic maths
(`lnl_apply`, `isd_apply`, `ssi_apply`), so recorded parameters of the original can be replayed.

On CPU, every draw for the whole batch is made first; the long per-example streams (ISD positions and
factors, SSI noise) come from per-example sub-generators seeded from those draws. The batch is then
processed in chunks of rows that stay in cache, each op using torch's intra-op threads; every op acts on
each row alone, so the output is bitwise independent of the chunking. On other devices the whole batch
is processed at once.
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


# On CPU, per-example random streams (ISD positions and factors, SSI noise) come from per-example
# sub-generators seeded from the caller's generator: they can then be drawn chunk by chunk, in cache, with
# results that don't depend on the chunking. A CPU `torch.Generator` keeps only the low 32 bits of its seed.
_SEED_BOUND = 1 << 32


def _per_example_streams(dev: torch.device) -> bool:
    return dev.type == "cpu"


def _seeds(bsz: int, gen: Gen, dev: torch.device) -> Tensor:
    """Sub-generator seeds (B,) int64 on CPU."""
    return torch.randint(_SEED_BOUND, (bsz,), generator=gen, device=_gen_device(gen, dev)).cpu()


def _sub_generators(seeds: Tensor) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds.tolist()]


def _isd_bound(t: int, p: RawBoostParams) -> int:
    """Static bound k on the impulse count n = int(T·β/100), β < P."""
    return min(t, int(t * p.p / 100) + 1)


def _isd_counts(bsz: int, t: int, p: RawBoostParams, gen: Gen, dev: torch.device) -> Tensor:
    beta = _uniform((bsz,), 0.0, p.p, gen, dev)
    return (t * (beta / 100)).floor().to(torch.int64)  # (B,)


def _candidate_count(k: int) -> int:
    # ~1.25·k i.i.d. candidates almost always hold k distinct values when k ≤ T/4 (see _distinct_positions).
    return k + k // 4 + 32


def _first_occurrences(cand: Tensor, t: int) -> Tensor:
    """Whether each candidate (R, M) in range(t) is the first of its value in its row."""
    rows, m = cand.shape
    # The smallest draw index per value, from a (R, t) table: cheaper than sorting the candidates.
    # A smaller table where the indices fit (all of it is filled); int32 on GPUs (int16 atomics).
    dtype = torch.int16 if m < 1 << 15 and cand.device.type == "cpu" else torch.int32
    order = torch.arange(m, device=cand.device, dtype=dtype).expand(rows, m)
    table = torch.full((rows, t), m, device=cand.device, dtype=dtype)
    table.scatter_reduce_(1, cand, order, reduce="amin")
    return table.gather(1, cand) == order


@dataclass(frozen=True)
class _ISDPlan:
    """CPU ISD draws made up front: impulse counts n (B,) and per-example sub-generator seeds (B,)."""

    n: Tensor
    seed: Tensor


def _isd_plan(bsz: int, t: int, p: RawBoostParams, gen: Gen) -> _ISDPlan:
    cpu = torch.device("cpu")
    return _ISDPlan(n=_isd_counts(bsz, t, p, gen, cpu), seed=_seeds(bsz, gen, cpu))


def _smallest_keys(t: int, k: int, gen: torch.Generator) -> Tensor:
    """A uniform random k-subset of range(t), ascending by key: the k smallest of t uniform keys."""
    return torch.rand(t, generator=gen).topk(k, largest=False, sorted=True).indices


def _isd_materialise(plan: _ISDPlan, t: int, p: RawBoostParams) -> ISDDraw:
    """Each example's impulse positions and factors, drawn from its own sub-generator (CPU).

    Per example: m = ~1.25·n i.i.d. candidate positions whose first n distinct values are the subset
    (falling back to the n smallest of t random keys if the candidates hold fewer than n distinct values,
    or at once when the bound k on n exceeds t/4), then n factors f_r = (2u−1)(2v−1).
    """
    gens = _sub_generators(plan.seed)
    n, k = plan.n, _isd_bound(t, p)
    counts = n.tolist()
    if k <= t // 4:
        ms = [_candidate_count(c) for c in counts]  # each row's own count: n is U(0, k), on average k/2
        positions = torch.empty(len(ms), max(ms), dtype=torch.int64)
        for row, m, g in zip(positions, ms, gens, strict=True):
            row[:m].random_(0, t, generator=g)
            row[m:] = row[0]  # padding repeats a value: never a first occurrence
        first = _first_occurrences(positions, t)
        rank = first.to(torch.int32).cumsum(dim=1, dtype=torch.int32)
        keep = first & (rank <= n.unsqueeze(1))
        for r in (rank[:, -1] < n).nonzero().flatten().tolist():  # short of distinct values: rare
            positions[r, : counts[r]] = _smallest_keys(t, counts[r], gens[r])
            keep[r] = torch.arange(positions.shape[1]) < counts[r]
    else:
        positions = torch.stack([_smallest_keys(t, k, g) for g in gens])
        keep = torch.arange(k) < n.unsqueeze(1)
    u = torch.cat([torch.rand((2, c), generator=g) for c, g in zip(counts, gens, strict=True)], dim=1)
    f_r = (2 * u[0] - 1) * (2 * u[1] - 1)  # the kept slots', row by row, in slot order
    return ISDDraw(positions=positions, f_r=torch.zeros(positions.shape).masked_scatter_(keep, f_r))


def draw_isd(bsz: int, t: int, p: RawBoostParams, gen: Gen, dev: torch.device) -> ISDDraw:
    """Random ISD impulses: n = int(T·β/100) distinct positions with β ~ U(0, P), f_r = (2u−1)(2v−1).

    On CPU (`dev`), each example's positions and factors come from its own sub-generator seeded from `gen`.
    """
    if _per_example_streams(dev):
        return _isd_materialise(_isd_plan(bsz, t, p, gen), t, p)
    n = _isd_counts(bsz, t, p, gen, dev)
    positions, keep = _distinct_positions(bsz, t, _isd_bound(t, p), n, gen, dev)  # (B, M)
    u = torch.rand((2, *positions.shape), generator=gen, device=_gen_device(gen, dev)).to(dev)
    f_r = (2 * u[0] - 1) * (2 * u[1] - 1)
    return ISDDraw(positions=positions, f_r=torch.where(keep, f_r, 0.0))


def _distinct_positions(
    bsz: int, t: int, k: int, n: Tensor, gen: Gen, dev: torch.device
) -> tuple[Tensor, Tensor]:
    """Uniform random n-subsets of range(t) per row, as (positions (B, M), keep mask (B, M)), batch-wide.

    The first n distinct values of i.i.d. uniform indices are a uniform n-subset (sampling without
    replacement by rejection). Drawing ~1.25·k candidates is far cheaper than a permutation or sort
    of all T samples; if a row is short of distinct values (only for P near 100 %), the batch falls
    back to the n smallest of T random keys.
    """
    gdev = _gen_device(gen, dev)
    if k <= t // 4:
        m = _candidate_count(k)
        cand = torch.randint(t, (bsz, m), generator=gen, device=gdev).to(dev)
        first = _first_occurrences(cand, t)
        rank = first.to(torch.int32).cumsum(dim=1, dtype=torch.int32)
        if bool((rank[:, -1] >= n).all()):
            return cand, first & (rank <= n.unsqueeze(1))
    keys = torch.rand((bsz, t), generator=gen, device=gdev).to(dev)
    positions = keys.topk(max(k, 1), dim=1, largest=False, sorted=True).indices  # (B, K)
    return positions, torch.arange(positions.shape[1], device=dev) < n.unsqueeze(1)


@dataclass(frozen=True)
class _SSIPlan:
    """CPU SSI draws made up front: noise sub-generator seeds (B,), the notch filter draws, SNR (B,)."""

    seed: Tensor
    notch: NotchDraw
    snr_db: Tensor


def _noise(seeds: Tensor, t: int) -> Tensor:
    """N(0, 1) noise (R, t), row r from a sub-generator seeded with seeds[r]."""
    out = torch.empty(seeds.shape[0], t)
    for row, g in zip(out, _sub_generators(seeds), strict=True):
        row.normal_(generator=g)
    return out


def _ssi_plan(bsz: int, p: RawBoostParams, gen: Gen) -> _SSIPlan:
    cpu = torch.device("cpu")
    seed = _seeds(bsz, gen, cpu)
    notch = _draw_notch(bsz, [(p.min_g, p.max_g)], p, gen, cpu)
    return _SSIPlan(seed=seed, notch=notch, snr_db=_uniform((bsz,), p.snr_min, p.snr_max, gen, cpu))


def draw_ssi(bsz: int, t: int, p: RawBoostParams, gen: Gen, dev: torch.device) -> SSIDraw:
    """Random SSI draws: N(0, 1) noise, one notch filter (gain U(min_g, max_g)), SNR U(snr_min, snr_max).

    On CPU (`dev`), each example's noise comes from its own sub-generator seeded from `gen`.
    """
    if _per_example_streams(dev):
        d = _ssi_plan(bsz, p, gen)
        return SSIDraw(noise=_noise(d.seed, t), notch=d.notch, snr_db=d.snr_db)
    noise = torch.randn((bsz, t), generator=gen, device=_gen_device(gen, dev)).to(dev)
    notch = _draw_notch(bsz, [(p.min_g, p.max_g)], p, gen, dev)
    snr = _uniform((bsz,), p.snr_min, p.snr_max, gen, dev)
    return SSIDraw(noise=noise, notch=notch, snr_db=snr)


def _peak_norm(y: Tensor, inplace: bool = False) -> Tensor:
    """Divide each row by its peak only when the peak exceeds 1 (the original `normWav(x, 0)`)."""
    return _divide(y, _peak_scale(y), inplace)


def _peak_scale(y: Tensor) -> Tensor:
    # max(peak, 1): peak ≤ 1 → divide by 1; silent rows never divide by 0. (amax + amin beat aminmax here.)
    return torch.maximum(y.amax(dim=-1, keepdim=True), y.amin(dim=-1, keepdim=True).neg_()).clamp_(min=1)


def _divide(y: Tensor, scale: Tensor, inplace: bool = True, out: Tensor | None = None) -> Tensor:
    """y / scale: into `out` if given, else in place or in a new tensor."""
    if out is not None:
        return torch.div(y, scale, out=out) if _needs_division(scale) else (y if y is out else out.copy_(y))
    if not _needs_division(scale):
        return y if inplace else y.clone()
    return y.div_(scale) if inplace else y / scale


def _needs_division(scale: Tensor) -> bool:
    # Dividing by 1 changes nothing: on CPU, skip the pass when no row needs it (a GPU isn't synced to check).
    return scale.device.type != "cpu" or bool((scale > 1).any())


def _bank(d: NotchDraw, p: RawBoostParams, t: int, dtype: torch.dtype, dev: torch.device) -> FIRBank:
    max_taps = p.max_taps
    if d.numtaps.device.type == "cpu":  # replayed draws may exceed the bound; don't sync a GPU to check
        max_taps = max(max_taps, int(d.numtaps.max()))
    b, lengths = notch_cascade(d.fc, d.bw, d.numtaps, d.gain_db, p.fs, max_taps)
    return fir_bank(b.to(dev), lengths.to(dev), t, dtype)


def _lnl(x: Tensor, bank: FIRBank, out: Tensor | None = None) -> Tensor:
    y = fir_powers(x, bank)  # a fresh tensor: in-place updates are safe
    mean = y.mean(dim=-1, keepdim=True)
    y = y.sub_(mean) if out is None else torch.sub(y, mean, out=out)
    return _peak_norm(y, inplace=True)


def lnl_apply(x: Tensor, d: NotchDraw, p: RawBoostParams) -> Tensor:
    """LnL convolutive noise: Σ_i filter_i(x^i), mean removed, peak-normalised if the peak exceeds 1."""
    return _lnl(x, _bank(d, p, x.shape[1], x.dtype, x.device))


def _isd(
    x: Tensor, d: ISDDraw, g_sd: float, owned: bool = False, bounded: bool = False, out: Tensor | None = None
) -> Tensor:
    """ISD on x. owned: x may be updated in place; bounded: |x| ≤ 1 already; out: where to write."""
    vals = x.gather(1, d.positions)
    impulses = vals * (g_sd * d.f_r.to(x.dtype))  # (B, K): g_sd·x[p]·f_r
    if owned:
        y = x
    else:
        y = x.clone() if out is None else out.copy_(x)
    y.scatter_add_(1, d.positions, impulses)
    # With |x| ≤ 1, a peak above 1 can only be among the new values x[p] + impulse (the same sums that
    # scatter_add makes; unused slots add 0 and see old values ≤ 1): no pass over all samples needed.
    return _divide(y, _peak_scale(vals.add_(impulses) if bounded else y), out=out)


def isd_apply(x: Tensor, d: ISDDraw, p: RawBoostParams) -> Tensor:
    """ISD impulsive noise: x[pos] ← x[pos]·(1 + g_sd·f_r), then peak-normalised if the peak exceeds 1.

    Positions may repeat where f_r = 0 (unused draws); the impulses are summed, so those add nothing.
    """
    return _isd(x, d, p.g_sd)


@dataclass(frozen=True)
class _SSIReady:
    noise: Tensor  # (B, T) white noise
    bank: FIRBank  # its designed notch filter (F = 1)
    snr_db: Tensor  # (B,)


def _ssi(x: Tensor, r: _SSIReady, out: Tensor | None = None) -> Tensor:
    noise = fir_powers(r.noise.to(x.dtype), r.bank)
    # The original peak-normalises the noise first; that factor cancels in the energy scaling below.
    tiny = torch.finfo(x.dtype).tiny
    nn = torch.linalg.vector_norm(noise, dim=-1, keepdim=True).clamp_min(tiny)
    nx = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    snr = r.snr_db.to(x.dtype).unsqueeze(-1)
    noise = noise.mul_(nx / (nn * torch.pow(10.0, 0.05 * snr)))
    return noise.add_(x) if out is None else torch.add(noise, x, out=out)  # x + scaled noise


def ssi_apply(x: Tensor, d: SSIDraw, p: RawBoostParams) -> Tensor:
    """SSI additive noise: the filtered noise, scaled to the drawn SNR relative to x, is added to x."""
    return _ssi(x, _SSIReady(d.noise, _bank(d.notch, p, x.shape[1], x.dtype, x.device), d.snr_db))


def _params(params: dict[str, object]) -> RawBoostParams:
    known = {f.name for f in dataclasses.fields(RawBoostParams)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown RawBoost parameter(s) {unknown}; known: {sorted(known)}")
    return RawBoostParams(**params)  # type: ignore[arg-type]


Ready = FIRBank | ISDDraw | _SSIReady  # a stage's draws, with its filters designed, for a set of rows

# On CPU, rows are processed in chunks of about this many samples: a chunk's FFT blocks, powers and spectra
# stay in the caches, and each op still has enough work for torch's intra-op threads to split. Whole-batch
# passes over (B, T) are memory-bound and several times slower. (Python worker threads scale far worse:
# torch's FFTs and fresh allocations barely run concurrently across threads of one process.)
CPU_CHUNK_SAMPLES = 1 << 19


def _rows(r: object, rows: slice) -> object:
    """The same dataclass of per-row tensors restricted to a range of rows (other fields kept)."""
    fields = {}
    for f in dataclasses.fields(r):  # type: ignore[arg-type]
        v = getattr(r, f.name)
        if dataclasses.is_dataclass(v):
            v = _rows(v, rows)
        elif torch.is_tensor(v):
            v = v[rows]
        fields[f.name] = v
    return type(r)(**fields)


def _prepare(stage: str, bsz: int, t: int, p: RawBoostParams, gen: Gen, dev: torch.device) -> Ready:
    # Non-CPU devices: draws, then filter design, for the whole batch at once (small tensors, one call each).
    if stage == "L":
        return _bank(draw_lnl(bsz, p, gen, dev), p, t, torch.float32, dev)
    if stage == "I":
        return draw_isd(bsz, t, p, gen, dev)
    d = draw_ssi(bsz, t, p, gen, dev)
    return _SSIReady(d.noise, _bank(d.notch, p, t, torch.float32, dev), d.snr_db)


def _apply_stages(
    x: Tensor, algo: int, ready: list[Ready], p: RawBoostParams, out: Tensor | None = None
) -> Tensor:
    """The stages of `algo` on x (not modified); the last one writes into `out` if given."""
    if algo == 8:  # parallel: both see the input; the sum is peak-normalised
        y = torch.add(_lnl(x, ready[0]), _isd(x, ready[1], p.g_sd), out=out)  # type: ignore[arg-type]
        return _peak_norm(y, inplace=True)
    stages = ALGORITHMS[algo]
    owned = bounded = False  # x is the caller's, of any peak
    for i, (stage, r) in enumerate(zip(stages, ready, strict=True)):
        dst = out if i == len(stages) - 1 else None
        if stage == "S":
            x, bounded = _ssi(x, r, dst), False  # type: ignore[arg-type]
        else:  # LnL and ISD end with "divide by the peak if above 1"
            x = _lnl(x, r, dst) if stage == "L" else _isd(x, r, p.g_sd, owned, bounded, dst)  # type: ignore[arg-type]
            bounded = True
        owned = True
    return x


# CPU path: the whole batch's draws and filter designs up front (small tensors: few, larger ops), then per
# chunk of rows the per-example random streams and the maths.
@dataclass(frozen=True)
class _SSIDesigned:
    seed: Tensor
    bank: FIRBank
    snr_db: Tensor


_Designed = FIRBank | _ISDPlan | _SSIDesigned


def _design(stage: str, bsz: int, t: int, p: RawBoostParams, gen: Gen) -> _Designed:
    """A stage's whole-batch draws with its filters designed; ISD and SSI keep seeds for their streams."""
    cpu = torch.device("cpu")
    if stage == "L":
        return _bank(draw_lnl(bsz, p, gen, cpu), p, t, torch.float32, cpu)
    if stage == "I":
        return _isd_plan(bsz, t, p, gen)
    d = _ssi_plan(bsz, p, gen)
    return _SSIDesigned(d.seed, _bank(d.notch, p, t, torch.float32, cpu), d.snr_db)


def _materialise(d: _Designed, rows: slice, t: int, p: RawBoostParams) -> Ready:
    """A chunk's share of a stage; ISD impulses and SSI noise are drawn here, just before use."""
    r = _rows(d, rows)
    if isinstance(r, _SSIDesigned):
        return _SSIReady(_noise(r.seed, t), r.bank, r.snr_db)
    if isinstance(r, _ISDPlan):
        return _isd_materialise(r, t, p)
    return r  # type: ignore[return-value]


def _rawboost_cpu(x: Tensor, algo: int, gen: Gen, p: RawBoostParams, stages: str) -> Tensor:
    bsz, t = x.shape
    designed = [_design(s, bsz, t, p, gen) for s in stages]
    step = max(1, CPU_CHUNK_SAMPLES // t)
    out = torch.empty_like(x)
    # Every op acts on each row alone, so the chunking doesn't change the results.
    for i in range(0, bsz, step):
        c = slice(i, min(i + step, bsz))
        ready = [_materialise(d, c, t, p) for d in designed]
        if x.requires_grad:  # out= ops aren't recorded by autograd: copy the result in instead
            out[c] = _apply_stages(x[c], algo, ready, p)
        else:
            _apply_stages(x[c], algo, ready, p, out=out[c])
    return out


def rawboost_batch(x: Tensor, algo: int, gen: Gen, p: RawBoostParams) -> Tensor:
    """`rawboost` with a ready `RawBoostParams`; x: (B, T) float32. Returns (B, T).

    All random parameters are drawn for the whole batch first, so the result does not depend on the
    row chunking used on CPU.
    """
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown RawBoost algo {algo!r}; expected one of {sorted(ALGORITHMS)}")
    bsz, t = x.shape
    stages = ALGORITHMS[algo].replace("+", "")
    if not stages:
        return x
    if x.device.type == "cpu":
        return _rawboost_cpu(x, algo, gen, p, stages)
    return _apply_stages(x, algo, [_prepare(s, bsz, t, p, gen, x.device) for s in stages], p)


def rawboost(x: Tensor, algo: int, generator: torch.Generator | None = None, **params: object) -> Tensor:
    """Apply RawBoost algorithm `algo` (0–8) to a batch, each example with its own random parameters.

    x: (B, T) or (T,) waveforms on any device; computed in float32, returned in x's dtype and shape.
    generator: the source of every random draw (its device may differ from x's; draws are moved);
    None uses torch's global RNG. params: `RawBoostParams` field overrides, e.g. `snr_min=5`.
    On CPU, chunks of rows are processed in turn, each op using torch's intra-op threads.

    >>> g = torch.Generator().manual_seed(0)
    >>> rawboost(torch.randn(2, 16000) * 0.1, 5, g).shape
    torch.Size([2, 16000])
    """
    if x.ndim not in (1, 2) or not x.is_floating_point() or x.shape[-1] == 0:
        msg = f"rawboost expects a float (B, T) or (T,) tensor, T > 0; got {x.dtype} {tuple(x.shape)}"
        raise ValueError(msg)
    y = rawboost_batch(x.reshape(-1, x.shape[-1]).to(torch.float32), algo, generator, _params(params))
    return y.reshape(x.shape).to(x.dtype)
