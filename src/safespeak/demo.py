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

from safespeak.errors import SafespeakError
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
    if _training_note(result, cfg):
        logger.warning("warning: %s", _training_note(result, cfg))

    _log(progress, "[3/4] scoring the eval split (full length)")
    t2 = time.perf_counter()
    scores, card = _score_eval(result.run_dir / "model", ev_p, ev_a, out, cfg, progress)
    t_score = time.perf_counter() - t2
    fused = None
    if cfg.fusion.whisper_probe:  # second system + dev-fitted fusion; scores.csv becomes the fused scores
        _log(progress, "[3b/4] Whisper tiny.en linear probe (features cached once), fusion fitted on dev")
        fused = _fuse_with_probe(result.run_dir / "model", scores, corpus, cfg, out, progress)
        scores = fused.eval_scores
    t_fuse = time.perf_counter() - t2 - t_score

    _log(progress, "[4/4] evaluating and writing the report")
    stages = {
        "corpus": round(t_corpus, 1),
        "train": round(t_train, 1),
        "score": round(t_score, 1),
        **({"probe_and_fusion": round(t_fuse, 1)} if fused is not None else {}),
    }
    metrics = _evaluate_and_report(out, scores, ev_p, tr_p, result, cfg, corpus, fused, stages)
    metrics["timing_seconds"] = {**stages, "total": round(time.perf_counter() - t0, 1)}
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
        raise SafespeakError(f"{len(run.errors)} eval files could not be scored, e.g. {list(run.errors[:3])}",
                             path=run.errors_file)  # fmt: skip
    return read_scores(run.output), EvaluationCard.from_json(run.card.read_text(), run.card)


def _training_note(result: Any, cfg: Any) -> str | None:
    """Why training ran fewer epochs than the recipe asks for (None when it ran them all)."""
    if result.epochs_run >= cfg.train.epochs:
        return None
    why = []
    if cfg.train.max_minutes is not None:
        why.append(f"the {cfg.train.max_minutes:g}-minute safety cap (train.max_minutes)")
    if cfg.train.patience is not None:
        why.append(f"early stopping (train.patience {cfg.train.patience})")
    return (
        f"training stopped after {result.epochs_run} of {cfg.train.epochs} epochs by "
        f"{' or '.join(why) or 'an unknown cause'}: results depend on this machine's speed"
    )


def _fuse_with_probe(
    ckpt: Path, cm_scores: dict[str, float], corpus: Any, cfg: Any, out: Path, progress: bool
):
    """`safespeak.ensemble.fuse_cm_with_whisper_probe` on the corpus splits; keeps each system's scores."""
    from safespeak.data import load_split
    from safespeak.ensemble import fuse_cm_with_whisper_probe
    from safespeak.scorefiles import write_scores_csv

    splits = {s: load_split(str(p), FORMAT, audio_dir=str(a)) for s, (p, a) in _splits(corpus).items()}
    dev_p, dev_a = corpus.split("dev")
    fused = fuse_cm_with_whisper_probe(
        ckpt, cm_scores, splits, (dev_p, FORMAT, dev_a), cfg.fusion, out / "fusion", progress=progress
    )
    for name, sc in fused.system_scores.items():
        write_scores_csv(out / f"scores_{name}.csv", sc)
    write_scores_csv(out / "scores.csv", fused.eval_scores)
    return fused


def _splits(corpus: Any) -> dict[str, tuple[Path, Path]]:
    return {s: corpus.split(s) for s in ("train", "dev", "eval")}


# Measured separately (docs/experiments.md): too slow to recompute in the demo's time budget on a CPU.
REFERENCE_AASIST_L = {
    "name": "official AASIST-L, zero-shot (reference)",
    "eer": 0.377,
    "eer_unseen_attacks": 0.411,
    "note": "the official AASIST-L weights (ASVspoof 2019 LA) without training on this corpus, first 1 s of "
    "each file, same corpus (mini, seed 0) and eval split, measured once (docs/experiments.md)",
}


def _system_rows(fused: Any, eval_attacks: dict[str, str], seen: set[str], fused_metrics: dict[str, Any]):
    """Comparison rows: each fused system alone, the fusion, and the official AASIST-L reference."""
    from safespeak.metrics import compute_eer

    def per_attack(sc: dict[str, float]) -> dict[str, float]:
        bona = np.array([v for i, v in sc.items() if eval_attacks[i] == "-"])
        return {
            a: float(compute_eer(bona, np.array([v for i, v in sc.items() if eval_attacks[i] == a]))[0])
            for a in sorted(set(eval_attacks.values()) - {"-"})
        }

    rows = {}
    for name, sc in fused.system_scores.items():
        bona = np.array([v for i, v in sc.items() if eval_attacks[i] == "-"])
        spoof = np.array([v for i, v in sc.items() if eval_attacks[i] != "-"])
        rows[name] = {
            "eer": float(compute_eer(bona, spoof)[0]),
            "eer_unseen_attacks": _unseen_eer(sc, eval_attacks, seen),
            "per_attack": per_attack(sc),
            "dev_eer": fused.system_dev_eer[name],
            "fusion_weight": fused.fusion.weights[fused.fusion.systems.index(name)],
        }
    rows["fused (chosen)"] = {
        "eer": fused_metrics["eer"],
        "eer_unseen_attacks": fused_metrics["eer_unseen_attacks"],
        "per_attack": fused_metrics["per_attack"],
        "dev_eer": fused.fusion.dev_eer,
    }
    rows[REFERENCE_AASIST_L["name"]] = {k: v for k, v in REFERENCE_AASIST_L.items() if k != "name"}
    return rows


def _comparison_section(rows: dict[str, dict[str, Any]], attacks: list[str]) -> str:
    import html

    def pct(x: Any) -> str:
        return "" if x is None else f"{100 * x:.1f}%"

    body = [
        [name, pct(r["eer"]), pct(r.get("eer_unseen_attacks")), pct(r.get("dev_eer")),
         *(pct(r.get("per_attack", {}).get(a)) for a in attacks)]
        for name, r in rows.items()
    ]  # fmt: skip
    note = (
        "<p>Eval EERs of each system alone and of their fusion (weights and threshold fitted on dev only). "
        f"The last row is a reference figure: {REFERENCE_AASIST_L['note']}.</p>"
    )
    head = ["system", "eval EER", "unseen attacks", "dev EER", *attacks]
    cells = [[f"<td>{html.escape(str(c))}</td>" for c in row] for row in body]
    return (
        note
        + "<table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join(f"<tr>{''.join(r)}</tr>" for r in cells)
        + "</table>"
    )


def _evaluate_and_report(
    out: Path,
    scores: dict[str, float],
    eval_protocol: Path,
    train_protocol: Path,
    result: Any,
    cfg: Any,
    corpus: Any,
    fused: Any = None,
    stages: dict[str, float] | None = None,
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
        "epochs_planned": cfg.train.epochs,
        "training_note": _training_note(result, cfg),
    }
    if fused is not None:
        metrics["systems"] = _system_rows(fused, eval_attacks, seen, metrics)
        metrics["fusion"] = {"systems": list(fused.fusion.systems), "weights": list(fused.fusion.weights),
                             "bias": fused.fusion.bias, "dev_eer": fused.fusion.dev_eer,
                             "dev_threshold": fused.fusion.threshold, "fitted_on": "dev"}  # fmt: skip
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
    if metrics["training_note"]:
        sections = {"Training stopped early": f"<p>{metrics['training_note']}</p>", **sections}
    if stages:
        rows = "".join(
            f"<tr><td>{k}</td><td>{v:.0f} s ({v / 60:.1f} min)</td></tr>" for k, v in stages.items()
        )
        sections["Stage times"] = f"<table><tr><th>stage</th><th>time</th></tr>{rows}</table>"
    if fused is not None:
        attacks_eval = sorted(set(eval_attacks.values()) - {"-"})
        sections = {"Systems compared": _comparison_section(metrics["systems"], attacks_eval), **sections}
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
    for name, r in m.get("systems", {}).items():  # the fused demo: each system alone, for comparison
        un = r.get("eer_unseen_attacks")
        lines.append(f"  system {name}: {100 * r['eer']:.1f}%" + (f" (unseen {100 * un:.1f}%)" if un else ""))
    if m.get("training_note"):
        lines.append(f"note: {m['training_note']}")
    lines.append(f"total {m['timing_seconds']['total']:.0f} s; report: {out / 'report.html'}")
    return "\n".join(lines)


def _log(progress: bool, msg: str) -> None:
    if progress:
        logger.info(msg)
