"""fairseq wav2vec2 / XLS-R `.pt` -> the equivalent HF transformers `Wav2Vec2Model`, without fairseq.

Reading: `torch.load(weights_only=True)`. fairseq checkpoints also pickle their config (an argparse
`Namespace` in old ones, omegaconf `DictConfig` in newer ones) and training state; those classes are
not in torch's allow-list, so each such global is replaced by an inert stub that only records its
arguments/state (torch's weights-only unpickler still runs; no code from the file executes). The
config values are then read back from the stubs.

Key map (fairseq -> HF; `{i}` layer index; fine-tuned checkpoints' `w2v_encoder.w2v_model.` prefix is
stripped first):

| fairseq | HF `Wav2Vec2Model` |
|---|---|
| `feature_extractor.conv_layers.{i}.0.*` (conv) | `feature_extractor.conv_layers.{i}.conv.*` |
| `feature_extractor.conv_layers.0.2.*` (group-norm mode) | `feature_extractor.conv_layers.0.layer_norm.*` |
| `feature_extractor.conv_layers.{i}.2.1.*` (layer-norm) | `feature_extractor.conv_layers.{i}.layer_norm.*` |
| `layer_norm.*` | `feature_projection.layer_norm.*` |
| `post_extract_proj.*` | `feature_projection.projection.*` |
| `encoder.pos_conv.0.weight_g` / `weight_v` / `bias` | `encoder.pos_conv_embed.conv.` norm g / v / `bias` |
| `encoder.layer_norm.*` | `encoder.layer_norm.*` |
| `encoder.layers.{i}.self_attn.{q,k,v,out}_proj.*` | `encoder.layers.{i}.attention.{q,k,v,out}_proj.*` |
| `encoder.layers.{i}.self_attn_layer_norm.*` | `encoder.layers.{i}.layer_norm.*` |
| `encoder.layers.{i}.fc1.*` / `fc2.*` | `encoder.layers.{i}.feed_forward.{intermediate,output}_dense.*` |
| `encoder.layers.{i}.final_layer_norm.*` | `encoder.layers.{i}.final_layer_norm.*` |
| `mask_emb` | `masked_spec_embed` |

Dropped (pre-training / CTC only): `quantizer.*`, `project_q.*`, `final_proj.*`, `target_glu.*`,
`label_embs_concat`, `w2v_encoder.proj.*`. Any other leftover key is an error naming the file.
Sizes come from the tensors; head count, strides, `layer_norm_first` and dropouts from the config
(defaults when it cannot be read: 64-dim heads, wav2vec2 strides, pre-norm iff layer-norm extractor).
"""

from __future__ import annotations

import ast
import os
import pickle
import re
from typing import Any

import torch

__all__ = ["convert_fairseq_checkpoint", "fairseq_to_hf", "read_fairseq_checkpoint"]

_DROP = ("quantizer.", "project_q.", "final_proj.", "target_glu.", "label_embs_concat", "w2v_encoder.proj.")
_RENAMES = (
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"feature_extractor\.conv_layers\.0\.2\.", r"feature_extractor.conv_layers.0.layer_norm."),
    (r"layer_norm\.", r"feature_projection.layer_norm."),
    (r"post_extract_proj\.", r"feature_projection.projection."),
    (r"encoder\.pos_conv\.0\.bias", r"encoder.pos_conv_embed.conv.bias"),
    (r"encoder\.layer_norm\.", r"encoder.layer_norm."),
    (r"encoder\.layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.attention."),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
    (r"mask_emb$", r"masked_spec_embed"),
)
_DEFAULT_STRIDE = {10: 5, 3: 2, 2: 2}


class _Stub:
    """Inert placeholder for a global outside torch's allow-list; keeps what the pickle gives it."""

    qualname = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stub_for(name: str) -> type:
    return type("Stub_" + re.sub(r"\W", "_", name), (_Stub,), {"qualname": name})


def read_fairseq_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint dict, read with the weights-only unpickler (unknown classes become stubs)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"{path}: cannot read as a torch checkpoint ({exc})") from exc
    names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    with torch.serialization.safe_globals([(_stub_for(n), n) for n in names]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{path}: cannot read with the weights-only unpickler ({exc})") from exc


def _plain(obj: Any) -> Any:
    """Stubs (Namespace, omegaconf containers/nodes) and containers -> plain dicts/lists/values."""
    if isinstance(obj, _Stub):
        state = obj.state if obj.state is not None else (obj.args[0] if obj.args else None)
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = state[1] if state[0] is None else state[0]  # (state, slots) convention
        if isinstance(state, dict) and "_content" in state:
            return _plain(state["_content"])
        if isinstance(state, dict) and "_val" in state:
            return _plain(state["_val"])
        return _plain(state)
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _model_cfg(ckpt: dict[str, Any]) -> dict[str, Any]:
    cfg = _plain(ckpt.get("cfg"))
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if not isinstance(model, dict):
        args = _plain(ckpt.get("args"))
        model = args if isinstance(args, dict) else {}
    w2v = model.get("w2v_args")  # fine-tuned checkpoints nest the pre-training config
    if isinstance(w2v, dict) and isinstance(w2v.get("model"), dict):
        model = {**w2v["model"], **{k: v for k, v in model.items() if k != "w2v_args"}}
    return model


def _literal(expr: str) -> Any:
    """Evaluate fairseq's `conv_feature_layers` string: list/tuple/int literals with + and *, nothing else."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise ValueError(f"unsupported expression in conv_feature_layers: {ast.dump(node)}")

    return ev(ast.parse(expr, mode="eval"))


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = "w2v_encoder.w2v_model."
    if any(k.startswith(prefix) for k in state):
        state = {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith(_DROP)}


def _conv_layers(state: dict[str, torch.Tensor], cfg: dict[str, Any]) -> list[tuple[int, int, int]]:
    n = sum(1 for k in state if re.fullmatch(r"feature_extractor\.conv_layers\.\d+\.0\.weight", k))
    dims = [tuple(state[f"feature_extractor.conv_layers.{i}.0.weight"].shape) for i in range(n)]
    strides = [_DEFAULT_STRIDE.get(d[2], 1) for d in dims]
    if isinstance(cfg.get("conv_feature_layers"), str):
        strides = [int(s) for _, _, s in _literal(cfg["conv_feature_layers"])]
    return [(d[0], d[2], s) for d, s in zip(dims, strides, strict=True)]


def _hf_config(state: dict[str, torch.Tensor], cfg: dict[str, Any]) -> Any:
    """`Wav2Vec2Config` from tensor shapes, with the config's non-shape settings where readable."""
    from transformers import Wav2Vec2Config

    conv = _conv_layers(state, cfg)
    hidden = state["post_extract_proj.weight"].shape[0]
    n_layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k)))
    if any(k.startswith("encoder.pos_conv.1.") for k in state):
        raise ValueError("multi-layer positional convolutions (conv_pos_depth > 1) are not supported")
    v = state["encoder.pos_conv.0.weight_v"]  # (D, D / groups, K)
    layer_mode = "feature_extractor.conv_layers.0.2.1.weight" in state
    mode = cfg.get("extractor_mode", "layer_norm" if layer_mode else "default")
    return Wav2Vec2Config(
        hidden_size=hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=int(cfg.get("encoder_attention_heads", hidden // 64)),
        intermediate_size=state["encoder.layers.0.fc1.weight"].shape[0],
        conv_dim=[c for c, _, _ in conv],
        conv_kernel=[k for _, k, _ in conv],
        conv_stride=[s for _, _, s in conv],
        conv_bias="feature_extractor.conv_layers.0.0.bias" in state,
        feat_extract_norm="layer" if mode == "layer_norm" else "group",
        do_stable_layer_norm=bool(cfg.get("layer_norm_first", layer_mode)),
        num_conv_pos_embeddings=v.shape[2],
        num_conv_pos_embedding_groups=hidden // v.shape[1],
        hidden_dropout=float(cfg.get("dropout", 0.1)),
        attention_dropout=float(cfg.get("attention_dropout", 0.1)),
        activation_dropout=float(cfg.get("activation_dropout", 0.0)),
        feat_proj_dropout=float(cfg.get("dropout_input", 0.0)),
        layerdrop=float(cfg.get("encoder_layerdrop", 0.0)),
        mask_time_prob=0.05 if "mask_emb" in state else 0.0,
        apply_spec_augment=False,
        vocab_size=32,  # unused by the base model; large enough for the default special-token ids
    )


def _rename(key: str, g_key: str, v_key: str) -> str | None:
    if key == "encoder.pos_conv.0.weight_g":
        return g_key
    if key == "encoder.pos_conv.0.weight_v":
        return v_key
    for pattern, repl in _RENAMES:
        new, n = re.subn("^" + pattern, repl, key)
        if n:
            return new
    return None


def fairseq_to_hf(ckpt: dict[str, Any], source: str = "checkpoint") -> Any:
    """HF `Wav2Vec2Model` (eval mode) holding a fairseq checkpoint dict's weights."""
    from transformers import Wav2Vec2Model

    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise ValueError(f"{source}: not a fairseq checkpoint (no 'model' state dict)")
    state = _strip(ckpt["model"])
    if "post_extract_proj.weight" not in state:
        raise ValueError(f"{source}: no post_extract_proj.weight; not a wav2vec2-style fairseq model")
    model = Wav2Vec2Model(_hf_config(state, _model_cfg(ckpt)))
    target = model.state_dict()
    wn = "encoder.pos_conv_embed.conv."
    g_key, v_key = (
        (wn + "parametrizations.weight.original0", wn + "parametrizations.weight.original1")
        if wn + "parametrizations.weight.original0" in target
        else (wn + "weight_g", wn + "weight_v")
    )
    converted, unknown = {}, []
    for key, value in state.items():
        new = _rename(key, g_key, v_key)
        if new is None or new not in target:
            unknown.append(key)
        else:
            converted[new] = value
    if unknown:
        raise ValueError(f"{source}: unmapped fairseq keys {unknown[:8]}{' ...' if len(unknown) > 8 else ''}")
    missing = sorted(set(target) - set(converted) - {"masked_spec_embed"})
    if missing:
        raise ValueError(f"{source}: checkpoint lacks {missing[:8]}")
    model.load_state_dict(converted, strict=False)
    return model.eval()


def convert_fairseq_checkpoint(
    path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None
) -> Any:
    """Read a fairseq wav2vec2/XLS-R `.pt` and return the HF model (also `save_pretrained` to `out_dir`)."""
    model = fairseq_to_hf(read_fairseq_checkpoint(path), str(path))
    if out_dir is not None:
        model.save_pretrained(str(out_dir))
    return model
