"""SEMAA: reference parity, parameter count, the readout's training-only noise, pooling maths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import require_shared
from safespeak.models import build, from_reference
from safespeak.models.blocks import AttentiveStatsPool, SelfAttentionPool

TINY = {"filts": [20, [1, 8], [8, 8], [8, 16], [16, 16]], "gat_dims": [16, 8]}


def test_parameter_count() -> None:
    assert sum(p.numel() for p in build("semaa").parameters()) == 341_034


def test_reference_parity() -> None:
    ref = require_shared("fixtures", "reference")
    io = dict(np.load(ref / "semaa_io.npz"))
    model = from_reference("semaa", ref / "semaa.safetensors")
    x = torch.from_numpy(io["x"])
    with torch.no_grad():
        hidden, logits = model.forward_features(x)
        np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(hidden.numpy(), io["last_hidden"], atol=1e-4, rtol=0)
        for i in range(x.shape[0]):  # the reference takes another code path for batch size 1
            np.testing.assert_allclose(
                model(x[i : i + 1]).numpy(), io["logits"][i : i + 1], atol=1e-4, rtol=0
            )
        hidden, logits = model.forward_features(torch.from_numpy(io["x_var"]))
    np.testing.assert_allclose(logits.numpy(), io["logits_var"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(hidden.numpy(), io["last_hidden_var"], atol=1e-4, rtol=0)


def test_readout_noise_only_in_training() -> None:
    torch.manual_seed(0)
    pool = SelfAttentionPool(6)
    # constant nodes: the weighted nodes are equal, so the std is exactly 0 without noise
    x = torch.ones(3, 5, 6)
    pool.eval()
    first, second = pool(x), pool(x)
    assert torch.equal(first, second) and torch.all(first[:, 6:] == 0)
    pool.train()
    a, b = pool(x), pool(x)
    torch.testing.assert_close(a[:, :6], first[:, :6])  # weighted sums are noise-free
    assert not torch.equal(a[:, 6:], b[:, 6:])  # fresh noise per call
    assert 1e-7 < a[:, 6:].mean().item() < 1e-4  # std of ~N(0, 1e-10) noise scaled by the weights
    pool.noise_std = 0.0
    assert torch.all(pool(x)[:, 6:] == 0)


def test_readout_maths() -> None:
    torch.manual_seed(1)
    pool = SelfAttentionPool(4).eval()
    x = torch.randn(2, 7, 4)
    att = torch.softmax(torch.tanh(x @ pool.att_weights.t()), dim=1)
    w = x * att
    expected = torch.cat([w.sum(1), w.std(1, unbiased=True)], dim=1)
    torch.testing.assert_close(pool(x), expected)
    torch.testing.assert_close(pool(x[1:]), expected[1:])  # batch size 1 is the same maths
    one = pool(x[:, :1])
    assert torch.equal(one[:, 4:], torch.zeros(2, 4)) and torch.isfinite(one).all()


def test_attentive_stats_pool_weighted_moments() -> None:
    torch.manual_seed(2)
    asp = AttentiveStatsPool(3, 5).eval()
    e = torch.randn(2, 3, 4, 6)
    spec, temp = asp(e)
    assert spec.shape == (2, 4, 6) and temp.shape == (2, 6, 6)
    w = torch.softmax(asp.attention(e), dim=3)
    mu = (e * w).sum(3)
    sd = ((e - mu.unsqueeze(3)) ** 2 * w).sum(3).clamp(min=1e-4).sqrt()
    torch.testing.assert_close(spec, torch.cat([mu, sd], 1).transpose(1, 2), atol=1e-5, rtol=1e-4)


def test_model_noise_and_modes() -> None:
    torch.manual_seed(3)
    model = build("semaa", **TINY)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    x = torch.randn(2, 14_000)  # long enough for >= 2 temporal nodes in the readout
    model.train()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert not torch.equal(a, b)  # only the readout noise differs (BN uses the same batch stats)
    torch.testing.assert_close(a, b, atol=1e-2, rtol=0)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        short = model(torch.randn(1, 8000))  # one temporal node left: std defined as 0, not NaN
        assert torch.isfinite(short).all()
        with pytest.raises(ValueError, match="T >="):
            model(torch.randn(2, 1000))
