"""safespeak: voice anti-spoofing (audio deepfake detection) toolkit.

Score convention everywhere: higher score = more bona fide; label 1 = bona fide, 0 = spoof.

Public API: `evaluate` (score file + protocol -> `EvaluationResult`), `Detector` (checkpoint -> scores,
labels and per-window timelines of files and waveforms), `__version__`, `SAMPLE_RATE`.
They load on first use, so `import safespeak` (and `safespeak --help`) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

SAMPLE_RATE = 16_000

# public name -> module that defines it (imported on first attribute access)
_LAZY = {
    "evaluate": "safespeak.evaluate",
    "EvaluationResult": "safespeak.evaluate",
    "Detector": "safespeak.inference",
}

__all__ = ["SAMPLE_RATE", "Detector", "EvaluationResult", "__version__", "evaluate"]

if TYPE_CHECKING:
    from safespeak.evaluate import EvaluationResult, evaluate
    from safespeak.inference import Detector


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'safespeak' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
