"""Plots and an HTML report: DET curve, per-class score histograms, per-attack EER, training curves.

`write_report` stamps the page with its date and the safespeak version; `corpus_section` and
`detect_section` render the data behind a run (split counts, dropped items) and how to use its checkpoint.
"""

from __future__ import annotations

import base64
import html
import json
import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "corpus_section",
    "detect_section",
    "plot_det",
    "plot_histograms",
    "plot_per_attack",
    "plot_training",
    "write_report",
]


def _pyplot() -> Any:  # lazily imported, headless (Agg)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_det(bonafide: np.ndarray, spoof: np.ndarray, path: str | Path, title: str = "DET curve") -> Path:
    """DET curve (miss vs false alarm on normal-deviate axes) with the EER point marked."""
    from scipy.stats import norm

    from safespeak.metrics import compute_det_curve, compute_eer

    plt = _pyplot()
    frr, far, _ = compute_det_curve(np.asarray(bonafide, float), np.asarray(spoof, float))
    eer, _ = compute_eer(np.asarray(bonafide, float), np.asarray(spoof, float))
    eps = 1e-4  # probit of 0 or 1 is infinite: clip to the plotted range
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(norm.ppf(np.clip(far, eps, 1 - eps)), norm.ppf(np.clip(frr, eps, 1 - eps)), lw=1.5)
    e = norm.ppf(np.clip(eer, eps, 1 - eps))
    ax.plot([e], [e], "o", color="C3", label=f"EER {100 * eer:.2f}%")
    ax.plot(norm.ppf([eps, 1 - eps]), norm.ppf([eps, 1 - eps]), ":", color="grey", lw=0.8)
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    lim = norm.ppf([5e-4, 0.96])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("false acceptance of spoofs (%)")
    ax.set_ylabel("miss of bona fide (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_histograms(
    bonafide: np.ndarray, spoof: np.ndarray, path: str | Path, threshold: float | None = None
) -> Path:
    """Score histograms of both classes on shared bins, with the EER threshold if given."""
    plt = _pyplot()
    allv = np.concatenate([bonafide, spoof])
    bins = np.linspace(allv.min(), allv.max(), 60) if allv.min() < allv.max() else 10
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(spoof, bins=bins, alpha=0.6, density=True, label=f"spoof (n={len(spoof)})", color="C3")
    ax.hist(bonafide, bins=bins, alpha=0.6, density=True, label=f"bona fide (n={len(bonafide)})", color="C0")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label="EER threshold")
    ax.set_xlabel("score (higher = bona fide)")
    ax.set_ylabel("density")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_per_attack(per_attack: Mapping[str, float], path: str | Path, seen: Sequence[str] = ()) -> Path:
    """Bar chart of per-attack EER (%); attacks seen in training are hatched."""
    plt = _pyplot()
    names = sorted(per_attack)
    vals = [100 * per_attack[n] for n in names]
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(names) + 2), 3.5))
    bars = ax.bar(names, vals, color=["C1" if n in seen else "C2" for n in names])
    for b, n in zip(bars, names, strict=True):
        if n in seen:
            b.set_hatch("//")
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_ylabel("EER (%)")
    ax.set_title("EER per attack (hatched: seen in training)" if seen else "EER per attack")
    ax.tick_params(axis="x", rotation=45)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_training(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Training loss and dev EER per epoch (history rows: epoch, train_loss, dev_eer)."""
    plt = _pyplot()
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ep, [h.get("train_loss", np.nan) for h in history], "o-", color="C0", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="C0")
    ax2 = ax.twinx()
    ax2.plot(ep, [100 * h.get("dev_eer", np.nan) for h in history], "s-", color="C3", label="dev EER")
    ax2.set_ylabel("dev EER (%)", color="C3")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax2.legend(handles, [str(h.get_label()) for h in handles], loc="upper right")  # one box, both axes
    ax.grid(alpha=0.3)
    ax.set_title("training curves")
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(p, dpi=110)
    fig.clf()
    _pyplot().close(fig)
    return p


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    images: Mapping[str, str | Path],
    *,
    title: str = "safespeak report",
    sections: Mapping[str, str] | None = None,
    generated: datetime | None = None,
) -> Path:
    """Write `report.html` (images embedded, also linked as files) and `metrics.json` into `out_dir`.

    `sections` are (heading -> HTML) blocks placed after the metric tables; the page states its
    `generated` time (default now, UTC) and the safespeak version.
    """
    from safespeak import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True, default=float) + "\n")
    summary = [(k, _fmt(v)) for k, v in metrics.items() if not isinstance(v, dict | list)]
    when = (generated or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M %Z").strip()
    stamp = f"<p class='stamp'>generated {html.escape(when)} by safespeak {html.escape(__version__)}</p>"
    parts = [f"<h1>{html.escape(title)}</h1>", stamp, _table(summary, ["metric", "value"])]
    if isinstance(metrics.get("per_attack"), dict):
        rows = [(a, f"{100 * e:.2f}") for a, e in sorted(metrics["per_attack"].items())]
        parts += ["<h2>EER per attack</h2>", _table(rows, ["attack", "EER (%)"])]
    for name, text in (sections or {}).items():
        parts += [f"<h2>{html.escape(name)}</h2>", text]
    for caption, img in images.items():
        data = base64.b64encode(Path(img).read_bytes()).decode()
        parts += [
            f"<h2>{html.escape(caption)}</h2>",
            f'<a href="{html.escape(Path(img).name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(caption)}"></a>',
        ]
    style = (
        "body{font-family:sans-serif;max-width:900px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}img{max-width:100%}"
        ".stamp{color:#666}pre{background:#f4f4f4;padding:6px 10px;overflow-x:auto}"
    )
    doc = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
    doc += f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    path = out / "report.html"
    path.write_text(doc)
    return path


def corpus_section(
    counts: Mapping[str, Mapping[str, int]], dropped: Sequence[str] = (), manifest: str | Path | None = None
) -> str:
    """HTML: files per split (bona fide, spoofs, per attack) and the items the corpus build dropped.

    `counts` is split -> {"bonafide" or attack id -> files} (`CorpusInfo.splits[s].counts`).
    """
    attacks = sorted({a for c in counts.values() for a in c if a != "bonafide"})
    rows = []
    for split, c in counts.items():
        bona = c.get("bonafide", 0)
        rows.append([split, sum(c.values()), bona, sum(c.values()) - bona, *(c.get(a, "") for a in attacks)])
    text = _table(rows, ["split", "files", "bona fide", "spoofs", *attacks])
    if dropped:
        where = f" (listed in {html.escape(str(manifest))})" if manifest else ""
        items = "".join(f"<li><code>{html.escape(' '.join(d.split()))}</code></li>" for d in dropped)
        text += f"<p>{len(dropped)} planned item(s) could not be synthesised and were left out{where}:</p>"
        text += f"<ul>{items}</ul>"
    else:
        text += "<p>No planned item was dropped.</p>"
    return text


def detect_section(checkpoint: str | Path, example: str | Path | None = None) -> str:
    """HTML: the `safespeak detect` (and `score`) command lines that use `checkpoint`."""
    audio = shlex.quote(str(example)) if example else "recording.wav"
    ck = shlex.quote(str(checkpoint))
    lines = [
        f"safespeak detect --checkpoint {ck} {audio}",
        f"safespeak score --checkpoint {ck} --input FOLDER --output scores.csv",
    ]
    intro = "<p>Use the trained checkpoint on other recordings:</p>"
    return f"{intro}<pre>{html.escape(chr(10).join(lines))}</pre>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
