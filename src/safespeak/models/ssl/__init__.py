"""SSL front-ends without fairseq: HF transformers backbones, DPHuBERT, Whisper encoders (HF or CTranslate2
folders), a fairseq checkpoint converter, layer aggregation, and the `ssl-aasist` / `ssl-semaa` /
`ssl-mhfa` countermeasures (`backbone="whisper"` with no source: the bundled Whisper tiny.en).

Importing this package does not import transformers (only building an `hf`/`fairseq` backbone does).
`build("ssl-aasist")` with no overrides builds a DPHuBERT-sp0.75-shaped backbone with random weights,
so `safespeak models` can list it cheaply; real use passes `backbone=` and `source=`, e.g.
`build("ssl-aasist", backbone="hf", source="facebook/wav2vec2-xls-r-300m", aggregation="weighted-sum")`.
"""

from __future__ import annotations

from typing import Any

from safespeak.models.registry import register
from safespeak.models.ssl.aggregate import LayerAggregation
from safespeak.models.ssl.dphubert import DPHUBERT_SP075_CONFIG, PrunedWav2Vec2, build_dphubert, load_dphubert
from safespeak.models.ssl.model import BACKBONES, SSLCountermeasure, build_backbone, build_ssl_model
from safespeak.models.ssl.seed import load_seed_checkpoint

__all__ = [
    "BACKBONES",
    "DPHUBERT_SP075_CONFIG",
    "LayerAggregation",
    "PrunedWav2Vec2",
    "SSLCountermeasure",
    "build_backbone",
    "build_dphubert",
    "build_ssl_model",
    "load_dphubert",
    "load_seed_checkpoint",
]


@register(
    "ssl-aasist",
    description="SSL front-end (HF XLS-R/HuBERT/WavLM, fairseq .pt, DPHuBERT) + AASIST head; "
    "default: DPHuBERT-sp0.75 shape, random weights",
)
def ssl_aasist(**overrides: Any) -> SSLCountermeasure:
    """SSL backbone + SSL-AASIST head; see `build_ssl_model` for the overrides."""
    return build_ssl_model("aasist", **overrides)


@register(
    "ssl-semaa",
    description="SSL front-end (HF XLS-R/HuBERT/WavLM, fairseq .pt, DPHuBERT) + SEMAA head; "
    "default: DPHuBERT-sp0.75 shape, random weights",
)
def ssl_semaa(**overrides: Any) -> SSLCountermeasure:
    """SSL backbone + SSL-SEMAA head; see `build_ssl_model` for the overrides."""
    return build_ssl_model("semaa", **overrides)


@register(
    "ssl-mhfa",
    description="SSL or Whisper front-end + MHFA head (multi-head factorized attentive pooling over "
    "all hidden states); default: DPHuBERT-sp0.75 shape, random weights",
)
def ssl_mhfa(**overrides: Any) -> SSLCountermeasure:
    """SSL backbone + MHFA head; see `build_ssl_model` for the overrides (`head_kwargs`: `MHFAHead`'s)."""
    return build_ssl_model("mhfa", **overrides)
