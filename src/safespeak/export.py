"""ONNX export of a countermeasure with its metadata, checked against torch with onnxruntime.

The exported graph takes `waveform` (batch, samples) float32 — 16 kHz mono, both axes dynamic — and
returns `logits` (batch, 2) `[spoof, bonafide]`: the model's `preprocess -> forward -> logits2`, so column
1 is the bona fide score that `safespeak score` averages over windows. The checkpoint's metadata (arch,
sample rate, scoring window, calibration, threshold) is stored in the model's `metadata_props`.

The graph is recorded by the TorchScript tracer (the `torch.export` path takes ~10x longer and
specialises the graph pools' node counts to the example length). Shape-dependent code in the models
has a traced form (`torch.jit.is_tracing()` in `models/blocks.py`, `models/lcnn.py`): graph pools keep
`k` as a function of the node count, the memory-saving autograd paths give way to plain ATen ops.
`export_onnx` therefore checks the result at a length and batch size that were not traced.
Known limit: SEMAA's single-node readout (inputs far shorter than its window) is not in the graph.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safespeak import SAMPLE_RATE, __version__
from safespeak.errors import SafespeakError

__all__ = ["ExportError", "OnnxExport", "export_onnx", "onnx_bytes", "read_onnx_metadata"]

OPSET = 17
INPUT, OUTPUT = "waveform", "logits"


class ExportError(SafespeakError):
    """A model that cannot be exported (an operator without an ONNX form) or whose export is wrong."""


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote: the file, its metadata and the torch-vs-onnxruntime check."""

    path: Path
    metadata: dict[str, str]
    max_abs_diff: float
    checked_shapes: tuple[tuple[int, int], ...]


class _Logits(torch.nn.Module):
    """(B, T) waveform -> (B, 2) `[spoof, bonafide]` logits, the full scoring path of one window."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.logits2(m(m.preprocess(x)))


def _unsupported(exc: Exception, arch: str) -> ExportError:
    text = " ".join(str(exc).split())
    op = re.search(r"operator '([\w:.]+)'", text)
    what = f"operator {op.group(1)} has no ONNX form (opset {OPSET})" if op else text.split(" [Caused")[0]
    return ExportError(f"{arch}: cannot export to ONNX: {what[:300]}")


def _metadata(meta: Any, window: int) -> dict[str, str]:
    """ONNX metadata_props (all strings; JSON for structured values)."""
    from safespeak.calibrate import ThresholdPolicy

    policy = ThresholdPolicy.from_meta(meta)
    props = {
        "arch": str(meta.get("arch")),
        "model_config": json.dumps(meta.get("model_config") or {}, sort_keys=True, default=str),
        "sample_rate": str(SAMPLE_RATE),
        "window_samples": str(window),
        "calibration": json.dumps(meta.get("calibration")),
        "threshold": json.dumps(policy.threshold),
        "threshold_source": policy.source,
        "checkpoint_sha256": str(meta.get("weights_sha256") or ""),
        "safespeak_version": __version__,
        "input": f"{INPUT}: (batch, samples) float32, mono {SAMPLE_RATE} Hz",
        "output": f"{OUTPUT}: (batch, 2) [spoof, bonafide]; score = bonafide logit, higher = bona fide",
    }
    return props


def onnx_bytes(
    model: torch.nn.Module, meta: Any | None = None, *, window: int | None = None, opset: int = OPSET
) -> bytes:
    """Trace `model` (in eval mode, on the CPU) into a serialized ONNX model with metadata."""
    import onnx

    meta = meta if meta is not None else {"arch": type(model).__name__}
    arch = str(meta.get("arch"))
    win = int(window or getattr(model, "input_length", SAMPLE_RATE))
    wrapped = _Logits(model.cpu().eval()).eval()
    example = torch.randn(2, win, generator=torch.Generator().manual_seed(0)) * 0.1  # (2, window)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            torch.onnx.export(
                wrapped, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT],
                output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch", 1: "samples"}, OUTPUT: {0: "batch"}},
            )  # fmt: skip
    except (torch.onnx.errors.OnnxExporterError, RuntimeError) as exc:
        raise _unsupported(exc, arch) from None
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in _metadata(meta, win).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "safespeak"
    return proto.SerializeToString()


def _check(model: torch.nn.Module, data: bytes, window: int) -> tuple[float, tuple[tuple[int, int], ...]]:
    """Max |onnxruntime - torch| over the logits at a length and batch size the trace never saw."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    wrapped = _Logits(model).eval()
    gen = torch.Generator().manual_seed(1)
    longer = window + window // 3 + 7  # a length the trace never saw; shorter for a bounded model
    limit = getattr(model, "max_input_length", None)
    shapes = ((3, longer if limit is None or longer <= limit else (3 * window) // 4 + 7),)
    worst = 0.0
    for shape in shapes:
        x = torch.randn(*shape, generator=gen) * 0.1
        with torch.no_grad():
            ref = wrapped(x).numpy()
        out = session.run(None, {INPUT: x.numpy()})[0]
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst, shapes


def export_onnx(
    source: str | os.PathLike[str] | torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    window: int | None = None,
    opset: int = OPSET,
    tolerance: float = 1e-3,
) -> OnnxExport:
    """Export a checkpoint (path) or a model to `path`; verified with onnxruntime before it is kept.

    The check runs torch and onnxruntime on random input of another length and batch size than traced;
    a difference above `tolerance` raises `ExportError` (a graph that does not follow the input length),
    as does an operator without an ONNX form (named in the message).
    """
    from safespeak.checkpoint import atomic_write, load_checkpoint
    from safespeak.score import scoring_window

    if isinstance(source, torch.nn.Module):
        model, meta = source.cpu().eval(), None
    else:
        model, meta = load_checkpoint(source, map_location="cpu")
    win = scoring_window(model, meta, window)
    meta = meta if meta is not None else {"arch": type(model).__name__}
    data = onnx_bytes(model, meta, window=win, opset=opset)
    diff, shapes = _check(model, data, win)
    if not diff <= tolerance:
        raise ExportError(
            f"{meta.get('arch')}: the ONNX graph differs from torch by {diff:.3g} (> {tolerance:g}) at "
            f"shapes {list(shapes)}; it does not follow the input length"
        )
    out = Path(path)
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(data))
    return OnnxExport(out, _metadata(meta, win), diff, shapes)


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata_props of an ONNX file, read with onnxruntime only."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)
