"""Bootstrap EER interval: each replicate equals the official EER of the resampled scores."""

from __future__ import annotations

import numpy as np
import pytest

from safespeak.metrics import bootstrap_eer_ci, compute_eer
from safespeak.metrics.ci import bootstrap_eers


def _scores(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Rounded to 0.1 so that bootstrap copies create tie groups across classes.
    return np.round(rng.normal(1, 1, 40), 1), np.round(rng.normal(-1, 1, 300), 1)


def test_replicates_equal_compute_eer_on_resampled_scores() -> None:
    bona, spoof = _scores()
    eers = bootstrap_eers(bona, spoof, n_boot=60, seed=3)
    rng, expected = np.random.default_rng(3), []
    for _ in range(60):
        idx_b = rng.integers(0, bona.size, bona.size)
        idx_s = rng.integers(0, spoof.size, spoof.size)
        expected.append(compute_eer(bona[idx_b], spoof[idx_s])[0])
    np.testing.assert_allclose(eers, expected, rtol=0, atol=1e-15)


def test_interval_brackets_the_eer_and_is_reproducible() -> None:
    bona, spoof = _scores(2)
    low, high = bootstrap_eer_ci(bona, spoof, n_boot=300, seed=5)
    eer = compute_eer(bona, spoof)[0]
    assert 0 <= low < eer < high <= 1
    assert bootstrap_eer_ci(bona, spoof, n_boot=300, seed=5) == (low, high)
    narrower = bootstrap_eer_ci(bona, spoof, n_boot=300, alpha=0.5, seed=5)
    assert low <= narrower[0] <= narrower[1] <= high


def test_results_do_not_depend_on_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    import safespeak.metrics.ci as ci

    bona, spoof = _scores(4)
    whole = ci.bootstrap_eers(bona, spoof, n_boot=10, seed=0)
    monkeypatch.setattr(ci, "_CHUNK_ELEMENTS", 2 * (bona.size + spoof.size) * 3)  # 3 replicates a chunk
    np.testing.assert_array_equal(ci.bootstrap_eers(bona, spoof, n_boot=10, seed=0), whole)
    assert np.unique(whole).size > 1


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="no spoof"):
        bootstrap_eer_ci([0.1, 0.2], [])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_eer_ci([0.1, 0.2], [0.0], alpha=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_eers([0.1, 0.2], [0.0], n_boot=0)
