"""Batched RawBoost: parameter distributions, alignment vs the numpy original, seeding, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from safespeak.augment.filters import filter_powers, notch_cascade
from safespeak.augment.rawboost import (
    RawBoostParams,
    draw_isd,
    draw_lnl,
    draw_ssi,
    isd_apply,
    rawboost,
    ssi_apply,
)
from safespeak.augment.rawboost_numpy import filter_fir, rawboost_numpy

P = RawBoostParams()
CPU = torch.device("cpu")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_lnl_draws_follow_the_original_ranges():
    d = draw_lnl(2000, P, _gen(), CPU)
    assert d.fc.shape == d.bw.shape == d.numtaps.shape == (2000, 5, 5) and d.gain_db.shape == (2000, 5)
    assert d.fc.min() >= 20 and d.fc.max() < 8000 and abs(d.fc.mean().item() - 4010) < 40
    assert d.bw.min() >= 100 and d.bw.max() < 1000 and abs(d.bw.mean().item() - 550) < 5
    assert (d.numtaps % 2 == 1).all() and d.numtaps.min() == 11 and d.numtaps.max() == 99
    # 10 and 11 both become 11: twice the mass of any other odd count.
    share11 = (d.numtaps == 11).double().mean().item()
    assert abs(share11 - 2 / 90) < 0.004
    assert (d.gain_db[:, 0] == 0).all()  # min_g = max_g = 0 for the linear filter
    later = d.gain_db[:, 1:]
    assert later.min() >= -20 and later.max() <= -5 and abs(later.mean().item() + 12.5) < 0.2


def test_isd_draws_pick_distinct_positions_at_up_to_p_percent():
    t = 1000
    d = draw_isd(400, t, P, _gen(1), CPU)
    used = d.f_r != 0
    counts = used.sum(1)
    assert counts.max() <= t * P.p / 100 and abs(counts.double().mean().item() - 0.05 * t) < 3
    assert d.f_r.abs().max() <= 1
    for row_pos, row_used in zip(d.positions, used, strict=True):
        assert row_pos[row_used].unique().numel() == int(row_used.sum())
    hist = torch.bincount(d.positions[used], minlength=t).double()
    assert hist.std() / hist.mean() < 0.25  # roughly flat over positions (Poisson spread ≈ 0.07)


def test_isd_fallback_for_large_p_keeps_exact_distinct_counts():
    p = RawBoostParams(p=100.0)
    d = draw_isd(50, 200, p, _gen(2), CPU)
    used = d.f_r != 0
    for row_pos, row_used in zip(d.positions, used, strict=True):
        assert row_pos[row_used].unique().numel() == int(row_used.sum())
    assert used.sum(1).max() > 150  # large subsets are drawn


def test_isd_rows_short_of_distinct_candidates_fall_back_to_random_keys(monkeypatch):
    import safespeak.augment.rawboost as rb_module

    p, bsz, t = RawBoostParams(p=24.0), 200, 40  # k = 10 ≤ t/4: the candidate route
    monkeypatch.setattr(rb_module, "_candidate_count", lambda k: k + 1)  # too few: some rows run short
    fallbacks = []
    keys = rb_module._smallest_keys
    monkeypatch.setattr(rb_module, "_smallest_keys", lambda *a: fallbacks.append(1) or keys(*a))
    d = draw_isd(bsz, t, p, _gen(23), CPU)
    n = rb_module._isd_counts(bsz, t, p, _gen(23), CPU)  # the same first draw
    assert 0 < len(fallbacks) < bsz
    used = d.f_r != 0
    assert torch.equal(used.sum(1), n)
    for row_pos, row_used in zip(d.positions, used, strict=True):
        assert row_pos[row_used].unique().numel() == int(row_used.sum())


def test_ssi_reaches_the_drawn_snr():
    x = torch.randn(8, 3000, generator=_gen(3)) * 0.2
    d = draw_ssi(8, 3000, P, _gen(4), CPU)
    assert d.snr_db.min() >= 10 and d.snr_db.max() < 40
    y = ssi_apply(x, d, P)
    snr = 10 * torch.log10(x.pow(2).sum(1) / (y - x).pow(2).sum(1))
    torch.testing.assert_close(snr, d.snr_db.float(), atol=1e-3, rtol=0)


@pytest.mark.parametrize("t", [1, 150, 4093, 9000])
def test_fft_filtering_matches_lfilter_then_trim(t):
    d = draw_lnl(2, P, _gen(t), CPU)
    b, lengths = notch_cascade(d.fc, d.bw, d.numtaps, d.gain_db, P.fs, P.max_taps)
    x = torch.randn(2, t, generator=_gen(5), dtype=torch.float64).float() * 0.3
    y = filter_powers(x, b, lengths)
    for i in range(2):
        want = sum(
            filter_fir(x[i].double().numpy() ** (j + 1), b[i, j, : lengths[i, j]].numpy()) for j in range(5)
        )
        np.testing.assert_allclose(y[i].numpy(), want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("algo", range(9))
def test_every_algorithm_keeps_shape_finite_and_bounded(algo):
    x = torch.randn(3, 4000, generator=_gen(6)) * 0.3
    y = rawboost(x, algo, _gen(7))
    assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    if algo in (1, 2, 5, 8):  # these end with the original's "peak > 1 → normalise"
        assert y.abs().max() <= 1 + 1e-6
    if algo == 0:
        assert torch.equal(y, x)
    else:
        assert not torch.allclose(y, x)


@pytest.mark.parametrize("algo", range(1, 9))
def test_seeded_runs_repeat_and_examples_get_their_own_draws(algo):
    x = (torch.randn(1, 3000, generator=_gen(8)) * 0.3).repeat(3, 1)
    a, b = rawboost(x, algo, _gen(9)), rawboost(x, algo, _gen(9))
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])  # same input row, different random parameters
    assert not torch.allclose(a, rawboost(x, algo, _gen(10)))


@pytest.mark.parametrize("algo", range(9))
def test_silent_input_stays_finite(algo):
    y = rawboost(torch.zeros(2, 2000), algo, _gen(11))
    assert torch.isfinite(y).all()
    if algo in (1, 2, 3, 5, 7):  # filtered or scaled silence is silence
        assert y.abs().max() == 0


def test_isd_scales_the_drawn_samples_only():
    x = torch.linspace(-0.3, 0.3, 1000).unsqueeze(0)  # peak stays < 1: no normalisation
    d = draw_isd(1, 1000, P, _gen(12), CPU)
    y = isd_apply(x, d, P)
    changed = (y != x)[0]
    used = d.positions[0][d.f_r[0] != 0]
    assert set(changed.nonzero().flatten().tolist()) <= set(used.tolist())
    want = x[0, used] * (1 + P.g_sd * d.f_r[0][d.f_r[0] != 0].float())
    torch.testing.assert_close(y[0, used], want)


def test_one_dimensional_and_float64_inputs_keep_shape_and_dtype():
    x = torch.randn(2500, dtype=torch.float64) * 0.1
    y = rawboost(x, 4, _gen(13))
    assert y.shape == (2500,) and y.dtype == torch.float64


def test_parameter_overrides_change_the_draws():
    x = torch.randn(4, 3000, generator=_gen(14)) * 0.3
    y = rawboost(x, 3, _gen(15), snr_min=60.0, snr_max=60.0)
    snr = 10 * torch.log10(x.pow(2).sum(1) / (y - x).pow(2).sum(1))
    torch.testing.assert_close(snr, torch.full((4,), 60.0), atol=1e-2, rtol=0)


def test_bad_arguments_raise_clear_errors():
    x = torch.zeros(2, 100)
    with pytest.raises(ValueError, match=r"unknown RawBoost parameter.*snr_minimum"):
        rawboost(x, 3, _gen(), snr_minimum=3)
    with pytest.raises(ValueError, match="algo 9"):
        rawboost(x, 9, _gen())
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        rawboost(torch.zeros(2, 3, 4), 1, _gen())
    with pytest.raises(ValueError, match="min_coeff"):
        RawBoostParams(min_coeff=50, max_coeff=20)


def test_numpy_mode_follows_the_same_semantics():
    x = (np.random.RandomState(0).standard_normal(3000) * 0.3).astype(np.float32)
    for algo in range(9):
        y = rawboost_numpy(x, algo, np.random.RandomState(algo))
        assert y.shape == x.shape and np.isfinite(y).all()
    assert np.abs(rawboost_numpy(np.zeros(500, np.float32), 4, np.random.RandomState(0))).max() == 0
    with pytest.raises(ValueError, match="algo 12"):
        rawboost_numpy(x, 12, np.random.RandomState(0))


@pytest.mark.parametrize("algo", [3, 4, 8])
def test_cpu_row_chunking_does_not_change_results(algo, monkeypatch):
    import safespeak.augment.rawboost as rb_module

    x = torch.randn(5, 3000, generator=_gen(16)) * 0.3
    monkeypatch.setattr(rb_module, "CPU_CHUNK_SAMPLES", 1 << 30)  # one chunk
    whole = rb_module.rawboost_batch(x, algo, _gen(17), P)
    monkeypatch.setattr(rb_module, "CPU_CHUNK_SAMPLES", 6000)  # chunks of 2 rows
    chunked = rb_module.rawboost_batch(x, algo, _gen(17), P)
    assert torch.equal(chunked, whole)  # every op acts on each row alone


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("algo", range(1, 9))
def test_intra_op_threads_match_one_thread(algo, monkeypatch, two_threads):
    import safespeak.augment.rawboost as rb_module

    monkeypatch.setattr(rb_module, "CPU_CHUNK_SAMPLES", 6000)  # several chunks of 2 rows
    x = torch.randn(7, 3000, generator=_gen(18)) * 0.3
    two = rb_module.rawboost_batch(x, algo, _gen(19), P)
    assert torch.equal(two, rb_module.rawboost_batch(x, algo, _gen(19), P))  # seeded: repeats exactly
    torch.set_num_threads(1)
    one = rb_module.rawboost_batch(x, algo, _gen(19), P)
    # Same draws; threads may split reductions differently (last-bit rounding only).
    torch.testing.assert_close(two, one, rtol=0, atol=1e-6)


def test_cpu_path_follows_the_callers_inference_mode(monkeypatch, two_threads):
    import safespeak.augment.rawboost as rb_module

    monkeypatch.setattr(rb_module, "CPU_CHUNK_SAMPLES", 6000)
    x = torch.randn(6, 3000, generator=_gen(20)) * 0.3
    want = rawboost(x, 4, _gen(21))
    with torch.inference_mode():  # the output is an inference tensor written chunk by chunk
        got = rawboost(x, 4, _gen(21))
    assert torch.equal(got, want)


@pytest.mark.parametrize("algo", range(1, 9))
def test_cpu_batch_path_equals_the_public_draws_then_applies(algo):
    # The chunked CPU path (in-place stages, per-example streams) against the plain functions, same draws.
    from safespeak.augment.rawboost import ALGORITHMS, lnl_apply

    bsz, t = 5, 4000
    x = torch.randn(bsz, t, generator=_gen(22)) * 0.3
    g = _gen(algo)
    draw = {"L": lambda: draw_lnl(bsz, P, g, CPU), "I": lambda: draw_isd(bsz, t, P, g, CPU),
            "S": lambda: draw_ssi(bsz, t, P, g, CPU)}
    apply = {"L": lnl_apply, "I": isd_apply, "S": ssi_apply}
    stages = ALGORITHMS[algo].replace("+", "")
    draws = [draw[s]() for s in stages]
    if algo == 8:
        y = lnl_apply(x, draws[0], P) + isd_apply(x, draws[1], P)
        y = y / y.abs().amax(1, keepdim=True).clamp(min=1)
    else:
        y = x
        for s, d in zip(stages, draws, strict=True):
            y = apply[s](y, d, P)
    assert torch.equal(rawboost(x, algo, _gen(algo)), y)


def test_firwin_rejects_even_or_too_many_taps():
    from safespeak.augment.filters import firwin_bandstop

    f1, f2 = torch.tensor([500.0]), torch.tensor([900.0])
    with pytest.raises(ValueError, match="odd numtaps"):
        firwin_bandstop(torch.tensor([12]), f1, f2, 16000, 101)
    with pytest.raises(ValueError, match="max_taps=51"):
        firwin_bandstop(torch.tensor([61]), f1, f2, 16000, 51)


def test_input_requiring_grad_takes_the_recorded_path():
    x = torch.randn(4, 3000, generator=_gen(24)) * 0.3
    xg = x.clone().requires_grad_()
    y = rawboost(xg, 3, _gen(25))  # SSI: x + scaled noise, differentiable
    y.sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()
    assert torch.equal(y.detach(), rawboost(x, 3, _gen(25)))
