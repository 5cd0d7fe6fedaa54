"""Build the offline corpus: pick utterances per split, synthesise spoofs, write an ASVspoof-like tree.

Layout under `out_dir` (the ASVspoof 2019 LA one, readable with `--protocol-format asvspoof2019-la`):
```
ASVspoof2019_LA_{train,dev,eval}/flac/SS_{T,D,E}_0000001.flac
ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt   (spk utt - attack key)
metadata/{train,dev,eval}.tsv   (utt, key, attack, source, language, speaker, source key, text)
corpus.json                     (manifest: sources, versions, licences, attacks, channel, counts, seed)
```
Splits are speaker-disjoint: a speaker is a (source, language) pair and each pair belongs to one split;
asterisk (one speaker) is split by prompt instead, so its texts are disjoint but its speaker is shared.
Spoofs of a split are made only from that split's utterances, with the same text and language; the
protocol's speaker column of a spoof is the speaker of its source utterance (the target), as in ASVspoof.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from safespeak.audio import save_audio
from safespeak.checkpoint import atomic_write, file_sha256
from safespeak.corpus.attacks import ATTACKS, AttackError, eligible, engine_versions, run_attack
from safespeak.corpus.channel import CHANNEL_POLICY, condition
from safespeak.corpus.manifest import CorpusManifest
from safespeak.corpus.sources import (
    SOURCES,
    Utterance,
    enumerate_source,
    package_licences,
    package_version,
    to_16k,
)
from safespeak.errors import SafespeakError

__all__ = ["SIZES", "CorpusInfo", "SizeSpec", "SplitInfo", "build_corpus", "corpus_split", "split_of"]

BUILDER_VERSION = "1"
SPLITS = ("train", "dev", "eval")
_CODE = {"train": "T", "dev": "D", "eval": "E"}
_PROTOCOL = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}

# One split per (source, language) group = per speaker. Unlisted groups go to eval (unseen speakers).
_GROUP_SPLITS: dict[str, dict[str, tuple[str, ...]]] = {
    "tuxpaint": {"train": ("fr", "ru", "bg", "ca"), "dev": ("ro", "el")},
    "klettres": {"train": ("ml", "es", "pt_BR", "it", "hu", "de", "cs", "ar"),
                 "dev": ("lt", "ru", "nds", "fr", "he", "nb")},
    "ktuberling": {"train": ("nn", "ca", "uk", "de", "gl"), "dev": ("fr", "da", "wa", "el")},
}


@dataclass(frozen=True)
class SizeSpec:
    """How much to build: bona fide per split and spoofs per (split, attack); None = all / automatic.

    Automatic spoof counts are half the split's bona fide count per attack.
    """

    name: str
    bonafide: dict[str, int | None]
    spoof_per_attack: dict[str, int | None]
    sources: tuple[str, ...] = tuple(SOURCES)


SIZES = {
    "mini": SizeSpec("mini", {"train": 600, "dev": 200, "eval": 300}, {"train": 300, "dev": 100, "eval": 75}),
    "full": SizeSpec("full", dict.fromkeys(SPLITS), dict.fromkeys(SPLITS)),
}


@dataclass(frozen=True)
class SplitInfo:
    """Where one split lives and what it holds (`counts`: attack id or "bonafide" -> files)."""

    name: str
    protocol: Path
    audio_dir: Path
    counts: dict[str, int]


@dataclass(frozen=True)
class CorpusInfo:
    """A built corpus: root folder, per-split protocol/audio paths, attack table, manifest path."""

    root: Path
    size: str
    seed: int
    splits: dict[str, SplitInfo]
    attacks: dict[str, dict[str, object]]
    manifest: Path
    reused: bool = False
    dropped: list[str] = field(default_factory=list)

    def split(self, name: str) -> tuple[Path, Path]:
        """(protocol path, audio dir) of `name` in train/dev/eval."""
        if name not in self.splits:
            raise KeyError(f"unknown split {name!r}; known: {list(self.splits)}")
        return self.splits[name].protocol, self.splits[name].audio_dir


@dataclass(frozen=True)
class _Item:
    utt_id: str
    split: str
    attack: str  # "-" for bona fide
    utt: Utterance
    seed: int


def split_of(utt: Utterance) -> str:
    """The split an utterance belongs to (fixed, independent of the seed)."""
    if utt.source == "asterisk":
        h = int(hashlib.sha256(utt.group.encode()).hexdigest()[:8], 16) % 10
        return "train" if h < 6 else "dev" if h < 8 else "eval"
    for split, groups in _GROUP_SPLITS.get(utt.source, {}).items():
        if utt.group in groups:
            return split
    return "eval"


def corpus_split(root: str | os.PathLike[str], split: str) -> tuple[Path, Path]:
    """(protocol path, audio dir) of a split of a corpus built under `root`."""
    if split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; known: {list(SPLITS)}")
    root = Path(root)
    protocol = root / "ASVspoof2019_LA_cm_protocols" / f"ASVspoof2019.LA.cm.{_PROTOCOL[split]}.txt"
    return protocol, root / f"ASVspoof2019_LA_{split}" / "flac"


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _item_seed(seed: int, utt_id: str) -> int:
    return int(hashlib.sha256(f"{seed}:{utt_id}".encode()).hexdigest()[:16], 16)


def _balanced_pick(pool: list[Utterance], n: int | None, rng: np.random.Generator) -> list[Utterance]:
    """`n` utterances drawn round-robin over sources (each shuffled), so no source dominates."""
    by_source: dict[str, list[Utterance]] = {}
    for u in pool:
        by_source.setdefault(u.source, []).append(u)
    queues = []
    for name in sorted(by_source):
        order = rng.permutation(len(by_source[name]))
        queues.append([by_source[name][i] for i in order])
    picked: list[Utterance] = []
    depth = 0
    total = len(pool) if n is None else min(n, len(pool))
    while len(picked) < total:
        picked.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return picked[:total]


def _plan(pools: dict[str, list[Utterance]], spec: SizeSpec, seed: int) -> list[_Item]:
    items = []
    for s_idx, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, s_idx])
        pool = pools[split]
        rows = [("-", u) for u in _balanced_pick(pool, spec.bonafide[split], rng)]
        n_bona = len(rows)
        for aid, attack in ATTACKS.items():
            if split not in attack.splits:
                continue
            n = spec.spoof_per_attack[split]
            n = max(1, n_bona // 2) if n is None else n
            rows += [(aid, u) for u in _balanced_pick([u for u in pool if eligible(aid, u)], n, rng)]
        order = rng.permutation(len(rows))
        for k, i in enumerate(order, start=1):
            utt_id = f"SS_{_CODE[split]}_{k:07d}"
            items.append(_Item(utt_id, split, rows[i][0], rows[i][1], _item_seed(seed, utt_id)))
    return items


def _make_item(job: tuple[_Item, str]) -> tuple[str, str | None, str]:
    """Worker: synthesise/condition/write one file; returns (utt_id, sha256 or None, error)."""
    item, out = job
    rng = np.random.default_rng(item.seed)
    try:
        audio = to_16k(item.utt)
        if item.attack == "-":
            y, sr = audio, 16000
        else:
            y, sr = run_attack(item.attack, item.utt, audio, rng)
        y = condition(y, sr, rng)
    except (AttackError, ValueError) as exc:
        what = "bona fide" if item.attack == "-" else f"attack {item.attack}"
        return item.utt_id, None, f"{item.utt_id} ({item.split}, {what}, from {item.utt.key}): {exc}"
    path = corpus_split(out, item.split)[1] / f"{item.utt_id}.flac"
    save_audio(path, y)
    return item.utt_id, file_sha256(path), ""


def _worker_init() -> None:
    try:
        import torch

        torch.set_num_threads(1)  # two workers on two cores; more threads only contend
    except ImportError:  # pragma: no cover
        pass


def _run_items(
    items: list[_Item], out: Path, workers: int, progress: bool
) -> tuple[dict[str, str], list[str]]:
    """Make every item; returns ({utt_id: sha256} of the files written, [errors of dropped items])."""
    from safespeak.progress import Progress

    jobs = [(it, str(out)) for it in items]
    hashes: dict[str, str] = {}
    errors: list[str] = []
    with ExitStack() as stack:
        if workers <= 1:  # in-process: the caller's torch thread setting is left alone
            stream: Iterable[tuple[str, str | None, str]] = map(_make_item, jobs)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, initializer=_worker_init))
            stream = pool.map(_make_item, jobs, chunksize=4)
        bar = Progress(stream, total=len(jobs), desc="corpus", unit="file", enabled=progress)
        for utt_id, sha, err in bar:
            if sha is None:
                errors.append(err)
            else:
                hashes[utt_id] = sha
    return hashes, errors


def _write_tables(items: list[_Item], hashes: dict[str, str], out: Path) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        rows = sorted((it for it in items if it.split == split and it.utt_id in hashes),
                      key=lambda it: it.utt_id)
        protocol, _ = corpus_split(out, split)
        proto = "".join(
            f"{it.utt.speaker} {it.utt_id} - {it.attack} {'bonafide' if it.attack == '-' else 'spoof'}\n"
            for it in rows
        )
        _write_text(protocol, proto)
        meta = "utt\tkey\tattack\tsource\tlanguage\tspeaker\tsource_key\tsha256\ttext\n" + "".join(
            f"{it.utt_id}\t{'bonafide' if it.attack == '-' else 'spoof'}\t{it.attack}\t{it.utt.source}\t"
            f"{it.utt.language}\t{it.utt.speaker}\t{it.utt.key}\t{hashes[it.utt_id]}\t"
            f"{(it.utt.text or '').replace(chr(9), ' ').replace(chr(10), ' ')}\n"
            for it in rows
        )
        _write_text(out / "metadata" / f"{split}.tsv", meta)
        c = Counter("bonafide" if it.attack == "-" else it.attack for it in rows)
        counts[split] = dict(sorted(c.items()))
    return counts


def _resolve_size(size: str | SizeSpec) -> SizeSpec:
    if isinstance(size, SizeSpec):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r}; known: {sorted(SIZES)} (or pass a SizeSpec)")
    return SIZES[size]


def _load_pools(spec: SizeSpec) -> tuple[dict[str, list[Utterance]], dict[str, dict[str, object]]]:
    pools: dict[str, list[Utterance]] = {s: [] for s in SPLITS}
    sources: dict[str, dict[str, object]] = {}
    for name in spec.sources:
        utts, trees = enumerate_source(name)
        for u in utts:
            pools[split_of(u)].append(u)
        sources[name] = {
            "description": SOURCES[name].description,
            "packages": {p: {"version": package_version(t), "licences": package_licences(t, p)}
                         for p, t in trees.items()},
            "utterances": dict(Counter(split_of(u) for u in utts)),
            "with_text": sum(u.text is not None for u in utts),
        }
    return pools, sources


def _cache_key(spec: SizeSpec, seed: int, sources: dict[str, dict[str, object]], engines: dict) -> str:
    blob = json.dumps([BUILDER_VERSION, asdict(spec), seed, sources, engines, CHANNEL_POLICY], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _info_from_manifest(root: Path, manifest: CorpusManifest, reused: bool) -> CorpusInfo:
    splits = {}
    for split in SPLITS:
        protocol, audio = corpus_split(root, split)
        splits[split] = SplitInfo(split, protocol, audio, manifest.counts[split])
    return CorpusInfo(root, manifest.size["name"], manifest.seed, splits, manifest.attacks,
                      root / "corpus.json", reused, list(manifest.dropped))


def _reusable(root: Path, key: str) -> CorpusManifest | None:
    path = root / "corpus.json"
    if not path.is_file():
        return None
    try:
        manifest = CorpusManifest.from_json(path.read_text(encoding="utf-8"), path)
    except (SafespeakError, UnicodeDecodeError):  # a foreign or damaged manifest: build again
        return None
    if manifest.cache_key != key:
        return None
    for split in SPLITS:
        protocol, audio = corpus_split(root, split)
        if not protocol.is_file():
            return None
        ids = [line.split()[1] for line in protocol.read_text().splitlines() if line.strip()]
        if not all((audio / f"{i}.flac").is_file() for i in ids):
            return None
    return manifest


def build_corpus(
    out_dir: str | os.PathLike[str],
    size: str | SizeSpec = "mini",
    seed: int = 0,
    progress: bool = True,
    workers: int = 2,
) -> CorpusInfo:
    """Build (or reuse, when seed, size and versions match) the corpus under `out_dir`.

    `size` is "mini" (about 3,000 files, minutes on 2 cores), "full" (every bona fide utterance) or a
    `SizeSpec` with explicit counts. Items that an engine cannot synthesise are dropped and listed in
    the manifest (`CorpusInfo.dropped`; `summary.build_lines` shows them). Raises `SourceUnavailable`
    when a source package cannot be fetched.
    """
    root = Path(out_dir)
    spec = _resolve_size(size)
    pools, sources = _load_pools(spec)
    engines = engine_versions()
    key = _cache_key(spec, seed, sources, engines)
    cached = _reusable(root, key)
    if cached is not None:
        return _info_from_manifest(root, cached, reused=True)
    items = _plan(pools, spec, seed)
    (root / "corpus.json").unlink(missing_ok=True)
    for split in SPLITS:  # a previous build with other settings must not leave stray files behind
        shutil.rmtree(corpus_split(root, split)[1], ignore_errors=True)
    hashes, dropped = _run_items(items, root, workers, progress)
    counts = _write_tables(items, hashes, root)
    manifest = CorpusManifest(
        name="safespeak offline real-speech spoofing corpus",
        builder_version=BUILDER_VERSION,
        cache_key=key,
        seed=seed,
        size=asdict(spec),
        sources=sources,
        engines=engines,
        attacks={a.attack_id: asdict(a) for a in ATTACKS.values()},
        channel=CHANNEL_POLICY,
        counts=counts,
        dropped=dropped,
        layout={s: [str(p.relative_to(root)) for p in corpus_split(root, s)] for s in SPLITS},
        licence_note="Bona fide files keep the licence of their Debian package (see sources); spoofs are "
        "derived from those files or their texts and are distributed under the same terms.",
    )
    _write_text(root / "corpus.json", manifest.to_json())
    return _info_from_manifest(root, manifest, reused=False)
