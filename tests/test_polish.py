"""Newcomer polish (issue 18): one name per model size, files made with the process umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import torch

from safespeak.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from safespeak.config import load_config
from safespeak.models import build, list_models


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_cpu_variant_has_its_own_name_and_size() -> None:
    assert "aasist-l-cpu" in list_models()
    small, light = build("aasist-l-cpu"), build("aasist-l")
    assert (_n_params(small), _n_params(light)) == (19_674, 85_306)
    # the variant is exactly what the demo used to build as aasist-l with overrides
    old = build("aasist-l", filts=[20, [1, 8], [8, 8], [8, 16], [16, 16]], gat_dims=[16, 8])
    assert {k: v.shape for k, v in old.state_dict().items()} == {
        k: v.shape for k, v in small.state_dict().items()
    }
    small.load_state_dict(old.state_dict())
    x = torch.randn(2, 16_000)
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), old.eval()(x))


def test_demo_recipe_names_the_cpu_variant_without_overrides() -> None:
    recipe = Path(str(resources.files("safespeak") / "data" / "demo-cpu.yaml"))
    cfg = load_config(recipe)
    assert cfg.model.arch == "aasist-l-cpu" and not cfg.model.overrides
    assert _n_params(build(cfg.model.arch, **cfg.model.overrides)) < 25_000


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_atomic_write_follows_the_umask(tmp_path: Path, mask: int) -> None:
    os.umask(mask)
    atomic_write(tmp_path / "a.txt", lambda tmp: Path(tmp).write_text("x"))
    (tmp_path / "plain.txt").write_text("x")  # what any other tool would create
    assert _mode(tmp_path / "a.txt") == _mode(tmp_path / "plain.txt") == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.usefixtures("umask")
def test_checkpoint_files_are_group_readable(tmp_path: Path) -> None:
    os.umask(0o022)
    weights = save_checkpoint(tmp_path / "ck", build("aasist-l-cpu"), arch="aasist-l-cpu")
    for p in (weights, weights.with_suffix(".json")):
        assert _mode(p) == 0o644, p
    model, meta = load_checkpoint(tmp_path / "ck")
    assert meta["arch"] == "aasist-l-cpu" and _n_params(model) == 19_674
