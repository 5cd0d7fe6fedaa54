"""Explicit model registry: name -> factory.

`register(name)` decorates a factory `(**overrides) -> CountermeasureModel`; `build(name, **overrides)`
calls it. Unknown or duplicate names raise with the list of known names.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from safespeak.models.base import CountermeasureModel

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
    "safespeak.models.ssl_heads",
    "safespeak.models.ssl",
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


def register_cli(sub: argparse._SubParsersAction) -> None:
    """`safespeak models` (and, once implemented, `convert`)."""
    p = sub.add_parser("models", help="list registered models with parameter counts and input length")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    print(f"{'name':<20} {'params':>12} {'input':>8}  description")
    for name in list_models():
        model = build(name)
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:<20} {n:>12,} {model.input_length:>8}  {model_info(name).description}")
    return 0
