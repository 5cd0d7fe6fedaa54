# ruff: noqa: E501  (a run record, kept as it ran)
"""Fuse systems on dev (calibrate.fit_fusion), report eval breakdown. args: name=path[:key] ..."""

import json
import sys

import numpy as np

sys.path.insert(0, "/work/exp")
from common import breakdown, fmt, read_scores

from safespeak.calibrate import fit_fusion, fuse_scores
from safespeak.protocols import read_protocol

proto = {
    s: {
        t.trial_id: t
        for t in read_protocol(
            f"/work/corpus/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{s}.{'trl' if s != 'train' else 'trn'}.txt",
            "asvspoof2019-la",
        )
    }
    for s in ("dev", "eval")
}
systems = {}
for arg in sys.argv[1:]:
    name, spec = arg.split("=", 1)
    if spec.endswith(".json") or ".json:" in spec:
        path, _, key = spec.partition(":")
        d = json.load(open(path))
        d = d[key] if key else d
        systems[name] = {s: d[s] for s in ("dev", "eval")}
    else:  # run dir with scores_dev.csv / scores_eval.csv
        systems[name] = {s: read_scores(f"{spec}/scores_{s}.csv") for s in ("dev", "eval")}


def bd(scores, s):
    ids = sorted(scores)
    return breakdown(
        np.array([scores[i] for i in ids]),
        np.array([proto[s][i].label for i in ids]),
        [proto[s][i].attack for i in ids],
    )


for name, sc in systems.items():
    print(fmt(f"{name} dev {100 * bd(sc['dev'], 'dev')['pooled']:.1f} | eval", bd(sc["eval"], "eval")))
names = list(systems)
labels = {i: t.label for i, t in proto["dev"].items()}
w, b = fit_fusion([systems[n]["dev"] for n in names], labels)
fd = fuse_scores([systems[n]["dev"] for n in names], w, b)
fe = fuse_scores([systems[n]["eval"] for n in names], w, b)
print("weights", dict(zip(names, np.round(w, 3), strict=False)), "bias", round(b, 3))
print(fmt(f"FUSED({'+'.join(names)}) dev {100 * bd(fd, 'dev')['pooled']:.1f} | eval", bd(fe, "eval")))
