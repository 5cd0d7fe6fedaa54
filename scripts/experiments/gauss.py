# ruff: noqa: B023  (a run record, kept as it ran)
"""Gaussian back ends on pooled Whisper stats: one-class (bona fide) Mahalanobis, QDA with shrinkage."""

import sys

import numpy as np

sys.path.insert(0, "/work/exp")
from common import breakdown, fmt

d = np.load("/work/exp/whisper_pooled_64000.npz")
X = {s: d[f"{s}_x"] for s in ("train", "dev", "eval")}
Y = {s: d[f"{s}_y"] for s in X}
A = {s: d[f"{s}_attack"] for s in X}
for name, layers in (("all", [0, 1, 2, 3, 4]), ("0+1", [0, 1]), ("0", [0])):
    f = {s: X[s][:, layers].reshape(len(X[s]), -1) for s in X}
    mu, sd = f["train"].mean(0), f["train"].std(0) + 1e-6
    f = {s: (v - mu) / sd for s, v in f.items()}
    # PCA on train
    U, S, Vt = np.linalg.svd(f["train"] - f["train"].mean(0), full_matrices=False)
    for k in (32, 128):
        P = Vt[:k].T
        g = {s: v @ P for s, v in f.items()}
        for shrink in (0.1, 0.5):

            def gauss(z):
                m = z.mean(0)
                c = np.cov(z.T)
                c = (1 - shrink) * c + shrink * np.eye(len(c)) * np.trace(c) / len(c)
                ci = np.linalg.inv(c)
                _, ld = np.linalg.slogdet(c)
                return lambda q: -0.5 * np.einsum("ij,jk,ik->i", q - m, ci, q - m) - 0.5 * ld

            lb = gauss(g["train"][Y["train"] == 1])
            ls = gauss(g["train"][Y["train"] == 0])
            for kind, fn in (("oneclass", lambda q: lb(q)), ("qda", lambda q: lb(q) - ls(q))):
                bd = breakdown(fn(g["dev"]), Y["dev"], A["dev"])
                be = breakdown(fn(g["eval"]), Y["eval"], A["eval"])
                print(
                    fmt(f"{kind} {name} pca{k} s{shrink} dev {100 * bd['pooled']:.1f} | eval", be), flush=True
                )
