"""DPHuBERT / pruned-HuBERT backbone: a torchaudio-style wav2vec2 written in plain torch.

DPHuBERT checkpoints (`save_final_ckpt.py`) are `{"config", "state_dict", "distill_linear_projs"}`,
where `config` holds the keyword arguments of torchaudio's prunable `wav2vec2_model` with per-layer
head counts and FFN widths; a layer may have 0 heads (no `attention` keys) or 0 FFN (no `feed_forward`
keys). The module tree and parameter names here match that layout so `load_state_dict(strict=True)`
works on the checkpoint's `state_dict` unchanged. Pruning-time modules (hard-concrete gates) are not
supported: final checkpoints have every `*_prune_*` flag set to False.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["DPHUBERT_SP075_CONFIG", "PrunedWav2Vec2", "build_dphubert", "load_dphubert"]

_PRUNE_FLAGS = (
    "extractor_prune_conv_channels",
    "encoder_prune_attention_heads",
    "encoder_prune_attention_layer",
    "encoder_prune_feed_forward_intermediate",
    "encoder_prune_feed_forward_layer",
)

# The HuBERT-base defaults that `convert_hubert_from_hf.py` writes; `prune.py` updates sizes.
_BASE_CONFIG: dict[str, Any] = {
    "extractor_mode": "group_norm",
    "extractor_conv_layer_config": [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2,
    "extractor_conv_bias": False,
    "encoder_embed_dim": 768,
    "encoder_projection_dropout": 0.1,
    "encoder_pos_conv_kernel": 128,
    "encoder_pos_conv_groups": 16,
    "encoder_num_layers": 12,
    "encoder_use_attention": [True] * 12,
    "encoder_use_feed_forward": [True] * 12,
    "encoder_num_heads": [12] * 12,
    "encoder_head_dim": 64,
    "encoder_attention_dropout": 0.1,
    "encoder_ff_interm_features": [3072] * 12,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.1,
    "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.05,
    "aux_num_out": None,
    "normalize_waveform": False,
    **{flag: False for flag in _PRUNE_FLAGS},
}

_SP075_HEADS = [2, 2, 6, 4, 4, 3, 5, 5, 0, 0, 0, 5]
_SP075_FFN = [643, 255, 365, 1062, 107, 170, 361, 1405, 0, 19, 310, 626]
#: Architecture of the released `DPHuBERT-sp0.75.pth` (23,585,946 parameters incl. `dummy_weight`).
DPHUBERT_SP075_CONFIG: dict[str, Any] = {
    **_BASE_CONFIG,
    "extractor_conv_layer_config": [
        (257, 10, 5),
        (512, 3, 2),
        (510, 3, 2),
        (512, 3, 2),
        (512, 3, 2),
        (396, 2, 2),
        (249, 2, 2),
    ],
    "encoder_num_heads": _SP075_HEADS,
    "encoder_use_attention": [h > 0 for h in _SP075_HEADS],
    "encoder_ff_interm_features": _SP075_FFN,
    "encoder_use_feed_forward": [f > 0 for f in _SP075_FFN],
}


class _ConvBlock(nn.Module):
    """Conv1d -> optional norm (GroupNorm per channel, or LayerNorm over channels) -> GELU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: str | None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel, stride
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.layer_norm: nn.Module | None = nn.GroupNorm(c_out, c_out, affine=True)
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(c_out, elementwise_affine=True)
        else:
            self.layer_norm = None

    def forward(
        self, x: torch.Tensor, length: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.conv(x)  # (B, C, T')
        if self.norm_kind == "group":
            x = self.layer_norm(x)
        elif self.norm_kind == "layer":
            x = self.layer_norm(x.transpose(-2, -1)).transpose(-2, -1)
        x = F.gelu(x)
        if length is not None:
            length = torch.clamp(
                torch.div(length - self.kernel_size, self.stride, rounding_mode="floor") + 1, min=0
            )
        return x, length


class _FeatureExtractor(nn.Module):
    def __init__(self, mode: str, layers: list[tuple[int, int, int]], bias: bool) -> None:
        super().__init__()
        if mode not in {"group_norm", "layer_norm"}:
            raise ValueError(f"extractor_mode must be 'group_norm' or 'layer_norm', got {mode!r}")
        blocks, c_in = [], 1
        for i, (c_out, k, s) in enumerate(layers):
            norm = "layer" if mode == "layer_norm" else ("group" if i == 0 else None)
            blocks.append(_ConvBlock(c_in, c_out, k, s, bias, norm))
            c_in = c_out
        self.conv_layers = nn.ModuleList(blocks)
        # DPHuBERT keeps the last conv layer's channel mask here; it scales the features.
        self.dummy_weight = nn.Parameter(torch.ones(c_in), requires_grad=False)

    def forward(
        self, x: torch.Tensor, length: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x.unsqueeze(1)  # (B, 1, T)
        for layer in self.conv_layers:
            x, length = layer(x, length)  # (B, C, T')
        return x.transpose(1, 2) * self.dummy_weight, length  # (B, frames, C)


class _FeatureProjection(nn.Module):
    def __init__(self, c_in: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(c_in)
        self.projection = nn.Linear(c_in, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.projection(self.layer_norm(x)))


class _WeightNormConv(nn.Module):
    """Grouped Conv1d with the legacy `weight_norm(dim=2)` parameters `weight_g` (1, 1, K) / `weight_v`."""

    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        if dim % groups:
            raise ValueError(f"encoder_embed_dim {dim} is not divisible by encoder_pos_conv_groups {groups}")
        conv = nn.Conv1d(dim, dim, kernel, groups=groups)
        self.weight_v = nn.Parameter(conv.weight.detach().clone())  # (C, C/groups, K)
        self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(0, 1), keepdim=True))  # (1, 1, K)
        self.bias = conv.bias
        self.groups, self.padding = groups, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True)
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class _PosConv(nn.Module):
    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv = _WeightNormConv(dim, kernel, groups)
        self.num_remove = 1 if kernel % 2 == 0 else 0  # even kernels give one extra frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(-2, -1))  # (B, D, frames + num_remove)
        if self.num_remove:
            y = y[..., : -self.num_remove]
        return F.gelu(y).transpose(-2, -1)


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        inner = heads * head_dim
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.q_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (
            p(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        # (B, H, T, Dh); mask is the additive -10000 key mask, (B, 1, 1, T)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, interm_dropout: float, dropout: float) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(dim, hidden)
        self.intermediate_dropout = nn.Dropout(interm_dropout)
        self.output_dense = nn.Linear(hidden, dim)
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intermediate_dropout(F.gelu(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class _EncoderLayer(nn.Module):
    """Transformer layer; a pruned-away attention or FFN is None, but both LayerNorms always exist."""

    def __init__(self, dim: int, heads: int, head_dim: int, ffn: int, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.attention = (
            _SelfAttention(dim, heads, head_dim, cfg["encoder_attention_dropout"]) if heads else None
        )
        self.dropout = nn.Dropout(cfg["encoder_dropout"])
        self.layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg["encoder_layer_norm_first"]
        self.feed_forward = (
            _FeedForward(dim, ffn, cfg["encoder_ff_interm_dropout"], cfg["encoder_dropout"]) if ffn else None
        )
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.attention is not None:
            y = self.layer_norm(x) if self.layer_norm_first else x
            x = x + self.dropout(self.attention(y, mask))
        if self.layer_norm_first:
            if self.feed_forward is not None:
                x = x + self.feed_forward(self.final_layer_norm(x))
            return x
        # post-norm: both norms run even when the sub-layer was pruned away
        x = self.layer_norm(x)
        if self.feed_forward is not None:
            x = x + self.feed_forward(x)
        return self.final_layer_norm(x)


class _Transformer(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        dim = cfg["encoder_embed_dim"]
        self.pos_conv_embed = _PosConv(dim, cfg["encoder_pos_conv_kernel"], cfg["encoder_pos_conv_groups"])
        self.layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg["encoder_layer_norm_first"]
        self.layer_drop = cfg["encoder_layer_drop"]
        self.dropout = nn.Dropout(cfg["encoder_dropout"])
        self.layers = nn.ModuleList(
            _EncoderLayer(dim, h if use_a else 0, cfg["encoder_head_dim"], f if use_f else 0, cfg)
            for h, use_a, f, use_f in zip(
                cfg["encoder_num_heads"],
                cfg["encoder_use_attention"],
                cfg["encoder_ff_interm_features"],
                cfg["encoder_use_feed_forward"],
                strict=True,
            )
        )
        self.gradient_checkpointing = False

    def hidden_states(self, x: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        """Outputs of every layer (no final LayerNorm in pre-norm mode, as torchaudio's intermediates)."""
        x = x + self.pos_conv_embed(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        out = []
        for layer in self.layers:
            # layer drop keeps the previous state so every layer still has an output to aggregate
            if not (self.training and torch.rand(1).item() < self.layer_drop):
                if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                    x = checkpoint(layer, x, mask, use_reentrant=False)
                else:
                    x = layer(x, mask)
            out.append(x)
        return out


class _Encoder(nn.Module):
    def __init__(self, c_in: int, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.feature_projection = _FeatureProjection(
            c_in, cfg["encoder_embed_dim"], cfg["encoder_projection_dropout"]
        )
        self.transformer = _Transformer(cfg)


def _check_config(config: dict[str, Any], source: str) -> dict[str, Any]:
    unknown = sorted(set(config) - set(_BASE_CONFIG))
    if unknown:
        raise ValueError(f"{source}: unknown DPHuBERT config keys {unknown}")
    cfg = {**_BASE_CONFIG, **config}
    pruning = [f for f in _PRUNE_FLAGS if cfg[f]]
    if pruning:
        raise ValueError(
            f"{source}: pruning-time checkpoint ({', '.join(pruning)} set); use the final pruned one"
        )
    n = cfg["encoder_num_layers"]
    for key in (
        "encoder_num_heads",
        "encoder_ff_interm_features",
        "encoder_use_attention",
        "encoder_use_feed_forward",
    ):
        if not isinstance(cfg[key], (list, tuple)):
            cfg[key] = [cfg[key]] * n
        if len(cfg[key]) != n:
            raise ValueError(f"{source}: {key} has {len(cfg[key])} entries for {n} layers")
    cfg["extractor_conv_layer_config"] = [
        tuple(int(v) for v in c) for c in cfg["extractor_conv_layer_config"]
    ]
    return cfg


class PrunedWav2Vec2(nn.Module):
    """torchaudio/DPHuBERT-layout wav2vec2 with per-layer head counts and FFN widths.

    `extract_features(x (B, T), lengths (B,) | None)` -> (list of (B, frames, D): projected input then
    each layer's output, output lengths (B,) | None).
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        cfg = _check_config(config, "PrunedWav2Vec2")
        self.config = cfg
        self.feature_extractor = _FeatureExtractor(
            cfg["extractor_mode"], cfg["extractor_conv_layer_config"], cfg["extractor_conv_bias"]
        )
        self.encoder = _Encoder(cfg["extractor_conv_layer_config"][-1][0], cfg)
        self.aux = nn.Linear(cfg["encoder_embed_dim"], cfg["aux_num_out"]) if cfg["aux_num_out"] else None
        self.normalize_waveform = bool(cfg["normalize_waveform"])

    @property
    def hidden_size(self) -> int:
        return int(self.config["encoder_embed_dim"])

    @property
    def num_hidden_states(self) -> int:
        """Length of `extract_features`' list: projected input + one per layer."""
        return int(self.config["encoder_num_layers"]) + 1

    def set_layer_drop(self, p: float) -> None:
        """Probability of skipping each transformer layer in training (`encoder_layer_drop`)."""
        self.encoder.transformer.layer_drop = self.config["encoder_layer_drop"] = float(p)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each transformer layer in backward (saves activation memory when fine-tuning)."""
        self.encoder.transformer.gradient_checkpointing = enabled

    def extract_features(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if x.dim() != 2:
            raise ValueError(f"expected a (B, T) waveform batch, got shape {tuple(x.shape)}")
        if self.normalize_waveform:
            x = _normalize(x, lengths)
        feats, lengths = self.feature_extractor(x, lengths)  # (B, frames, C)
        h = self.encoder.feature_projection(feats)  # (B, frames, D)
        mask = None
        if lengths is not None:
            pad = torch.arange(h.shape[1], device=h.device)[None, :] >= lengths[:, None]  # (B, frames)
            h = h.masked_fill(pad[..., None], 0.0)
            mask = (-10000.0 * pad.to(h.dtype))[:, None, None, :]  # (B, 1, 1, frames)
        return [h, *self.encoder.transformer.hidden_states(h, mask)], lengths


def _normalize(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Per-utterance layer norm over the valid samples (padding stays zero)."""
    if lengths is None:
        return F.layer_norm(x, x.shape[-1:])
    out = torch.zeros_like(x)
    for i, n in enumerate(lengths.tolist()):
        out[i, :n] = F.layer_norm(x[i, :n], (n,))
    return out


def build_dphubert(config: dict[str, Any] | None = None) -> PrunedWav2Vec2:
    """Randomly initialised backbone from a DPHuBERT config (default: the sp0.75 architecture)."""
    return PrunedWav2Vec2(**(DPHUBERT_SP075_CONFIG if config is None else config))


def read_dphubert(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, state_dict) of a DPHuBERT checkpoint; nothing is unpickled.

    `.pth`: the `save_final_ckpt.py` dict, read with `torch.load(weights_only=True)`.
    `.safetensors`: the state dict, with the config as JSON in the header metadata key `config`.
    """
    if str(path).endswith(".safetensors"):
        return _read_safetensors(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read as a DPHuBERT checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(
            f"{path}: expected a dict with 'config' and 'state_dict' (DPHuBERT save_final_ckpt layout)"
        )
    return dict(ckpt["config"]), dict(ckpt["state_dict"])


def _read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ValueError(f"{path}: cannot read as safetensors ({exc})") from exc
    if "config" not in meta:
        raise ValueError(f"{path}: no 'config' in the safetensors metadata (the DPHuBERT config JSON)")
    try:
        return dict(json.loads(meta["config"])), state
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: metadata 'config' is not valid JSON ({exc})") from exc


def load_dphubert(path: str | os.PathLike[str]) -> PrunedWav2Vec2:
    """Backbone from a DPHuBERT checkpoint, weights loaded strictly, in eval mode."""
    config, state = read_dphubert(path)
    _check_config(config, str(path))  # so config errors name the file
    model = PrunedWav2Vec2(**config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: state_dict does not match its config: {exc}") from exc
    return model.eval()
