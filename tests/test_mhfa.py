"""MHFA head: shapes, masking, gradients into the layer weights, a toy overfit, SSL/Whisper integration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from safespeak.models import build, list_models
from safespeak.models.mhfa import MHFAHead
from safespeak.models.ssl.whisper import WhisperEncoderConfig

TINY = WhisperEncoderConfig(n_mels=16, d_model=24, layers=2, heads=2, ffn_dim=32, max_positions=100)


def test_shapes_and_errors() -> None:
    head = MHFAHead(in_dim=24, num_layers=5, heads=4, compression_dim=8, embed_dim=16)
    x = torch.randn(3, 5, 11, 24)
    assert head(x).shape == (3, 2) and head.embed(x).shape == (3, 16)
    with pytest.raises(ValueError, match=r"\(B, 5, frames, 24\)"):
        head(torch.randn(3, 4, 11, 24))
    wk, wv = head.layer_weights()
    assert torch.allclose(wk, torch.full((5,), 0.2)) and torch.allclose(wv, wk)


def test_padding_mask_matches_the_unpadded_input() -> None:
    torch.manual_seed(0)
    head = MHFAHead(in_dim=8, num_layers=3, heads=2, compression_dim=4, embed_dim=6).eval()
    short = torch.randn(1, 3, 5, 8)
    padded = torch.cat([short, 100 * torch.randn(1, 3, 4, 8)], dim=2)  # (1, 3, 9, 8)
    torch.testing.assert_close(head(padded, torch.tensor([5])), head(short))
    assert not torch.allclose(head(padded), head(short))


def test_gradients_reach_the_key_and_value_layer_weights() -> None:
    torch.manual_seed(0)
    head = MHFAHead(in_dim=8, num_layers=4, heads=2, compression_dim=4, embed_dim=6)
    x = torch.randn(2, 4, 7, 8) * torch.arange(1, 5).view(1, 4, 1, 1)  # layers differ in scale
    F.cross_entropy(head(x), torch.tensor([0, 1])).backward()
    assert float(head.key_logits.grad.abs().sum()) > 0
    assert float(head.value_logits.grad.abs().sum()) > 0


def test_overfits_a_separable_toy_set() -> None:
    torch.manual_seed(0)
    n, layers, frames, dim = 32, 4, 10, 8
    y = torch.arange(n) % 2
    x = torch.randn(n, layers, frames, dim)
    x[:, 2, :, 0] += torch.where(y == 1, 1.5, -1.5)[:, None]  # the label lives in one layer only
    head = MHFAHead(in_dim=dim, num_layers=layers, heads=2, compression_dim=8, embed_dim=8)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(head(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    assert (head(x).argmax(1) == y).float().mean() == 1.0


def test_ssl_mhfa_on_whisper_hidden_states() -> None:
    assert {"mhfa-head", "ssl-mhfa"} <= set(list_models())
    torch.manual_seed(0)
    model = build("ssl-mhfa", backbone="whisper", backbone_config=TINY.to_dict(), freeze=True).eval()
    assert model.head.num_layers == TINY.layers + 1
    x = 0.1 * torch.randn(2, 3200)
    with torch.no_grad():
        out = model(x)
        hidden = torch.stack(model.hidden_states(x), dim=1)  # (B, L, frames, D): what the cache stores
        torch.testing.assert_close(model.head(hidden), out)
    again = build("ssl-mhfa", **model.checkpoint_config()).eval()
    again.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(again(x), out)
    with pytest.raises(ValueError, match="weighs the layers itself"):
        build("ssl-mhfa", backbone="whisper", backbone_config=TINY.to_dict(), aggregation="weighted-sum")
