"""The chunked first encoder block against a plain autograd implementation of the same block."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from safespeak.models import build
from safespeak.models.blocks import ResidualBlock

TINY = {"filts": [20, [1, 8], [8, 8], [8, 16], [16, 16]], "gat_dims": [16, 8]}


def _plain(block: ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    """The block written with stock modules: conv1 -> BN -> SELU -> conv2, + skip conv, max-pool (1, 3)."""
    assert block.conv_downsample is not None
    out = block.conv2(F.selu(block.bn2(block.conv1(x)))) + block.conv_downsample(x)
    return F.max_pool2d(out, (1, 3))


def _pair(dtype: torch.dtype, train: bool, chunk: int) -> tuple[ResidualBlock, ResidualBlock]:
    torch.manual_seed(0)
    block = ResidualBlock(1, 6, first=True).to(dtype)
    with torch.no_grad():  # non-trivial BN parameters and running statistics
        block.bn2.weight.uniform_(0.5, 1.5)
        block.bn2.bias.uniform_(-0.5, 0.5)
        block.bn2.running_mean.uniform_(-0.5, 0.5)
        block.bn2.running_var.uniform_(0.5, 1.5)
    ref = ResidualBlock(1, 6, first=True).to(dtype)
    ref.load_state_dict(block.state_dict())
    block.chunk_steps = chunk
    return block.train(train), ref.train(train)


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the largest magnitude of the tensor (robust to near-zero entries)."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# (T, chunk): one chunk, several chunks, a last chunk of 1 or 2 steps (no pooled output of its own)
SHAPES = [(15, 1536), (40, 9), (41, 12), (13, 3), (14, 6)]


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize(("t", "chunk"), SHAPES)
def test_chunked_first_block_matches_plain_autograd(t: int, chunk: int, train: bool) -> None:
    block, ref = _pair(torch.float64, train, chunk)
    x = torch.randn(3, 1, 5, t, dtype=torch.float64, requires_grad=True)
    ours, expected = block(x), _plain(ref, x)
    torch.testing.assert_close(ours, expected, atol=1e-12, rtol=0)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(expected)
    names = [n for n, _ in block.named_parameters()]
    grads = torch.autograd.grad(ours, [x, *block.parameters()], g)
    wanted = torch.autograd.grad(expected, [x, *ref.parameters()], g)
    for name, a, b in zip(["input", *names], grads, wanted, strict=True):
        if name == "conv1.bias" and train:
            # analytically 0 before a batch-statistics BN: both are rounding noise of the other gradients
            assert a.abs().max() < 1e-12 * wanted[0].abs().max() * 1e3
            continue
        assert _max_rel(a, b) < 1e-10, name
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(block.bn2, name), getattr(ref.bn2, name), atol=1e-14, rtol=0)


def test_chunked_first_block_float32_gradients() -> None:
    """float32 at a realistic map height and several chunks: gradients within 1e-5 of plain autograd."""
    block, ref = _pair(torch.float32, True, 96)
    x = torch.randn(2, 1, 23, 400, requires_grad=True)
    ours, expected = block(x), _plain(ref, x)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(expected)
    grads = torch.autograd.grad(ours, [x, *block.parameters()], g)
    wanted = torch.autograd.grad(expected, [x, *ref.parameters()], g)
    names = ["input", *(n for n, _ in block.named_parameters())]
    for name, a, b in zip(names, grads, wanted, strict=True):
        if name != "conv1.bias":
            assert _max_rel(a, b) < 1e-5, name


def test_chunked_first_block_gradcheck_and_fallbacks() -> None:
    block, _ = _pair(torch.float64, True, 3)
    x = torch.randn(2, 1, 2, 8, dtype=torch.float64, requires_grad=True)
    assert block._can_chunk(x)
    assert torch.autograd.gradcheck(block, (x,), fast_mode=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not block._can_chunk(x.float())  # mixed precision takes the plain path
    assert not ResidualBlock(1, 1, first=True)._can_chunk(x)  # no skip conv


def _no_dropout(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


@pytest.mark.parametrize("name", ["aasist", "aasist-l", "semaa"])
def test_training_step_matches_the_unchunked_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Logits, every parameter gradient and the BN running statistics of a training step: the chunked
    first block (several chunks) against the plain autograd path of the same model, in float64 so
    that the graph back end (top-k pooling, attention) does not amplify float32 rounding differences."""
    extra = {"noise_std": 0.0} if name == "semaa" else {}  # no random readout noise: same draws in both
    torch.manual_seed(0)
    model = _no_dropout(build(name, **TINY, **extra)).double()
    model.encoder[0].chunk_steps = 600  # an 8000-sample input gives 2,624 steps: 5 chunks
    plain = _no_dropout(build(name, **TINY, **extra)).double()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 8000, dtype=torch.float64)
    logits = model(x)
    logits.logsumexp(1).sum().backward()
    monkeypatch.setattr(ResidualBlock, "_can_chunk", lambda self, x: False)
    expected = plain(x)
    expected.logsumexp(1).sum().backward()
    torch.testing.assert_close(logits, expected, atol=1e-10, rtol=0)
    # biases that feed a batch-statistics BN have a gradient of 0 up to rounding: judge every gradient
    # against the largest gradient entry of the model, not elementwise
    scale = max(q.grad.abs().max().item() for q in plain.parameters() if q.grad is not None)
    for (n, p), q in zip(model.named_parameters(), plain.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), n  # bn1 is never used
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-10 * scale, msg=n)
    torch.testing.assert_close(model.state_dict(), plain.state_dict(), atol=1e-12, rtol=0)


def test_residual_encoder_names_mismatched_channels():
    from safespeak.models.blocks import residual_encoder

    with pytest.raises(ValueError, match="block 4 takes 24 channels but block 3 gives 32"):
        residual_encoder([20, [1, 8], [8, 16], [16, 32], [24, 32]])
    with pytest.raises(ValueError, match="must be \\[c, c\\]"):
        residual_encoder([20, [1, 8], [8, 16], [16, 24], [24, 32]])
    assert len(residual_encoder([20, [1, 8], [8, 16], [16, 24], [24, 24]])) == 6
