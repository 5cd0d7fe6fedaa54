"""Official AASIST-L zero-shot from its cached encoder outputs (first 1 s): graph back end + out layer."""

import glob
import json
import sys

import numpy as np
import torch

sys.path.insert(0, "/work/exp")
from common import breakdown, fmt, load_cache_dir

from safespeak.corpus.build import corpus_split
from safespeak.data import load_split
from safespeak.models import build
from safespeak.models.blocks import graph_readout
from safespeak.transfer import init_from

torch.set_num_threads(1)
m = build("aasist-l")
init_from(m, "aasist-l", "aasist-l")
m.eval()
d = glob.glob("/work/exp/featcache/*/first-16000")[0]
feats = load_cache_dir(d)


def head(e):
    e = e.abs()
    t1, t2, s1, s2, m1, m2 = m.graph(e.amax(3).transpose(1, 2), e.amax(2).transpose(1, 2))
    h = graph_readout(torch.maximum(t1, t2), torch.maximum(s1, s2), torch.maximum(m1, m2))
    return h, m.out_layer(h)


res = {}
for split in ("dev", "eval"):
    proto, audio = corpus_split("/work/corpus", split)
    trials = load_split(str(proto), "asvspoof2019-la", audio_dir=str(audio))
    with torch.no_grad():
        e = torch.stack([feats[t.trial_id] for t in trials]).float()
        s = torch.cat([head(e[i : i + 64])[1][:, 1] for i in range(0, len(e), 64)]).numpy()
    res[split] = {t.trial_id: float(v) for t, v in zip(trials, s, strict=False)}
    print(
        fmt(
            f"aasist-l zero-shot (1 s) {split}",
            breakdown(s, np.array([t.label for t in trials]), [t.attack for t in trials]),
        )
    )
json.dump(res, open("/work/exp/scores_aasistl_zeroshot.json", "w"))
