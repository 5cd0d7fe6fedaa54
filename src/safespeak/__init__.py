"""safespeak: voice anti-spoofing (audio deepfake detection) toolkit.

Score convention everywhere: higher score = more bona fide; label 1 = bona fide, 0 = spoof.
"""

from __future__ import annotations

__version__ = "0.1.0"

SAMPLE_RATE = 16_000

__all__ = ["SAMPLE_RATE", "__version__"]
