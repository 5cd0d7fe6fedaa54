"""`safespeak demo`: offline corpus -> train a compact CM -> full-length scoring -> evaluation -> report.

Everything runs on the CPU from packages that install offline. The report folder holds `report.html`,
the PNG plots, `metrics.json` (EERs as fractions, pooled and per attack) and the score CSV.
"""

from __future__ import annotations

import json
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from safespeak.progress import logger

__all__ = ["DEMO_RECIPE", "demo_summary", "run_demo"]

DEMO_RECIPE = "demo-cpu.yaml"
FORMAT = "asvspoof2019-la"


def _recipe_path() -> Path:
    return Path(str(resources.files("safespeak") / "data" / DEMO_RECIPE))


def _attack_split(protocol: Path) -> dict[str, str]:
    from safespeak.protocols import read_protocol

    return {t.trial_id: t.attack for t in read_protocol(protocol, FORMAT)}


def _unseen_eer(result_ids: dict[str, float], eval_attacks: dict[str, str], seen: set[str]) -> float | None:
    """EER of all bona fide trials vs the spoofs of attacks never seen in training (pooled)."""
    from safespeak.metrics import compute_eer

    bona = np.array([s for i, s in result_ids.items() if eval_attacks[i] == "-"])
    spoof = np.array([s for i, s in result_ids.items() if eval_attacks[i] not in seen | {"-"}])
    if bona.size == 0 or spoof.size == 0:
        return None
    return float(compute_eer(bona, spoof)[0])


def run_demo(
    out_dir: str | Path = "demo_out",
    *,
    corpus_dir: str | Path | None = None,
    corpus_size: Any = "mini",
    seed: int = 0,
    minutes: float | None = None,
    overrides: tuple[str, ...] = (),
    progress: bool = True,
    recipe: str | Path | None = None,
) -> dict[str, Any]:
    """Run the whole demo; returns the metrics written to `out_dir/metrics.json`.

    `minutes` caps the training time (the trainer stops after the step that crosses it);
    `corpus_size` is "mini", "full" or a `safespeak.corpus.build.SizeSpec` (tests use a micro one);
    `recipe` replaces the built-in training recipe (data paths are still filled in from the corpus).
    """
    from safespeak.config import load_config
    from safespeak.corpus.build import build_corpus
    from safespeak.corpus.sources import cache_dir
    from safespeak.corpus.summary import build_lines
    from safespeak.train import train

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size_name = corpus_size if isinstance(corpus_size, str) else corpus_size.name
    root = Path(corpus_dir) if corpus_dir else cache_dir() / f"corpus-{size_name}-seed{seed}"
    _log(progress, f"[1/4] corpus ({size_name}) under {root}")
    corpus = build_corpus(root, size=corpus_size, seed=seed, progress=progress)
    t_corpus = time.perf_counter() - t0
    _log(progress, "\n".join(build_lines(corpus, t_corpus)))

    (tr_p, tr_a), (dv_p, dv_a), (ev_p, ev_a) = (corpus.split(s) for s in ("train", "dev", "eval"))
    data_sets = [
        f"data.train.protocol={tr_p}",
        f"data.train.audio_dir={tr_a}",
        f"data.train.format={FORMAT}",
        f"data.dev.protocol={dv_p}",
        f"data.dev.audio_dir={dv_a}",
        f"data.dev.format={FORMAT}",
        f"train.out_dir={out / 'run'}",
        f"train.seed={seed}",
        f"train.progress={str(progress).lower()}",
    ]
    if minutes is not None:
        data_sets.append(f"train.max_minutes={minutes}")
    cfg = load_config(recipe or _recipe_path(), [*data_sets, *overrides])
    if (out / "run").exists():  # a demo re-run starts over (the trainer would refuse a used run folder)
        _log(progress, f"removing the previous demo run in {out / 'run'}")
        shutil.rmtree(out / "run")
    _log(progress, f"[2/4] training {cfg.model.arch} for up to {cfg.train.epochs} epochs")
    t1 = time.perf_counter()
    result = train(cfg)
    t_train = time.perf_counter() - t1

    _log(progress, "[3/4] scoring the eval split (full length)")
    t2 = time.perf_counter()
    scores, card = _score_eval(result.run_dir / "model", ev_p, ev_a, out, cfg, progress)
    t_score = time.perf_counter() - t2

    _log(progress, "[4/4] evaluating and writing the report")
    metrics = _evaluate_and_report(out, scores, ev_p, tr_p, result, cfg, corpus)
    metrics["timing_seconds"] = {
        "corpus": round(t_corpus, 1),
        "train": round(t_train, 1),
        "score": round(t_score, 1),
        "total": round(time.perf_counter() - t0, 1),
    }
    metrics["corpus_reused"] = corpus.reused
    metrics["n_failed_files"] = card.n_failed
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def _score_eval(ckpt: Path, protocol: Path, audio_dir: Path, out: Path, cfg: Any, progress: bool):
    """`safespeak score` on the eval split (the window follows the checkpoint's training crop)."""
    from safespeak.score import EvaluationCard, ScoreOptions, score_to_files
    from safespeak.scorefiles import read_scores

    opts = ScoreOptions(crop="full", batch_size=cfg.data.dev_batch_size)
    run = score_to_files(
        ckpt, protocol, out / "scores.csv", options=opts, protocol_format=FORMAT, audio_dir=audio_dir,
        progress=progress,
    )  # fmt: skip
    if run.errors:
        raise RuntimeError(f"{len(run.errors)} eval files could not be scored, e.g. {list(run.errors[:3])}")
    return read_scores(run.output), EvaluationCard.from_json(run.card.read_text(), run.card)


def _evaluate_and_report(
    out: Path,
    scores: dict[str, float],
    eval_protocol: Path,
    train_protocol: Path,
    result: Any,
    cfg: Any,
    corpus: Any,
) -> dict[str, Any]:
    from safespeak import report
    from safespeak.evaluate import evaluate

    ev = evaluate(out / "scores.csv", eval_protocol, FORMAT)
    eval_attacks = _attack_split(eval_protocol)
    seen = set(_attack_split(train_protocol).values()) - {"-"}
    bona = np.array([s for i, s in scores.items() if eval_attacks[i] == "-"])
    spoof = np.array([s for i, s in scores.items() if eval_attacks[i] != "-"])
    metrics = {
        "eer": ev.eer,
        "eer_threshold": ev.eer_threshold,
        "eer_unseen_attacks": _unseen_eer(scores, eval_attacks, seen),
        "per_attack": ev.per_attack,
        "seen_attacks": sorted(seen),
        "unseen_attacks": sorted(set(eval_attacks.values()) - seen - {"-"}),
        "n_bonafide": ev.n_bonafide,
        "n_spoof": ev.n_spoof,
        "arch": cfg.model.arch,
        "crop_samples": cfg.data.crop_samples,
        "best_epoch": result.best_epoch,
        "best_dev_eer": result.best_dev_eer,
        "epochs_run": result.epochs_run,
    }
    images = {
        "DET curve (eval, pooled)": report.plot_det(bona, spoof, out / "det.png"),
        "Score histograms per class": report.plot_histograms(
            bona, spoof, out / "scores_hist.png", threshold=ev.eer_threshold
        ),
        "EER per attack": report.plot_per_attack(
            ev.per_attack, out / "per_attack_eer.png", seen=sorted(seen)
        ),
    }
    if result.history:
        images["Training curves"] = report.plot_training(result.history, out / "training.png")
    attacks = "".join(
        f"<tr><td>{a}</td><td>{d.get('system', '')}</td><td>{', '.join(d.get('splits', []))}</td></tr>"
        for a, d in sorted(corpus.attacks.items())
    )
    sections = {
        "Corpus splits": report.corpus_section(
            {s: sp.counts for s, sp in corpus.splits.items()}, corpus.dropped, corpus.manifest
        ),
        "Attacks in the corpus": "<table><tr><th>id</th><th>system</th><th>splits</th></tr>"
        f"{attacks}</table>",
        "Try the trained model": report.detect_section(
            result.run_dir / "model", corpus.split("eval")[1] / f"{min(scores)}.flac"
        ),
    }
    report.write_report(out, metrics, images, title="safespeak demo", sections=sections)
    return metrics


def demo_summary(m: dict[str, Any], out: str | Path) -> str:
    """The lines `safespeak demo` ends with: pooled / unseen-attack / per-attack EERs and the report."""
    out = Path(out)
    unseen = m["eer_unseen_attacks"]
    lines = [f"eval EER (pooled): {100 * m['eer']:.2f}%"]
    if unseen is not None:
        lines.append(f"eval EER on unseen attacks {', '.join(m['unseen_attacks'])}: {100 * unseen:.2f}%")
    lines += [f"  {a}: {100 * e:.2f}%" for a, e in sorted(m["per_attack"].items())]
    lines.append(f"total {m['timing_seconds']['total']:.0f} s; report: {out / 'report.html'}")
    return "\n".join(lines)


def _log(progress: bool, msg: str) -> None:
    if progress:
        logger.info(msg)
