"""ONNX export: plain onnxruntime (no safespeak code at run time) against torch on tiny models.

Every case runs lengths and batch sizes that the trace never saw (the export traces (2, window)).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from safespeak.checkpoint import save_checkpoint
from safespeak.models import build
from safespeak.models.base import CountermeasureModel

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from safespeak.export import ExportError, export_onnx  # noqa: E402

TINY_GRAPH = {"filts": [20, [1, 8], [8, 8], [8, 16], [16, 16]], "gat_dims": [16, 8], "nb_samp": 8_000}
CASES = {  # AASIST itself: test_aasist_parity_and_metadata_props
    "aasist-l": {"nb_samp": 8_000},  # the paper's AASIST-L is already small (85k parameters)
    "semaa": TINY_GRAPH,
    "lcnn": {"channels": [8, 8, 8, 8, 8], "input_length": 8_000},
    "rawformer-s": {"transformer_hidden": 32, "max_frames": 3},
}


def _parity(model: torch.nn.Module, onnx_path: Path, window: int, shapes: list[tuple[int, int]]) -> float:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [d.name for d in session.get_inputs()] == ["waveform"]
    dims = session.get_inputs()[0].shape
    assert all(isinstance(d, str) for d in dims), f"batch and length must be dynamic, got {dims}"
    gen = torch.Generator().manual_seed(3)
    worst = 0.0
    for shape in shapes:
        x = torch.randn(*shape, generator=gen) * 0.1
        with torch.no_grad():
            ref = model.score(x).numpy()  # (B,) the bona fide score `safespeak score` averages
        logits = session.run(["logits"], {"waveform": x.numpy()})[0]
        assert logits.shape == (shape[0], 2)
        worst = max(worst, float(np.abs(logits[:, 1] - ref).max()))
    return worst


def _shapes(window: int, limit: int | None = None) -> list[tuple[int, int]]:
    # batch 1 at the window, batch 3 longer (up to a bounded model's limit), batch 2 shorter: none traced
    longer = min(window + window // 2 + 123, limit or window * 2)
    return [(1, window), (3, longer if longer > window else window - 77), (2, (3 * window) // 4 + 41)]


@pytest.mark.parametrize("arch", sorted(CASES))
def test_onnx_matches_torch_on_the_bonafide_logit(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build(arch, **CASES[arch]).eval()
    save_checkpoint(tmp_path / "ck", model, arch=arch, model_config=CASES[arch])
    result = export_onnx(tmp_path / "ck", tmp_path / "m.onnx")
    window = int(result.metadata["window_samples"])
    assert window == min(model.input_length, getattr(model, "max_input_length", None) or model.input_length)
    limit = getattr(model, "max_input_length", None)
    diff = _parity(model, tmp_path / "m.onnx", window, _shapes(window, limit))
    assert diff <= 1e-4, f"{arch}: onnxruntime differs from torch by {diff:.3g}"


def test_ssl_head_exports_with_its_wav2vec2_front_end(tmp_path: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    tiny = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(8, 8, 8),
        conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, vocab_size=4,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**tiny)).save_pretrained(str(tmp_path / "w2v"))
    head = {"filts": [24, [1, 8], [8, 8], [8, 8], [8, 8]], "gat_dims": [8, 8], "nb_samp": 8_000}
    src = str(tmp_path / "w2v")
    model = build("ssl-aasist", backbone="hf", source=src, aggregation="weighted-sum", head_kwargs=head)
    model.eval()
    save_checkpoint(tmp_path / "ck", model, arch="ssl-aasist", model_config=model.checkpoint_config())
    export_onnx(tmp_path / "ck", tmp_path / "ssl.onnx")
    assert _parity(model, tmp_path / "ssl.onnx", 8_000, _shapes(8_000)) <= 1e-4


def test_aasist_parity_and_metadata_props(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build("aasist", **TINY_GRAPH).eval()
    cal = {"scale": 2.0, "offset": 0.5, "prior": 0.5}
    save_checkpoint(tmp_path / "ck", model, arch="aasist", model_config=TINY_GRAPH, meta={"calibration": cal})
    export_onnx(tmp_path / "ck", tmp_path / "m.onnx", window=6_000)
    assert _parity(model, tmp_path / "m.onnx", 6_000, _shapes(6_000)) <= 1e-4
    props = ort.InferenceSession(str(tmp_path / "m.onnx")).get_modelmeta().custom_metadata_map
    assert props["arch"] == "aasist" and props["sample_rate"] == "16000"
    assert props["window_samples"] == "6000"  # the requested window wins over the model's
    assert json.loads(props["calibration"]) == cal
    assert props["threshold_source"] == "calibration"
    assert float(props["threshold"]) == pytest.approx(-0.25)  # (logit(0.5) - offset) / scale
    assert json.loads(props["model_config"])["gat_dims"] == [16, 8]
    assert len(props["checkpoint_sha256"]) == 64


class _Bessel(CountermeasureModel):
    """A model whose forward uses aten::i0, which has no ONNX symbolic."""

    input_length = 800

    def __init__(self) -> None:
        super().__init__()
        self.out = torch.nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.special.i0(x).mean(dim=1, keepdim=True))


def test_unsupported_operator_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"_Bessel: cannot export to ONNX: operator aten::i0 has no ONNX"):
        export_onnx(_Bessel(), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safespeak.cli import main

    torch.manual_seed(0)
    model = build("lcnn", **CASES["lcnn"]).eval()
    save_checkpoint(tmp_path / "ck", model, arch="lcnn", model_config=CASES["lcnn"])
    assert main(["export", "--checkpoint", str(tmp_path / "ck"), "--output", str(tmp_path / "o.onnx")]) == 0
    out = capsys.readouterr().out
    assert f"exported lcnn -> {tmp_path / 'o.onnx'} (window 8000 samples" in out and "max |diff|" in out
    assert _parity(model, tmp_path / "o.onnx", 8_000, [(2, 9_000)]) <= 1e-4
    (tmp_path / "bad.json").write_text("{not json")
    bad = ["export", "--checkpoint", str(tmp_path / "bad.json"), "--output", str(tmp_path / "x.onnx")]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("safespeak: error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()
