"""Import a whole seed SSL countermeasure checkpoint (fairseq XLS-R front-end + head) without fairseq.

The seed code (TakHemlata/SSL_Anti-spoofing `model.py:Model`, and the hackathon's SEMAA variant) saves
`model.state_dict()`: the front-end under `ssl_model.model.` with fairseq wav2vec2 key names, the head
with the reference names (`LL.*`, `first_bn1.*`, `HtrgGAT_layer_ST11.*`...). The front-end goes
through the fairseq converter (architecture read from the tensor shapes: XLS-R 300M for the released
models), the head through the head's registered `reference_key_map`. The result is an `ssl-aasist` /
`ssl-semaa` model whose `checkpoint_config()` no longer refers to any file.
"""

from __future__ import annotations

import os
from typing import Any

from safespeak.models.registry import map_reference_keys, model_info, read_reference_state
from safespeak.models.ssl.fairseq_convert import fairseq_to_hf
from safespeak.models.ssl.hf import HFBackbone
from safespeak.models.ssl.model import SSLCountermeasure, build_ssl_model

__all__ = ["SEED_SSL_PREFIX", "load_seed_checkpoint"]

SEED_SSL_PREFIX = "ssl_model.model."


def load_seed_checkpoint(
    path: str | os.PathLike[str], head: str = "aasist", **overrides: Any
) -> SSLCountermeasure:
    """`ssl-<head>` model holding a seed checkpoint's weights (strict load), in eval mode.

    `overrides` go to `build_ssl_model` (e.g. `aggregation`, `freeze`); the backbone is fixed by the file.
    """
    state = read_reference_state(path)
    front = {k[len(SEED_SSL_PREFIX) :]: v for k, v in state.items() if k.startswith(SEED_SSL_PREFIX)}
    if not front:
        raise ValueError(f"{path}: no '{SEED_SSL_PREFIX}*' keys; not a seed SSL countermeasure checkpoint")
    rest = {k: v for k, v in state.items() if not k.startswith("ssl_model.")}
    hf = fairseq_to_hf({"model": front}, str(path))
    config = HFBackbone(hf).config_dict()
    model = build_ssl_model(head, backbone="hf", backbone_config=config, normalize=False, **overrides)
    mapped = map_reference_keys(rest, model_info(f"ssl-{head}-head").reference_key_map)
    full = {
        **{"ssl.model." + k: v for k, v in hf.state_dict().items()},
        **{"head." + k: v for k, v in mapped.items()},
    }
    own = model.state_dict()
    aggregate = {k: v for k, v in own.items() if k.startswith("aggregate.")}  # not in the seed: keep init
    missing = sorted(set(own) - set(full) - set(aggregate))
    unexpected = sorted(set(full) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{path}: does not match ssl-{head} (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    model.load_state_dict({**full, **aggregate}, strict=True)
    return model.eval()
