"""Bona fide sources: real human speech shipped in Debian packages.

Each package is fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a cache folder
(`$SAFESPEAK_CACHE`, default `~/.cache/safespeak`); nothing is installed. A reader turns the unpacked
tree into `Utterance` records (audio path, language, speaker, text when the package ships it).

| source     | package(s)                                           | content                             |
|------------|------------------------------------------------------|-------------------------------------|
| tuxpaint   | tuxpaint-stamps-default                              | stamp descriptions, ~12 languages   |
| asterisk   | asterisk-core-sounds-en-g722 (+ -en for transcripts) | IVR prompts, one speaker, G.722     |
| klettres   | klettres-data                                        | letters and syllables, ~20 langs    |
| ktuberling | ktuberling-data                                      | object names, ~25 languages         |

Speakers are not labelled in these packages; one speaker per (source, language) is the closest
grouping they allow (asterisk is one speaker, Allison Smith).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from safespeak.audio import AudioError, resample

__all__ = [
    "SOURCES",
    "SourceUnavailable",
    "Utterance",
    "cache_dir",
    "ensure_package",
    "enumerate_source",
    "load_utterance",
    "package_licences",
    "package_version",
    "to_16k",
]

MIN_NATIVE_RATE = 16000  # 8 kHz material would make bandwidth a bona fide/spoof shortcut


class SourceUnavailable(RuntimeError):
    """A source package cannot be fetched (no apt-get, no network, unknown package)."""


@dataclass(frozen=True)
class Utterance:
    """One bona fide recording. `key` is stable across builds; `group` decides the split."""

    key: str
    source: str
    path: str
    language: str
    speaker: str
    text: str | None
    group: str


def cache_dir() -> Path:
    """`$SAFESPEAK_CACHE` or `~/.cache/safespeak`."""
    env = os.environ.get("SAFESPEAK_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "safespeak"


def _deb_file(package: str, debs: Path) -> Path:
    found = sorted(debs.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise SourceUnavailable(f"{package}: not in {debs} and apt-get is not available to download it")
    debs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not found:
        raise SourceUnavailable(
            f"{package}: `apt-get download` failed (rc={proc.returncode}): {proc.stderr.strip()[-300:]}"
            " — run `apt-get update` first or put the .deb into " + str(debs)
        )
    return found[-1]


def ensure_package(package: str, root: Path | None = None) -> Path:
    """Download (once) and unpack (once) a Debian package; return the unpacked tree."""
    root = root or cache_dir()
    dest = root / "extracted" / package
    if (dest / ".complete").is_file():
        return dest
    deb = _deb_file(package, root / "debs")
    if shutil.which("dpkg-deb") is None:
        raise SourceUnavailable(f"{package}: dpkg-deb is needed to unpack {deb}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=dest.parent))
    try:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True, capture_output=True)
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        ).stdout.strip()
        (tmp / ".complete").write_text(version + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def package_version(tree: Path) -> str:
    """Version recorded when the package was unpacked."""
    return (tree / ".complete").read_text().strip()


def package_licences(tree: Path, package: str) -> list[str]:
    """Distinct `License:` values of the package's Debian copyright file."""
    path = tree / "usr" / "share" / "doc" / package / "copyright"
    if not path.is_file():
        return []
    found = re.findall(r"^License:\s*(\S.*)$", path.read_text(errors="replace"), flags=re.M)
    return sorted({f.strip() for f in found})


def _native_rate_ok(path: Path) -> bool:
    try:
        return sf.info(str(path)).samplerate >= MIN_NATIVE_RATE
    except (sf.LibsndfileError, RuntimeError):
        return False


# --- readers: unpacked tree(s) -> utterances -----------------------------------------------------


def _tuxpaint_texts(txt: Path) -> dict[str, str]:
    """`lang.utf8=text` lines; the first plain line is the English text."""
    texts: dict[str, str] = {}
    for i, line in enumerate(txt.read_text(encoding="utf-8", errors="replace").splitlines()):
        m = re.match(r"^([A-Za-z_@]+)\.utf8=(.*)$", line)
        if m:
            texts.setdefault(m.group(1), m.group(2).strip())
        elif i == 0 and line.strip():
            texts["en"] = line.strip()
    return texts


def _read_tuxpaint(trees: dict[str, Path]) -> list[Utterance]:
    base = trees["tuxpaint-stamps-default"] / "usr" / "share" / "tuxpaint" / "stamps"
    out = []
    for ogg in sorted(base.rglob("*_desc*.ogg")):
        m = re.match(r"^(.*)_desc(?:_([A-Za-z@]+(?:_[A-Z]{2})?))?$", ogg.stem)
        if not m or not _native_rate_ok(ogg):
            continue
        stem, lang = m.group(1), m.group(2) or "en"
        txt = ogg.with_name(stem + ".txt")
        text = _tuxpaint_texts(txt).get(lang) if txt.is_file() else None
        rel = ogg.relative_to(base).with_suffix("").as_posix()
        out.append(Utterance(f"tuxpaint/{rel}", "tuxpaint", str(ogg), lang, f"TUX_{lang}", text, lang))
    return out


def _asterisk_texts(tree: Path) -> dict[str, str]:
    path = tree / "usr" / "share" / "doc" / "asterisk-core-sounds-en" / "core-sounds-en.txt.gz"
    texts = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            name, sep, text = line.partition(":")
            if sep and not line.startswith(";") and " " not in name.strip():
                texts[name.strip()] = text.strip()
    return texts


def _read_asterisk(trees: dict[str, Path]) -> list[Utterance]:
    base = trees["asterisk-core-sounds-en-g722"] / "usr" / "share" / "asterisk" / "sounds" / "en_US_f_Allison"
    texts = _asterisk_texts(trees["asterisk-core-sounds-en"])
    out = []
    for f in sorted(base.rglob("*.g722")):
        name = f.relative_to(base).with_suffix("").as_posix()
        text = texts.get(name)
        if name.startswith("silence/") or (text or "").startswith("["):  # tones and silence
            continue
        out.append(Utterance(f"asterisk/{name}", "asterisk", str(f), "en", "AST_allison", text or None,
                             f"asterisk:{name}"))
    return out


def _xml_sounds(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """(language code, [(name, file)]) of a klettres sounds.xml or ktuberling .soundtheme."""
    text = re.sub(r"<\?xml[^>]*\?>", "", path.read_text(encoding="utf-8", errors="replace"))
    root = ET.fromstring(f"<r>{text}</r>")  # themes are fragments without a single root
    lang = root.find(".//language")
    code = lang.get("code", path.stem) if lang is not None else path.stem
    return code, [(s.get("name", ""), s.get("file", "")) for s in root.iter("sound")]


def _read_klettres(trees: dict[str, Path]) -> list[Utterance]:
    base = trees["klettres-data"] / "usr" / "share" / "klettres"
    out = []
    for xml in sorted(base.glob("*/sounds.xml")):
        code, sounds = _xml_sounds(xml)
        for name, file in sounds:
            path = base / file
            if not name or not path.is_file() or not _native_rate_ok(path):
                continue
            text = name if len(name) == 1 else name.lower()  # "BA" would be spelled out letter by letter
            key = f"klettres/{Path(file).with_suffix('').as_posix()}"
            out.append(Utterance(key, "klettres", str(path), code, f"KLE_{code}", text, code))
    return out


def _ktuberling_text(code: str, name: str, file: str) -> str | None:
    """English themes speak the sound name; others carry the word in the file name, when translated."""
    if code == "en":
        return re.sub(r"[-_]+", " ", name).strip()
    tokens = [t for t in re.split(r"[-_\s]+", Path(file).stem.lower()) if t]
    if not tokens or set(tokens) <= set(re.split(r"[-_\s]+", name.lower())):
        return None  # file named after the English key: the spoken word is not written down
    stem = Path(file).stem
    stem = stem.split("_", 1)[1] if "_" in stem else stem  # "patate_ballon" -> "ballon"
    return re.sub(r"[-_]+", " ", stem).strip()


def _read_ktuberling(trees: dict[str, Path]) -> list[Utterance]:
    base = trees["ktuberling-data"] / "usr" / "share" / "ktuberling" / "sounds"
    out = []
    for theme in sorted(base.glob("*.soundtheme")):
        code, sounds = _xml_sounds(theme)
        for name, file in sounds:
            path = base / file
            if not path.is_file() or not _native_rate_ok(path):
                continue
            key = f"ktuberling/{Path(file).with_suffix('').as_posix()}"
            text = _ktuberling_text(code, name, file)
            out.append(Utterance(key, "ktuberling", str(path), code, f"KTU_{code}", text, code))
    return out


@dataclass(frozen=True)
class Source:
    """A bona fide source: the packages it needs and its reader."""

    name: str
    packages: tuple[str, ...]
    reader: Callable[[dict[str, Path]], list[Utterance]]
    description: str


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("tuxpaint", ("tuxpaint-stamps-default",), _read_tuxpaint,
               "Tux Paint stamp descriptions read by volunteers, 44.1 kHz Ogg Vorbis, text per language"),
        Source("asterisk", ("asterisk-core-sounds-en-g722", "asterisk-core-sounds-en"), _read_asterisk,
               "Asterisk IVR prompts (Allison Smith), G.722 wideband 16 kHz, transcripts from -en"),
        Source("klettres", ("klettres-data",), _read_klettres,
               "KLettres letters and syllables read by native speakers, text = the letter/syllable"),
        Source("ktuberling", ("ktuberling-data",), _read_ktuberling,
               "KTuberling object names; text from the theme (en) or the file name (other languages)"),
    )
}


READER_VERSION = "2"  # bump when a reader changes what it returns


def enumerate_source(name: str, root: Path | None = None) -> tuple[list[Utterance], dict[str, Path]]:
    """Fetch a source's packages and list its utterances (sorted by key; the list is cached)."""
    if name not in SOURCES:
        raise KeyError(f"unknown source {name!r}; known: {sorted(SOURCES)}")
    src = SOURCES[name]
    root = root or cache_dir()
    trees = {p: ensure_package(p, root) for p in src.packages}
    tag = "-".join(package_version(t) for t in trees.values()).replace(":", "_").replace("/", "_")
    index = root / "index" / f"{name}-r{READER_VERSION}-{tag}.json"
    if index.is_file():
        rows = json.loads(index.read_text(encoding="utf-8"))
        return [Utterance(**r) for r in rows], trees
    utts = sorted(src.reader(trees), key=lambda u: u.key)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps([asdict(u) for u in utts], ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, index)
    return utts, trees


def _read_g722(path: Path) -> np.ndarray:
    import G722  # the `g722` PyPI package (libg722)

    data = path.read_bytes()
    if not data:
        raise AudioError(path, "empty G.722 file")
    pcm = np.asarray(G722.G722(16000, 64000).decode(data), dtype=np.float32) / 32768.0
    return pcm


def load_utterance(utt: Utterance) -> tuple[np.ndarray, int]:
    """Decode an utterance to mono float32; returns (samples (T,), native rate)."""
    path = Path(utt.path)
    if path.suffix == ".g722":
        return _read_g722(path), 16000
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(path, f"unreadable audio ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(path, "zero-length audio")
    return data.mean(axis=1), int(sr)


def to_16k(utt: Utterance) -> np.ndarray:
    """The utterance as (T,) float32 at 16 kHz."""
    x, sr = load_utterance(utt)
    return resample(x, sr, 16000)
