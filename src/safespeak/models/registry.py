"""Explicit model registry: name -> factory, plus import of reference (original-code) weights.

`register(name)` decorates a factory `(**overrides) -> CountermeasureModel`; `build(name, **overrides)`
calls it. Unknown or duplicate names raise with the list of known names. `from_reference(name, path)`
loads a state dict saved by the original code (`.pth` read with `weights_only=True`, or safetensors),
renames its keys with the model's `reference_key_map` and loads it strictly.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from safespeak.errors import CheckpointError, unpickle_reason
from safespeak.models.base import CountermeasureModel, state_mismatch

Factory = Callable[..., CountermeasureModel]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model besides its factory."""

    name: str
    factory: Factory
    description: str = ""
    # reference state-dict key -> safespeak key renames (applied as prefix substitutions, in order)
    reference_key_map: tuple[tuple[str, str], ...] = field(default_factory=tuple)


_REGISTRY: dict[str, ModelInfo] = {}
# Modules whose import fills the registry (kept explicit: no scanning, no globals() writes).
_MODEL_MODULES = (
    "safespeak.models.aasist",
    "safespeak.models.semaa",
    "safespeak.models.rawformer",
    "safespeak.models.lcnn",
    "safespeak.models.ssl_heads",
    "safespeak.models.mhfa",
    "safespeak.models.ssl",
    "safespeak.models.probe",
)
_loaded = False


def register(
    name: str, *, description: str = "", reference_key_map: tuple[tuple[str, str], ...] = ()
) -> Callable[[Factory], Factory]:
    """Decorator adding a factory under `name`; a duplicate name raises."""

    def deco(fn: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelInfo(name, fn, description, tuple(reference_key_map))
        return fn

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def list_models() -> list[str]:
    """Sorted registered model names."""
    _load_all()
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """Registry entry for `name`; unknown names raise `KeyError` listing the known ones."""
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build(name: str, **overrides: Any) -> CountermeasureModel:
    """Build a registered model with hyperparameter overrides."""
    return model_info(name).factory(**overrides)


def map_reference_keys(
    state: Mapping[str, torch.Tensor], key_map: tuple[tuple[str, str], ...]
) -> dict[str, torch.Tensor]:
    """Rename keys by the first matching prefix substitution of `key_map`; other keys are kept."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        for old_prefix, new_prefix in key_map:
            if key.startswith(old_prefix):
                new = new_prefix + key[len(old_prefix) :]
                break
        out[new] = value
    return out


def read_reference_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a reference checkpoint: `.pth`/`.pt` (never unpickles code) or `.safetensors`.

    A `.pth` holding `{"state_dict": ...}` or `{"model": ...}` is unwrapped; a DataParallel `module.`
    prefix is stripped.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError("reference checkpoint not found", path=p)
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(p))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"truncated or not safetensors ({exc})", path=p) from None
    elif p.suffix in {".pth", ".pt", ".ckpt", ".bin"}:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # weights_only refuses pickled code: say which file
            raise CheckpointError(
                f"cannot read as a weights-only torch checkpoint ({unpickle_reason(exc)})", path=p
            ) from None
        for wrapper in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                state = state[wrapper]
    else:
        raise CheckpointError(
            f"unknown checkpoint type {p.suffix!r} (expected .pth, .pt or .safetensors)", path=p
        )
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("expected a state dict of tensors", path=p)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def from_reference(name: str, path: str | os.PathLike[str], **overrides: Any) -> CountermeasureModel:
    """Build `name` (with `overrides`) and load reference weights from `path` strictly; eval mode.

    Mismatched keys or shapes raise `ValueError` naming the file and the first offending keys.
    """
    info = model_info(name)
    state = map_reference_keys(read_reference_state(path), info.reference_key_map)
    model = info.factory(**overrides)
    expected = model.state_dict()
    details = state_mismatch(expected, state, show=5)
    if details:
        raise CheckpointError(f"not a {name!r} reference state dict ({details})", path=path)
    model.load_state_dict(state, strict=True)
    return model.eval()


def model_table() -> list[tuple[str, int, int, str]]:
    """(name, parameter count, input length, description) of every registered model."""
    rows = []
    for name in list_models():
        model = build(name)
        n = sum(p.numel() for p in model.parameters())
        rows.append((name, n, int(model.input_length), model_info(name).description))
    return rows
