"""Report: the HTML carries the metrics, per-attack table and every plot as a real PNG."""

from __future__ import annotations

import base64
import html
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


def test_training_plot_has_one_legend_for_both_axes(tmp_path: Path, monkeypatch) -> None:
    from safespeak import report

    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig) or Path(path))
    hist = [{"epoch": 1, "train_loss": 0.5, "dev_eer": 0.2}, {"epoch": 2, "train_loss": 0.3, "dev_eer": 0.1}]
    plot_training(hist, tmp_path / "tr.png")
    legends = [ax.get_legend() for ax in figures[0].axes if ax.get_legend() is not None]
    assert len(legends) == 1
    assert [t.get_text() for t in legends[0].get_texts()] == ["train loss", "dev EER"]


def test_report_page_states_date_version_corpus_and_detect_command(tmp_path: Path) -> None:
    import shlex
    from datetime import datetime, timezone

    from safespeak import __version__
    from safespeak.report import corpus_section, detect_section

    counts = {"train": {"A01": 3, "bonafide": 5}, "eval": {"A01": 1, "A06": 2, "bonafide": 4}}
    dropped = ["SS_E_0000007 (eval, attack A06, from x/y): festival crashed <signal 11>"]
    ck = tmp_path / "my run" / "model"
    sections = {
        "Corpus": corpus_section(counts, dropped, "c/corpus.json"),
        "Try it": detect_section(ck, "a b.flac"),
    }
    when = datetime(2026, 12, 6, 7, 30, tzinfo=timezone.utc)
    page = write_report(tmp_path, {"eer": 0.1}, {}, sections=sections, generated=when).read_text()
    assert f"generated 2026-12-06 07:30 UTC by safespeak {__version__}" in page
    assert (
        "<tr><th>split</th><th>files</th><th>bona fide</th><th>spoofs</th><th>A01</th><th>A06</th></tr>"
        in page
    )
    assert "<tr><td>train</td><td>8</td><td>5</td><td>3</td><td>3</td><td></td></tr>" in page
    assert "<tr><td>eval</td><td>7</td><td>4</td><td>3</td><td>1</td><td>2</td></tr>" in page
    assert "1 planned item(s) could not be synthesised" in page and "c/corpus.json" in page
    assert "festival crashed &lt;signal 11&gt;" in page  # escaped, not markup
    cmd = re.search(r"<pre>([^<]*)</pre>", page)
    assert cmd is not None
    detect = html.unescape(cmd.group(1)).splitlines()[0]
    argv = shlex.split(detect)
    assert argv[:2] == ["safespeak", "detect"] and argv[argv.index("--checkpoint") + 1] == str(ck)
    assert argv[-1] == "a b.flac"
    assert "No planned item was dropped" in corpus_section(counts)
