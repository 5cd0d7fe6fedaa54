#!/usr/bin/env bash
# Create .venv and install safespeak with the pinned CPU torch (an unpinned torch pulls a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[ssl,tensorboard,corpus,dev]"
