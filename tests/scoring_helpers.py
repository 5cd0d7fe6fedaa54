"""A tiny registered model and audio writers for scoring / calibration / demo tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from safespeak.models.base import CountermeasureModel
from safespeak.models.registry import _REGISTRY, register


class MeanModel(CountermeasureModel):
    """Logits [-m, m] with m = w·mean(x) + b: the score of a window is known in closed form."""

    input_length = 1600

    def __init__(self, w: float = 1.0, b: float = 0.0) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(w)))
        self.b = torch.nn.Parameter(torch.tensor(float(b)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.w * x.mean(dim=1) + self.b  # (B,)
        return torch.stack([-m, m], dim=1)  # (B, 2)


if "test-mean" not in _REGISTRY:
    register("test-mean", description="test model: score = mean of the window")(MeanModel)


def write_wav(path: Path, x: np.ndarray, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x.astype(np.float32), sr, subtype="FLOAT" if path.suffix == ".wav" else "PCM_16")
    return path
