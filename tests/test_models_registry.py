"""Registry, reference import (`from_reference`, key maps) and the `convert` / `models` commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import require_shared
from safespeak.checkpoint import CheckpointError, load_checkpoint, read_meta
from safespeak.cli import main
from safespeak.models import build, from_reference, list_models, model_info, register
from safespeak.models.registry import map_reference_keys, read_reference_state

OURS = ("aasist", "aasist-l", "semaa", "ssl-aasist-head", "ssl-semaa-head")


def test_registered_and_unknown_names() -> None:
    names = list_models()
    assert set(OURS) <= set(names)
    with pytest.raises(KeyError, match="aasist-l"):
        build("aasist-xl")
    with pytest.raises(ValueError, match="already registered"):
        register("aasist")(lambda **kw: None)  # type: ignore[arg-type, return-value]


def test_key_map_first_matching_prefix_wins() -> None:
    state = {"encoder.3.0.conv1.weight": torch.zeros(1), "HtrgGAT_layer_ST12.bn.bias": torch.ones(1), "x": 0}
    out = map_reference_keys(state, model_info("aasist").reference_key_map)  # type: ignore[arg-type]
    assert set(out) == {"encoder.3.conv1.weight", "graph.htrg_st12.bn.bias", "x"}
    semaa = dict(model_info("semaa").reference_key_map)
    assert semaa["attention_asp."] == "head.asp.attention." and semaa["attention."] == "head.node_pool."


def test_every_model_round_trips_its_reference_keys() -> None:
    for name in OURS:
        model = build(name)
        inverse = [(new, old) for old, new in model_info(name).reference_key_map]
        ref_state = map_reference_keys(model.state_dict(), tuple(inverse))
        back = map_reference_keys(ref_state, model_info(name).reference_key_map)
        assert back.keys() == model.state_dict().keys(), name


def test_pth_wrappers_and_bad_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build("aasist-l")
    inverse = tuple((new, old) for old, new in model_info("aasist-l").reference_key_map)
    ref_state = map_reference_keys(model.state_dict(), inverse)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref_state.items()}, "epoch": 3}, wrapped)
    loaded = from_reference("aasist-l", wrapped)
    assert not loaded.training
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match=r"wrapped\.pth.*not a 'aasist'.*(missing|shape)"):
        from_reference("aasist", wrapped)
    with pytest.raises(CheckpointError, match=r"nothere\.pth: reference checkpoint not found"):
        read_reference_state(tmp_path / "nothere.pth")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"w\.npz.*unknown checkpoint type"):
        read_reference_state(tmp_path / "w.npz")
    pickled = tmp_path / "code.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "obj": Path("x")}, pickled)
    with pytest.raises(ValueError, match=r"code\.pth.*weights-only"):
        read_reference_state(pickled)


def test_convert_command_round_trip(tmp_path: Path) -> None:
    ref = require_shared("fixtures", "reference")
    io = dict(np.load(ref / "ssl_aasist_head_io.npz"))
    out = tmp_path / "ckpt"
    src = ref / "ssl_aasist_head.safetensors"
    assert main(["convert", "--arch", "ssl-aasist-head", "--reference", str(src), "--output", str(out)]) == 0
    model, meta = load_checkpoint(out)
    assert meta["arch"] == "ssl-aasist-head" and len(meta["reference_sha256"]) == 64
    direct = from_reference("ssl-aasist-head", src)
    feat = torch.from_numpy(io["feat"])
    with torch.no_grad():
        assert torch.equal(model(feat), direct(feat))
    np.testing.assert_allclose(model(feat).detach().numpy(), io["logits"], atol=1e-4, rtol=0)


def test_convert_with_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    head = build("ssl-semaa-head", in_dim=24)
    inverse = tuple((new, old) for old, new in model_info("ssl-semaa-head").reference_key_map)
    src = tmp_path / "ref.safetensors"
    save_file(
        {k: v.contiguous() for k, v in map_reference_keys(head.state_dict(), inverse).items()}, str(src)
    )
    out = tmp_path / "conv.safetensors"
    args = ["convert", "--arch", "ssl-semaa-head", "--reference", str(src), "--output", str(out)]
    assert main([*args, "--set", "in_dim=24"]) == 0
    assert read_meta(out)["model_config"] == {"in_dim": 24}
    model, _ = load_checkpoint(out)
    x = torch.randn(2, 9, 24)
    with torch.no_grad():
        assert torch.equal(model(x), head.eval()(x))
    capsys.readouterr()
    assert main(args) == 2  # default in_dim 1024 does not fit these weights: one line, no traceback
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shape mismatch" in err
    assert "ref.safetensors: not a 'ssl-semaa-head'" in err


def test_set_values_follow_yaml_1_2() -> None:
    from safespeak.config import ConfigError, parse_set

    # the one --set reader (train, demo, convert): 1e-4 is a float, yes/on stay strings, empty is null
    assert parse_set(["in_dim=768", "gat_dims=[16, 8]", "first_conv = 64", "lr=1e-4", "tag=yes", "x="]) == {
        "in_dim": 768,
        "gat_dims": [16, 8],
        "first_conv": 64,
        "lr": 1e-4,
        "tag": "yes",
        "x": None,
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set(["in_dim"])


def test_models_command_lists_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "297,866" in text and "85,306" in text and "474,666" in text
