"""Experiment configs: YAML -> frozen, validated dataclasses.

`load_config(path, overrides)` reads a recipe, applies `--set key.sub=value` overrides (each value parsed
for the type of the field it sets) and builds an `ExperimentConfig`. Unknown or misspelled keys, wrong
types and bad choices raise `ConfigError` naming the file, line and key, with close matches as a hint.
Configs are data: derived values (steps per epoch, resolved paths...) are computed where they are used
and never written back. Relative paths are resolved against the working directory.

Floats follow YAML 1.2 (`1e-4` is a float, PyYAML would read it as a string); booleans must be real
YAML booleans (`true`/`false`), never strings.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from safespeak.errors import SafespeakError

__all__ = [
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "FusionConfig",
    "ModelConfig",
    "SplitConfig",
    "TrainConfig",
    "config_diff",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "parse_override",
    "parse_set",
]

try:  # the augmentation helper's config; an empty section keeps recipes loadable without it
    from safespeak.augment.pipeline import AugmentConfig
except ImportError:  # pragma: no cover - depends on which modules are installed

    @dataclass(frozen=True)
    class AugmentConfig:  # type: ignore[no-redef]
        """Placeholder while `safespeak.augment.pipeline` is absent: only `rawboost_algo: 0` trains."""

        rawboost_algo: int = 0


class ConfigError(SafespeakError):
    """An invalid config; the message names the source (file:line) and the dotted key."""


class _FieldError(ValueError):
    """A semantic check on one field failed (raised from `__post_init__`)."""

    def __init__(self, key: str, msg: str) -> None:
        self.key = key
        super().__init__(msg)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise _FieldError(name, f"must be > 0, got {getattr(obj, name)}")


@dataclass(frozen=True)
class ModelConfig:
    """Which registered model to train; `overrides` go to `safespeak.models.build(arch, **overrides)`."""

    arch: str = "aasist"
    overrides: dict[str, Any] = field(default_factory=dict)
    # pretrained start (`safespeak.transfer`): a preset (aasist, aasist-l), a checkpoint or a reference .pth
    init_from: str | None = None
    # module/parameter name patterns (fnmatch) kept frozen, e.g. [frontend, "encoder.*"]
    freeze: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitConfig:
    """One protocol split, read with `safespeak.protocols.read_protocol`."""

    protocol: str = ""
    format: str = "asvspoof2019-la"
    audio_dir: str | None = None
    audio_ext: str = ".flac"
    subset: str = "all"


@dataclass(frozen=True)
class DataConfig:
    """Train/dev protocols, crop lengths and loader settings (`batch_size` is per process)."""

    train: SplitConfig = field(default_factory=SplitConfig)
    dev: SplitConfig = field(default_factory=SplitConfig)
    crop_samples: int = 64_600
    # dev EER: "full" scores whole dev files in windows as `safespeak score` does (the window follows
    # crop_samples, see safespeak.score.scoring_window); "first" scores the first dev_crop_samples only
    dev_scoring: Literal["full", "first"] = "full"
    dev_crop_samples: int = 64_600
    batch_size: int = 24
    dev_batch_size: int = 64
    num_workers: int = 0
    allow_overlap: bool = False

    def __post_init__(self) -> None:
        _positive(self, "crop_samples", "dev_crop_samples", "batch_size", "dev_batch_size")
        if self.num_workers < 0:
            raise _FieldError("num_workers", f"must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedule, checkpointing and logging."""

    out_dir: str = "runs/experiment"
    seed: int = 1234
    epochs: int = 100
    lr: float = 1e-4
    # separate LR for an SSL backbone when the model exposes `param_groups(lr, ssl_lr)`; None = `lr`
    ssl_lr: float | None = None
    # LR of the parameters loaded by model.init_from (new ones use `lr`); None = `lr`
    pretrained_lr: float | None = None
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    scheduler: Literal["cosine", "constant"] = "cosine"
    min_lr: float = 5e-6
    loss_weights: tuple[float, float] = (0.1, 0.9)  # [spoof, bonafide]
    grad_clip: float | None = None
    swa: bool = False
    swa_start_epoch: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    device: str = "auto"
    # DDP must skip parameters that get no gradient (AASIST's unused BN, SSL layer drop); false is faster
    ddp_find_unused: bool = True
    patience: int | None = None
    # wall-clock budget: no epoch is started that would end past it (the demo's --minutes)
    max_minutes: float | None = None
    save_every_steps: int = 200
    log_every_steps: int = 10
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        _positive(self, "epochs", "lr", "save_every_steps", "log_every_steps")
        if min(self.loss_weights) < 0 or sum(self.loss_weights) <= 0:
            raise _FieldError("loss_weights", f"must be >= 0, not all zero; got {list(self.loss_weights)}")
        if self.patience is not None and self.patience < 1:
            raise _FieldError("patience", f"must be >= 1 or null, got {self.patience}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise _FieldError("max_minutes", f"must be > 0 or null, got {self.max_minutes}")


@dataclass(frozen=True)
class FusionConfig:
    """A second detector fused with the trained CM on dev scores (`safespeak.ensemble`; the demo's recipe).

    `whisper_probe`: a linear probe on frozen Whisper statistics (`whisper-probe`; `probe_source` None =
    the bundled tiny.en) over the first `probe_crop_samples` samples of each file, hidden states
    `probe_layers`, L2 weight `probe_l2`.
    """

    whisper_probe: bool = False
    probe_source: str | None = None
    probe_layers: tuple[int, ...] = (0, 1)
    probe_l2: float = 10.0
    probe_crop_samples: int = 64_000

    def __post_init__(self) -> None:
        _positive(self, "probe_l2", "probe_crop_samples")
        if not self.probe_layers:
            raise _FieldError("probe_layers", "must list at least one hidden state")


@dataclass(frozen=True)
class ExperimentConfig:
    """A full training recipe."""

    name: str = "experiment"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)


# ---------------------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats (`1e-4`, `5E3`) and booleans (only true/false; `yes`, `on` stay
    strings) instead of PyYAML's YAML 1.1 rules."""


_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _ch in list(_Loader.yaml_implicit_resolvers):
    _Loader.yaml_implicit_resolvers[_ch] = [
        (tag, rx)
        for tag, rx in _Loader.yaml_implicit_resolvers[_ch]
        if tag not in {"tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"}
    ]
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

Lines = dict[tuple[str, ...], int]


def _node_to_python(loader: _Loader, node: yaml.Node, path: tuple[str, ...], lines: Lines) -> Any:
    """Convert a composed node, recording the line of every mapping key by dotted path."""
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(loader.construct_object(key_node, deep=True))
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _node_to_python(loader, value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_node_to_python(loader, v, path, lines) for v in node.value]
    return loader.construct_object(node, deep=True)


def _read_yaml(text: str, source: str) -> tuple[Any, Lines]:
    loader = _Loader(text)
    lines: Lines = {}
    try:
        node = loader.get_single_node()
        return (_node_to_python(loader, node, (), lines) if node is not None else {}), lines
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


# ------------------------------------------------------------------------------------- conversion


class _Ctx:
    """Where a value came from, for error messages."""

    def __init__(self, source: str, lines: Lines) -> None:
        self.source, self.lines = source, lines

    def error(self, path: tuple[str, ...], msg: str) -> ConfigError:
        line = next((self.lines[path[:i]] for i in range(len(path), 0, -1) if path[:i] in self.lines), None)
        where = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{where}: {'.'.join(path) or '<root>'}: {msg}")


def _hint(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(tp: Any, value: Any, path: tuple[str, ...], ctx: _Ctx) -> Any:
    """Check/convert `value` to the annotated type `tp` (strict: no string numbers or booleans)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_dataclass_type(tp):
        return _build(tp, value, path, ctx)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path, ctx)
    if origin is Literal:
        if value not in args:
            raise ctx.error(path, f"{value!r} is not one of {list(args)}{_hint(str(value), map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ctx.error(path, f"expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, path, ctx) for v in value)
        if len(value) != len(args):
            raise ctx.error(path, f"expected a list of {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, path, ctx) for a, v in zip(args, value, strict=True))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ctx.error(path, f"expected a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if tp is Any:
        return value
    return _convert_scalar(tp, value, path, ctx)


def _convert_scalar(tp: Any, value: Any, path: tuple[str, ...], ctx: _Ctx) -> Any:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:
        raise ctx.error(path, f"unsupported field type {tp!r}")
    if not ok:
        raise ctx.error(path, f"expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, raw: Any, path: tuple[str, ...], ctx: _Ctx) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ctx.error(path, f"expected a mapping for section {cls.__name__}, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            known = ", ".join(names) or "(none)"
            raise ctx.error((*path, key), f"unknown key{_hint(str(key), names)} (known keys: {known})")
    kwargs = {k: _convert(hints[k], v, (*path, k), ctx) for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except _FieldError as exc:
        raise ctx.error((*path, exc.key), str(exc)) from exc
    except (TypeError, ValueError) as exc:  # e.g. a __post_init__ check in a nested config
        raise ctx.error(path, str(exc)) from exc


# ---------------------------------------------------------------------------------------- overrides


def _field_type(cls: type, path: tuple[str, ...], ctx: _Ctx) -> Any:
    """Annotated type at a dotted path; `Any` below a free-form mapping (e.g. model.overrides.x)."""
    tp: Any = cls
    for i, key in enumerate(path):
        while typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if typing.get_origin(tp) is dict or tp is dict:
            return Any
        if not _is_dataclass_type(tp):
            raise ctx.error(path[:i], f"cannot set {'.'.join(path)}: {'.'.join(path[:i])} is not a section")
        names = [f.name for f in dataclasses.fields(tp)]
        if key not in names:
            raise ctx.error(path[: i + 1], f"unknown key{_hint(key, names)} (known keys: {', '.join(names)})")
        tp = typing.get_type_hints(tp)[key]
    return tp


def _parse_text(tp: Any, text: str, path: tuple[str, ...], ctx: _Ctx) -> Any:
    """Parse an override's text for the target type: numbers, true/false, null, YAML lists/maps."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if text.strip().lower() in {"null", "none", "~"} and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
    if tp is str or typing.get_origin(tp) is Literal:
        return text
    if tp is bool:
        if text.strip().lower() not in {"true", "false"}:
            raise ctx.error(path, f"expected true or false, got {text!r}")
        return text.strip().lower() == "true"
    try:
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
    except ValueError:
        raise ctx.error(path, f"expected {tp.__name__}, got {text!r}") from None
    value, _ = _read_yaml(text, ctx.source)
    return value


def parse_override(item: str) -> tuple[tuple[str, ...], str]:
    """Split `key.sub=value` into (("key", "sub"), "value")."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. train.lr=1e-4)")
    return tuple(k.strip() for k in key.strip().split(".")), value


def parse_set(items: typing.Sequence[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items -> {KEY: value}, VALUE read by the config's YAML 1.2 rules.

    The one `--set` reader (config overrides use it for untyped values too): `1e-4` is a float, `[16, 8]`
    a list, `null` or nothing None, `yes` stays a string.

    >>> parse_set(["lr=1e-4", "gat_dims=[16, 8]", "name = yes"])
    {'lr': 0.0001, 'gat_dims': [16, 8], 'name': 'yes'}
    """
    out: dict[str, Any] = {}
    for item in items:
        path, text = parse_override(item)
        value, _ = _read_yaml(text, f"--set {item}") if text.strip() else (None, {})
        out[".".join(path)] = value
    return out


def _apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    for item in overrides:
        path, text = parse_override(item)
        ctx = _Ctx(f"--set {item}", {})
        value = _parse_text(_field_type(ExperimentConfig, path, ctx), text, path, ctx)
        node = raw
        for i, key in enumerate(path[:-1]):
            nxt = node.get(key)
            if nxt is None:
                nxt = node[key] = {}
            if not isinstance(nxt, dict):
                raise ctx.error(path[: i + 1], "is not a section")
            node = nxt
        node[path[-1]] = value
    return raw


# ------------------------------------------------------------------------------------------- public


def config_from_dict(
    raw: dict[str, Any],
    overrides: typing.Sequence[str] = (),
    *,
    source: str = "<dict>",
    lines: Lines | None = None,
) -> ExperimentConfig:
    """Validate a plain mapping (plus overrides) into an `ExperimentConfig`."""
    import copy

    raw = _apply_overrides(copy.deepcopy(raw) if raw else {}, overrides)
    return _build(ExperimentConfig, raw, (), _Ctx(source, lines or {}))


def load_config(path: str | os.PathLike[str], overrides: typing.Sequence[str] = ()) -> ExperimentConfig:
    """Read a YAML recipe, apply `key.sub=value` overrides, validate; errors name file:line and key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    raw, lines = _read_yaml(p.read_text(), str(p))
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    return config_from_dict(raw, overrides, source=str(p), lines=lines)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON/YAML-ready dict (tuples become lists); `config_from_dict` inverts it."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def dump_config(cfg: ExperimentConfig) -> str:
    """YAML text of a config (what a run directory stores as `config.yaml`)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def config_diff(a: Any, b: Any, ignore: typing.Iterable[str] = ()) -> list[str]:
    """Sorted dotted keys whose values differ between two configs (minus `ignore`)."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    fa, fb = flat(config_to_dict(a)), flat(config_to_dict(b))
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k) and k not in set(ignore))
