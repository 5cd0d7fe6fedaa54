"""The trainer with an SSL model: separate backbone LR, RawBoost, and a checkpoint that restores without
the backbone's source directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from safespeak.checkpoint import load_checkpoint
from safespeak.config import config_from_dict
from safespeak.train import STATE_FILE, train
from toydata import write_toy_dataset

transformers = pytest.importorskip("transformers")

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(8, 8, 8),
    conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
    vocab_size=4,
)  # fmt: skip


def test_ssl_model_trains_with_its_own_lr_and_restores_without_the_backbone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = tmp_path / "tiny-w2v2"
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**TINY)).save_pretrained(str(source))
    toy = write_toy_dataset(tmp_path / "toy", {"train": 8, "dev": 6})  # splits: train, dev
    split = {
        s: {"protocol": str(toy.protocols[s]), "audio_dir": str(toy.audio_dirs[s])} for s in ("train", "dev")
    }
    # layer_drop=0: the tiny config's HF default (0.1) would make the run depend on layer-drop draws
    overrides = {"backbone": "hf", "source": str(source), "aggregation": "weighted-sum", "layer_drop": 0.0}
    raw = {
        "model": {"arch": "ssl-aasist", "overrides": overrides},
        "data": {**split, "crop_samples": 8000, "dev_crop_samples": 8000, "batch_size": 4},
        "train": {"out_dir": str(tmp_path / "run"), "epochs": 1, "lr": 1e-4, "ssl_lr": 1e-5,
                  "scheduler": "constant", "progress": False, "tensorboard": False},
        "augment": {"rawboost_algo": 5},
    }  # fmt: skip
    res = train(config_from_dict(raw))
    assert 0.0 <= res.best_dev_eer <= 1.0
    groups = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)["optimizer"]["param_groups"]
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 1e-4), ("ssl", 1e-5)]
    shutil.rmtree(source)  # the checkpoint must not need the original backbone files
    model, meta = load_checkpoint(tmp_path / "run" / "model")
    assert "source" not in meta["model_config"] and meta["model_config"]["aggregation"] == "weighted-sum"
    assert meta["training_config"]["model"]["overrides"]["source"] == str(source)  # the recipe as run
    with torch.no_grad():
        assert torch.isfinite(model.score(torch.randn(2, 8000) * 0.1)).all()
