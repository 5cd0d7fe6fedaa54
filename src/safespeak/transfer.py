"""Transfer learning: start a model from pretrained weights, freeze parts of it, split the learning rates.

`init_from` in a recipe (`model.init_from`) names one of:

- a bundled preset: `aasist` or `aasist-l`, the official clovaai/aasist weights trained on ASVspoof 2019
  LA (MIT, NAVER Corp.; shipped as safespeak checkpoints under `safespeak/data/pretrained/` with their
  LICENSE and NOTICE);
- a safespeak checkpoint (a run folder, `NAME.safetensors` or `NAME.json` with its sidecar);
- a reference state dict of the original code (`.pth`/`.pt` read with `torch.load(weights_only=True)`,
  or `.safetensors` without a sidecar), renamed with the model's `reference_key_map`.

Keys present in both the source and the model are copied (they are the *pretrained* parameters); keys
only in the model stay freshly initialised (*new*); keys only in the source are ignored and reported.
A key in both with a different shape is an `InitError` naming every such key and both shapes.

`freeze` patterns (`fnmatch`, e.g. `frontend`, `encoder.*`, `graph.gat_s`) match module or parameter
names; the matched parameters get `requires_grad=False` and matched modules run in eval mode even while
the model trains, so their BatchNorm statistics and dropout stay as loaded.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from safespeak.errors import SafespeakError

__all__ = [
    "PRESETS",
    "InitError",
    "InitReport",
    "freeze",
    "init_from",
    "load_source_state",
    "param_groups",
    "prepare",
    "preset_path",
]

# preset name -> checkpoint stem under safespeak/data/pretrained/
PRESETS: dict[str, str] = {"aasist": "aasist", "aasist-l": "aasist-l"}


class InitError(SafespeakError):
    """Pretrained weights that do not fit the model (shapes, no shared keys) or an unknown source."""


@dataclass(frozen=True)
class InitReport:
    """What `init_from` did: the source, and which state-dict keys were loaded, left new or ignored."""

    source: str
    loaded: tuple[str, ...]
    new: tuple[str, ...]
    ignored: tuple[str, ...]

    def summary(self) -> str:
        """One line for logs."""
        return (
            f"init_from {self.source}: {len(self.loaded)} tensors loaded, {len(self.new)} new, "
            f"{len(self.ignored)} in the source unused"
        )


def preset_path(name: str) -> Path:
    """Checkpoint stem of a bundled preset (`aasist`, `aasist-l`); unknown names raise `InitError`."""
    if name not in PRESETS:
        raise InitError(f"unknown pretrained preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return Path(str(resources.files("safespeak") / "data" / "pretrained" / PRESETS[name]))


def load_source_state(spec: str | os.PathLike[str], arch: str) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict in safespeak key names, description) of a preset, checkpoint or reference file.

    `arch` picks the `reference_key_map` used to rename a reference state dict's keys.
    """
    from safetensors.torch import load_file

    from safespeak.checkpoint import checkpoint_paths
    from safespeak.models.registry import map_reference_keys, model_info, read_reference_state

    text = str(spec)
    if text in PRESETS:
        weights, _ = checkpoint_paths(preset_path(text))
        return load_file(str(weights)), f"preset {text!r}"
    p = Path(text)
    weights, meta = checkpoint_paths(p)
    if weights.is_file() and meta.is_file():  # a safespeak checkpoint: keys are already ours
        return load_file(str(weights)), str(weights)
    if not p.exists():
        raise InitError(f"not a file, checkpoint or preset (presets: {', '.join(sorted(PRESETS))})", path=p)
    try:
        state = read_reference_state(p)
    except ValueError as exc:
        raise InitError(str(exc)) from exc
    return map_reference_keys(state, model_info(arch).reference_key_map), str(p)


def _key_list(keys: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def init_from(model: nn.Module, spec: str | os.PathLike[str], arch: str) -> InitReport:
    """Copy the pretrained tensors of `spec` into `model` (in place); see the module docstring."""
    state, source = load_source_state(spec, arch)
    own = model.state_dict()
    shared = [k for k in own if k in state]
    bad = [k for k in shared if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        shapes = "; ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in bad[:6])
        more = f" ... ({len(bad)} keys in all)" if len(bad) > 6 else ""
        raise InitError(
            f"{source}: pretrained shapes differ from the model ({arch}) for {len(bad)} keys "
            f"(pretrained vs model): {shapes}{more}"
        )
    if not any(own[k].is_floating_point() for k in shared):
        raise InitError(
            f"{source}: no tensor name in common with the model ({arch}); model keys start "
            f"{_key_list(list(own), 3)}, pretrained keys {_key_list(list(state), 3)}"
        )
    with torch.no_grad():
        for k in shared:
            own[k].copy_(state[k].to(own[k].dtype))
    return InitReport(
        source=source,
        loaded=tuple(shared),
        new=tuple(k for k in own if k not in state),
        ignored=tuple(k for k in state if k not in own),
    )


def _matches(name: str, patterns: Iterable[str]) -> str | None:
    """The first pattern matching `name` or one of its dotted prefixes (its parent modules)."""
    parts = name.split(".")
    prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pat in patterns:
        if any(fnmatch.fnmatchcase(p, pat) for p in prefixes):
            return pat
    return None


def _keep_eval(module: nn.Module, _args: Any) -> None:
    # a frozen module keeps its loaded BatchNorm statistics and no dropout; descendants too, since some
    # blocks read a child's `training` flag without calling the child
    for m in module.modules():
        m.training = False


def freeze(model: nn.Module, patterns: Sequence[str]) -> tuple[str, ...]:
    """Freeze parameters and modules matching `patterns`; returns the frozen parameter names.

    A pattern that matches nothing is an `InitError` (a typo would otherwise silently train everything).
    """
    if not patterns:
        return ()
    used: set[str] = set()
    frozen = []
    for name, p in model.named_parameters():
        pat = _matches(name, patterns)
        if pat is not None:
            p.requires_grad_(False)
            frozen.append(name)
            used.add(pat)
    roots: list[str] = []
    for name, module in model.named_modules():
        pat = _matches(name, patterns) if name else None
        if pat is None:
            continue
        used.add(pat)
        if not any(name.startswith(r + ".") for r in roots):  # one hook per frozen subtree
            roots.append(name)
            module.register_forward_pre_hook(_keep_eval)
    unused = [p for p in patterns if p not in used]
    if unused:
        top = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
        raise InitError(
            f"freeze: {', '.join(repr(p) for p in unused)} matches no module or parameter "
            f"(top-level modules: {', '.join(top)})"
        )
    return tuple(frozen)


def prepare(model: nn.Module, arch: str, spec: str | None, patterns: Sequence[str]) -> InitReport | None:
    """The trainer's transfer step: `init_from(model, spec, arch)` when `spec`, then `freeze(patterns)`."""
    report = init_from(model, spec, arch) if spec else None
    freeze(model, patterns)
    return report


def param_groups(
    model: nn.Module, pretrained: Iterable[str], lr: float, pretrained_lr: float | None
) -> list[dict[str, Any]]:
    """Optimizer groups of the trainable parameters: new ones at `lr`, pretrained at `pretrained_lr`.

    `pretrained` holds state-dict keys (from `InitReport.loaded`); `pretrained_lr=None` means `lr`.
    Empty groups are left out; each group carries a `name` for logs.
    """
    keys = set(pretrained)
    new, old = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (old if name in keys else new).append(p)
    groups = [
        {"name": "new", "params": new, "lr": lr},
        {"name": "pretrained", "params": old, "lr": lr if pretrained_lr is None else pretrained_lr},
    ]
    return [g for g in groups if g["params"]]
