"""Shared test fixtures.

`shared_dir` is `../shared` next to the repository root (the team's fixtures). Users who cloned the
project alone get a clean skip; with CI=true a missing folder fails the run instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def require_shared(*parts: str) -> Path:
    """Path inside ../shared; skips (or fails under CI=true) when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        msg = f"{path} not found (the team's ../shared fixtures folder is absent)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " — CI=true requires it", pytrace=False)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder (skips for users without it; fails under CI=true)."""
    return require_shared()


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    # The CI machine has 2 cores; keep torch from oversubscribing when pytest runs alongside others.
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:  # pragma: no cover
        pass
