"""HF transformers wav2vec2-family backbones (Wav2Vec2 / XLS-R, HuBERT, WavLM, Data2VecAudio...).

`load_hf_backbone(source)` reads a local `save_pretrained` directory or a hub id (the download is
the user's business; nothing here forces a network access). `hf_backbone_from_config(config_dict)`
builds the same architecture with random weights and never touches the original source: that is how a
safespeak checkpoint restores (its JSON carries the config, its safetensors the weights).

transformers is imported inside the functions, so importing safespeak.models.ssl stays cheap.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["HFBackbone", "hf_backbone_from_config", "load_hf_backbone", "read_do_normalize"]

# Keys of `PretrainedConfig.to_dict()` that describe the run, not the architecture.
_VOLATILE_KEYS = ("_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype")


class HFBackbone(nn.Module):
    """Wraps a transformers base model; `extract_features` returns every hidden state.

    The list is the transformer input then each layer's output; the last entry is the model's
    `last_hidden_state` (after the final LayerNorm in pre-norm models such as XLS-R).

    `normalize`: zero-mean / unit-variance per utterance, as the model's feature extractor does when its
    `preprocessor_config.json` says `do_normalize` (XLS-R does). SpecAugment-style masking is switched off
    (`apply_spec_augment=False`): the seed's fairseq front-end called `extract_features(mask=False)`.

    Layer drop is done here, not by transformers (whose `hidden_states` then simply lacks the skipped
    layers): `layer_drop` is taken from `config.layerdrop`, which is set to 0 inside the model; in
    training each layer except the first (it owns WavLM's relative position bias) is skipped with that
    probability, and a skipped layer's hidden state repeats the previous one.
    """

    def __init__(self, model: nn.Module, normalize: bool = False) -> None:
        super().__init__()
        model.config.apply_spec_augment = False
        emb = getattr(model, "masked_spec_embed", None)
        if isinstance(emb, nn.Parameter):  # unused without SpecAugment; a trainable unused param breaks DDP
            emb.requires_grad_(False)
        self.layer_drop = float(getattr(model.config, "layerdrop", 0.0))
        model.config.layerdrop = 0.0
        self.model = model
        self.normalize = normalize

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_hidden_states(self) -> int:
        """Length of `extract_features`' list: the transformer input then one per layer."""
        return int(self.model.config.num_hidden_layers) + 1

    def config_dict(self) -> dict[str, Any]:
        """JSON-able architecture config (enough for `hf_backbone_from_config`)."""
        cfg = self.model.config.to_dict()
        return {**{k: v for k, v in cfg.items() if k not in _VOLATILE_KEYS}, "layerdrop": self.layer_drop}

    def set_layer_drop(self, p: float) -> None:
        """Probability of skipping each transformer layer (but the first) in training."""
        self.layer_drop = float(p)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute layer activations in backward (for fine-tuning XLS-R 1B/2B on one GPU)."""
        # transformers 5 renamed gradient_* to activation_checkpointing_* (the old names warn)
        m = self.model
        if hasattr(m, "activation_checkpointing_enable"):
            if enabled:
                m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                m.activation_checkpointing_disable()
        elif enabled:
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            m.gradient_checkpointing_disable()

    def extract_features(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """(B, T) waveform -> ([L+1 tensors (B, frames, D)], output lengths (B,) | None)."""
        if x.dim() != 2:
            raise ValueError(f"expected a (B, T) waveform batch, got shape {tuple(x.shape)}")
        mask = None
        if lengths is not None:
            mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).long()  # (B, T)
        if self.normalize:
            x = _zero_mean_unit_var(x, mask)
        layers = self.model.encoder.layers
        n = len(layers)
        kept = list(range(n))
        if self.training and self.layer_drop > 0:
            kept = [0] + [i for i in range(1, n) if float(torch.rand(())) >= self.layer_drop]
        # transformers 5 fills `hidden_states` through hooks it installs once, on the layers present at
        # the first call, so after a layer-dropped call they would miss layers: capture them ourselves.
        captured: list[torch.Tensor] = []

        def grab_input(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            captured.append(args[0] if args else kwargs["hidden_states"])

        def grab_output(_m: nn.Module, _args: tuple, out: Any) -> None:
            captured.append(out[0] if isinstance(out, tuple) else out)

        hooks = [layers[0].register_forward_pre_hook(grab_input, with_kwargs=True)]
        hooks += [layers[i].register_forward_hook(grab_output) for i in kept]
        try:  # run only the kept layers; restored even if the forward raises
            self.model.encoder.layers = nn.ModuleList(layers[i] for i in kept) if len(kept) < n else layers
            out = self.model(x, attention_mask=mask, return_dict=True)
        finally:
            self.model.encoder.layers = layers
            for h in hooks:
                h.remove()
        full = [captured[0]]  # the transformer input, then each layer's output
        for i in range(n):
            full.append(captured[kept.index(i) + 1] if i in kept else full[-1])
        # transformers 5 records each layer's output, so for pre-norm (stable layer norm) models the last
        # entry misses the encoder's final LayerNorm; the seed's fairseq XLS-R output includes it.
        full[-1] = out.last_hidden_state
        lengths_out = None
        if lengths is not None:
            lengths_out = self.model._get_feat_extract_output_lengths(lengths)
        return full, lengths_out


def _zero_mean_unit_var(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """transformers' `Wav2Vec2FeatureExtractor` normalisation (variance + 1e-7), over valid samples."""
    if mask is None:
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-7)
    m = mask.to(x.dtype)
    n = m.sum(-1, keepdim=True).clamp(min=1)
    mean = (x * m).sum(-1, keepdim=True) / n
    var = (((x - mean) * m) ** 2).sum(-1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + 1e-7) * m  # padding stays zero (the extractor pads after)


def read_do_normalize(source: str | os.PathLike[str]) -> bool:
    """`do_normalize` of a local model directory's `preprocessor_config.json` (False when absent)."""
    path = Path(source) / "preprocessor_config.json"
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text()).get("do_normalize", False))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc


def load_hf_backbone(source: str | os.PathLike[str], normalize: bool | None = None) -> HFBackbone:
    """Pretrained base model from a local dir or hub id; `normalize=None`: as its preprocessor config."""
    from transformers import AutoConfig, AutoModel

    src = str(source)
    config = AutoConfig.from_pretrained(src)
    model = AutoModel.from_pretrained(src, config=config)
    if normalize is None:
        normalize = read_do_normalize(src) if Path(src).is_dir() else _hub_do_normalize(src)
    return HFBackbone(model, normalize)


def _hub_do_normalize(repo_id: str) -> bool:
    """`do_normalize` from a hub model's preprocessor config (uses the local cache / user's access)."""
    from transformers import AutoFeatureExtractor

    try:
        return bool(getattr(AutoFeatureExtractor.from_pretrained(repo_id), "do_normalize", False))
    except OSError:
        return False


def hf_backbone_from_config(config: dict[str, Any], normalize: bool = False) -> HFBackbone:
    """Randomly initialised backbone of the architecture in `config` (a `config_dict()` result)."""
    from transformers import CONFIG_MAPPING, AutoModel

    cfg = dict(config)
    model_type = cfg.pop("model_type", None)
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"backbone_config: unknown or missing model_type {model_type!r}")
    hf_config = CONFIG_MAPPING[model_type].from_dict(cfg)
    return HFBackbone(AutoModel.from_config(hf_config), normalize)
