"""Spectral-statistics probe: mean/std over frames of the log power spectrum (+ delta std), LR on train."""

import json
import sys
import time

import numpy as np
import torch

sys.path.insert(0, "/work/exp")
from common import apply, breakdown, fmt, logreg, standardise

from safespeak.audio import load_audio
from safespeak.corpus.build import corpus_split
from safespeak.data import load_split

torch.set_num_threads(1)
NFFT = int(sys.argv[1]) if len(sys.argv) > 1 else 512
win = torch.hann_window(NFFT)


def feats(x):
    x = torch.from_numpy(x).float()
    if len(x) < NFFT * 2:
        x = x.repeat(int(np.ceil(NFFT * 2 / len(x))))
    S = torch.stft(x, NFFT, NFFT // 4, window=win, return_complex=True).abs().pow(2)  # (F, T)
    L = torch.log10(S + 1e-10)
    d = L[:, 1:] - L[:, :-1]
    return torch.cat([L.mean(1), L.std(1), d.std(1)]).numpy()


t0 = time.perf_counter()
X, Y, A, ID = {}, {}, {}, {}
for split in ("train", "dev", "eval"):
    proto, audio = corpus_split("/work/corpus", split)
    trials = load_split(str(proto), "asvspoof2019-la", audio_dir=str(audio))
    X[split] = np.stack([feats(load_audio(t.path)) for t in trials])
    Y[split] = np.array([t.label for t in trials])
    A[split] = np.array([t.attack for t in trials])
    ID[split] = [t.trial_id for t in trials]
print(f"features {time.perf_counter() - t0:.0f} s, dim {X['train'].shape[1]}", flush=True)
np.savez(
    f"/work/exp/spec_{NFFT}.npz",
    **{
        f"{s}_{k}": v
        for s in X
        for k, v in (("x", X[s]), ("y", Y[s]), ("attack", A[s]), ("id", np.array(ID[s])))
    },
)
F = NFFT // 2 + 1
out = {}
for name, sl in (("mean", slice(0, F)), ("mean+std", slice(0, 2 * F)), ("all", slice(0, 3 * F))):
    for l2 in (1.0, 10.0, 100.0):
        tr, dv, ev = standardise(X["train"][:, sl], X["dev"][:, sl], X["eval"][:, sl])
        w = logreg(tr, Y["train"], l2=l2)
        bd, be = breakdown(apply(w, dv), Y["dev"], A["dev"]), breakdown(apply(w, ev), Y["eval"], A["eval"])
        print(fmt(f"spec{NFFT} {name} l2={l2} dev {100 * bd['pooled']:.1f} | eval", be), flush=True)
        out[f"{name}-l2{l2}"] = {
            "dev": dict(zip(ID["dev"], apply(w, dv).tolist(), strict=False)),
            "eval": dict(zip(ID["eval"], apply(w, ev).tolist(), strict=False)),
        }
json.dump(out, open(f"/work/exp/scores_spec{NFFT}.json", "w"))
