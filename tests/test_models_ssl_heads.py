"""SSL-AASIST and SSL-SEMAA heads: parameter counts, reference parity on SSL features, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import require_shared
from safespeak.models import build, from_reference
from safespeak.models.ssl_heads import SSLAASISTHead, SSLSEMAAHead


@pytest.mark.parametrize(
    ("name", "in_dim", "params"),
    [
        ("ssl-aasist-head", 1024, 447_242),
        ("ssl-aasist-head", 768, 414_474),
        ("ssl-semaa-head", 1024, 474_666),
        ("ssl-semaa-head", 768, 441_898),
    ],
)
def test_parameter_counts(name: str, in_dim: int, params: int) -> None:
    assert sum(p.numel() for p in build(name, in_dim=in_dim).parameters()) == params


@pytest.mark.parametrize("name", ["ssl-aasist-head", "ssl-semaa-head"])
def test_reference_parity(name: str) -> None:
    ref = require_shared("fixtures", "reference")
    stem = name.replace("-", "_")
    io = dict(np.load(ref / f"{stem}_io.npz"))
    model = from_reference(name, ref / f"{stem}.safetensors")
    feat = torch.from_numpy(io["feat"])
    with torch.no_grad():
        hidden, logits = model.forward_features(feat)
        np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(hidden.numpy(), io["last_hidden"], atol=1e-4, rtol=0)
        for i in range(feat.shape[0]):
            np.testing.assert_allclose(
                model(feat[i : i + 1]).numpy(), io["logits"][i : i + 1], atol=1e-4, rtol=0
            )
        hidden, logits = model.forward_features(torch.from_numpy(io["feat_var"]))
    np.testing.assert_allclose(logits.numpy(), io["logits_var"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(hidden.numpy(), io["last_hidden_var"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("cls", [SSLAASISTHead, SSLSEMAAHead])
def test_shapes_and_errors(cls: type) -> None:
    torch.manual_seed(0)
    head = cls(in_dim=16).eval()
    with torch.no_grad():
        assert head(torch.randn(2, 10, 16)).shape == (2, 2)
        assert head(torch.randn(1, 3, 16)).shape == (1, 2)  # shortest: one pooled frame
        assert head.embed(torch.randn(1, 20, 16)).shape[0] == 1
        with pytest.raises(ValueError, match=r"\(2, 10, 12\)"):
            head(torch.randn(2, 10, 12))
        with pytest.raises(ValueError, match=r"\(2, 2, 16\)"):
            head(torch.randn(2, 2, 16))
    assert head.input_length == 64_600
