"""SSL countermeasures end to end on tiny HF backbones saved to temp dirs (no network)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported anywhere in this process

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from safespeak.checkpoint import load_checkpoint, save_checkpoint
from safespeak.models import build
from safespeak.models.ssl import SSLCountermeasure, build_backbone
from safespeak.models.ssl import model as ssl_model

transformers = pytest.importorskip("transformers")

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(8, 8, 8),
    conv_kernel=(10, 3, 3),
    conv_stride=(5, 2, 2),
    num_conv_pos_embeddings=8,
    num_conv_pos_embedding_groups=2,
    vocab_size=4,
)


class TinyHead(nn.Module):
    """Stand-in head (B, frames, D) -> (B, 2) for the fast tests."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(1))


@pytest.fixture
def tiny_head(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssl_model, "_make_head", lambda name, in_dim, kw: TinyHead(in_dim))


def _save_tiny(path: Path, kind: str = "wav2vec2", **extra: object) -> Path:
    cfg_cls = {"wav2vec2": "Wav2Vec2Config", "hubert": "HubertConfig", "wavlm": "WavLMConfig"}[kind]
    model_cls = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel", "wavlm": "WavLMModel"}[kind]
    torch.manual_seed(0)
    config = getattr(transformers, cfg_cls)(**{**TINY, **extra})
    getattr(transformers, model_cls)(config).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny(tmp_path_factory.mktemp("w2v") / "tiny")


def _train_step(model: SSLCountermeasure, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.Adam(model.param_groups(lr=1e-2, ssl_lr=1e-3))
    model.train()
    loss = nn.functional.cross_entropy(model.logits2(model(model.preprocess(x))), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return before


def _changed(model: nn.Module, before: dict[str, torch.Tensor], prefix: str) -> list[bool]:
    return [not torch.equal(p, before[k]) for k, p in model.named_parameters() if k.startswith(prefix)]


@pytest.mark.parametrize("freeze", [True, False])
def test_one_training_step_reaches_the_backbone_only_when_unfrozen(tiny_dir, freeze) -> None:
    torch.manual_seed(1)
    model = build(
        "ssl-aasist", backbone="hf", source=str(tiny_dir), aggregation="weighted-sum", freeze=freeze
    )
    x, y = torch.randn(2, 4000), torch.tensor([0, 1])
    before = _train_step(model, x, y)
    assert model.training and model.ssl.training is not freeze  # frozen backbone stays in eval
    w = model.aggregate.weights().detach()
    assert w.shape == (3,) and float(w.sum()) == pytest.approx(1.0)
    assert all(_changed(model, before, "aggregate.layer_logits"))
    assert any(_changed(model, before, "head."))
    ssl_grads = [p.grad for n, p in model.ssl.named_parameters() if "masked_spec_embed" not in n]
    if freeze:
        assert all(g is None for g in ssl_grads) and not any(_changed(model, before, "ssl."))
        assert [g["name"] for g in model.param_groups(1e-3)] == ["head"]
    else:
        assert all(g is not None for g in ssl_grads)
        assert sum(_changed(model, before, "ssl.")) >= len(ssl_grads) - 1
        groups = {g["name"]: g for g in model.param_groups(1e-3, ssl_lr=1e-5)}
        assert groups["ssl"]["lr"] == 1e-5 and groups["head"]["lr"] == 1e-3


def test_checkpoint_restores_without_the_backbone_directory(tmp_path, tiny_head) -> None:
    src = _save_tiny(tmp_path / "backbone")
    model = build(
        "ssl-aasist", backbone="hf", source=str(src), aggregation="weighted-sum", layer_init="last3"
    )
    with torch.no_grad():
        model.aggregate.layer_logits.add_(torch.tensor([0.3, -0.2, 0.1]))  # as if trained
    save_checkpoint(tmp_path / "ck", model, arch="ssl-aasist", model_config=model.checkpoint_config())
    shutil.rmtree(src)
    meta = json.loads((tmp_path / "ck.json").read_text())
    assert "source" not in meta["model_config"] and meta["model_config"]["backbone"] == "hf"
    restored, _ = load_checkpoint(tmp_path / "ck")
    x = torch.randn(2, 3000)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(restored(x), model(x), atol=1e-6)
    assert torch.equal(restored.aggregate.layer_logits, model.aggregate.layer_logits)


def test_normalisation_follows_the_preprocessor_config(tmp_path, tiny_head) -> None:
    src = _save_tiny(tmp_path / "xlsr", feat_extract_norm="layer", do_stable_layer_norm=True)
    (src / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    model = build("ssl-semaa", backbone="hf", source=str(src)).eval()
    assert model.ssl.normalize and model.checkpoint_config()["normalize"] is True
    x = torch.randn(2, 3000)
    with torch.no_grad():  # zero-mean/unit-variance input -> invariant to gain and offset
        assert torch.allclose(model(x), model(3.0 * x + 0.5), atol=1e-4)
    plain = build("ssl-semaa", backbone="hf", source=str(src), normalize=False).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(x), plain(3.0 * x + 0.5), atol=1e-3)


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")  # inside WavLM
@pytest.mark.parametrize("kind", ["hubert", "wavlm"])
def test_other_wav2vec2_family_models_give_all_hidden_states(tmp_path, kind) -> None:
    backbone, export = build_backbone("hf", _save_tiny(tmp_path / kind, kind))
    assert export["backbone_config"]["model_type"] == kind
    hidden, lengths = backbone.eval().extract_features(torch.randn(2, 4000), torch.tensor([4000, 2000]))
    assert len(hidden) == backbone.num_hidden_states == 3
    assert hidden[-1].shape == (2, 199, 32) and lengths.tolist() == [199, 99]


def test_gradient_checkpointing_keeps_outputs(tiny_dir, tiny_head) -> None:
    x = torch.randn(1, 3000)
    outs = []
    for gc in (False, True):
        torch.manual_seed(0)
        model = build("ssl-aasist", backbone="hf", source=str(tiny_dir), gradient_checkpointing=gc).eval()
        model.ssl.model.train()  # checkpointing only acts in training; dropouts are 0.1, so fix the seed
        torch.manual_seed(1)
        outs.append(model(x))
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.ssl.modules())


def test_bad_overrides_raise_clear_errors(tiny_dir, tiny_head) -> None:
    with pytest.raises(ValueError, match="unknown SSL backbone 'fairseq2'"):
        build("ssl-aasist", backbone="fairseq2", source=str(tiny_dir))
    with pytest.raises(ValueError, match="needs source="):
        build("ssl-aasist", backbone="hf")
    with pytest.raises(ValueError, match="unknown aggregation 'mean'"):
        build("ssl-aasist", backbone="hf", source=str(tiny_dir), aggregation="mean")
    model = build("ssl-aasist", backbone="hf", source=str(tiny_dir))
    with pytest.raises(ValueError, match=r"\(B, T\) waveform batch, got shape \(3000,\)"):
        model(torch.zeros(3000))


def test_importing_the_package_does_not_import_transformers() -> None:
    code = "import sys, safespeak.models.ssl; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


_RECIPES = sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml"))
_SSL_RECIPES = [p for p in _RECIPES if "arch: ssl-" in p.read_text()]


@pytest.mark.parametrize("recipe", _SSL_RECIPES, ids=lambda p: p.stem)
def test_shipped_ssl_recipes_build_with_a_local_backbone(recipe, tiny_dir, tiny_head) -> None:
    from safespeak.config import load_config

    model_cfg = load_config(recipe).model
    overrides = dict(model_cfg.overrides)
    local = {"hf": str(tiny_dir)}.get(overrides.get("backbone", "dphubert"))
    overrides.pop("source", None)  # the recipes name files the user provides; swap in local ones
    model = build(model_cfg.arch, **overrides, **({"source": local} if local else {}))
    assert model(torch.randn(1, 4000)).shape == (1, 2)
    assert model.frozen is bool(overrides.get("freeze", False))


def test_layer_drop_keeps_one_hidden_state_per_layer_and_round_trips(tiny_dir) -> None:
    no_dropout = dict(
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0
    )
    backbone, export = build_backbone("hf", tiny_dir, layer_drop=1.0)  # every layer but the first skipped
    assert export["backbone_config"]["layerdrop"] == 1.0 and backbone.model.config.layerdrop == 0.0
    restored, _ = build_backbone("hf", backbone_config={**export["backbone_config"], **no_dropout})
    assert restored.layer_drop == 1.0
    restored.load_state_dict(backbone.state_dict())
    x = torch.randn(1, 3000)
    with torch.no_grad():
        ref, _ = restored.eval().extract_features(x)
        hidden, _ = restored.train().extract_features(x)
    assert len(hidden) == 3 and len(restored.model.encoder.layers) == 2  # layers put back after the call
    assert torch.equal(hidden[1], ref[1])  # layer 0 always runs
    assert torch.equal(hidden[2], hidden[1]) and not torch.allclose(hidden[2], ref[2])  # layer 1 skipped
    assert not any(p.requires_grad for n, p in backbone.named_parameters() if "masked_spec_embed" in n)


def test_a_layer_dropped_first_call_does_not_break_later_hidden_states(tmp_path) -> None:
    """transformers installs its hidden-state hooks at the first call: a dropped layer must not lose them."""
    src = _save_tiny(
        tmp_path / "w3", num_hidden_layers=3, do_stable_layer_norm=True, feat_extract_norm="layer"
    )
    dropped, _ = build_backbone("hf", src, layer_drop=1.0)
    fresh, _ = build_backbone("hf", src)
    x = torch.randn(2, 3000)
    with torch.no_grad():
        first, _ = dropped.train().extract_features(x)  # layers 1 and 2 skipped on the first call
        again, _ = dropped.eval().extract_features(x)
        ref, _ = fresh.eval().extract_features(x)
    assert len(first) == len(again) == len(ref) == 4
    assert torch.equal(first[2], first[1])  # the last entry is after the final LayerNorm
    for a, b in zip(again, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
