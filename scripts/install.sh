#!/usr/bin/env bash
# Fresh-machine install: Debian packages (TTS engines for the offline corpus), then .venv with the pinned
# CPU torch (an unpinned `torch` pulls a multi-GB CUDA build; install your own build first to keep it).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2046
  if ! dpkg -s $(cat .ci/apt-packages.txt) >/dev/null 2>&1; then
    echo "==> apt: installing the corpus TTS engines and tools ($(tr '\n' ' ' < .ci/apt-packages.txt | sed 's/ $//'))"
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends $(cat .ci/apt-packages.txt) >/dev/null
  fi
else
  echo "apt-get not found: install $(tr '\n' ' ' < .ci/apt-packages.txt)yourself for the corpus/demo" >&2
fi

PY=${PYTHON:-python3}
echo "==> venv: .venv (Python from $PY)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
echo "==> torch: torch==2.13.0 unless .venv already has a torch (the longest step, a few minutes)"
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
echo "==> pip: safespeak (editable install) and its optional dependencies"
.venv/bin/python -m pip install -q -e ".[ssl,tensorboard,corpus,whisper,deploy,dev]"

# Bona fide recordings of the offline corpus: Debian packages fetched into the cache (not installed).
echo "==> corpus: fetching the bona fide speech packages into the cache (apt-get download, not installed)"
.venv/bin/safespeak corpus fetch
