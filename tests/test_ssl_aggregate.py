"""Layer aggregation: last-layer, softmax weighted sum, the seed-like 'last3' initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from safespeak.models.ssl import LayerAggregation


def _hidden(n: int = 5) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(2, 7, 4) for _ in range(n)]


def test_last_layer_returns_the_last_state_and_has_no_weights() -> None:
    hidden = _hidden()
    agg = LayerAggregation(5, "last-layer")
    assert torch.equal(agg(hidden), hidden[-1])
    assert agg.weights() is None and list(agg.state_dict()) == []


def test_weighted_sum_is_the_softmax_mix_and_a_saved_parameter() -> None:
    hidden = _hidden()
    agg = LayerAggregation(5, "weighted-sum")
    assert "layer_logits" in agg.state_dict() and agg.layer_logits.requires_grad
    assert torch.allclose(agg(hidden), torch.stack(hidden).mean(0), atol=1e-6)  # uniform init
    with torch.no_grad():
        agg.layer_logits.copy_(torch.tensor([0.0, 1.0, -1.0, 2.0, 0.5]))
    w = torch.softmax(agg.layer_logits.detach(), 0)
    want = sum(wi * h for wi, h in zip(w, hidden, strict=True))
    assert torch.allclose(agg(hidden), want, atol=1e-6)
    agg(hidden).sum().backward()
    assert agg.layer_logits.grad is not None and float(agg.layer_logits.grad.abs().sum()) > 0


def test_last3_init_puts_the_mix_on_the_last_three_layers() -> None:
    w = LayerAggregation(13, "weighted-sum", layer_init="last3").weights().detach()
    assert float(w.sum()) == pytest.approx(1.0)
    assert torch.allclose(w[-3:], torch.full((3,), w[-1].item()))
    assert float(w[-3:].sum()) == pytest.approx(3 / (3 + 10 * 0.02), rel=1e-6)  # 0.9375
    assert float(w[0] / w[-1]) == pytest.approx(0.02, rel=1e-5)
    assert math.isclose(float(w[:-3].sum()), 1 - float(w[-3:].sum()), rel_tol=1e-5)


def test_bad_modes_and_counts_raise() -> None:
    with pytest.raises(ValueError, match="unknown aggregation 'attention'"):
        LayerAggregation(3, "attention")
    with pytest.raises(ValueError, match="unknown layer_init 'last2'"):
        LayerAggregation(3, "weighted-sum", layer_init="last2")
    with pytest.raises(ValueError, match="expected 3 hidden states, got 5"):
        LayerAggregation(3, "weighted-sum")(_hidden())
