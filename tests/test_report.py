"""Report: the HTML carries the metrics, per-attack table and every plot as a real PNG."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np

from safespeak.report import plot_det, plot_histograms, plot_per_attack, plot_training, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_embeds_plots_and_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    bona, spoof = 1 + rng.standard_normal(300), -1 + rng.standard_normal(900)
    imgs = {
        "DET curve": plot_det(bona, spoof, tmp_path / "det.png"),
        "Scores": plot_histograms(bona, spoof, tmp_path / "hist.png", threshold=0.0),
        "Per attack": plot_per_attack({"A1": 0.1, "A2": 0.02}, tmp_path / "att.png", seen=["A1"]),
        "Training": plot_training(
            [
                {"epoch": 1, "train_loss": 0.5, "dev_eer": 0.2},
                {"epoch": 2, "train_loss": 0.3, "dev_eer": 0.1},
            ],
            tmp_path / "tr.png",
        ),
    }
    for p in imgs.values():
        assert p.read_bytes().startswith(PNG) and p.stat().st_size > 5_000
    metrics = {"eer": 0.1234, "per_attack": {"A1": 0.1, "A2": 0.02}, "n_bonafide": 300}
    page = write_report(tmp_path, metrics, imgs, title="t").read_text()
    assert "0.1234" in page and "<td>A2</td><td>2.00</td>" in page
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == 4
    assert all(base64.b64decode(e).startswith(PNG) for e in embedded)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
