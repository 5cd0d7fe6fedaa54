"""Cache of frozen front-end features: computed once per (file, crop policy), read by training and scoring.

A frozen front-end (a Whisper or SSL backbone, a frozen CM encoder) gives the same output for the same
input every epoch, so only the head needs to run after the first pass. The cache stores, per trial id,
the tensor the front-end returns for the trial's fixed crop (for SSL backbones: the stacked hidden
states (L, frames, C)) as float16.

Layout: `<root>/<fingerprint[:16]>/<crop policy key>/` holds shards `shard-<hash>.safetensors` (one
tensor per trial id; the shard's id list and the fingerprint in its metadata) and `index.json` (shard
file per id, rewritten at the end of each build). The fingerprint hashes the front-end's weights,
buffers and config (`module_fingerprint`), so changed weights or settings use a new folder and never
read stale features.

Kill-safety: each shard is written to a temporary file and renamed (atomic). A build first reads the
id lists of the finished shards, so a re-run (or a build for another trial list) computes only the
trials found in no shard; temporary files left by a killed run are removed first.

Crop policy (`CropPolicy`): random training crops do not cache (every epoch would need new features),
so cached training uses one fixed crop per file. `first` (default) takes the first N samples and
repeat-pads shorter files, exactly like the dev crop of `TrialDataset`, so the cached training input
equals the dev/scoring input; `full` keeps the whole file up to N samples without padding (variable
frame counts, batched with `collate_padded`). Waveform augmentation (RawBoost, codecs) cannot be
applied to cached features; a cached run trains without it.

Training and scoring use the cache through `CachedFeatureDataset` (items shaped like `TrialDataset`'s,
with the features under `audio`) and `CachedHead`, a view of an `SSLCountermeasure` whose forward takes
the cached (B, L, frames, C) features: an epoch then costs only the head, and the wrapped model (front-
end included) is what gets saved and scores raw audio afterwards. Sketch (frozen Whisper tiny.en + MHFA):

    model = build("ssl-mhfa", backbone="whisper", freeze=True)       # bundled tiny.en
    cache = FeatureCache(root, backbone_fingerprint(model.ssl), CropPolicy("first", 64_000))
    cache.build(train_trials + dev_trials, hidden_state_extractor(model.ssl))  # once; resumable
    loader = DataLoader(CachedFeatureDataset(cache, train_trials), batch_size=32, shuffle=True)
    head = CachedHead(model)             # train `head` on batch["audio"]; save `model`
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from safespeak.models.base import CountermeasureModel

__all__ = [
    "CROP_KINDS",
    "CachedFeatureDataset",
    "CachedHead",
    "CropPolicy",
    "FeatureCache",
    "backbone_fingerprint",
    "collate_padded",
    "hidden_state_extractor",
    "module_fingerprint",
]

CROP_KINDS = ("first", "full")
INDEX_FILE = "index.json"
FORMAT = 1
Extractor = Callable[[torch.Tensor], torch.Tensor]  # (B, T) waveform -> (B, ...) features


@dataclass(frozen=True)
class CropPolicy:
    """Which samples of a file the cached features describe (see the module docstring)."""

    kind: str = "first"
    samples: int = 64_000

    def __post_init__(self) -> None:
        if self.kind not in CROP_KINDS:
            raise ValueError(f"unknown crop policy {self.kind!r}; choose one of {', '.join(CROP_KINDS)}")
        if self.samples <= 0:
            raise ValueError(f"crop policy samples must be positive, got {self.samples}")

    def key(self) -> str:
        """Folder name of this policy inside a fingerprint folder."""
        return f"{self.kind}-{self.samples}"

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(T,) -> the cached crop: (samples,) for `first`, (min(T, samples),) for `full`."""
        from safespeak.audio import crop

        return crop(x, self.samples) if self.kind == "first" else x[: self.samples]


def module_fingerprint(module: nn.Module, config: dict[str, Any] | None = None) -> str:
    """sha256 of a module's state dict (names, dtypes, shapes, bytes) and a JSON config; 64 hex chars."""
    h = hashlib.sha256()
    h.update(json.dumps(config or {}, sort_keys=True, default=str).encode())
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d too
    return h.hexdigest()


def backbone_fingerprint(backbone: nn.Module) -> str:
    """`module_fingerprint` of an SSL/Whisper backbone with its architecture config (`config_dict()` or
    `config`), so e.g. Whisper's `pad_to_30s` or a DPHuBERT's normalisation change the key too."""
    config = backbone.config_dict() if hasattr(backbone, "config_dict") else getattr(backbone, "config", {})
    return module_fingerprint(backbone, dict(config) if isinstance(config, dict) else {"config": config})


def hidden_state_extractor(backbone: nn.Module) -> Extractor:
    """(B, T) -> stacked hidden states (B, L, frames, C) of an SSL/Whisper backbone (`extract_features`)."""

    def extract(x: torch.Tensor) -> torch.Tensor:
        hidden, _ = backbone.extract_features(x)
        return torch.stack(hidden, dim=1)

    return extract


def _ids_hash(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]


class FeatureCache:
    """Features of one front-end (by fingerprint) and crop policy under `root`.

    `build(trials, extract)` fills it (resumable); `get(trial_id)` reads one item (float16 tensor).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        fingerprint: str,
        policy: CropPolicy = CropPolicy(),
        *,
        shard_size: int = 256,
    ) -> None:
        if len(fingerprint) < 16:
            raise ValueError(f"fingerprint too short ({fingerprint!r}); use module_fingerprint()")
        self.fingerprint, self.policy, self.shard_size = fingerprint, policy, int(shard_size)
        self.dir = Path(root) / fingerprint[:16] / policy.key()
        self._index: dict[str, str] | None = None
        self._handles: dict[str, Any] = {}

    # -------------------------------------------------------------------------------------- build

    def shard_path(self, ids: Sequence[str]) -> Path:
        """File of the shard holding `ids` (named by a hash of the id list)."""
        return self.dir / f"shard-{_ids_hash(ids)}.safetensors"

    def cached_ids(self) -> dict[str, str]:
        """trial id -> shard file name, from the finished shards on disk (their metadata, not the index)."""
        from safetensors import safe_open

        found: dict[str, str] = {}
        for shard in sorted(self.dir.glob("shard-*.safetensors")):
            with safe_open(str(shard), framework="pt") as f:
                meta = f.metadata() or {}
            if meta.get("fingerprint") != self.fingerprint:
                raise ValueError(f"{shard}: written for another front-end (fingerprint mismatch)")
            found |= dict.fromkeys(json.loads(meta["ids"]), shard.name)
        return found

    def build(
        self,
        trials: Sequence[Any],
        extract: Extractor,
        *,
        batch_size: int = 16,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> int:
        """Compute and store the features of every trial (`trial_id`, `path`) not cached yet.

        Returns the number of trials computed in this call (0 when all were cached). Trials already in
        any finished shard are skipped, so caching train then dev, or train+dev then train, recomputes
        nothing. A shard is written only when all its trials are done, so a killed run loses at most one
        shard's work; the re-run splits the remaining trials into the same shards.
        """
        from safespeak.progress import Progress

        ids = [str(t.trial_id) for t in trials]
        if len(set(ids)) != len(ids):
            raise ValueError("feature cache: duplicate trial ids in the list")
        no_path = [i for i, t in zip(ids, trials, strict=True) if not getattr(t, "path", None)]
        if no_path:
            raise ValueError(f"feature cache: trial {no_path[0]!r} has no audio path")
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):  # left by a killed run's atomic write
            stale.unlink()
        index = self.cached_ids()
        todo = [i for i, trial_id in enumerate(ids) if trial_id not in index]
        bar: Progress[Any] = Progress(total=len(todo), desc="caching features", unit="file", enabled=progress)
        for lo in range(0, len(todo), self.shard_size):
            idx = todo[lo : lo + self.shard_size]
            shard_ids = [ids[i] for i in idx]
            self._write_shard(shard_ids, self._compute(trials, idx, extract, batch_size, device, bar))
            index |= dict.fromkeys(shard_ids, self.shard_path(shard_ids).name)
        bar.close()
        self._write_json(
            self.dir / INDEX_FILE, {"format": FORMAT, "fingerprint": self.fingerprint, "index": index}
        )
        self._index = None
        return len(todo)

    @torch.inference_mode()
    def _compute(
        self,
        trials: Sequence[Any],
        idx: list[int],
        extract: Extractor,
        batch_size: int,
        device: str | torch.device,
        bar: Any,
    ) -> list[torch.Tensor]:
        from safespeak.audio import load_audio

        # `full` crops differ in length and Whisper/SSL backbones do not mask padding: one file per batch
        bs = batch_size if self.policy.kind == "first" else 1
        out: list[torch.Tensor] = []
        for lo in range(0, len(idx), bs):
            chunk = [trials[i] for i in idx[lo : lo + bs]]
            wav = np.stack([self.policy.apply(load_audio(t.path)) for t in chunk])  # (b, T)
            feats = extract(torch.from_numpy(wav).to(device))  # (b, ...)
            fp16 = torch.finfo(torch.float16).max
            out += list(feats.float().clamp(-fp16, fp16).to(torch.float16).cpu().unbind(0))
            bar.update(len(chunk))
        return out

    def _write_shard(self, ids: list[str], feats: list[torch.Tensor]) -> None:
        from safetensors.torch import save_file

        from safespeak.checkpoint import atomic_write

        tensors = {i: f.contiguous() for i, f in zip(ids, feats, strict=True)}
        meta = {"format": str(FORMAT), "fingerprint": self.fingerprint, "ids": json.dumps(ids)}
        atomic_write(self.shard_path(ids), lambda tmp: save_file(tensors, tmp, metadata=meta))

    @staticmethod
    def _write_json(path: Path, obj: Any) -> None:
        from safespeak.checkpoint import atomic_write

        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj)))

    # --------------------------------------------------------------------------------------- read

    def is_complete(self, trial_ids: Sequence[str]) -> bool:
        """Whether every id is in the finished cache."""
        try:
            index = self.index()
        except FileNotFoundError:
            return False
        return all(str(i) in index for i in trial_ids)

    def index(self) -> dict[str, str]:
        """trial id -> shard file name (from `index.json`; raises `FileNotFoundError` before a build)."""
        if self._index is None:
            path = self.dir / INDEX_FILE
            if not path.is_file():
                raise FileNotFoundError(f"{path}: feature cache not built (call FeatureCache.build first)")
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT or data.get("fingerprint") != self.fingerprint:
                raise ValueError(f"{path}: written for another front-end or cache format")
            self._index = dict(data["index"])
        return self._index

    def get(self, trial_id: str) -> torch.Tensor:
        """Cached features of one trial (float16, as the extractor returned them without the batch dim)."""
        from safetensors import safe_open

        name = self.index().get(str(trial_id))
        if name is None:
            raise KeyError(f"trial {trial_id!r} is not in the feature cache {self.dir}")
        handle = self._handles.get(name)
        if handle is None:  # one open (memory-mapped) handle per shard and process
            handle = self._handles[name] = safe_open(str(self.dir / name), framework="pt")
        return handle.get_tensor(str(trial_id))

    def __getstate__(self) -> dict[str, Any]:  # loader workers reopen their own handles
        return {**self.__dict__, "_handles": {}}


class CachedFeatureDataset(Dataset):
    """`TrialDataset`-shaped items from a built cache: {"audio": float32 features, "label", "index"}.

    The features sit under `audio` so an unchanged training/scoring loop feeds them to `CachedHead`.
    """

    def __init__(self, cache: FeatureCache, trials: Sequence[Any]) -> None:
        missing = [t.trial_id for t in trials if str(t.trial_id) not in cache.index()]
        if missing:
            raise ValueError(
                f"{len(missing)} trials are not in the feature cache {cache.dir}, e.g. {missing[0]!r}"
            )
        self.cache, self.trials = cache, list(trials)

    def set_epoch(self, epoch: int) -> None:
        """No-op: cached crops are fixed (kept for `TrialDataset` compatibility)."""

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, i: int) -> dict[str, Any]:
        t = self.trials[i]
        label = -1 if t.label is None else int(t.label)
        return {"audio": self.cache.get(t.trial_id).float(), "label": label, "index": i}


def collate_padded(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Batch items whose features differ in frame count (dim 1 of (L, frames, C)): zero-pad + `lengths`."""
    feats = [it["audio"] for it in items]
    n = max(f.shape[1] for f in feats)
    out = feats[0].new_zeros((len(feats), feats[0].shape[0], n, *feats[0].shape[2:]))  # (B, L, N, C)
    for b, f in enumerate(feats):
        out[b, :, : f.shape[1]] = f
    return {
        "audio": out,
        "lengths": torch.tensor([f.shape[1] for f in feats]),
        "label": torch.tensor([it["label"] for it in items]),
        "index": torch.tensor([it["index"] for it in items]),
    }


class CachedHead(CountermeasureModel):
    """The part of `model` after its cached front-end: cached features -> `model`'s forward output.

    Default: an `SSLCountermeasure` fed with cached hidden states (B, L, frames, C) through its
    `head_logits`. `recompute_from=k` (Whisper backbones) reruns encoder layers k.. from cached state k,
    so the last layers can be fine-tuned at the cost of those layers only (keep the `FeatureCache` made
    from the weights before training: its fingerprint covers the whole backbone). Other models (e.g. a
    CM whose frozen encoder was cached) pass `head_fn`, the function from the cached batch to the model's
    output. Shares its parameters with `model` (nothing is copied): train this view, then save or score
    with `model` itself on raw audio. `bonafide_score` and `logits2` are `model`'s.
    """

    def __init__(
        self,
        model: nn.Module,
        head_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        recompute_from: int | None = None,
    ) -> None:
        super().__init__()
        if head_fn is None and not hasattr(model, "head_logits"):
            raise ValueError(f"{type(model).__name__} has no head_logits: pass head_fn")
        if recompute_from is not None and not hasattr(getattr(model, "ssl", None), "resume_features"):
            raise ValueError("recompute_from needs a backbone with resume_features (Whisper)")
        self.model, self.head_fn, self.recompute_from = model, head_fn, recompute_from
        self.input_length = int(getattr(model, "input_length", self.input_length))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if self.head_fn is not None:
            return self.head_fn(feats)
        if feats.dim() != 4:
            raise ValueError(
                f"expected cached hidden states (B, L, frames, C), got shape {tuple(feats.shape)}"
            )
        hidden = list(feats.unbind(1))
        if self.recompute_from is not None:  # fine-tune the last layers: rerun them from a cached state
            hidden = self.model.ssl.resume_features(hidden, self.recompute_from)
        return self.model.head_logits(hidden)

    def bonafide_score(self, out: torch.Tensor) -> torch.Tensor:
        return self.model.bonafide_score(out)

    def param_groups(self, lr: float, ssl_lr: float | None = None) -> list[dict[str, Any]]:
        """`model.param_groups` when it has one (SSL models), else one group of trainable parameters."""
        if hasattr(self.model, "param_groups"):
            return self.model.param_groups(lr, ssl_lr)
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr, "name": "head"}]

    def logits2(self, out: torch.Tensor) -> torch.Tensor:
        return self.model.logits2(out)
