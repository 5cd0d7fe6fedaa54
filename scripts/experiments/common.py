# ruff: noqa: E501  (a run record, kept as it ran)
"""Experiment helpers: EER breakdown (pooled, unseen A05-A08, per attack), probes, fusion on dev."""

import numpy as np

from safespeak.metrics import compute_eer

UNSEEN = {"A05", "A06", "A07", "A08"}


def eer(s, y):
    return float(compute_eer(s[y == 1], s[y == 0])[0])


def breakdown(s, y, att):
    s, y, att = map(np.asarray, (s, y, att))
    out = {"pooled": eer(s, y)}
    un = (y == 1) | np.isin(att, list(UNSEEN))
    if (y[un] == 0).any():
        out["unseen"] = eer(s[un], y[un])
    for a in sorted(set(att) - {"-"}):
        m = (y == 1) | (att == a)
        out[a] = eer(s[m], y[m])
    return out


def fmt(name, b):
    keys = [k for k in ("pooled", "unseen") if k in b] + sorted(k for k in b if k.startswith("A"))
    return f"{name:40s} " + " ".join(f"{k} {100 * b[k]:5.1f}" for k in keys)


def standardise(tr, *others):
    mu, sd = tr.mean(0), tr.std(0) + 1e-6
    return [(x - mu) / sd for x in (tr, *others)]


def logreg(xtr, ytr, l2=1.0, iters=300):
    """L2 logistic regression (torch LBFGS), balanced classes; returns weights (d+1,)."""
    import torch

    x = torch.tensor(xtr, dtype=torch.float64)
    y = torch.tensor(ytr, dtype=torch.float64)
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    pos = y.mean()
    sw = torch.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.LBFGS([w], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = x @ w[:-1] + w[-1]
        loss = (sw * torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")).mean()
        loss = loss + l2 * (w[:-1] ** 2).sum() / len(y)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


def apply(w, x):
    return x @ w[:-1] + w[-1]


def read_scores(path):
    import csv

    with open(path) as fh:
        r = csv.reader(fh)
        rows = [row for row in r if row and not row[0].startswith("#")]
    if rows and rows[0][0].lower() in ("id", "trial"):
        rows = rows[1:]
    return {a: float(b) for a, b in rows}


def load_cache_dir(d):
    """trial id -> fp16 tensor from every shard in a FeatureCache folder (its index.json keeps only the last build)."""
    import glob

    from safetensors import safe_open

    out = {}
    for f in sorted(glob.glob(f"{d}/shard-*.safetensors")):
        with safe_open(f, framework="pt") as h:
            for k in h.keys():
                out[k] = h.get_tensor(k)
    return out
