"""Transfer learning: bundled official weights (reference parity), init sources, shape errors, freezing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import require_shared
from safespeak.checkpoint import checkpoint_paths, save_checkpoint
from safespeak.config import config_from_dict
from safespeak.errors import SafespeakError
from safespeak.models import build
from safespeak.train import STATE_FILE, train
from safespeak.transfer import InitError, freeze, init_from, param_groups, preset_path
from toydata import toy_config, write_toy_dataset

TINY = {"filts": [20, [1, 8], [8, 8], [8, 16], [16, 16]], "gat_dims": [16, 8]}
SHA = {  # sha256 of the official files (shared/weights/clovaai-aasist/README.md)
    "aasist": "51d2d9cf0738172f61e2a384ec50a54a55363240f67c971ed55a92435bc1a1c0",
    "aasist-l": "814331d088032bb4c3fa61cc014789eadeed464209dd094ab3a2dd6ffbdce27a",
}


def _preset_state(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint_paths(preset_path(name))[0]))


@pytest.mark.parametrize("name", ["aasist", "aasist-l"])
def test_preset_is_the_official_model_with_reference_logits(name: str) -> None:
    ref = require_shared("fixtures", "reference")
    io = np.load(ref / f"{name.replace('-', '_')}_io.npz")
    torch.manual_seed(0)
    model = build(name)
    report = init_from(model, name, name)
    assert report.new == () and report.ignored == () and len(report.loaded) == len(model.state_dict())
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(io["x"]))
    np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-4, rtol=0)
    meta = json.loads(checkpoint_paths(preset_path(name))[1].read_text())
    assert meta["arch"] == name and meta["reference_sha256"] == SHA[name]
    licence = preset_path(name).parent
    assert "NAVER" in (licence / "LICENSE").read_text() and (licence / "NOTICE").is_file()


def test_official_pth_gives_the_preset_weights() -> None:
    pth = require_shared("weights", "clovaai-aasist", "AASIST-L.pth")
    model = build("aasist-l")
    report = init_from(model, pth, "aasist-l")  # torch.load(weights_only=True) + reference key map
    preset = _preset_state("aasist-l")
    state = model.state_dict()
    assert report.new == () and state.keys() == preset.keys()
    assert all(torch.equal(state[k], preset[k]) for k in state)


def test_partial_source_reports_new_and_ignored_keys(tmp_path: Path) -> None:
    ref = require_shared("fixtures", "reference")
    state = load_file(str(ref / "aasist_l.safetensors"))  # reference key names
    del state["out_layer.weight"], state["out_layer.bias"]
    state["extra.weight"] = torch.ones(3)
    torch.save(state, tmp_path / "partial.pth")
    torch.manual_seed(1)
    model = build("aasist-l")
    fresh_out = model.out_layer.weight.detach().clone()
    report = init_from(model, tmp_path / "partial.pth", "aasist-l")
    assert report.new == ("out_layer.weight", "out_layer.bias") and report.ignored == ("extra.weight",)
    assert torch.equal(model.out_layer.weight, fresh_out)  # new keys keep their fresh init
    assert torch.equal(model.graph.master1, _preset_state("aasist-l")["graph.master1"])
    # a safespeak checkpoint is read in our own key names
    save_checkpoint(tmp_path / "ckpt", model, arch="aasist-l")
    again = build("aasist-l")
    assert init_from(again, tmp_path / "ckpt.json", "aasist-l").new == ()
    assert torch.equal(again.out_layer.weight, fresh_out)


def test_shape_mismatch_is_one_error_naming_the_keys() -> None:
    torch.manual_seed(0)
    model = build("aasist-l", **TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InitError) as err:
        init_from(model, "aasist-l", "aasist-l")
    msg = str(err.value)
    assert isinstance(err.value, (SafespeakError, ValueError))
    assert "encoder.0.conv1.weight (32, 1, 2, 3) vs (8, 1, 2, 3)" in msg, msg
    assert "keys in all" in msg and "preset 'aasist-l'" in msg
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing half-loaded


def test_bad_sources_and_patterns_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(InitError, match=r"unknown pretrained preset 'aasist-xl'|not a file"):
        init_from(build("aasist-l"), "aasist-xl", "aasist-l")
    with pytest.raises(InitError, match=r"missing\.pth"):
        init_from(build("aasist-l"), tmp_path / "missing.pth", "aasist-l")
    torch.save({"w": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(InitError, match="no tensor name in common"):
        init_from(build("aasist-l"), tmp_path / "other.pth", "aasist-l")
    with pytest.raises(InitError, match=r"'encodr\*' matches no module.*frontend"):
        freeze(build("aasist-l"), ["encodr*"])


def test_param_groups_split_pretrained_new_and_frozen() -> None:
    model = build("aasist-l")
    frozen = freeze(model, ["frontend", "encoder.*"])
    assert frozen and all(n.startswith(("frontend.", "encoder.")) for n in frozen)
    groups = param_groups(model, ["graph.master1", "frontend.first_bn.weight"], 1e-3, 1e-5)
    by_name = {g["name"]: g for g in groups}
    assert by_name["pretrained"]["lr"] == 1e-5 and by_name["new"]["lr"] == 1e-3
    assert [p.shape for p in by_name["pretrained"]["params"]] == [model.graph.master1.shape]
    n_trainable = sum(p.requires_grad for p in model.parameters())
    assert sum(len(g["params"]) for g in groups) == n_trainable < len(list(model.parameters()))


def test_frozen_parameters_and_statistics_are_bitwise_unchanged_by_training(tmp_path: Path) -> None:
    toy = write_toy_dataset(tmp_path / "toy", {"train": 8, "dev": 6}, seed=4, min_seconds=0.8)
    ref = require_shared("fixtures", "reference")
    state = load_file(str(ref / "aasist_l.safetensors"))
    del state["out_layer.weight"], state["out_layer.bias"]  # a fresh head: the "new" group
    torch.save(state, tmp_path / "no_head.pth")
    raw = toy_config(toy, tmp_path / "run", epochs=1, lr=1e-2, pretrained_lr=1e-3)
    raw["model"] = {
        "arch": "aasist-l",
        "init_from": str(tmp_path / "no_head.pth"),
        "freeze": ["frontend", "encoder"],
    }
    raw["data"].update(crop_samples=8000, dev_crop_samples=8000)
    res = train(config_from_dict(raw))
    assert res.epochs_run == 1
    saved = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    assert saved["global_step"] == 2
    assert [(g["name"], g["initial_lr"]) for g in saved["optimizer"]["param_groups"]] == [
        ("new", 1e-2),
        ("pretrained", 1e-3),
    ]
    preset = _preset_state("aasist-l")
    after = saved["model"]
    frozen = [k for k in after if k.startswith(("frontend.", "encoder."))]
    assert any("running_mean" in k for k in frozen)  # BatchNorm statistics stay as loaded too
    assert all(torch.equal(after[k], preset[k]) for k in frozen)
    assert not torch.equal(after["graph.master1"], preset["graph.master1"])  # pretrained, trained
    assert not torch.equal(after["out_layer.weight"], preset["out_layer.weight"])
