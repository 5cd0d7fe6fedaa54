"""corpus.json as a typed record: round trip, schema-1 files, clear errors naming file and field."""

from __future__ import annotations

import json

import pytest

from safespeak.corpus.manifest import MANIFEST_SCHEMA, CorpusManifest
from safespeak.errors import SafespeakError

FIELDS = {
    "name": "c", "builder_version": 3, "cache_key": "k" * 64, "seed": 0, "size": {"name": "mini"},
    "sources": {"tuxpaint": {"packages": {}}}, "engines": {"espeak-ng": "1.51"},
    "attacks": {"A01": {"system": "espeak-ng"}}, "channel": {"codecs": ["none"]},
    "counts": {"train": {"bonafide": 2, "A01": 3}}, "dropped": ["A01_x: festival crashed"],
    "layout": {"train": ["protocols/train.txt", "train/flac"]}, "licence_note": "GPL",
}  # fmt: skip


def test_round_trip_and_schema_1_files() -> None:
    m = CorpusManifest(**FIELDS)
    assert CorpusManifest.from_json(m.to_json()) == m
    assert json.loads(m.to_json())["schema_version"] == MANIFEST_SCHEMA
    old = CorpusManifest.from_json(json.dumps(FIELDS))  # written before schema_version existed
    assert old == m and old.counts["train"]["A01"] == 3


def test_bad_manifests_name_the_file_and_field() -> None:
    with pytest.raises(SafespeakError, match=r"c/corpus\.json: unknown field\(s\) colour"):
        CorpusManifest.from_json(json.dumps({**FIELDS, "colour": 1}), "c/corpus.json")
    partial = {k: v for k, v in FIELDS.items() if k != "counts"}
    with pytest.raises(SafespeakError, match=r"corpus\.json: missing field\(s\) counts"):
        CorpusManifest.from_json(json.dumps(partial))
    with pytest.raises(SafespeakError, match=r"corpus\.json:1: not valid JSON"):
        CorpusManifest.from_json("{oops")
    with pytest.raises(SafespeakError, match="unsupported schema_version 99"):
        CorpusManifest.from_json(json.dumps({**FIELDS, "schema_version": 99}))
