"""Cache Whisper tiny.en hidden states (first 4 s, repeat-padded) for every corpus trial; pooled stats npz."""

import sys
import time

import numpy as np
import torch

from safespeak.corpus.build import corpus_split
from safespeak.data import load_split
from safespeak.features import CropPolicy, FeatureCache, hidden_state_extractor, module_fingerprint
from safespeak.models.ssl.ct2 import load_bundled_whisper

torch.set_num_threads(1)
crop = int(sys.argv[1]) if len(sys.argv) > 1 else 64000
bb = load_bundled_whisper().eval()
fp = module_fingerprint(bb, bb.config_dict())
cache = FeatureCache("/work/exp/featcache", fp, CropPolicy("first", crop))
t0 = time.perf_counter()
out = {}
for split in ("train", "dev", "eval"):
    proto, audio = corpus_split("/work/corpus", split)
    trials = load_split(str(proto), "asvspoof2019-la", audio_dir=str(audio))
    t = time.perf_counter()
    n = cache.build(trials, hidden_state_extractor(bb), batch_size=16, progress=False)
    print(split, len(trials), "computed", n, f"{time.perf_counter() - t:.0f} s", flush=True)
    feats = []
    for tr in trials:
        h = cache.get(tr.trial_id).float()  # (L, frames, C)
        feats.append(torch.cat([h.mean(1), h.std(1)], dim=1).numpy())  # (L, 2C)
    out[split] = (
        np.stack(feats),
        np.array([tr.label for tr in trials]),
        np.array([tr.trial_id for tr in trials]),
        np.array([tr.attack for tr in trials]),
    )
np.savez(
    f"/work/exp/whisper_pooled_{crop}.npz",
    **{
        f"{s}_{k}": v
        for s, vals in out.items()
        for k, v in zip(("x", "y", "id", "attack"), vals, strict=False)
    },
)
print("total", f"{time.perf_counter() - t0:.0f} s", "fingerprint", fp[:16])
