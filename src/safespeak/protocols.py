"""Dataset protocols -> one `Trial` record type.

Formats are always explicit (`--protocol-format`), never guessed from a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

BONAFIDE = 1
SPOOF = 0


@dataclass(frozen=True)
class Trial:
    """One trial of a protocol.

    `label`: 1 bona fide, 0 spoof, None when the protocol has no key. `attack`: attack id, "-" for
    bona fide. `path`: audio file when known. `conditions`: other fields, e.g. codec, transmission,
    subset, vocoder, source, trim.
    """

    trial_id: str
    label: int | None
    speaker: str = "-"
    path: str | None = None
    attack: str = "-"
    conditions: Mapping[str, str] = field(default_factory=dict)
