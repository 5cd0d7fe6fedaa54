"""Official AASIST-L with a frozen encoder: train the graph back end + output layer on cached encoder maps."""

import glob
import json
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, "/work/exp")
from common import breakdown, fmt, load_cache_dir

from safespeak.corpus.build import corpus_split
from safespeak.data import load_split
from safespeak.models import build
from safespeak.models.blocks import graph_readout
from safespeak.transfer import freeze, init_from

torch.set_num_threads(1)
epochs, lr = int(sys.argv[1]), float(sys.argv[2])
torch.manual_seed(0)
m = build("aasist-l")
init_from(m, "aasist-l", "aasist-l")
freeze(m, ["frontend", "encoder"])
feats = load_cache_dir(glob.glob("/work/exp/featcache/*/first-16000")[0])
D = {}
for split in ("train", "dev", "eval"):
    proto, audio = corpus_split("/work/corpus", split)
    trials = load_split(str(proto), "asvspoof2019-la", audio_dir=str(audio))
    D[split] = (
        torch.stack([feats[t.trial_id] for t in trials]).float(),
        torch.tensor([t.label for t in trials]),
        [t.trial_id for t in trials],
        [t.attack for t in trials],
    )


def head(e):
    e = e.abs()
    t1, t2, s1, s2, m1, m2 = m.graph(e.amax(3).transpose(1, 2), e.amax(2).transpose(1, 2))
    h = graph_readout(torch.maximum(t1, t2), torch.maximum(s1, s2), torch.maximum(m1, m2))
    return m.out_layer(m.drop(h))


@torch.no_grad()
def score(split):
    m.eval()
    x = D[split][0]
    s = torch.cat([head(x[i : i + 64])[:, 1] for i in range(0, len(x), 64)]).numpy()
    m.train()
    return s


params = [p for p in m.parameters() if p.requires_grad]
print("trainable", sum(p.numel() for p in params), "of", sum(p.numel() for p in m.parameters()), flush=True)
opt = torch.optim.Adam(params, lr=lr, weight_decay=1e-4)
bs = 32
x, y = D["train"][0], D["train"][1]
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * (len(y) // bs), eta_min=lr * 0.05)
g = torch.Generator().manual_seed(0)
t0 = time.perf_counter()
best, best_dev = None, 2.0
m.train()
for ep in range(epochs):
    perm = torch.randperm(len(y), generator=g)
    for i in range(0, len(perm) - bs + 1, bs):
        idx = perm[i : i + bs]
        loss = F.cross_entropy(head(x[idx]), y[idx], weight=torch.tensor([0.1, 0.9]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    b = breakdown(score("dev"), D["dev"][1].numpy(), D["dev"][3])
    print(
        f"epoch {ep} loss {loss.item():.3f} dev {100 * b['pooled']:.2f}% ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    if b["pooled"] <= best_dev:
        best_dev, best = b["pooled"], {k: v.clone() for k, v in m.state_dict().items()}
m.load_state_dict(best)
res = {}
for split in ("dev", "eval"):
    s = score(split)
    res[split] = dict(zip(D[split][2], map(float, s), strict=False))
    print(fmt(f"aasist-l frozen-enc {split}", breakdown(s, D[split][1].numpy(), D[split][3])), flush=True)
json.dump(res, open("/work/exp/scores_aasistl_frozen.json", "w"))
print(f"train {time.perf_counter() - t0:.0f} s")
