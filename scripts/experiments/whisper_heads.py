# ruff: noqa: E501  (a run record, kept as it ran)
"""Train a head on cached Whisper tiny.en hidden states: python whisper_heads.py HEAD AGG EPOCHS [LR] [frames]."""

import json
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, "/work/exp")
from common import breakdown, fmt, load_cache_dir

from safespeak.corpus.build import corpus_split
from safespeak.data import load_split
from safespeak.features import CachedHead, CropPolicy, FeatureCache, module_fingerprint
from safespeak.models import build
from safespeak.models.ssl.ct2 import load_bundled_whisper

torch.set_num_threads(1)
head, agg, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
lr = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-3
crop = 64000
bb = load_bundled_whisper().eval()
cache = FeatureCache(
    "/work/exp/featcache", module_fingerprint(bb, bb.config_dict()), CropPolicy("first", crop)
)
feats = load_cache_dir(cache.dir)
data = {}
for split in ("train", "dev", "eval"):
    proto, audio = corpus_split("/work/corpus", split)
    trials = load_split(str(proto), "asvspoof2019-la", audio_dir=str(audio))
    x = torch.stack([feats[t.trial_id] for t in trials])  # (N, L, frames, C) fp16
    data[split] = (
        x,
        torch.tensor([t.label for t in trials]),
        [t.trial_id for t in trials],
        [t.attack for t in trials],
    )
torch.manual_seed(0)
kw = {"backbone": "whisper", "freeze": True}
if head != "mhfa":
    kw["aggregation"] = agg
model = build(f"ssl-{head}", **kw)
net = CachedHead(model)
params = [p for p in model.parameters() if p.requires_grad]
print("trainable params", sum(p.numel() for p in params), flush=True)
opt = torch.optim.Adam(params, lr=lr, weight_decay=1e-4)
xtr, ytr = data["train"][0], data["train"][1]
w = torch.tensor([0.1, 0.9])
bs = 32
steps = epochs * (len(ytr) // bs)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)


@torch.no_grad()
def score(split):
    net.eval()
    x = data[split][0]
    out = torch.cat(
        [
            net(x[i : i + 64].float())[:, 1] - net(x[i : i + 64].float())[:, 0] * 0
            for i in range(0, len(x), 64)
        ]
    )
    net.train()
    return out.numpy()


t0 = time.perf_counter()
best, best_dev = None, 1.0
g = torch.Generator().manual_seed(0)
for ep in range(epochs):
    perm = torch.randperm(len(ytr), generator=g)
    for i in range(0, len(perm) - bs + 1, bs):
        idx = perm[i : i + bs]
        logits = net(xtr[idx].float())
        loss = F.cross_entropy(logits, ytr[idx], weight=w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    d = score("dev")
    b = breakdown(d, data["dev"][1].numpy(), data["dev"][3])
    print(
        f"epoch {ep} loss {loss.item():.4f} dev EER {100 * b['pooled']:.2f}% ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    if b["pooled"] <= best_dev:
        best_dev, best = b["pooled"], {k: v.clone() for k, v in model.state_dict().items()}
train_s = time.perf_counter() - t0
model.load_state_dict(best)
name = f"whisper-{head}-{agg}"
res = {}
for split in ("dev", "eval"):
    s = score(split)
    res[split] = dict(zip(data[split][2], map(float, s), strict=False))
    b = breakdown(s, data[split][1].numpy(), data[split][3])
    print(fmt(f"{name} {split}", b), flush=True)
json.dump(res, open(f"/work/exp/scores_{name}.json", "w"))
print(f"train {train_s:.0f} s, best dev {100 * best_dev:.2f}%")
