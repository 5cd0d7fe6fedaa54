# ruff: noqa: E501  (a run record, kept as it ran)
"""The demo's probe path (safespeak.ensemble.train_whisper_probe) on the corpus: python probe_run.py CROP [L2] [LAYERS]."""

import json
import sys

import numpy as np

sys.path.insert(0, "/work/exp")
from common import breakdown, fmt

from safespeak.corpus.build import corpus_split
from safespeak.data import load_split
from safespeak.ensemble import train_whisper_probe

crop = int(sys.argv[1])
l2 = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
layers = [int(v) for v in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0, 1, 2, 3, 4]
splits = {}
for s in ("train", "dev", "eval"):
    p, a = corpus_split("/work/corpus", s)
    splits[s] = load_split(str(p), "asvspoof2019-la", audio_dir=str(a))
run = train_whisper_probe(
    splits,
    f"/work/exp/probe{crop}/probe",
    layers=layers,
    l2=l2,
    crop_samples=crop,
    cache_root=f"/work/exp/probe{crop}/features",
)
print(
    f"features {run.feature_seconds:.0f} s, fit {run.fit_seconds:.1f} s, dev EER {100 * run.dev_eer:.2f}%, trained params {run.n_trained}"
)
for s in ("dev", "eval"):
    t = splits[s]
    sc = np.array([run.scores[s][x.trial_id] for x in t])
    print(
        fmt(
            f"probe crop={crop} l2={l2} L{layers} {s}",
            breakdown(sc, np.array([x.label for x in t]), [x.attack for x in t]),
        )
    )
json.dump(
    {s: run.scores[s] for s in ("dev", "eval")},
    open(f"/work/exp/scores_probe_{crop}_{l2}_{'-'.join(map(str, layers))}.json", "w"),
)
