"""Whole seed SSL-AASIST checkpoints (fairseq front-end + reference head names) imported without fairseq."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import require_shared
from safespeak.models import build
from safespeak.models.ssl import load_seed_checkpoint
from test_ssl_fairseq import _fairseq_state, _tiny_hf

pytest.importorskip("transformers")
REF = ("fixtures", "reference")


def test_seed_checkpoint_loads_front_end_and_reference_head(tmp_path) -> None:
    head_state = load_file(str(require_shared(*REF, "ssl_aasist_head.safetensors")))  # reference key names
    io = np.load(require_shared(*REF, "ssl_aasist_head_io.npz"))
    # XLS-R layout: 1024-dim as the seed head expects, 64-dim heads (the file carries no config)
    hf = _tiny_hf(layer_mode=True, hidden=1024, layers=1, heads=16)
    front = {"ssl_model.model." + k: v for k, v in _fairseq_state(hf, layer_mode=True).items()}
    path = tmp_path / "LA_model.pth"
    torch.save({**front, **head_state}, path)
    model = load_seed_checkpoint(path, aggregation="last-layer")
    assert not model.training and model.checkpoint_config()["backbone_config"]["do_stable_layer_norm"]
    with torch.no_grad():
        logits = model.head(torch.from_numpy(io["feat_var"]))
        x = torch.randn(1, 4000)
        feats = model.features(x)
        want = hf(x).last_hidden_state
    assert float((logits - torch.from_numpy(io["logits_var"])).abs().max()) <= 1e-4
    assert torch.allclose(feats, want, atol=1e-5)
    rebuilt = build("ssl-aasist", **model.checkpoint_config())
    rebuilt.load_state_dict(model.state_dict(), strict=True)


def test_non_seed_files_raise_naming_the_file(tmp_path) -> None:
    path = tmp_path / "head_only.pth"
    torch.save({"LL.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match=r"head_only\.pth: no 'ssl_model\.model\.\*' keys"):
        load_seed_checkpoint(path)
