"""Checkpoints: safetensors weights + a JSON sidecar (arch, model overrides, versions, metadata).

A checkpoint `NAME` is the pair `NAME.safetensors` + `NAME.json`; a directory holds `model.*`.
Writes are atomic (temp file + rename) so a crash never leaves a half-written file. Nothing here
unpickles: weights are safetensors; legacy `.pth` reading elsewhere uses `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from safespeak import SAMPLE_RATE, __version__
from safespeak.errors import CheckpointError, unpickle_reason

CHECKPOINT_SCHEMA = 2

__all__ = [
    "CheckpointError",
    "CheckpointMeta",
    "atomic_write",
    "checkpoint_paths",
    "convert_reference",
    "file_sha256",
    "load_checkpoint",
    "read_meta",
    "save_checkpoint",
    "update_meta",
]


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask can only swap it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` then rename the temp file onto `path` (same directory, fsynced).

    The file gets the mode any `open(path, "w")` would (0o666 minus the umask), not mkstemp's 0o600.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(weights, meta) paths for a checkpoint given as directory, `.safetensors`, `.json` or stem."""
    p = Path(path)
    if p.is_dir():
        return p / "model.safetensors", p / "model.json"
    if p.suffix in {".safetensors", ".json"}:
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class CheckpointMeta:
    """The JSON sidecar of a checkpoint (`safespeak-checkpoint`, schema 2).

    `train_window` is the training crop in samples (the scoring window follows it, see
    `safespeak.score.scoring_window`); `threshold` the dev-EER threshold on the raw score (what `detect`
    uses without calibration); `calibration` a `safespeak.calibrate.Calibration` as a dict; `extra` holds
    the rest (training config, epoch, dev metrics, data fingerprint, provenance of converted weights).
    `meta[key]` reads a field, else `extra[key]`, so the flat JSON view of older code keeps working.
    Schema 1 sidecars (flat, `"format": "safespeak-checkpoint/1"`) are read and mapped onto these fields.
    """

    arch: str
    model_config: dict[str, Any] = field(default_factory=dict)
    sample_rate: int = SAMPLE_RATE
    train_window: int | None = None
    threshold: float | None = None
    calibration: dict[str, float] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    weights_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = CHECKPOINT_SCHEMA

    def __getitem__(self, key: str) -> Any:
        if key in _META_FIELDS:
            return getattr(self, key)
        return self.extra[key]

    def __contains__(self, key: object) -> bool:
        return key in _META_FIELDS or key in self.extra

    def get(self, key: str, default: Any = None) -> Any:
        """`meta[key]`, or `default` when neither a field nor in `extra`."""
        try:
            return self[key]
        except KeyError:
            return default

    def to_json(self) -> str:
        """The sidecar text (sorted keys, indented, newline-terminated)."""
        doc = {"format": CHECKPOINT_FORMAT, **asdict(self)}
        return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike[str] = "<json>") -> CheckpointMeta:
        """Parse a sidecar (schema 1 or 2); errors name `source` and the field."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint metadata is not valid JSON ({exc.msg})", path=source,
                                  line=exc.lineno) from None  # fmt: skip
        if not isinstance(doc, dict):
            raise CheckpointError(f"checkpoint metadata must be a JSON object, got {type(doc).__name__}",
                                  path=source)  # fmt: skip
        fmt = doc.get("format")
        if fmt == LEGACY_FORMAT:
            return _from_flat({k: v for k, v in doc.items() if k != "format"}, source)
        if fmt != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"not a safespeak checkpoint sidecar (field 'format' is {fmt!r}, expected "
                f"{CHECKPOINT_FORMAT!r})", path=source,
            )  # fmt: skip
        version = doc.get("schema_version")
        if not isinstance(version, int) or version < 2:
            raise CheckpointError(
                f"field 'schema_version' must be an integer >= 2, got {version!r}", path=source
            )
        if version > CHECKPOINT_SCHEMA:
            raise CheckpointError(
                f"schema_version {version} is newer than this safespeak reads ({CHECKPOINT_SCHEMA}); "
                "upgrade safespeak", path=source,
            )  # fmt: skip
        unknown = sorted(set(doc) - set(_META_FIELDS) - {"format"})
        if unknown:
            raise CheckpointError(f"unknown field(s) {', '.join(map(repr, unknown))}", path=source)
        if "arch" not in doc:
            raise CheckpointError("checkpoint metadata has no 'arch' field", path=source)
        return _checked(cls(**{k: v for k, v in doc.items() if k != "format"}), source)


CHECKPOINT_FORMAT = "safespeak-checkpoint"
LEGACY_FORMAT = "safespeak-checkpoint/1"
_META_FIELDS = tuple(f.name for f in fields(CheckpointMeta))
# schema 1 wrote everything flat; these keys map onto typed fields, the rest goes to `extra`
_LEGACY_KEYS = {
    "input_length": "train_window",
    "dev_eer_threshold": "threshold",
    **{name: name for name in _META_FIELDS if name not in {"versions", "extra", "schema_version"}},
}


def _from_flat(doc: dict[str, Any], source: str | os.PathLike[str]) -> CheckpointMeta:
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    versions = {}
    for key, value in doc.items():
        if key in _LEGACY_KEYS:
            kwargs[_LEGACY_KEYS[key]] = value
        elif key in {"safespeak_version", "torch_version"}:
            versions[key.removesuffix("_version")] = str(value)
        else:
            extra[key] = value
    if "arch" not in kwargs:
        raise CheckpointError("checkpoint metadata has no 'arch' field", path=source)
    return _checked(CheckpointMeta(**kwargs, versions=versions, extra=extra), source)


def _checked(meta: CheckpointMeta, source: str | os.PathLike[str]) -> CheckpointMeta:
    """Type checks of the fields a loader relies on; the error names the field."""
    window, threshold = meta.train_window, meta.threshold
    checks = (
        ("arch", isinstance(meta.arch, str) and bool(meta.arch), "a non-empty string"),
        ("model_config", isinstance(meta.model_config, dict), "an object"),
        ("sample_rate", meta.sample_rate == SAMPLE_RATE, f"{SAMPLE_RATE} (safespeak models run at 16 kHz)"),
        ("train_window", window is None or (isinstance(window, int) and window > 0),
         "a positive integer or null"),
        ("threshold", threshold is None or (isinstance(threshold, int | float) and math.isfinite(threshold)),
         "a finite number or null"),
        ("calibration", meta.calibration is None or isinstance(meta.calibration, dict), "an object or null"),
        ("extra", isinstance(meta.extra, dict), "an object"),
        ("versions", isinstance(meta.versions, dict), "an object"),
    )  # fmt: skip
    for name, ok, want in checks:
        if not ok:
            raise CheckpointError(f"field {name!r} must be {want}, got {getattr(meta, name)!r}", path=source)
    return meta


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    arch: str,
    model_config: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    train_window: int | None = None,
    threshold: float | None = None,
) -> Path:
    """Write weights (`state_dict`, tensors made contiguous) and the JSON sidecar; return the weights path.

    `model_config` holds the overrides passed to `safespeak.models.build(arch, **model_config)`;
    `meta` is free-form JSON for `CheckpointMeta.extra` (schema 1 keys such as `input_length` or
    `calibration` land in their typed fields).
    """
    weights, meta_path = checkpoint_paths(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, tmp, metadata={"arch": arch}))
    flat: dict[str, Any] = {**(meta or {}), "arch": arch, "model_config": model_config or {}}
    if train_window is not None:
        flat["train_window"] = int(train_window)
    if threshold is not None:
        flat["threshold"] = float(threshold)
    doc = replace(
        _from_flat(flat, meta_path),
        versions={"safespeak": __version__, "torch": torch.__version__},
        weights_sha256=file_sha256(weights),
    )
    text = doc.to_json()
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(text))
    return weights


def read_meta(path: str | os.PathLike[str]) -> CheckpointMeta:
    """The JSON sidecar of a checkpoint; `CheckpointError` naming the file when missing or unreadable."""
    weights, meta_path = checkpoint_paths(path)
    if not meta_path.is_file():
        if weights.is_file():
            raise CheckpointError(f"checkpoint metadata {meta_path.name} is missing beside the weights "
                                  "(it names the architecture)", path=weights)  # fmt: skip
        where = f"no model.safetensors/model.json in directory {path}" if Path(path).is_dir() else (
            f"checkpoint not found (looked for {weights.name} and {meta_path.name})")  # fmt: skip
        raise CheckpointError(where, path=path)
    try:
        text = meta_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CheckpointError("checkpoint metadata is not UTF-8 text", path=meta_path) from None
    return CheckpointMeta.from_json(text, meta_path)


_PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def _pth_error(p: Path) -> CheckpointError:
    """Why a torch pickle cannot be used as a checkpoint (it is never unpickled beyond weights_only)."""
    if not p.is_file():
        return CheckpointError("checkpoint not found", path=p)
    try:
        torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        return CheckpointError(
            f"a torch pickle that needs unpickling beyond weights_only=True ({unpickle_reason(exc)}); "
            "safespeak never unpickles code: re-save its state_dict where you trust it, then run "
            "`safespeak convert`",
            path=p,
        )
    return CheckpointError("a bare torch state dict, not a safespeak checkpoint: convert it with "
                           "`safespeak convert --arch NAME --reference FILE`", path=p)  # fmt: skip


def _read_weights(weights: Path, device: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError

    if not weights.is_file():
        raise CheckpointError("weights file missing (the metadata file is there)", path=weights)
    try:
        return load_file(str(weights), device=device)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        msg = " ".join(str(exc).split())[:160]
        raise CheckpointError(f"weights are truncated or not safetensors ({msg})", path=weights) from None


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, CheckpointMeta]:
    """Build the model named in the sidecar, load the weights strictly, return (model in eval mode, meta).

    Every way a checkpoint can be unusable raises `CheckpointError` naming the file: missing or
    half-present pair, garbage/truncated weights or JSON, an architecture the weights do not fit, a
    `.pth` pickle.
    """
    from safespeak.models import build

    p = Path(path)
    if p.suffix in _PICKLE_SUFFIXES:
        raise _pth_error(p)
    weights, meta_path = checkpoint_paths(p)
    meta = read_meta(p)
    state = _read_weights(weights, str(map_location))
    try:
        model = build(meta.arch, **meta.model_config)
    except (KeyError, ValueError, TypeError) as exc:
        msg = " ".join(str(exc).strip("'\"").split())[:200]
        raise CheckpointError(f"cannot build arch {meta.arch!r} from its model_config ({msg})",
                              path=meta_path) from None  # fmt: skip
    _check_fit(model.state_dict(), state, meta.arch, weights)
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval(), meta


def _check_fit(
    expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], arch: str, src: Path
) -> None:
    from safespeak.models.base import state_mismatch

    details = state_mismatch(expected, state)
    if details:
        raise CheckpointError(f"weights do not fit arch {arch!r} ({details})", path=src)


def update_meta(path: str | os.PathLike[str], **fields: Any) -> None:
    """Set top-level fields of a checkpoint's JSON sidecar (atomically), e.g. `calibration=...`."""
    _, meta_path = checkpoint_paths(path)
    unknown = sorted(set(fields) - set(_META_FIELDS))
    if unknown:
        raise ValueError(f"unknown checkpoint metadata field(s) {unknown}")
    text = replace(read_meta(path), **fields).to_json()
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(text))


def convert_reference(
    arch: str, reference: str | os.PathLike[str], output: str | os.PathLike[str], overrides: dict[str, Any]
) -> tuple[Path, int]:
    """The `safespeak convert` workflow: reference weights -> checkpoint; returns (weights path, #params)."""
    from safespeak.models.registry import from_reference

    model = from_reference(arch, reference, **overrides)
    meta = {"converted_from": str(reference), "reference_sha256": file_sha256(reference)}
    out = save_checkpoint(output, model, arch=arch, model_config=overrides, meta=meta)
    return out, sum(p.numel() for p in model.parameters())
