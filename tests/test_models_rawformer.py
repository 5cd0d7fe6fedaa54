"""Rawformer-S/L/SE: parameter counts, reference parity, pre-emphasis, polarity, length limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import require_shared
from safespeak.models.rawformer import Rawformer, positional_table, rawformer_l, rawformer_s, rawformer_se
from safespeak.models.registry import build, from_reference

FACTORIES = {"s": rawformer_s, "l": rawformer_l, "se": rawformer_se}
PARAMS = {"s": 191_364, "l": 293_044, "se": 371_476}
# (min, max) input samples from the reference's shape arithmetic (fixture README).
LIMITS = {"s": (4_016, 66_223), "l": (2_315, 65_737), "se": (4_016, 66_223)}
ATOL = 1e-4


def _reference(variant: str) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    from safetensors.torch import load_file

    ref = require_shared("fixtures", "reference")
    state = load_file(ref / f"rawformer_{variant}.safetensors")
    with np.load(ref / f"rawformer_{variant}_io.npz") as io:
        return state, dict(io)


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def ref_run(request: pytest.FixtureRequest) -> dict:
    """A reference-weight model in eval mode, its fixture arrays, and the outputs of one batched forward."""
    variant = request.param
    state, io = _reference(variant)
    model = FACTORIES[variant]().eval()
    model.load_state_dict(state, strict=True)
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.front_end.register_forward_hook(lambda m, i, o: seen.__setitem__("hfm", o)),
        model.classifier.seq_pooling.register_forward_hook(lambda m, i, o: seen.__setitem__("seqpool", o)),
    ]
    with torch.no_grad():
        out = model(torch.from_numpy(io["x"]))
    for h in hooks:
        h.remove()
    return {"variant": variant, "model": model, "io": io, "out": out, **seen}


@pytest.mark.parametrize("variant", sorted(FACTORIES))
def test_parameter_counts_and_fixed_tensors_outside_state_dict(variant: str) -> None:
    model = FACTORIES[variant]()
    assert sum(p.numel() for p in model.parameters()) == PARAMS[variant]
    keys = set(model.state_dict())
    assert not any(k.endswith(("encoding", "band_pass")) for k in keys)
    buffers = dict(model.named_buffers())
    assert buffers["positional_embedding.encoding"].shape == (23 * (29 if variant == "l" else 16), 64)
    assert "front_end.sinc.band_pass" in buffers


def test_reference_state_dict_loads_strictly(ref_run: dict) -> None:
    state, _ = _reference(ref_run["variant"])
    model = FACTORIES[ref_run["variant"]]()
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.classifier.linear.weight, state["classifier.linear.weight"])


def test_batched_parity(ref_run: dict) -> None:
    io, out = ref_run["io"], ref_run["out"]
    assert out.shape == (3, 1)
    np.testing.assert_allclose(out.numpy(), io["presigmoid"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(torch.sigmoid(out[:, 0]).numpy(), io["out"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(ref_run["seqpool"].numpy(), io["seqpool"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(ref_run["hfm"].numpy(), io["hfm"], atol=ATOL, rtol=0)
    # A 4 s input fills the whole position table (its zero last row included).
    _, _, f, t = ref_run["hfm"].shape
    assert f * t == ref_run["model"].positional_embedding.max_positions


# Each fixture row is run alone (batch of one) by one variant, so all rows and all variants' batch-1
# paths are covered at a third of the cost of running every row with every variant.
ROW_ALONE = {"s": 0, "l": 1, "se": 2}


def test_row_alone_matches_reference(ref_run: dict) -> None:
    model, io = ref_run["model"], ref_run["io"]
    b = ROW_ALONE[ref_run["variant"]]
    with torch.no_grad():
        emb = model.embed(torch.from_numpy(io["x"][b : b + 1]))  # (1, T) -> (1, 64)
        logit = model.classifier.linear(emb)
    assert emb.shape == (1, 64) and logit.shape == (1, 1)
    np.testing.assert_allclose(emb[0].numpy(), io["seqpool"][b], atol=ATOL, rtol=0)
    np.testing.assert_allclose(logit[0].numpy(), io["presigmoid"][b], atol=ATOL, rtol=0)


def test_variable_length_parity(ref_run: dict) -> None:
    model, io = ref_run["model"], ref_run["io"]
    with torch.no_grad():
        x = torch.from_numpy(io["x_var"])  # (1, 48000)
        emb = model.embed(x)
        out = model.classifier.linear(emb)
    np.testing.assert_allclose(emb[0].numpy(), io["seqpool_var"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(out[0].numpy(), io["presigmoid_var"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(torch.sigmoid(out[0, 0]).item(), float(io["out_var"]), atol=ATOL)


def test_position_table_matches_reference(ref_run: dict) -> None:
    variant, model = ref_run["variant"], ref_run["model"]
    # The SE fixture has no table of its own: it uses Rawformer-S's.
    io = ref_run["io"] if variant != "se" else _reference("s")[1]
    table = model.positional_embedding.encoding
    np.testing.assert_allclose(table.numpy(), io["pos_encoding"], atol=ATOL, rtol=0)
    assert not table[0].any() and not table[-1].any()
    assert table[1].abs().sum() > 1


def test_position_table_values() -> None:
    table = positional_table(10, 8)
    p, i = 3, 1  # row 3, frequency index 1 -> columns 2 (sin) and 3 (cos)
    angle = p / 10000 ** (2 * i / 8)
    assert table[p, 2].item() == pytest.approx(np.sin(angle), abs=1e-6)
    assert table[p, 3].item() == pytest.approx(np.cos(angle), abs=1e-6)
    with pytest.raises(ValueError, match="even dim"):
        positional_table(10, 7)


def _numpy_pre_emphasis(x: np.ndarray, coef: float = 0.97) -> np.ndarray:
    padded = np.pad(x, ((0, 0), (1, 0)), mode="reflect")
    return padded[:, 1:] - coef * padded[:, :-1]


@pytest.mark.parametrize("shape", [(3, 200), (1, 50), (2, 2)])
def test_preprocess_equals_numpy_pre_emphasis(shape: tuple[int, int]) -> None:
    model = Rawformer()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = model.preprocess(torch.from_numpy(x))
    assert y.shape == shape
    np.testing.assert_allclose(y.numpy(), _numpy_pre_emphasis(x), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"\(B, T >= 2\)"):
        model.preprocess(torch.zeros(5))


def test_score_is_minus_spoof_logit(ref_run: dict) -> None:
    model, io = ref_run["model"], ref_run["io"]
    presig = torch.from_numpy(io["presigmoid"])  # (3, 1): the reference's spoof logit
    torch.testing.assert_close(model.bonafide_score(presig), -presig[:, 0])
    # The reference's sigmoid output is P(spoof): a higher bona fide score means a lower probability.
    order_score = np.argsort(model.bonafide_score(presig).numpy())
    np.testing.assert_array_equal(order_score, np.argsort(-io["out"]))


def test_score_runs_preprocess_then_negates_the_logit() -> None:
    model = rawformer_s().eval()
    x = torch.randn(2, 8_000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logit = model(model.preprocess(x))
        torch.testing.assert_close(model.score(x), -logit[:, 0])
        # Pre-emphasis matters: skipping it gives different scores.
        assert (model.score(x) + model(x)[:, 0]).abs().max() > 1e-3


def test_logits2_cross_entropy_equals_bce_on_spoof_logit() -> None:
    model = Rawformer()
    g = torch.Generator().manual_seed(0)
    s = torch.randn(16, 1, generator=g) * 3  # spoof logits
    label = torch.randint(0, 2, (16,), generator=g)  # 1 = bona fide
    weight = torch.tensor([0.9, 0.1])  # [spoof, bonafide] class weights
    logits = model.logits2(s)
    assert logits.shape == (16, 2)
    torch.testing.assert_close(logits[:, 1], model.bonafide_score(s))
    ce = F.cross_entropy(logits, label, weight=weight)
    w = weight[label]
    bce = F.binary_cross_entropy_with_logits(s[:, 0], (1 - label).float(), reduction="none")
    torch.testing.assert_close(ce, (w * bce).sum() / w.sum())


@pytest.mark.parametrize("variant", sorted(FACTORIES))
def test_length_limits(variant: str) -> None:
    model = FACTORIES[variant]().eval()
    lo, hi = LIMITS[variant]
    assert (model.min_input_length, model.max_input_length) == (lo, hi)
    fe, max_frames = model.front_end, model.positional_embedding.max_positions // 23
    assert (fe.frames(lo - 1), fe.frames(lo), fe.frames(hi), fe.frames(hi + 1)) == (
        0,
        1,
        max_frames,
        max_frames + 1,
    )
    with torch.no_grad():
        assert model(torch.randn(1, lo)).shape == (1, 1)
    with pytest.raises(ValueError, match=f"at least {lo:,} samples"):
        model(torch.randn(1, lo - 1))
    with pytest.raises(ValueError, match=f"at most {hi:,} samples"):
        model(torch.randn(1, hi + 1))
    with pytest.raises(ValueError, match=r"\(B, T\).*\(64000,\)"):
        model(torch.randn(64_000))


def test_registry_builds_with_overrides() -> None:
    model = build("rawformer-l", transformer_hidden=32)
    assert isinstance(model, Rawformer)
    assert model.classifier.encoders.encoder0.ffn.network[0].out_features == 32
    assert model.input_length == 64_000


@pytest.mark.parametrize("variant", ["s", "se"])
def test_released_checkpoint_key_layout_loads(variant: str, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state, _ = _reference(variant)
    # As the released hackathon checkpoint stores them: DDP `module.` prefix, SE gate named `se_fc`.
    released = {"module." + k.replace("se_module.fc", "se_fc"): v for k, v in state.items()}
    assert variant == "s" or any(".se_fc." in k for k in released)
    path = tmp_path / "released.safetensors"
    save_file(released, str(path))
    model = from_reference(f"rawformer-{variant}", path)
    assert not model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


@pytest.mark.parametrize("variant", sorted(FACTORIES))
def test_training_step_reaches_every_parameter(variant: str) -> None:
    torch.manual_seed(0)
    model = FACTORIES[variant]().train()
    x = model.preprocess(torch.randn(2, model.min_input_length))
    label = torch.tensor([0, 1])  # spoof, bona fide
    loss = F.cross_entropy(model.logits2(model(x)), label, weight=torch.tensor([0.1, 0.9]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = {n: p.grad for n, p in model.named_parameters()}
    # The pooling score's bias shifts every position equally, and softmax ignores a shift: it is the
    # one parameter (kept for the reference's state dict) whose gradient is zero up to rounding.
    assert grads.pop("classifier.seq_pooling.linear.bias").abs().max() < 1e-6
    dead = [n for n, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert dead == []
