"""Attack implementations: copy-synthesis on a synthetic voice, TTS engines on a short text."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from safespeak.corpus.attacks import ATTACKS, _pyworld, eligible, espeak_voice, run_attack
from safespeak.corpus.sources import Utterance

SR = 16000


def _vowel(f0: float = 120.0, seconds: float = 0.8) -> np.ndarray:
    """A buzzy vowel: harmonics of f0 shaped by two formant-like peaks."""
    t = np.arange(int(SR * seconds)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k * (1 + 3 * np.exp(-((k * f0 - 700) / 200) ** 2)
                                                  + 2 * np.exp(-((k * f0 - 1200) / 250) ** 2))
            for k in range(1, 40) if k * f0 < 7000)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _median_f0(x: np.ndarray) -> float:
    pw = _pyworld()
    f0, _ = pw.dio(x.astype(np.float64), SR, frame_period=10.0)
    return float(np.median(f0[f0 > 0]))


UTT_EN = Utterance("asterisk/thanks", "asterisk", "-", "en", "AST_allison", "Thank you for calling.", "g")
UTT_FR = Utterance("tuxpaint/x_fr", "tuxpaint", "-", "fr", "TUX_fr", "Une grenouille.", "fr")


def _require_engine(cmd: str) -> None:
    if shutil.which(cmd) is None:
        msg = f"{cmd} is not installed (apt-get install the packages in .ci/apt-packages.txt)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


def test_attack_table_splits_like_asvspoof() -> None:
    seen = {a for a, at in ATTACKS.items() if "train" in at.splits}
    assert seen == {a for a, at in ATTACKS.items() if "dev" in at.splits}  # dev = train attacks
    unseen = {a for a, at in ATTACKS.items() if at.splits == ("eval",)}
    assert len(unseen) >= 3 and not unseen & seen
    assert {"tts", "copy"} <= {ATTACKS[a].kind for a in unseen}


@pytest.mark.parametrize("attack_id", ["A02", "A04", "A07", "A08"])
def test_copy_synthesis_is_seeded_and_keeps_length(attack_id: str) -> None:
    x = _vowel()
    y1, sr = run_attack(attack_id, UTT_EN, x, np.random.default_rng(3))
    y2, _ = run_attack(attack_id, UTT_EN, x, np.random.default_rng(3))
    assert sr == SR
    np.testing.assert_array_equal(y1, y2)
    assert abs(y1.size - x.size) <= 0.01 * x.size + 80
    assert np.isfinite(y1).all() and np.abs(y1).max() > 0.01
    assert not np.allclose(y1[: x.size], x[: y1.size], atol=1e-3)  # really resynthesised


def test_world_copy_keeps_pitch_and_vc_moves_it() -> None:
    x = _vowel(f0=120.0)
    same, _ = run_attack("A02", UTT_EN, x, np.random.default_rng(0))
    assert _median_f0(same) == pytest.approx(120.0, rel=0.05)
    ratios = [_median_f0(run_attack("A07", UTT_EN, x, np.random.default_rng(s))[0]) / 120.0 for s in range(4)]
    assert all(0.65 < r < 0.9 or 1.15 < r < 1.5 for r in ratios)


def test_eligibility_needs_text_and_a_voice() -> None:
    assert eligible("A02", Utterance("k", "tuxpaint", "-", "xx", "S", None, "g"))  # copy: any audio
    assert not eligible("A01", Utterance("k", "tuxpaint", "-", "fr", "S", None, "g"))  # TTS needs text
    assert not eligible("A03", UTT_FR)  # English-only engine
    assert eligible("A05", UTT_EN) and eligible("A06", UTT_EN)


@pytest.mark.parametrize(("attack_id", "engine", "utt"), [
    ("A01", "espeak-ng", UTT_FR), ("A03", "flite", UTT_EN), ("A06", "text2wave", UTT_EN),
    ("A05", None, UTT_EN),
])
def test_tts_engines_speak_the_text_deterministically(
    attack_id: str, engine: str | None, utt: Utterance
) -> None:
    if engine:
        _require_engine(engine)
    if attack_id == "A01":
        assert espeak_voice("fr") == "fr-fr" and espeak_voice("pt_BR") == "pt-br"
    y1, sr = run_attack(attack_id, utt, np.zeros(1, np.float32), np.random.default_rng(5))
    y2, _ = run_attack(attack_id, utt, np.zeros(1, np.float32), np.random.default_rng(5))
    np.testing.assert_array_equal(y1, y2)
    assert sr >= SR
    assert 0.4 < y1.size / sr < 4.0  # a short sentence, spoken
    frames = y1[: y1.size // 256 * 256].reshape(-1, 256)
    assert (np.sqrt((frames**2).mean(1)) > 0.01).mean() > 0.3  # mostly voiced, not silence
