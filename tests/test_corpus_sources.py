"""Readers of the bona fide packages, on small trees shaped like the unpacked .debs."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from safespeak.corpus.build import split_of
from safespeak.corpus.sources import SOURCES, Utterance, load_utterance


def _wav(path: Path, sr: int = 44100, seconds: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    fmt = "OGG" if path.suffix == ".ogg" else None
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 200 * t), sr, format=fmt)


def test_tuxpaint_reader_takes_text_in_the_spoken_language(tmp_path: Path) -> None:
    base = tmp_path / "tux" / "usr/share/tuxpaint/stamps/animals"
    _wav(base / "frog_desc.ogg")
    _wav(base / "frog_desc_fr.ogg")
    _wav(base / "frog_desc_ru.ogg")
    _wav(base / "frog.ogg")  # the stamp's sound effect, not speech
    _wav(base / "owl_desc_es.ogg", sr=8000)  # narrowband: excluded
    txt = "A frog.\nfr.utf8=Une grenouille.\nde.utf8=Ein Frosch.\n"
    (base / "frog.txt").write_text(txt, encoding="utf-8")
    utts = SOURCES["tuxpaint"].reader({"tuxpaint-stamps-default": tmp_path / "tux"})
    by_lang = {u.language: u for u in utts}
    assert sorted(by_lang) == ["en", "fr", "ru"]
    assert by_lang["en"].text == "A frog."
    assert by_lang["fr"].text == "Une grenouille."
    assert by_lang["ru"].text is None  # no Russian line: TTS attacks cannot use it
    assert by_lang["fr"].speaker == "TUX_fr" and by_lang["fr"].key == "tuxpaint/animals/frog_desc_fr"


def test_asterisk_reader_uses_transcripts_and_skips_tones(tmp_path: Path) -> None:
    import G722

    sounds = tmp_path / "g722" / "usr/share/asterisk/sounds/en_US_f_Allison"
    pcm = (8000 * np.sin(2 * np.pi * 300 * np.arange(8000) / 16000)).astype(np.int16)
    data = bytes(G722.G722(16000, 64000).encode(pcm.tolist()))
    for name in ("thank-you", "beep", "digits/1", "silence/1"):
        (sounds / name).parent.mkdir(parents=True, exist_ok=True)
        (sounds / f"{name}.g722").write_bytes(data)
    doc = tmp_path / "en" / "usr/share/doc/asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    text = "; header\nthank-you: Thank you.\nbeep: [a beep tone]\ndigits/1: one\n"
    (doc / "core-sounds-en.txt.gz").write_bytes(gzip.compress(text.encode()))
    trees = {"asterisk-core-sounds-en-g722": tmp_path / "g722", "asterisk-core-sounds-en": tmp_path / "en"}
    utts = {u.key: u for u in SOURCES["asterisk"].reader(trees)}
    assert sorted(utts) == ["asterisk/digits/1", "asterisk/thank-you"]
    assert utts["asterisk/thank-you"].text == "Thank you."
    x, sr = load_utterance(utts["asterisk/digits/1"])
    assert sr == 16000 and x.size == 8000
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.fft.rfftfreq(x.size, 1 / 16000)[spec.argmax()] - 300) < 5  # decoded, not noise


def test_ktuberling_text_comes_from_translated_file_names_only(tmp_path: Path) -> None:
    base = tmp_path / "ktu" / "usr/share/ktuberling/sounds"
    for f in ("fr/patate_boucle-d-oreille.ogg", "de/ball.ogg", "en/ball.ogg"):
        _wav(base / f)
    (base / "fr.soundtheme").write_text(
        '<language code="fr">\n<sound name="earring" file="fr/patate_boucle-d-oreille.ogg" />\n</language>\n')
    for code in ("de", "en"):
        theme = f'<language code="{code}"><sound name="ball" file="{code}/ball.ogg" /></language>'
        (base / f"{code}.soundtheme").write_text(theme)
    utts = {u.language: u for u in SOURCES["ktuberling"].reader({"ktuberling-data": tmp_path / "ktu"})}
    assert utts["fr"].text == "boucle d oreille"
    assert utts["de"].text is None  # German file named after the English key
    assert utts["en"].text == "ball"


def test_klettres_reader_lowercases_syllables_not_letters(tmp_path: Path) -> None:
    base = tmp_path / "kle" / "usr/share/klettres"
    _wav(base / "es/alpha/a-0.ogg")
    _wav(base / "es/syllab/ba.ogg")
    (base / "es").mkdir(parents=True, exist_ok=True)
    (base / "es/sounds.xml").write_text(
        '<?xml version="1.0"?>\n<!-- c -->\n<klettres><language code="es"><alphabet>'
        '<sound name="A" file="es/alpha/a-0.ogg" /></alphabet><syllables>'
        '<sound name="BA" file="es/syllab/ba.ogg" /></syllables></language></klettres>')
    utts = {u.key: u for u in SOURCES["klettres"].reader({"klettres-data": tmp_path / "kle"})}
    assert utts["klettres/es/alpha/a-0"].text == "A"
    assert utts["klettres/es/syllab/ba"].text == "ba"


@pytest.mark.parametrize(
    ("source", "group", "split"),
    [("tuxpaint", "fr", "train"), ("tuxpaint", "ro", "dev"), ("tuxpaint", "es", "eval"),
     ("ktuberling", "fr", "dev"), ("klettres", "xx-new", "eval")],
)
def test_split_follows_the_speaker_group(source: str, group: str, split: str) -> None:
    utt = Utterance(f"{source}/k", source, "p", group, f"S_{group}", None, group)
    assert split_of(utt) == split


def test_asterisk_prompts_spread_over_all_splits() -> None:
    splits = [split_of(Utterance(f"asterisk/p{i}", "asterisk", "p", "en", "AST", None, f"asterisk:p{i}"))
              for i in range(400)]
    share = {s: splits.count(s) / len(splits) for s in ("train", "dev", "eval")}
    assert share["train"] == pytest.approx(0.6, abs=0.08)
    assert share["dev"] == pytest.approx(0.2, abs=0.06) and share["eval"] == pytest.approx(0.2, abs=0.06)
