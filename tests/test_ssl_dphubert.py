"""DPHuBERT backbone: released sp0.75 size, reference parity (plain and masked), pruned layers, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import require_shared
from safespeak.models.ssl import DPHUBERT_SP075_CONFIG, PrunedWav2Vec2, build_dphubert, load_dphubert

REF = ("fixtures", "reference")


def test_sp075_config_has_the_released_parameter_count() -> None:
    model = build_dphubert()
    assert sum(p.numel() for p in model.parameters()) == 23_585_946
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 23_585_697  # minus dummy_weight
    layers = model.encoder.transformer.layers
    # heads 0 in layers 8-10 and FFN 0 in layer 8: no modules, but both LayerNorms stay
    assert [layer.attention is None for layer in layers] == [
        h == 0 for h in DPHUBERT_SP075_CONFIG["encoder_num_heads"]
    ]
    assert layers[8].feed_forward is None and layers[9].feed_forward is not None
    assert layers[8].layer_norm is not None and layers[8].final_layer_norm is not None


@pytest.fixture(scope="module")
def ref_io() -> dict[str, np.ndarray]:
    return dict(np.load(require_shared(*REF, "dphubert_small_io.npz")))


@pytest.fixture(scope="module")
def small() -> PrunedWav2Vec2:
    return load_dphubert(require_shared(*REF, "dphubert_small.pth"))


def _max_diff(got: list[torch.Tensor], want: np.ndarray) -> float:
    assert len(got) == want.shape[0]
    return max(float((g - torch.from_numpy(w)).abs().max()) for g, w in zip(got, want, strict=True))


def test_load_returns_eval_model_matching_the_reference_per_layer(small, ref_io) -> None:
    assert not small.training
    with torch.no_grad():
        hidden, lengths = small.extract_features(torch.from_numpy(ref_io["x"]))
        hidden_var, _ = small.extract_features(torch.from_numpy(ref_io["x_var"]))
    assert lengths is None
    assert hidden[0].shape == (3, 201, 96)
    assert _max_diff(hidden, ref_io["layers"]) <= 1e-4
    assert _max_diff(hidden_var, ref_io["layers_var"]) <= 1e-4


def test_masked_lengths_and_outputs_match_the_reference(small, ref_io) -> None:
    with torch.no_grad():
        hidden, lengths = small.extract_features(
            torch.from_numpy(ref_io["x"]), torch.from_numpy(ref_io["lengths_in"])
        )
    assert lengths.tolist() == ref_io["lengths_out"].tolist()
    assert _max_diff(hidden, ref_io["layers_masked"]) <= 1e-4  # padded frames included
    # the mask must matter: item 2 (20,000 of 64,600 samples) differs from the unmasked run
    assert float((hidden[-1][2] - torch.from_numpy(ref_io["layers"][-1][2])).abs().max()) > 1e-2
    assert float(hidden[0][2, 62:].abs().max()) == 0.0  # projected input zeroed past the length


def test_safetensors_copy_loads_with_its_metadata_config(small, tmp_path) -> None:
    path = require_shared(*REF, "dphubert_small.safetensors")
    state = load_file(str(path))
    own = small.state_dict()
    assert set(state) == set(own)
    assert all(torch.equal(state[k], own[k]) for k in state)
    from_st = load_dphubert(path)
    assert from_st.config == small.config and not from_st.training
    bare = tmp_path / "bare.safetensors"
    save_file(state, str(bare))
    with pytest.raises(ValueError, match=r"bare\.safetensors: no 'config' in the safetensors metadata"):
        load_dphubert(bare)


def test_dropout_and_layer_drop_only_in_training(small, ref_io) -> None:
    x = torch.from_numpy(ref_io["x"][:1, :16000])
    model = load_dphubert(require_shared(*REF, "dphubert_small.pth"))
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        a = model.extract_features(x)[0][-1]
        b = model.extract_features(x)[0][-1]
        model.eval()
        c = model.extract_features(x)[0][-1]
        d = model.extract_features(x)[0][-1]
    assert float((a - b).abs().max()) > 1e-3
    assert torch.equal(c, d)


def test_gradient_checkpointing_gives_the_same_gradients(ref_io) -> None:
    cfg = {**torch.load(require_shared(*REF, "dphubert_small.pth"), weights_only=True)["config"]}
    cfg.update(
        encoder_dropout=0.0,
        encoder_attention_dropout=0.0,
        encoder_projection_dropout=0.0,
        encoder_layer_drop=0.0,
    )
    torch.manual_seed(0)
    plain = PrunedWav2Vec2(**cfg).train()
    ckpt = PrunedWav2Vec2(**cfg).train()
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_gradient_checkpointing(True)
    x = torch.from_numpy(ref_io["x"][:1, :4000])
    grads, calls = [], []
    for model in (plain, ckpt):
        layer = model.encoder.transformer.layers[0]
        count = [0]
        layer.attention.register_forward_hook(lambda *_, c=count: c.__setitem__(0, c[0] + 1))
        model.extract_features(x)[0][-1].square().mean().backward()
        grads.append(layer.attention.q_proj.weight.grad)
        calls.append(count[0])
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert float(grads[0].abs().max()) > 0
    assert calls == [1, 2]  # checkpointed layers run again in backward


def test_bad_checkpoints_raise_naming_the_file(tmp_path) -> None:
    path = tmp_path / "prune.pth"
    cfg = dict(DPHUBERT_SP075_CONFIG, encoder_prune_attention_heads=True)
    torch.save({"config": cfg, "state_dict": {}}, path)
    with pytest.raises(ValueError, match=r"prune\.pth.*encoder_prune_attention_heads"):
        load_dphubert(path)
    bad = tmp_path / "flat.pth"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match=r"flat\.pth.*'config' and 'state_dict'"):
        load_dphubert(bad)
    with pytest.raises(ValueError, match="3 entries for 2 layers"):
        PrunedWav2Vec2(encoder_num_layers=2, encoder_num_heads=[1, 1, 1])
    with pytest.raises(ValueError, match=r"expected a .B, T. waveform"):
        load_dphubert(require_shared(*REF, "dphubert_small.pth")).extract_features(torch.zeros(16000))


def test_default_registry_build_is_the_sp075_backbone_with_a_768_dim_head() -> None:
    from safespeak.models import build

    # 23,585,946 backbone + the reference heads with 768 inputs (414,474 / 441,898, fixture README)
    assert sum(p.numel() for p in build("ssl-aasist").parameters()) == 23_585_946 + 414_474
    assert sum(p.numel() for p in build("ssl-semaa").parameters()) == 23_585_946 + 441_898


def test_dphubert_countermeasure_matches_the_reference_and_restores_without_the_pth(tmp_path, ref_io) -> None:
    from safespeak.checkpoint import load_checkpoint, save_checkpoint
    from safespeak.models import build

    pth = tmp_path / "DPHuBERT-small.pth"
    shutil.copy(require_shared(*REF, "dphubert_small.pth"), pth)
    model = build("ssl-semaa", backbone="dphubert", source=str(pth), aggregation="weighted-sum").eval()
    x = torch.from_numpy(ref_io["x_var"])
    with torch.no_grad():
        model.aggregate.layer_logits.copy_(torch.tensor([-9.0, -9.0, -9.0, 9.0]))  # ~ last layer only
        assert float((model.features(x) - torch.from_numpy(ref_io["layers_var"][-1])).abs().max()) < 1e-4
        model.aggregate.layer_logits.copy_(torch.tensor([0.1, -0.4, 0.3, 0.2]))
        logits = model(x)
    save_checkpoint(tmp_path / "cm", model, arch="ssl-semaa", model_config=model.checkpoint_config())
    pth.unlink()
    restored, meta = load_checkpoint(tmp_path / "cm")
    assert meta["model_config"]["backbone_config"]["encoder_num_heads"] == [2, 0, 3]
    with torch.no_grad():
        assert torch.allclose(restored(x), logits, atol=1e-5)


def test_normalize_and_layer_drop_overrides_for_dphubert(ref_io) -> None:
    from safespeak.models.ssl import build_backbone

    path = require_shared(*REF, "dphubert_small.pth")
    plain, _ = build_backbone("dphubert", path)
    norm, export = build_backbone("dphubert", path, normalize=True, layer_drop=0.0)
    assert export["backbone_config"]["normalize_waveform"] is True
    assert export["backbone_config"]["encoder_layer_drop"] == 0.0 == norm.encoder.transformer.layer_drop
    assert plain.encoder.transformer.layer_drop == 0.05  # the checkpoint's value when not overridden
    quiet = 1e-3 * torch.from_numpy(ref_io["x"][:1, :4000])  # variance near the norms' eps: it matters
    with torch.no_grad():
        got = norm.extract_features(quiet)[0][-1]
        want = plain.extract_features(torch.nn.functional.layer_norm(quiet, quiet.shape[-1:]))[0][-1]
        raw = plain.extract_features(quiet)[0][-1]
    assert torch.allclose(got, want, atol=1e-5)
    assert float((got - raw).abs().max()) > 1e-2
