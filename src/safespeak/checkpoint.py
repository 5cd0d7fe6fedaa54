"""Checkpoints: safetensors weights + a JSON sidecar (arch, model overrides, versions, metadata).

A checkpoint `NAME` is the pair `NAME.safetensors` + `NAME.json`; a directory holds `model.*`.
Writes are atomic (temp file + rename) so a crash never leaves a half-written file. Nothing here
unpickles: weights are safetensors; legacy `.pth` reading elsewhere uses `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from safespeak import __version__

__all__ = [
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


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    arch: str,
    model_config: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write weights (`state_dict`, tensors made contiguous) and the JSON sidecar; return weights path.

    `model_config` holds the overrides passed to `safespeak.models.build(arch, **model_config)`;
    `meta` is free-form JSON (training config, epoch, dev metrics, data fingerprint, calibration...).
    """
    weights, meta_path = checkpoint_paths(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, tmp, metadata={"arch": arch}))
    doc = {
        "format": "safespeak-checkpoint/1",
        "arch": arch,
        "model_config": model_config or {},
        "safespeak_version": __version__,
        "torch_version": torch.__version__,
        "weights_sha256": file_sha256(weights),
        **(meta or {}),
    }
    text = json.dumps(doc, indent=2, sort_keys=True, default=str)
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(text + "\n"))
    return weights


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint."""
    _, meta_path = checkpoint_paths(path)
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: checkpoint metadata not found")
    return json.loads(meta_path.read_text())


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the model named in the sidecar, load the weights strictly, return (model in eval mode, meta)."""
    from safespeak.models import build

    weights, _ = checkpoint_paths(path)
    meta = read_meta(path)
    model = build(meta["arch"], **meta.get("model_config", {}))
    model.load_state_dict(load_file(str(weights), device=str(map_location)), strict=True)
    return model.to(map_location).eval(), meta


def update_meta(path: str | os.PathLike[str], **fields: Any) -> None:
    """Set top-level fields of a checkpoint's JSON sidecar (atomically), e.g. `calibration=...`."""
    _, meta_path = checkpoint_paths(path)
    meta = read_meta(path)
    meta.update(fields)
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
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
