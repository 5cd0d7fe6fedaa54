# ruff: noqa: E402  (a run record, kept as it ran)
"""Cache the official AASIST-L's encoder output (first 1 s, repeat-padded) for every corpus trial."""

import sys
import time

import torch

from safespeak.corpus.build import corpus_split
from safespeak.data import load_split
from safespeak.features import CropPolicy, FeatureCache
from safespeak.models import build
from safespeak.transfer import init_from

torch.set_num_threads(1)
crop = int(sys.argv[1]) if len(sys.argv) > 1 else 16000
m = build("aasist-l")
init_from(m, "aasist-l", "aasist-l")
m.eval()
enc = torch.nn.Sequential(m.frontend, m.encoder)
import hashlib

fp = hashlib.sha256(
    b"aasist-l preset encoder 09760854e18e8ec61af897f822725437eeec4e9302355fc833d9e8e46c18568a"
).hexdigest()
cache = FeatureCache("/work/exp/featcache", fp, CropPolicy("first", crop))
t0 = time.perf_counter()
for split in ("dev", "eval", "train"):
    proto, audio = corpus_split("/work/corpus", split)
    trials = load_split(str(proto), "asvspoof2019-la", audio_dir=str(audio))
    t = time.perf_counter()
    n = cache.build(trials, m.encode, batch_size=16, progress=False)
    print(split, len(trials), "computed", n, f"{time.perf_counter() - t:.0f} s", flush=True)
print("total", f"{time.perf_counter() - t0:.0f} s", cache.dir)
