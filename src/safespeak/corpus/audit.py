"""Shortcut audit: can trivial signal statistics tell bona fide from spoof?

A logistic regression on six per-file features (duration, RMS, peak, spectral roll-off, spectral
bandwidth, leading-silence length) is fitted on train and scored on eval. A corpus whose classes
differ in level, length, bandwidth or silence lets a countermeasure learn the shortcut instead of the
artefacts; the audit asks for an eval EER of at least 30 % (50 % = no information).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from safespeak.audio import load_audio
from safespeak.corpus.build import corpus_split

__all__ = ["AUDIT_MIN_EER", "FEATURES", "audit_corpus", "trivial_features"]

AUDIT_MIN_EER = 0.30
FEATURES = ("duration_s", "rms_db", "peak_db", "rolloff_hz", "bandwidth_hz", "leading_silence_s")
SR = 16000


def trivial_features(x: np.ndarray, sample_rate: int = SR) -> np.ndarray:
    """The six audit features of a (T,) signal, in `FEATURES` order."""
    n_fft, hop = 512, 160
    x64 = np.asarray(x, dtype=np.float64)
    if x64.shape[0] < n_fft:
        x64 = np.pad(x64, (0, n_fft - x64.shape[0]))
    n = 1 + (x64.shape[0] - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x64, n_fft)[::hop][:n] * np.hanning(n_fft)  # (N, 512)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (N, 257)
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    energy = power.sum(axis=1) + 1e-12  # (N,)
    frame_db = 10 * np.log10(energy)
    loud = frame_db > frame_db.max() - 40  # spectral shape of the speech, not of the padding
    cum = np.cumsum(power[loud], axis=1)
    rolloff = freqs[np.argmax(cum >= 0.85 * cum[:, -1:], axis=1)].mean()
    centroid = (power[loud] @ freqs) / energy[loud]  # (N_loud,)
    spread = np.sqrt((power[loud] * (freqs[None, :] - centroid[:, None]) ** 2).sum(1) / energy[loud])
    first_loud = int(np.argmax(frame_db > frame_db.max() - 30))
    return np.array([
        x.shape[0] / sample_rate,
        10 * np.log10(np.mean(x64**2) + 1e-12),
        20 * np.log10(np.abs(x64).max() + 1e-12),
        rolloff,
        spread.mean(),
        first_loud * hop / sample_rate,
    ])


def _split_features(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features (N, 6), labels (N,), attacks) of one split."""
    from safespeak.protocols import read_protocol

    protocol, audio_dir = corpus_split(root, split)
    trials = read_protocol(protocol, "asvspoof2019-la", audio_dir=audio_dir)
    feats = np.stack([trivial_features(load_audio(t.path)) for t in trials if t.path])
    labels = np.array([t.label for t in trials], dtype=np.float64)
    return feats, labels, [t.attack for t in trials]


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 50) -> np.ndarray:
    """Newton/IRLS logistic regression; returns weights (D + 1,) with the bias last."""
    xb = np.hstack([x, np.ones((x.shape[0], 1))])
    w = np.zeros(xb.shape[1])
    reg = l2 * np.eye(xb.shape[1])
    reg[-1, -1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (p - y) + reg @ w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + reg
        step = np.linalg.solve(hess + 1e-9 * np.eye(xb.shape[1]), grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _eer(scores: np.ndarray, labels: np.ndarray) -> float:
    from safespeak.metrics import compute_eer

    return float(compute_eer(scores[labels == 1], scores[labels == 0])[0])


def audit_corpus(root: str | os.PathLike[str]) -> dict[str, object]:
    """Fit the trivial-feature classifier on train, return eval EER (fraction) and diagnostics.

    Keys: `eer`, `passed` (eer >= 0.30), `min_eer`, `n_train`, `n_eval`, `features`, `weights`
    (standardised), `single_feature_eer` (each feature alone, fitted on train), `per_attack_eer`.
    """
    root = Path(root)
    x_tr, y_tr, _ = _split_features(root, "train")
    x_ev, y_ev, attacks = _split_features(root, "eval")
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-9
    z_tr, z_ev = (x_tr - mean) / std, (x_ev - mean) / std
    w = _fit_logistic(z_tr, y_tr)
    scores = z_ev @ w[:-1] + w[-1]  # higher = bona fide (label 1)
    single = {}
    for i, name in enumerate(FEATURES):
        wi = _fit_logistic(z_tr[:, i : i + 1], y_tr)
        single[name] = _eer(z_ev[:, i] * wi[0], y_ev)
    bona = y_ev == 1
    per_attack = {}
    for attack in sorted({a for a, y in zip(attacks, y_ev, strict=True) if y == 0}):
        keep = bona | np.array([a == attack for a in attacks])
        per_attack[attack] = _eer(scores[keep], y_ev[keep])
    eer = _eer(scores, y_ev)
    return {
        "eer": eer,
        "passed": eer >= AUDIT_MIN_EER,
        "min_eer": AUDIT_MIN_EER,
        "n_train": int(y_tr.size),
        "n_eval": int(y_ev.size),
        "features": list(FEATURES),
        "weights": dict(zip(FEATURES, map(float, w[:-1]), strict=True)),
        "single_feature_eer": single,
        "per_attack_eer": per_attack,
    }
