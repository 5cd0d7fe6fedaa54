"""Rebuild `src/safespeak/data/pretrained/` from the official clovaai/aasist weights (a maintainer tool).

    python scripts/bundle_pretrained.py ../shared/weights/clovaai-aasist

Each `.pth` is read with `weights_only=True`, renamed to safespeak keys, checked to load strictly and
written as a safespeak checkpoint (safetensors + JSON sidecar); LICENSE and NOTICE are copied alongside.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from safespeak.checkpoint import file_sha256, save_checkpoint
from safespeak.models.registry import from_reference

OUT = Path(__file__).resolve().parents[1] / "src" / "safespeak" / "data" / "pretrained"
FILES = {"aasist": "AASIST.pth", "aasist-l": "AASIST-L.pth"}


def main(src: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for arch, name in FILES.items():
        model = from_reference(arch, src / name)
        meta = {
            "converted_from": f"github.com/clovaai/aasist models/weights/{name}",
            "reference_sha256": file_sha256(src / name),
            "trained_on": "ASVspoof 2019 LA train",
            "license": "MIT, Copyright (c) 2021-present NAVER Corp. (see LICENSE and NOTICE here)",
        }
        out = save_checkpoint(OUT / arch, model, arch=arch, meta=meta)
        print(f"{out} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    for name in ("LICENSE", "NOTICE"):
        shutil.copyfile(src / name, OUT / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
