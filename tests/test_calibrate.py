"""Calibration recovers known LLRs; fusion aligns by id, never by row order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from safespeak.calibrate import Calibration, fit_calibration, fit_fusion, fuse_scores
from safespeak.cli import main


def test_calibration_recovers_the_gaussian_llr() -> None:
    # bona fide ~ N(2, 1), spoof ~ N(-1, 1): true LLR(s) = 3 s - 1.5
    rng = np.random.default_rng(0)
    bona, spoof = 2 + rng.standard_normal(40_000), -1 + rng.standard_normal(60_000)
    s = np.concatenate([bona, spoof])
    y = np.concatenate([np.ones(bona.size), np.zeros(spoof.size)])
    cal = fit_calibration(s, y)
    assert cal.scale == pytest.approx(3.0, abs=0.05)
    assert cal.offset == pytest.approx(-1.5, abs=0.05)
    assert cal.threshold() == pytest.approx(0.5, abs=0.02)
    assert cal.probability(0.5) == pytest.approx(0.5, abs=0.01)
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_calibration_rejects_a_single_class() -> None:
    with pytest.raises(ValueError, match="both"):
        fit_calibration(np.arange(5.0), np.ones(5))


def test_fusion_is_aligned_by_id_when_rows_are_shuffled() -> None:
    rng = np.random.default_rng(1)
    ids = [f"T{i:04d}" for i in range(200)]
    a = dict(zip(ids, rng.standard_normal(200).tolist(), strict=True))
    b = dict(zip(ids, rng.standard_normal(200).tolist(), strict=True))
    perm = rng.permutation(200)
    b_shuffled = {ids[i]: b[ids[i]] for i in perm}  # same content, other row order
    fused = fuse_scores([a, b_shuffled], [0.25, 0.75])
    for i in ids:
        assert fused[i] == pytest.approx(0.25 * a[i] + 0.75 * b[i])
    with pytest.raises(ValueError, match="only in the first"):
        fuse_scores([a, {k: v for k, v in b.items() if k != "T0007"}])


def test_fusion_weights_favour_the_informative_system() -> None:
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(3000), np.zeros(3000)]
    good = 3 * y + rng.standard_normal(6000)
    noise = rng.standard_normal(6000)
    ids = [str(i) for i in range(6000)]
    w, _ = fit_fusion(
        [dict(zip(ids, good, strict=True)), dict(zip(ids, noise, strict=True))],
        dict(zip(ids, y.astype(int), strict=True)),
    )
    assert w[0] == pytest.approx(3.0, abs=0.2)
    assert abs(w[1]) < 0.15


def test_fuse_cli_reads_shuffled_csvs(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("ID,score\nx,1.0\ny,2.0\nz,3.0\n")
    b.write_text("ID,score\nz,30.0\nx,10.0\ny,20.0\n")
    out = tmp_path / "f.csv"
    assert main(["fuse", str(a), str(b), "--weights", "1,0.1", "--output", str(out)]) == 0
    assert out.read_text().splitlines() == ["ID,score", "x,2.0", "y,4.0", "z,6.0"]
