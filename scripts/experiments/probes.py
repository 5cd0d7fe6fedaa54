"""Logistic probes on pooled Whisper stats (mean+std per hidden state), fitted on train, EER on eval."""

import json
import sys
import time

import numpy as np

sys.path.insert(0, "/work/exp")
from common import apply, breakdown, fmt, logreg, standardise

d = np.load(sys.argv[1] if len(sys.argv) > 1 else "/work/exp/whisper_pooled_64000.npz")
X = {s: d[f"{s}_x"] for s in ("train", "dev", "eval")}  # (N, L, 2C)
Y = {s: d[f"{s}_y"] for s in X}
A = {s: d[f"{s}_attack"] for s in X}
ID = {s: d[f"{s}_id"] for s in X}
L = X["train"].shape[1]
variants = {f"layer{i}": [i] for i in range(L)}
variants["last"] = [L - 1]
variants["all"] = list(range(L))
variants["0+1"] = [0, 1]
out = {}
for name, layers in variants.items():
    for l2 in (1.0, 10.0, 100.0):
        t = time.perf_counter()
        f = {s: X[s][:, layers].reshape(len(X[s]), -1) for s in X}
        tr, dv, ev = standardise(f["train"], f["dev"], f["eval"])
        w = logreg(tr, Y["train"], l2=l2)
        bd, be = breakdown(apply(w, dv), Y["dev"], A["dev"]), breakdown(apply(w, ev), Y["eval"], A["eval"])
        print(
            fmt(f"{name} l2={l2} dev {100 * bd['pooled']:.1f} | eval", be),
            f"{time.perf_counter() - t:.1f}s",
            flush=True,
        )
        out[f"{name}-l2{l2}"] = {
            "dev": dict(zip(ID["dev"], apply(w, dv).tolist(), strict=False)),
            "eval": dict(zip(ID["eval"], apply(w, ev).tolist(), strict=False)),
        }
json.dump(out, open("/work/exp/scores_probes.json", "w"))
