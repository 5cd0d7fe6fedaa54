"""fairseq wav2vec2/XLS-R checkpoint -> HF model, on synthetic checkpoints with fairseq names and shapes."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import re

import pytest
import torch
from torch import nn

from safespeak.models import build
from safespeak.models.ssl import model as ssl_model
from safespeak.models.ssl.fairseq_convert import convert_fairseq_checkpoint, read_fairseq_checkpoint

transformers = pytest.importorskip("transformers")

# HF name -> fairseq name, written from fairseq's Wav2Vec2Model / TransformerEncoder attribute names.
_TO_FAIRSEQ = (
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"feature_extractor\.conv_layers\.0\.layer_norm\.(\w+)$", "GN"),  # resolved per extractor mode
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_extractor.conv_layers.\1.2.1."),
    (r"feature_projection\.layer_norm\.", "layer_norm."),
    (r"feature_projection\.projection\.", "post_extract_proj."),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
    (r"encoder\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
    (r"encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    (r"masked_spec_embed", "mask_emb"),
)
_CALLS: list[object] = []


def _record_call(*args: object) -> dict:
    """Would run if the loader executed pickled callables; it must not."""
    _CALLS.append(args)
    return {}


class _Args:
    """Stands in for fairseq's pickled argparse Namespace / omegaconf config: reduces to `_record_call`."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg

    def __reduce__(self) -> tuple:
        return (_record_call, (self.cfg,))


def _tiny_hf(layer_mode: bool, hidden: int = 32, layers: int = 2, heads: int = 4) -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.Wav2Vec2Config(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=40,
        conv_dim=(8, 8, 8), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2), conv_bias=layer_mode,
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4, vocab_size=4,
        feat_extract_norm="layer" if layer_mode else "group", do_stable_layer_norm=layer_mode,
    )  # fmt: skip
    model = transformers.Wav2Vec2Model(cfg).eval()
    with torch.no_grad():  # make every norm and bias count
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def _fairseq_state(model: nn.Module, layer_mode: bool) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in model.state_dict().items():
        for pattern, repl in _TO_FAIRSEQ:
            if re.match(pattern, key):
                if repl == "GN":
                    repl = (
                        r"feature_extractor.conv_layers.0.2.1.\1"
                        if layer_mode
                        else r"feature_extractor.conv_layers.0.2.\1"
                    )
                key = re.sub(pattern, repl, key)
                break
        state[key] = value.clone()
    # pre-training-only modules a real checkpoint carries
    state.update({"quantizer.vars": torch.zeros(1, 640, 128), "project_q.weight": torch.zeros(256, 128),
                  "final_proj.weight": torch.zeros(256, model.config.hidden_size)})  # fmt: skip
    return state


def _model_cfg(layer_mode: bool) -> dict:
    return {
        "_name": "wav2vec2", "extractor_mode": "layer_norm" if layer_mode else "default",
        "conv_feature_layers": "[(8, 10, 5)] + [(8, 3, 2)] + [(8, 2, 2)]", "encoder_attention_heads": 4,
        "layer_norm_first": layer_mode, "dropout": 0.0, "encoder_layerdrop": 0.0,
    }  # fmt: skip


def _same_outputs(hf: nn.Module, converted: nn.Module) -> None:
    x = torch.randn(2, 3000)
    with torch.no_grad():
        want = hf(x, output_hidden_states=True).hidden_states
        got = converted(x, output_hidden_states=True).hidden_states
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-5)


def test_base_checkpoint_with_plain_cfg_converts_exactly(tmp_path) -> None:
    hf = _tiny_hf(layer_mode=False)
    state = _fairseq_state(hf, layer_mode=False)
    assert state["encoder.pos_conv.0.weight_g"].shape == (1, 1, 8)  # fairseq weight_norm(dim=2) layout
    assert "feature_extractor.conv_layers.0.2.weight" in state
    path = tmp_path / "wav2vec_small.pt"
    torch.save({"cfg": {"model": _model_cfg(False)}, "model": state, "optimizer_history": []}, path)
    converted = convert_fairseq_checkpoint(path, out_dir=tmp_path / "hf")
    assert not converted.config.do_stable_layer_norm and converted.config.conv_stride == [5, 2, 2]
    _same_outputs(hf, converted)
    reloaded = transformers.Wav2Vec2Model.from_pretrained(str(tmp_path / "hf")).eval()
    _same_outputs(hf, reloaded)


def test_xlsr_style_checkpoint_with_pickled_args_reads_config_without_running_code(tmp_path) -> None:
    hf = _tiny_hf(layer_mode=True)
    path = tmp_path / "xlsr2_tiny.pt"
    torch.save({"args": _Args(_model_cfg(True)), "model": _fairseq_state(hf, layer_mode=True)}, path)
    ckpt = read_fairseq_checkpoint(path)
    assert _CALLS == []  # the pickled callable was replaced by an inert stub
    converted = convert_fairseq_checkpoint(path)
    assert converted.config.num_attention_heads == 4  # from the pickled args, not the 64-dim-head default
    assert converted.config.do_stable_layer_norm and converted.config.feat_extract_norm == "layer"
    assert "model" in ckpt
    _same_outputs(hf, converted)


def test_fine_tuned_prefix_and_registry_backbone(tmp_path, monkeypatch) -> None:
    hf = _tiny_hf(layer_mode=True)
    state = {"w2v_encoder.w2v_model." + k: v for k, v in _fairseq_state(hf, layer_mode=True).items()}
    state["w2v_encoder.proj.weight"] = torch.zeros(4, 32)
    path = tmp_path / "ft.pt"
    torch.save(
        {"cfg": {"model": {"_name": "wav2vec_ctc", "w2v_args": {"model": _model_cfg(True)}}}, "model": state},
        path,
    )
    monkeypatch.setattr(ssl_model, "_make_head", lambda name, d, kw: nn.Identity())
    model = build("ssl-aasist", backbone="fairseq", source=str(path))
    cfg = model.checkpoint_config()
    assert cfg["backbone"] == "hf" and cfg["backbone_config"]["num_attention_heads"] == 4
    _same_outputs(hf, model.ssl.model.eval())


def test_unknown_keys_raise_naming_the_file(tmp_path) -> None:
    hf = _tiny_hf(layer_mode=False)
    state = _fairseq_state(hf, layer_mode=False)
    state["encoder.adapter.weight"] = torch.zeros(3)
    path = tmp_path / "odd.pt"
    torch.save({"cfg": {"model": _model_cfg(False)}, "model": state}, path)
    with pytest.raises(ValueError, match=r"odd\.pt: unmapped fairseq keys \['encoder\.adapter\.weight'\]"):
        convert_fairseq_checkpoint(path)
    torch.save({"weights": state}, path)
    with pytest.raises(ValueError, match=r"odd\.pt: not a fairseq checkpoint"):
        convert_fairseq_checkpoint(path)
