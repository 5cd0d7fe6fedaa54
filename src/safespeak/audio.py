"""Audio I/O and length policies.

Everything inside safespeak is mono float32 at 16 kHz; files at other rates are resampled on read
with soxr. Waveforms are 1-D numpy arrays of shape (T,) unless a docstring says otherwise.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from safespeak import SAMPLE_RATE
from safespeak.errors import SafespeakError

__all__ = [
    "AudioError",
    "crop",
    "decode_audio",
    "load_audio",
    "repeat_pad",
    "resample",
    "save_audio",
    "window_starts",
    "windows",
]


class AudioError(SafespeakError):
    """An audio file that cannot be used; `path` names it and `reason` says why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.reason = reason
        super().__init__(reason, path=path)


def resample(x: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a (T,) signal with soxr (high quality); returns float32."""
    if orig_sr == target_sr:
        return np.asarray(x, dtype=np.float32)
    y = soxr.resample(np.asarray(x, dtype=np.float32), orig_sr, target_sr, quality="HQ")
    return np.asarray(y, dtype=np.float32)


def load_audio(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read wav/flac/ogg (anything libsndfile reads), mix to mono, resample; return (T,) float32.

    Raises `AudioError` naming the file when it is missing, unreadable, empty or holds NaN/inf.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioError(p, "file not found")
    if p.stat().st_size == 0:
        raise AudioError(p, "file is empty (0 bytes)")
    return _read(str(p), p, sample_rate)


def decode_audio(data: bytes, name: str = "<upload>", sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`load_audio` for an encoded file held in memory (an upload); errors name `name`.

    Nothing touches the disk: libsndfile reads the bytes through a file-like object.
    """
    if not data:
        raise AudioError(name, "file is empty (0 bytes)")
    return _read(io.BytesIO(data), name, sample_rate)


def _read(src: str | io.BytesIO, name: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    try:
        data, sr = sf.read(src, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(name, f"unreadable audio ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(name, "zero-length audio (no samples)")
    x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(x).all():
        raise AudioError(name, "audio contains NaN or infinite samples")
    return resample(x, int(sr), sample_rate)


def save_audio(path: str | os.PathLike[str], x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a (T,) float signal; the format follows the suffix (FLAC/WAV are 16-bit PCM)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_16" if p.suffix.lower() in {".flac", ".wav"} else None
    sf.write(str(p), np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0), sample_rate, subtype=subtype)


def repeat_pad(x: np.ndarray, length: int) -> np.ndarray:
    """Tile `x` until it has `length` samples, then cut (the AASIST `pad`); longer input is cut."""
    if x.shape[0] == 0:
        raise ValueError("cannot pad an empty signal")
    if x.shape[0] >= length:
        return x[:length]
    reps = -(-length // x.shape[0])
    return np.tile(x, reps)[:length]


def crop(x: np.ndarray, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Crop to `length` samples: a random start when `rng` is given, else the first samples.

    Short input is repeat-padded first.
    """
    if x.shape[0] <= length:
        return repeat_pad(x, length)
    start = 0 if rng is None else int(rng.integers(0, x.shape[0] - length + 1))
    return x[start : start + length]


def window_starts(n_samples: int, length: int, hop: int) -> list[int]:
    """Start offsets of windows of `length` covering all `n_samples` (the last one ends at the end)."""
    if n_samples <= length:
        return [0]
    starts = list(range(0, n_samples - length + 1, hop))
    if starts[-1] + length < n_samples:
        starts.append(n_samples - length)
    return starts


def windows(x: np.ndarray, length: int, hop: int | None = None) -> np.ndarray:
    """Split a (T,) signal into (N, length) windows covering the whole file.

    Short input gives one repeat-padded window; `hop` defaults to `length` (no overlap), and the last
    window is aligned to the end of the signal so no sample is skipped.
    """
    hop = hop or length
    if x.shape[0] <= length:
        return repeat_pad(x, length)[None, :]
    return np.stack([x[s : s + length] for s in window_starts(x.shape[0], length, hop)])
