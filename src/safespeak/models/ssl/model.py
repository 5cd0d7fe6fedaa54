"""SSL countermeasure: SSL backbone -> layer aggregation -> head, as one `CountermeasureModel`.

Backbones (override `backbone`):
- `hf`: a transformers wav2vec2-family model (`source` = local directory or hub id).
- `fairseq`: a fairseq wav2vec2 / XLS-R `.pt` (`source`), converted to the equivalent HF model on build.
- `dphubert`: a DPHuBERT checkpoint (`source` = `.pth`); without a source, the sp0.75 architecture with
  random weights (the cheap default that `safespeak models` lists).
- `whisper`: a Whisper encoder (`models/ssl/whisper.py`); `source` = a CTranslate2 folder (`model.bin`),
  a transformers checkpoint (directory or hub id), or None for the bundled tiny.en (`safespeak[whisper]`).

Restoring without the original files: `model.checkpoint_config()` returns build overrides in which the
backbone is described by `backbone_config` (the HF config dict or the DPHuBERT config) instead of
`source`. `build(arch, **those)` makes the architecture with random weights and reads no file; the
weights then come from the safespeak checkpoint. Pass it as `model_config` to `save_checkpoint`.
When both `source` and `backbone_config` are given, `backbone_config` wins and `source` is not read.

`normalize` (zero-mean / unit-variance waveform per utterance): `None` follows the model's own setting,
i.e. `do_normalize` of an HF model's `preprocessor_config.json`, `normalize_waveform` of a DPHuBERT
config, and off for fairseq checkpoints (the seed fed XLS-R raw waveforms); True/False forces it.

`layer_drop`: probability of skipping a transformer layer in training (None keeps the model's value,
e.g. 0.05 in DPHuBERT, 0.1 in HF XLS-R configs). Skipped layers leave parameters unused in that step,
so DDP then needs `find_unused_parameters=True`; `layer_drop=0` avoids that.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from safespeak.models.base import CountermeasureModel
from safespeak.models.ssl.aggregate import LayerAggregation

__all__ = ["BACKBONES", "SSLCountermeasure", "build_backbone", "build_ssl_model"]

BACKBONES = ("hf", "fairseq", "dphubert", "whisper")
_HEADS = {"aasist": "SSLAASISTHead", "semaa": "SSLSEMAAHead", "mhfa": "MHFAHead"}


class SSLCountermeasure(CountermeasureModel):
    """(B, T) waveform -> backbone hidden states -> aggregated (B, frames, D) -> head -> (B, 2) logits.

    `freeze=True`: backbone weights get no gradient and the backbone stays in eval mode (no dropout,
    no layer drop) even when `.train()` is called on this model. `param_groups(lr, ssl_lr)` gives the
    optimiser groups for fine-tuning the backbone at its own learning rate.
    """

    input_length = 64_600

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        *,
        aggregation: str = "last-layer",
        layer_init: str = "uniform",
        freeze: bool = False,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.ssl = backbone
        self.aggregate = LayerAggregation(backbone.num_hidden_states, aggregation, layer_init)
        self.head = head
        self.input_length = int(getattr(head, "input_length", self.input_length))  # heads carry nb_samp
        if getattr(backbone, "max_input_length", None) is not None:  # Whisper: its positional table
            self.max_input_length = int(backbone.max_input_length)
        self.frozen = freeze
        self._export: dict[str, Any] = {}
        if freeze:
            self.ssl.requires_grad_(False)
            self.ssl.eval()
        if gradient_checkpointing:
            self.ssl.set_gradient_checkpointing(True)

    def train(self, mode: bool = True) -> SSLCountermeasure:
        super().train(mode)
        if self.frozen:
            self.ssl.eval()
        return self

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, T) waveform -> the backbone's L hidden states, each (B, frames, D)."""
        if x.dim() != 2:
            raise ValueError(f"expected a (B, T) waveform batch, got shape {tuple(x.shape)}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden, _ = self.ssl.extract_features(x)
        return hidden

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> aggregated SSL features (B, frames, D)."""
        return self.aggregate(self.hidden_states(x))

    def head_logits(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        """L hidden states (B, frames, D) -> (B, 2) logits; the part a cached-feature epoch runs.

        Heads with `takes_layers = True` (MHFA) weigh the layers themselves and get (B, L, frames, D).
        """
        if getattr(self.head, "takes_layers", False):
            return self.head(torch.stack(hidden, dim=1))
        return self.head(self.aggregate(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> (B, 2) `[spoof, bonafide]` logits."""
        return self.head_logits(self.hidden_states(x))

    def param_groups(self, lr: float, ssl_lr: float | None = None) -> list[dict[str, Any]]:
        """Optimiser groups: head + layer weights at `lr`, trainable backbone at `ssl_lr` (default `lr`)."""
        ssl_ids = {id(p) for p in self.ssl.parameters()}
        rest = [p for p in self.parameters() if id(p) not in ssl_ids and p.requires_grad]
        groups = [{"params": rest, "lr": lr, "name": "head"}]
        ssl = [p for p in self.ssl.parameters() if p.requires_grad]
        if ssl:
            groups.append({"params": ssl, "lr": lr if ssl_lr is None else ssl_lr, "name": "ssl"})
        return groups

    def checkpoint_config(self) -> dict[str, Any]:
        """Build overrides that recreate this architecture without reading the backbone's source files."""
        return dict(self._export)


def _make_head(name: str, in_dim: int, head_kwargs: dict[str, Any] | None) -> nn.Module:
    if name not in _HEADS:
        raise ValueError(f"unknown SSL head {name!r}; known: {', '.join(_HEADS)}")
    if name == "mhfa":
        from safespeak.models import mhfa as module
    else:
        from safespeak.models import ssl_heads as module  # imported late: it may import blocks

    return getattr(module, _HEADS[name])(in_dim=in_dim, **(head_kwargs or {}))


def build_backbone(
    backbone: str,
    source: str | os.PathLike[str] | None = None,
    backbone_config: dict[str, Any] | None = None,
    normalize: bool | None = None,
    layer_drop: float | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """(backbone module, overrides describing it without `source`)."""
    module, export = _backbone(backbone, source, backbone_config, normalize)
    if layer_drop is not None:
        module.set_layer_drop(layer_drop)
    export["backbone_config"] = (
        _jsonable(module.config) if export["backbone"] == "dphubert" else module.config_dict()
    )
    return module, export


def _backbone(
    backbone: str,
    source: str | os.PathLike[str] | None,
    backbone_config: dict[str, Any] | None,
    normalize: bool | None,
) -> tuple[nn.Module, dict[str, Any]]:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown SSL backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if backbone == "dphubert":
        from safespeak.models.ssl.dphubert import PrunedWav2Vec2, build_dphubert, load_dphubert

        if backbone_config is not None:
            module = PrunedWav2Vec2(**backbone_config)
        else:
            module = build_dphubert() if source is None else load_dphubert(source)
        if normalize is not None:  # the override wins over the checkpoint's `normalize_waveform`
            module.normalize_waveform = module.config["normalize_waveform"] = bool(normalize)
        return module, {"backbone": "dphubert"}
    if backbone == "whisper":
        from safespeak.models.ssl.ct2 import build_whisper_backbone

        return build_whisper_backbone(source, backbone_config), {"backbone": "whisper"}
    from safespeak.models.ssl.hf import HFBackbone, hf_backbone_from_config, load_hf_backbone

    if backbone_config is not None:
        hf: HFBackbone = hf_backbone_from_config(backbone_config, bool(normalize))
    elif source is None:
        raise ValueError(f"backbone={backbone!r} needs source= (a model directory, hub id or .pt file)")
    elif backbone == "fairseq":
        from safespeak.models.ssl.fairseq_convert import convert_fairseq_checkpoint

        hf = HFBackbone(convert_fairseq_checkpoint(source), bool(normalize))
    else:
        hf = load_hf_backbone(source, normalize)
    return hf, {"backbone": "hf", "normalize": hf.normalize}


def _jsonable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        k: [list(v) for v in val] if k == "extractor_conv_layer_config" else val for k, val in cfg.items()
    }


def build_ssl_model(
    head: str,
    *,
    backbone: str = "dphubert",
    source: str | os.PathLike[str] | None = None,
    backbone_config: dict[str, Any] | None = None,
    normalize: bool | None = None,
    layer_drop: float | None = None,
    aggregation: str = "last-layer",
    layer_init: str = "uniform",
    freeze: bool = False,
    gradient_checkpointing: bool = False,
    head_kwargs: dict[str, Any] | None = None,
    pad_to_30s: bool = False,
) -> SSLCountermeasure:
    """Factory behind `ssl-aasist` / `ssl-semaa` / `ssl-mhfa`.

    backbone / source / backbone_config / normalize / layer_drop: see the module docstring.
    aggregation: `last-layer` or `weighted-sum`; layer_init: `uniform` or `last3` (see `aggregate`); the
    `mhfa` head takes every hidden state and learns its own key/value layer weights (aggregation unused).
    freeze: no backbone gradients, backbone kept in eval. gradient_checkpointing: recompute backbone
    layers in backward. head_kwargs: extra keyword arguments of the head (`in_dim` comes from the backbone).
    pad_to_30s: Whisper only, zero-pad inputs to 30 s as Whisper was trained (see `ssl/whisper.py`).
    """
    if head == "mhfa" and aggregation != "last-layer":
        raise ValueError("the MHFA head weighs the layers itself: leave aggregation at 'last-layer'")
    module, export = build_backbone(backbone, source, backbone_config, normalize, layer_drop)
    if pad_to_30s:
        if backbone != "whisper":
            raise ValueError(f"pad_to_30s applies to backbone='whisper' only, not {backbone!r}")
        module.set_pad_to_30s(True)
        export["backbone_config"] = module.config_dict()  # restores with the padding
    if head == "mhfa":  # one key/value weight per hidden state of this backbone
        head_kwargs = {"num_layers": module.num_hidden_states, **(head_kwargs or {})}
    model = SSLCountermeasure(
        module,
        _make_head(head, module.hidden_size, head_kwargs),
        aggregation=aggregation,
        layer_init=layer_init,
        freeze=freeze,
        gradient_checkpointing=gradient_checkpointing,
    )
    model._export = {
        **export,
        "aggregation": aggregation,
        "layer_init": layer_init,
        "freeze": freeze,
        "gradient_checkpointing": gradient_checkpointing,
        **({"head_kwargs": dict(head_kwargs)} if head_kwargs else {}),
    }
    return model
