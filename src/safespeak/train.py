"""Trainer: weighted cross-entropy, Adam + cosine/constant LR, SWA, bf16, DDP, exact resume, dev EER.

`train(cfg)` runs a recipe (`safespeak.config.ExperimentConfig`) into `cfg.train.out_dir`:

- `config.yaml`: the validated config the run uses (what `--resume` reloads);
- `state.pt`: resumable state (model, optimizer, LR step, every RNG, epoch + batch position, best EER,
  history), written atomically every `save_every_steps` steps and at each epoch end; it holds only
  tensors, dicts, lists and numbers, so it loads with `torch.load(weights_only=True)`;
- `best.*`: the best-by-dev-EER checkpoint, `last.*`: the final weights (SWA-averaged when `swa`),
  `model.*`: what to use (`last` when SWA ran, else `best`), all `safespeak.checkpoint` pairs whose
  meta carries the training config, epoch, dev metrics, input length and data fingerprint;
- `result.json` and, when tensorboard is installed, `tb/` scalars (loss, LR, dev EER).

A run killed at any point and resumed (`safespeak train --resume RUN_DIR`) ends with the weights of an
uninterrupted run: the batch order and crops are pure functions of (seed, epoch) (see `safespeak.data`),
so a resume skips exactly the consumed batches. Under torchrun each rank takes a disjoint slice of the
same global batch and the loss is normalised by the global weight sum, so gradients equal those of one
process with `batch_size * world` — exactly so for BatchNorm-free models, since BatchNorm statistics
stay per rank (no SyncBatchNorm; SWA's BatchNorm refresh also runs per rank and rank 0's is saved).
Checkpoints, state and logs come from rank 0; dev scores are gathered from all ranks.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from safespeak.config import (
    ConfigError,
    ExperimentConfig,
    SplitConfig,
    config_diff,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
)
from safespeak.data import (
    EpochBatchSampler,
    TrialDataset,
    check_leakage,
    load_split,
    make_loader,
    shard_indices,
    trials_fingerprint,
)
from safespeak.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    cleanup,
    rng_state,
    seed_all,
    set_rng_state,
    setup,
)
from safespeak.errors import SafespeakError
from safespeak.progress import logger
from safespeak.protocols import Trial
from safespeak.transfer import param_groups, prepare

__all__ = ["TrainResult", "load_run_config", "lr_factor", "train", "train_recipe"]

STATE_FILE = "state.pt"
STATE_FORMAT = "safespeak-train-state/1"


@dataclass
class TrainResult:
    """What a finished run produced; `history` rows: epoch, train_loss, dev_eer, lr."""

    run_dir: Path
    checkpoint: Path
    best_epoch: int
    best_dev_eer: float
    final_dev_eer: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


def lr_factor(step: int, total_steps: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the base LR at optimizer step `step`: per-step cosine to `min_ratio`, or 1."""
    if schedule == "constant":
        return 1.0
    return min_ratio + (1.0 - min_ratio) * 0.5 * (
        1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)
    )


# ------------------------------------------------------------------------------------------ the run


def _write_text(path: Path, text: str) -> None:
    """Atomic text write: a kill never leaves a half-written config or result."""
    from safespeak.checkpoint import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _load_split(sc: SplitConfig, name: str) -> list[Trial]:
    if not sc.protocol:
        raise ConfigError(f"data.{name}.protocol: a protocol file is required to train")
    return load_split(
        sc.protocol, sc.format, audio_dir=sc.audio_dir, audio_ext=sc.audio_ext, subset=sc.subset
    )


class _Run:
    """Everything one training process holds; methods are the phases of `train`."""

    def __init__(self, cfg: ExperimentConfig, dist_info: DistInfo) -> None:
        self.cfg, self.d = cfg, dist_info
        self.run_dir = Path(cfg.train.out_dir)
        c = cfg.data
        self.train_trials, self.dev_trials = _load_split(c.train, "train"), _load_split(c.dev, "dev")
        if {t.label for t in self.dev_trials} != {0, 1}:
            raise SafespeakError("the dev EER needs both bona fide and spoof trials", path=c.dev.protocol)
        if not c.allow_overlap:
            check_leakage(self.train_trials, self.dev_trials)
        self.fingerprint = trials_fingerprint(self.train_trials, self.dev_trials)
        seed_all(cfg.train.seed)  # identical initial weights on every rank
        self._build_model()
        self.augment, self.gen = self._build_augment()
        seed_all(cfg.train.seed + 7919 * dist_info.rank)  # dropout differs across ranks
        self.train_set = TrialDataset(self.train_trials, c.crop_samples, train=True, seed=cfg.train.seed)
        self.dev_set = TrialDataset(self.dev_trials, c.dev_crop_samples, train=False)
        world = dist_info.world
        self.sampler = EpochBatchSampler(
            len(self.train_set), c.batch_size, seed=cfg.train.seed, rank=dist_info.rank, world=world
        )
        self.steps_per_epoch = len(self.train_set) // (c.batch_size * world)
        self.class_weights = torch.tensor(cfg.train.loss_weights, device=dist_info.device)  # [spoof, bona]
        self.s: dict[str, Any] = {  # everything that changes during the run besides weights and RNGs
            "epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_eer": math.inf, "best_epoch": -1,
            "bad_epochs": 0, "history": [], "loss_sum": 0.0, "stopped": False,
        }  # fmt: skip
        self.tb = self._tensorboard()
        self.t_start, self.epochs_here = time.monotonic(), 0  # for train.max_minutes

    def _build_model(self) -> None:
        from safespeak.models import build

        cfg, d = self.cfg, self.d
        self.core = build(cfg.model.arch, **cfg.model.overrides)
        init = prepare(self.core, cfg.model.arch, cfg.model.init_from, cfg.model.freeze)  # safespeak.transfer
        self.pretrained_keys = init.loaded if init is not None else ()
        if init is not None and cfg.train.progress and d.is_main:
            logger.info(init.summary())
        self.core.to(d.device)
        self.optimizer = torch.optim.Adam(
            self._param_groups(),
            lr=cfg.train.lr,
            betas=cfg.train.betas,
            eps=cfg.train.eps,
            weight_decay=cfg.train.weight_decay,
        )
        for g in self.optimizer.param_groups:  # the schedule scales each group's own base LR
            g.setdefault("initial_lr", g["lr"])
        self.swa = torch.optim.swa_utils.AveragedModel(self.core) if cfg.train.swa else None
        self.model: torch.nn.Module = self.core
        if d.world > 1:
            ids = [d.device.index] if d.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.core, device_ids=ids, find_unused_parameters=cfg.train.ddp_find_unused
            )

    def _param_groups(self) -> Any:
        t = self.cfg.train
        if self.cfg.model.init_from:  # loaded parameters at `pretrained_lr`, new ones at `lr`
            return param_groups(self.core, self.pretrained_keys, t.lr, t.pretrained_lr)
        if hasattr(self.core, "param_groups"):  # SSL models: backbone at its own LR (None: `lr`)
            return self.core.param_groups(t.lr, t.ssl_lr)
        return [p for p in self.core.parameters() if p.requires_grad]

    def _build_augment(self) -> tuple[Any, torch.Generator | None]:
        try:
            from safespeak.augment.pipeline import build_augment
        except ImportError:
            if getattr(self.cfg.augment, "rawboost_algo", 0):
                raise RuntimeError("augment.rawboost_algo needs safespeak.augment.pipeline") from None
            return None, None
        aug = build_augment(self.cfg.augment)
        if aug is None:
            return None, None
        gen = torch.Generator(device=self.d.device).manual_seed(self.cfg.train.seed * 7919 + 17 + self.d.rank)
        return aug, gen

    def _tensorboard(self) -> Any:
        if not (self.cfg.train.tensorboard and self.d.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.run_dir / "tb"))

    # ---------------------------------------------------------------------------------- state I/O

    def save_state(self) -> None:
        """Write `state.pt` atomically (rank 0); RNG states come from every rank."""
        from safespeak.checkpoint import atomic_write

        rngs = all_gather_objects(rng_state(self.gen))
        if not self.d.is_main:
            return
        state = {
            "format": STATE_FORMAT,
            "world_size": self.d.world,
            "fingerprint": self.fingerprint,
            "model": self.core.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "swa": self.swa.state_dict() if self.swa is not None else {},
            "rng": rngs,
            **self.s,
        }
        atomic_write(self.run_dir / STATE_FILE, lambda tmp: torch.save(state, tmp))

    def load_state(self) -> None:
        path = self.run_dir / STATE_FILE
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT:
            raise SafespeakError("not a safespeak training state", path=path)
        if state["world_size"] != self.d.world:
            raise ValueError(
                f"{path}: saved with {state['world_size']} processes, resuming with {self.d.world}"
            )
        if state["fingerprint"] != self.fingerprint:
            raise SafespeakError("the train/dev trial lists changed since this run started", path=path)
        self.core.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.swa is not None:
            self.swa.load_state_dict(state["swa"])
        set_rng_state(state["rng"][self.d.rank], self.gen)
        self.s = {k: state[k] for k in self.s}

    # ------------------------------------------------------------------------------------ training

    def train_step(self, batch: dict[str, torch.Tensor]) -> float:
        """One optimizer step on this rank's slice of the global batch; returns the global loss."""
        t, dev = self.cfg.train, self.d.device
        x = batch["audio"].to(dev, non_blocking=True)  # (B, T)
        y = batch["label"].to(dev, non_blocking=True)  # (B,)
        if self.augment is not None:
            x = self.augment(x, self.gen)
        total = self.steps_per_epoch * t.epochs
        factor = lr_factor(self.s["global_step"], total, t.scheduler, t.min_lr / t.lr)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * factor
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=t.precision == "bf16"):
            logits = self.core.logits2(self.model(self.core.preprocess(x))).float()  # (B, 2)
        w = self.class_weights[y]  # (B,)
        wnll = w * F.cross_entropy(logits, y, reduction="none")
        # global weighted mean: normalise by the weight sum over all ranks; DDP then averages gradients
        stats = all_reduce_sum(torch.stack([w.sum(), wnll.sum().detach()]))
        loss = wnll.sum() / stats[0] * self.d.world
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.core.parameters(), t.grad_clip)
        self.optimizer.step()
        return float(stats[1] / stats[0])

    def run_epoch(self, epoch: int) -> None:
        from safespeak.progress import Progress

        t = self.cfg.train
        self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch, start_batch=self.s["step_in_epoch"])
        loader = make_loader(
            self.train_set,
            self.sampler,
            num_workers=self.cfg.data.num_workers,
            seed=t.seed,
            epoch=epoch,
            pin_memory=self.d.device.type == "cuda",
        )
        self.model.train()
        show = t.progress and self.d.is_main
        bar: Progress[Any] = Progress(loader, desc=f"epoch {epoch}", unit="batch", enabled=show, leave=False)
        for batch in bar:
            loss = self.train_step(batch)
            self.s["loss_sum"] += loss
            self.s["step_in_epoch"] += 1
            self.s["global_step"] += 1
            bar.set_postfix(loss=f"{loss:.4f}")
            if self.tb is not None and self.s["global_step"] % t.log_every_steps == 0:
                self.tb.add_scalar("train/loss", loss, self.s["global_step"])
                self.tb.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.s["global_step"])
            if self.s["global_step"] % t.save_every_steps == 0:
                self.save_state()

    @torch.no_grad()
    def dev_eer(self, model: torch.nn.Module) -> tuple[float, float]:
        """Dev EER and its threshold (scored on every rank's shard, gathered, identical on all ranks).

        `data.dev_scoring: full` (default) scores whole files in windows as `safespeak score` does with
        the saved checkpoint, so the best-by-dev choice measures what users get; `first` scores the
        first `data.dev_crop_samples` of each file.
        """
        from safespeak.metrics import compute_eer

        model.eval()
        idx = shard_indices(len(self.dev_set), self.d.rank, self.d.world)
        with torch.autocast(
            self.d.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.precision == "bf16"
        ):
            full = self.cfg.data.dev_scoring == "full"
            sc, lb = self._dev_scores_full(model, idx) if full else self._dev_scores_first(model, idx)
        model.train()
        parts = all_gather_objects((sc, lb))
        sc = np.concatenate([p[0] for p in parts])
        lb = np.concatenate([p[1] for p in parts])
        eer, threshold = compute_eer(sc[lb == 1], sc[lb == 0])
        return float(eer), float(threshold)

    def _dev_scores_full(self, model: torch.nn.Module, idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
        from safespeak.audio import AudioError
        from safespeak.score import ScoreItem, ScoreOptions, score_items, scoring_window

        c = self.cfg.data
        items = [ScoreItem(str(i), str(self.dev_trials[i].path)) for i in idx]
        window = scoring_window(model, train_window=c.crop_samples)
        opts = ScoreOptions(window=window, batch_size=c.dev_batch_size, device=str(self.d.device))
        res = score_items(model, items, opts, progress=False)
        if res.errors:
            _, path, reason = res.errors[0]
            raise AudioError(path, f"dev file unreadable: {reason} ({len(res.errors)} dev files failed)")
        scores = np.array([res.scores[str(i)] for i in idx], dtype=np.float32)
        return scores, np.array([self.dev_trials[i].label for i in idx], dtype=np.int64)

    def _dev_scores_first(self, model: torch.nn.Module, idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
        bs = self.cfg.data.dev_batch_size
        loader = make_loader(
            self.dev_set,
            [idx[i : i + bs] for i in range(0, len(idx), bs)],
            num_workers=self.cfg.data.num_workers,
        )
        scores, labels = [np.zeros(0, np.float32)], [np.zeros(0, np.int64)]
        for batch in loader:
            scores.append(model.score(batch["audio"].to(self.d.device)).float().cpu().numpy())  # (B,)
            labels.append(batch["label"].numpy())
        return np.concatenate(scores), np.concatenate(labels)

    def end_epoch(self, epoch: int) -> None:
        """Dev EER, best checkpoint, early stopping, SWA update; then the epoch counts as done."""
        t, s = self.cfg.train, self.s
        eer, threshold = self.dev_eer(self.core)
        row = {
            "epoch": epoch,
            "train_loss": s["loss_sum"] / max(s["step_in_epoch"], 1),
            "dev_eer": eer,
            "dev_eer_threshold": threshold,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        s["history"].append(row)
        if t.progress and self.d.is_main:
            logger.info(f"epoch {epoch}: train loss {row['train_loss']:.4f}, dev EER {100 * eer:.3f}%")
        if self.tb is not None:
            self.tb.add_scalar("dev/eer", eer, epoch)
            self.tb.add_scalar("train/epoch_loss", row["train_loss"], epoch)
        if eer < s["best_eer"]:
            s["best_eer"], s["best_epoch"], s["bad_epochs"] = eer, epoch, 0
            s["best_threshold"] = threshold
            self.save_checkpoint("best", self.core, epoch, eer, threshold)
        else:
            s["bad_epochs"] += 1
        if self.swa is not None and epoch >= t.swa_start_epoch:
            self.swa.update_parameters(self.core)
        if t.patience is not None and s["bad_epochs"] >= t.patience:
            s["stopped"] = True
        if t.max_minutes is not None and self._out_of_time(t.max_minutes):
            s["stopped"] = True
        s["epoch"], s["step_in_epoch"], s["loss_sum"] = epoch + 1, 0, 0.0
        self.save_state()

    def _out_of_time(self, minutes: float) -> bool:
        """Would another epoch (as long as the average one so far) end past the budget?"""
        self.epochs_here += 1
        elapsed = time.monotonic() - self.t_start
        # every rank must take the same decision: use the slowest rank's clock
        elapsed = max(all_gather_objects(elapsed))
        return elapsed * (self.epochs_here + 1) / self.epochs_here > 60.0 * minutes

    def save_checkpoint(
        self, name: str, model: torch.nn.Module, epoch: int, eer: float, threshold: float | None
    ) -> Path | None:
        """Write a checkpoint whose metadata carries the training crop and the dev-EER threshold."""
        from safespeak.checkpoint import save_checkpoint

        if not self.d.is_main:
            return None
        meta = {
            "training_config": config_to_dict(self.cfg),
            "epoch": epoch,
            "dev_metrics": {"eer": eer},
            "data_fingerprint": self.fingerprint,
            "dev_scoring": self.cfg.data.dev_scoring,
        }
        # SSL models describe themselves without their backbone's source path (restorable anywhere)
        export = getattr(model, "checkpoint_config", None)
        model_config = export() if callable(export) else self.cfg.model.overrides
        return save_checkpoint(
            self.run_dir / name, model, arch=self.cfg.model.arch, model_config=model_config, meta=meta,
            train_window=self.cfg.data.crop_samples, threshold=_finite(threshold),
        )  # fmt: skip

    def finish(self) -> TrainResult:
        """Apply SWA (average + BN statistics), write `last` and `model`, return the result."""
        from safespeak.checkpoint import load_checkpoint

        s = self.s
        last = s["history"][-1] if s["history"] else {}
        final, final_eer, final_thr = self.core, last.get("dev_eer", math.nan), last.get("dev_eer_threshold")
        if self.swa is not None and int(self.swa.n_averaged) > 0:
            final = self.swa.module
            self.train_set.set_epoch(self.cfg.train.epochs)  # a fixed, reproducible pass for BN stats
            self.sampler.set_epoch(self.cfg.train.epochs)
            loader = make_loader(
                self.train_set,
                self.sampler,
                num_workers=self.cfg.data.num_workers,
                seed=self.cfg.train.seed,
                epoch=self.cfg.train.epochs,
            )
            dev = self.d.device
            with torch.no_grad():
                torch.optim.swa_utils.update_bn((final.preprocess(b["audio"].to(dev)) for b in loader), final)
            final_eer, final_thr = self.dev_eer(final)
        epoch = s["epoch"] - 1
        self.save_checkpoint("last", final, epoch, final_eer, final_thr)
        if self.d.is_main:
            if self.swa is None and s["best_epoch"] >= 0:
                best = load_checkpoint(self.run_dir / "best")[0]
                self.save_checkpoint("model", best, s["best_epoch"], s["best_eer"], s.get("best_threshold"))
            else:
                self.save_checkpoint("model", final, epoch, final_eer, final_thr)
        result = TrainResult(self.run_dir, self.run_dir / "model.safetensors", s["best_epoch"], s["best_eer"],
                             final_eer, s["epoch"], s["stopped"], list(s["history"]))  # fmt: skip
        if self.d.is_main:
            doc = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}
            _write_text(self.run_dir / "result.json", json.dumps(doc, indent=2) + "\n")
        if self.tb is not None:
            self.tb.close()
        return result


def train(cfg: ExperimentConfig, *, resume: bool = False) -> TrainResult:
    """Train a recipe into `cfg.train.out_dir` (resume from its `state.pt` when `resume`)."""
    run_dir = Path(cfg.train.out_dir)
    if resume:
        _check_resume_config(cfg, run_dir)
    elif (run_dir / STATE_FILE).exists():
        raise FileExistsError(
            f"{run_dir / STATE_FILE} exists: continue with --resume {run_dir} or choose another train.out_dir"
        )
    d = setup(cfg.train.device)
    try:
        run = _Run(cfg, d)
        if resume and (run_dir / STATE_FILE).exists():
            run.load_state()
        elif d.is_main:  # a fresh run (or one killed before its first state save)
            run.run_dir.mkdir(parents=True, exist_ok=True)
            _write_text(run.run_dir / "config.yaml", dump_config(cfg))
        while run.s["epoch"] < cfg.train.epochs and not run.s["stopped"]:
            run.run_epoch(run.s["epoch"])
            run.end_epoch(run.s["epoch"])
        return run.finish()
    finally:
        cleanup()


def _check_resume_config(cfg: ExperimentConfig, run_dir: Path) -> None:
    """A resumed run must use the config it started with, else it would not finish as it would have."""
    diff = config_diff(load_run_config(run_dir), cfg, ignore=("data.allow_overlap", "train.out_dir"))
    if diff:
        raise ConfigError(f"the resumed config differs in {', '.join(diff)}", path=run_dir / "config.yaml")


def load_run_config(run_dir: str | Path) -> ExperimentConfig:
    """The config a run directory was started with (its `config.yaml`)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError("not a training run directory (config.yaml missing)", path=path)
    cfg = load_config(path)
    return replace(cfg, train=replace(cfg.train, out_dir=str(run_dir)))


def train_recipe(
    config: str | os.PathLike[str] | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    *,
    resume: str | os.PathLike[str] | None = None,
    allow_leakage: bool = False,
) -> TrainResult:
    """The `safespeak train` workflow: a recipe file plus `--set` overrides, or a run to resume."""
    if resume:
        if config or overrides:
            raise ConfigError("--resume reuses RUN_DIR/config.yaml; do not pass a config or --set")
        cfg = load_run_config(resume)
    elif config:
        cfg = load_config(config, overrides)
    else:
        raise ConfigError("give a CONFIG file or --resume RUN_DIR")
    if allow_leakage:
        cfg = config_from_dict(config_to_dict(cfg), ["data.allow_overlap=true"])
    return train(cfg, resume=bool(resume))
