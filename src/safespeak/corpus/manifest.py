"""`corpus.json`, the manifest of a built corpus, as a typed record (schema 2; schema 1 files, written
before the schema field existed, read the same)."""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from safespeak.errors import SafespeakError

__all__ = ["MANIFEST_SCHEMA", "CorpusManifest"]

MANIFEST_SCHEMA = 2


@dataclass(frozen=True)
class CorpusManifest:
    """What a corpus holds and how it was made: sources with versions and licences, engines, attacks,
    channel policy, per-split counts, items left out (`dropped`, each with its reason), layout."""

    name: str
    builder_version: int
    cache_key: str
    seed: int
    size: dict[str, Any]
    sources: dict[str, Any]
    engines: dict[str, Any]
    attacks: dict[str, dict[str, Any]]
    channel: Any
    counts: dict[str, dict[str, int]]
    dropped: list[str] = field(default_factory=list)
    layout: dict[str, list[str]] = field(default_factory=dict)
    licence_note: str = ""
    schema_version: int = MANIFEST_SCHEMA

    def to_json(self) -> str:
        """Indented JSON (UTF-8 text kept as is), newline-terminated."""
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike[str] = "corpus.json") -> CorpusManifest:
        """Parse a manifest; a foreign, newer or incomplete file raises `SafespeakError` naming the field."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SafespeakError(f"not valid JSON ({exc.msg})", path=source, line=exc.lineno) from None
        if not isinstance(doc, dict):
            raise SafespeakError("a corpus manifest must be a JSON object", path=source)
        version = doc.setdefault("schema_version", 1)
        if not isinstance(version, int) or version > MANIFEST_SCHEMA:
            raise SafespeakError(f"unsupported schema_version {version!r}", path=source)
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        unknown = sorted(set(doc) - names)
        missing = [n for n in required if n not in doc]
        problems = [f"unknown field(s) {', '.join(unknown)}"] if unknown else []
        problems += [f"missing field(s) {', '.join(missing)}"] if missing else []
        if problems:
            raise SafespeakError("; ".join(problems), path=source)
        return cls(**{**doc, "schema_version": MANIFEST_SCHEMA})
