"""AASIST / AASIST-L and the shared blocks: parity with the reference fixtures, shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import require_shared
from safespeak.models import build, from_reference
from safespeak.models.blocks import GraphPool, ResidualBlock, SincFilterbank, max_pool_time3

TINY = {"filts": [20, [1, 8], [8, 8], [8, 16], [16, 16]], "gat_dims": [16, 8]}


def _ref(name: str) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    ref = require_shared("fixtures", "reference")
    io = dict(np.load(ref / f"{name.replace('-', '_')}_io.npz"))
    return from_reference(name, ref / f"{name.replace('-', '_')}.safetensors"), io


def test_sinc_table_matches_reference_exactly() -> None:
    ref = require_shared("fixtures", "reference")
    table = np.load(ref / "aasist_io.npz")["sinc_band_pass"]
    ours = SincFilterbank(70, 128).band_pass.numpy()
    assert ours.shape == (70, 129)  # even kernel made odd
    # a float64 sinc would be off by ~1e-6; the reference's float32 sinc is reproduced bit for bit
    np.testing.assert_allclose(ours, table, rtol=0, atol=1e-9)


def test_sinc_filterbank_buffer_and_channels() -> None:
    fb = SincFilterbank(out_channels=12, kernel_size=31, sample_rate=8000, in_channels=2)
    assert fb.state_dict() == {} and fb.kernel_size == 31
    x = torch.randn(2, 2, 200)
    y = fb(x)
    assert y.shape == (2, 12, 170)
    mono = SincFilterbank(out_channels=12, kernel_size=31, sample_rate=8000)
    torch.testing.assert_close(y, mono(x[:, :1]) + mono(x[:, 1:]), atol=1e-5, rtol=1e-5)
    assert fb.to(torch.float64).band_pass.dtype == torch.float64
    with pytest.raises(ValueError, match=r"\(2, 1, 200\)"):
        fb(torch.randn(2, 1, 200))


@pytest.mark.parametrize(("name", "params"), [("aasist", 297_866), ("aasist-l", 85_306)])
def test_parameter_counts(name: str, params: int) -> None:
    assert sum(p.numel() for p in build(name).parameters()) == params


@pytest.mark.parametrize("name", ["aasist", "aasist-l"])
def test_reference_parity(name: str) -> None:
    model, io = _ref(name)
    x = torch.from_numpy(io["x"])
    captured: list[torch.Tensor] = []  # the encoder output of the same pass (no second forward)
    hook = model.encoder.register_forward_hook(lambda mod, inp, out: captured.append(out))
    with torch.no_grad():
        hidden, logits = model.forward_features(x)
        hook.remove()
        np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(hidden.numpy(), io["last_hidden"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(captured[0].numpy(), io["encoder_out"], atol=1e-4, rtol=0)
        for i in range(x.shape[0]):  # batch size 1, row by row
            np.testing.assert_allclose(
                model(x[i : i + 1]).numpy(), io["logits"][i : i + 1], atol=1e-4, rtol=0
            )
        hidden, logits = model.forward_features(torch.from_numpy(io["x_var"]))
    np.testing.assert_allclose(logits.numpy(), io["logits_var"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(hidden.numpy(), io["last_hidden_var"], atol=1e-4, rtol=0)


def test_official_pth_is_the_fixture() -> None:
    weights = require_shared("weights", "clovaai-aasist")
    fixture, io = _ref("aasist")
    official = from_reference("aasist", weights / "AASIST.pth")
    a, b = official.state_dict(), fixture.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        logits = official(torch.from_numpy(io["x_var"]))
    np.testing.assert_allclose(logits.numpy(), io["logits_var"], atol=1e-4, rtol=0)
    light = from_reference("aasist-l", weights / "AASIST-L.pth")
    assert sum(p.numel() for p in light.parameters()) == 85_306


def test_small_variant_trains_and_handles_short_inputs() -> None:
    torch.manual_seed(0)
    model = build("aasist", **TINY, first_conv=64)
    assert model.min_input_length == 3**7 + 64  # kernel 64 -> 65 taps
    x = torch.randn(2, 8000)
    logits = model(x)
    assert logits.shape == (2, 2)
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if ".bn1." not in n]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, model.min_input_length)).shape == (1, 2)
        with pytest.raises(ValueError, match=r"\(1, 2250\)"):
            model(torch.randn(1, model.min_input_length - 1))
        with pytest.raises(ValueError, match=r"\(8000,\)"):
            model(torch.randn(8000))


def test_bn1_is_kept_but_has_no_effect() -> None:
    torch.manual_seed(0)
    block = ResidualBlock(4, 6).eval()
    x = torch.randn(2, 4, 5, 12)
    before = block(x)
    with torch.no_grad():
        block.bn1.weight.mul_(3.0)
        block.bn1.running_mean.add_(1.0)
    torch.testing.assert_close(block(x), before)
    assert before.shape == (2, 6, 5, 4)
    assert (
        "bn1.weight" in block.state_dict()
        and "bn1.weight" not in ResidualBlock(1, 6, first=True).state_dict()
    )


def test_graph_pool_keeps_top_scored_nodes() -> None:
    pool = GraphPool(0.5, 3, dropout=0.0)
    with torch.no_grad():
        pool.proj.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        pool.proj.bias.zero_()
    h = torch.tensor([[[0.0, 1, 1], [3.0, 1, 1], [-2.0, 1, 1], [1.0, 1, 1], [2.0, 1, 1]]])
    out = pool(h)
    assert out.shape == (1, 2, 3)  # int(5 * 0.5) = 2 nodes
    s = torch.sigmoid(torch.tensor([3.0, 2.0]))
    torch.testing.assert_close(out[0, :, 0], torch.tensor([3.0, 2.0]) * s)
    assert GraphPool(0.1, 3)(torch.randn(2, 4, 3)).shape == (2, 1, 3)  # at least one node


@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_time3_matches_max_pool2d(channels_last: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 14, dtype=torch.float64)
    x[0, 0, 0, :3] = 1.0  # a tie: the first maximum takes the gradient, as in max_pool2d
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    ours, ref = max_pool_time3(x), torch.nn.functional.max_pool2d(x, (1, 3))
    assert torch.equal(ours, ref)
    g = torch.randn_like(ref)
    assert torch.equal(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0])
    with pytest.raises(ValueError, match=r"\(1, 1, 2, 2\)"):
        max_pool_time3(torch.zeros(1, 1, 2, 2))


@pytest.mark.parametrize("out_channels", [6, 1])
def test_first_block_patch_path_matches_convolutions(out_channels: int) -> None:
    torch.manual_seed(0)
    block = ResidualBlock(1, out_channels, first=True).double()
    x = torch.randn(2, 1, 5, 13, dtype=torch.float64, requires_grad=True)

    def plain(x: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional
        out = block.conv2(f.selu(block.bn2(block.conv1(x))))
        out = out + (x if block.conv_downsample is None else block.conv_downsample(x))
        return f.max_pool2d(out, (1, 3))

    ours, ref = block(x), plain(x)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    g = torch.randn_like(ref)
    inputs = [x, *block.parameters()]
    grads = torch.autograd.grad(ours, inputs, g, allow_unused=True)
    expected = torch.autograd.grad(ref, inputs, g, allow_unused=True)
    for a, b in zip(grads, expected, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_training_step_under_autocast_matches_fp32() -> None:
    torch.manual_seed(0)
    model = build("aasist", **TINY)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    x = torch.randn(2, 8000)
    with torch.no_grad():
        ref = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)  # custom autograd functions see bfloat16 grads with float32 saved inputs
    out.float().sum().backward()
    # bfloat16 gradients are too coarse to compare with fp32 ones; their dtype and finiteness are the point
    for block in model.encoder[:1]:
        for p in (block.conv1.weight, block.conv1.bias, block.conv_downsample.weight):
            assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
    assert torch.allclose(out.float(), ref, atol=0.1, rtol=0.1)
