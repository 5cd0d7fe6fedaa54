"""Feature cache: hits, invalidation by fingerprint, kill-and-resume, dataset + head-only model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from safespeak.audio import load_audio, save_audio
from safespeak.features import (
    CachedFeatureDataset,
    CachedHead,
    CropPolicy,
    FeatureCache,
    backbone_fingerprint,
    collate_padded,
    hidden_state_extractor,
    module_fingerprint,
)
from safespeak.models.ssl.whisper import WhisperEncoderConfig
from safespeak.protocols import Trial

TINY = WhisperEncoderConfig(n_mels=16, d_model=16, layers=2, heads=2, ffn_dim=32, max_positions=100)


def _trials(tmp_path: Path, n: int = 8) -> list[Trial]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        x = (0.1 * rng.standard_normal(1600 + 400 * i)).astype(np.float32)
        path = tmp_path / "wav" / f"f{i}.wav"
        path.parent.mkdir(exist_ok=True)
        save_audio(path, x)
        out.append(Trial(f"T{i:02d}", i % 2, path=str(path)))
    return out


@pytest.fixture
def model() -> torch.nn.Module:
    from safespeak.models import build

    torch.manual_seed(0)
    return build(
        "ssl-aasist",
        backbone="whisper",
        backbone_config=TINY.to_dict(),
        aggregation="weighted-sum",
        freeze=True,
    ).eval()


class Counting:
    """An extractor that counts the files it sees and can fail after `fail_after` calls."""

    def __init__(self, backbone: torch.nn.Module, fail_after: int | None = None) -> None:
        self.inner, self.files, self.calls, self.fail_after = (
            hidden_state_extractor(backbone),
            0,
            0,
            fail_after,
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("killed")
        self.calls += 1
        self.files += x.shape[0]
        return self.inner(x)


def test_second_epoch_hits_the_cache_and_trains_only_the_head(tmp_path: Path, model) -> None:
    trials = _trials(tmp_path)
    policy = CropPolicy("first", 3200)
    cache = FeatureCache(
        tmp_path / "cache", module_fingerprint(model.ssl, TINY.to_dict()), policy, shard_size=3
    )
    extract = Counting(model.ssl)
    head = CachedHead(model)
    groups = head.param_groups(1e-3)
    assert [g["name"] for g in groups] == ["head"]  # the frozen front-end has no trainable group
    opt = torch.optim.Adam(groups)
    frozen_before = {k: v.clone() for k, v in model.ssl.state_dict().items()}
    for _epoch in range(2):
        cache.build(trials, extract, batch_size=4, progress=False)
        loader = DataLoader(CachedFeatureDataset(cache, trials), batch_size=4)
        head.train()
        for batch in loader:
            loss = torch.nn.functional.cross_entropy(head(batch["audio"]), batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if _epoch == 0:
            assert extract.files == len(trials)
    assert extract.files == len(trials)  # the second epoch never called the encoder
    assert model.aggregate.layer_logits.grad is not None  # the layer weights train on cached features
    for k, v in model.ssl.state_dict().items():
        assert torch.equal(v, frozen_before[k]), k
    # the cached item is the front-end's output for the policy's crop (float16 storage)
    x = torch.from_numpy(policy.apply(load_audio(trials[5].path)))[None]
    with torch.no_grad():
        direct = torch.stack(model.ssl.extract_features(x)[0], dim=1)[0]
        torch.testing.assert_close(cache.get("T05").float(), direct, rtol=2e-3, atol=2e-3)
        model.eval()
        torch.testing.assert_close(head(cache.get("T05").float()[None]), model(x), rtol=1e-2, atol=1e-2)


def test_changed_fingerprint_invalidates(tmp_path: Path, model) -> None:
    trials = _trials(tmp_path, 4)
    fp = module_fingerprint(model.ssl, TINY.to_dict())
    cache = FeatureCache(tmp_path / "cache", fp, CropPolicy("first", 3200))
    cache.build(trials, hidden_state_extractor(model.ssl), progress=False)
    assert cache.is_complete([t.trial_id for t in trials])
    assert module_fingerprint(model.ssl, {**TINY.to_dict(), "pad_to_30s": True}) != fp
    assert backbone_fingerprint(model.ssl) == fp  # the backbone's own config is what it hashes
    with torch.no_grad():
        model.ssl.encoder.layers[0].fc2.bias.add_(1.0)
    fp2 = module_fingerprint(model.ssl, TINY.to_dict())
    assert fp2 != fp
    cache2 = FeatureCache(tmp_path / "cache", fp2, CropPolicy("first", 3200))
    assert not cache2.is_complete([t.trial_id for t in trials])
    extract = Counting(model.ssl)
    assert cache2.build(trials, extract, progress=False) == 4 and extract.files == 4
    assert not torch.equal(cache2.get("T03"), cache.get("T03"))


def test_kill_and_resume_equals_an_uninterrupted_build(tmp_path: Path, model) -> None:
    trials = _trials(tmp_path)
    fp = module_fingerprint(model.ssl, TINY.to_dict())
    full = FeatureCache(tmp_path / "a", fp, CropPolicy("first", 3200), shard_size=3)
    full.build(trials, hidden_state_extractor(model.ssl), batch_size=2, progress=False)

    cache = FeatureCache(tmp_path / "b", fp, CropPolicy("first", 3200), shard_size=3)
    with pytest.raises(RuntimeError, match="killed"):  # dies inside the second shard
        cache.build(trials, Counting(model.ssl, fail_after=3), batch_size=2, progress=False)
    (cache.dir / ".shard-00001-xxxx.safetensors.tmp").write_bytes(b"half a file")  # a torn write
    assert len(list(cache.dir.glob("shard-*.safetensors"))) == 1 and not cache.is_complete(["T00"])
    resumed = Counting(model.ssl)
    assert cache.build(trials, resumed, batch_size=2, progress=False) == 5
    assert resumed.files == 5 and not list(cache.dir.glob(".*.tmp"))
    for t in trials:
        assert torch.equal(cache.get(t.trial_id), full.get(t.trial_id)), t.trial_id


def test_full_policy_keeps_lengths_and_pads_batches(tmp_path: Path, model) -> None:
    trials = _trials(tmp_path, 3)  # 1600, 2000, 2400 samples
    cache = FeatureCache(tmp_path / "c", module_fingerprint(model.ssl), CropPolicy("full", 2000))
    cache.build(trials, hidden_state_extractor(model.ssl), progress=False)
    frames = [cache.get(t.trial_id).shape[1] for t in trials]
    assert frames == [5, 6, 6]  # ceil((T // 160) / 2) of 1600, 2000, 2000 (capped) samples
    batch = collate_padded([CachedFeatureDataset(cache, trials)[i] for i in range(3)])
    assert batch["audio"].shape == (3, TINY.layers + 1, 6, TINY.d_model)
    assert batch["lengths"].tolist() == frames and batch["label"].tolist() == [0, 1, 0]
    assert float(batch["audio"][0, :, 5:].abs().sum()) == 0.0


def test_errors_name_the_problem(tmp_path: Path, model) -> None:
    trials = _trials(tmp_path, 2)
    cache = FeatureCache(tmp_path / "d", module_fingerprint(model.ssl))
    with pytest.raises(FileNotFoundError, match="not built"):
        CachedFeatureDataset(cache, trials)
    with pytest.raises(ValueError, match="duplicate trial ids"):
        cache.build([trials[0], trials[0]], hidden_state_extractor(model.ssl), progress=False)
    with pytest.raises(ValueError, match="unknown crop policy"):
        CropPolicy("random", 100)
    with pytest.raises(ValueError, match=r"\(B, L, frames, C\)"):
        CachedHead(model)(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="pass head_fn"):
        CachedHead(torch.nn.Linear(2, 2))


def test_cached_head_of_a_frozen_cm_encoder(tmp_path: Path) -> None:
    """A non-SSL model: cache its frozen encoder's output, train the rest through `head_fn`."""
    from safespeak.models.base import CountermeasureModel

    class TwoStage(CountermeasureModel):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = torch.nn.Conv1d(1, 4, 160, stride=160)
            self.out = torch.nn.Linear(4, 2)

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.encoder(x[:, None]).amax(-1)  # (B, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.encode(x))

    torch.manual_seed(0)
    trials, cm = _trials(tmp_path, 4), TwoStage().eval()
    cache = FeatureCache(tmp_path / "e", module_fingerprint(cm.encoder), CropPolicy("first", 1600))
    cache.build(trials, cm.encode, progress=False)
    head = CachedHead(cm, head_fn=cm.out)
    feats = torch.stack([cache.get(t.trial_id).float() for t in trials])  # (4, 4)
    wav = torch.stack([torch.from_numpy(load_audio(t.path)[:1600]) for t in trials])
    with torch.no_grad():
        torch.testing.assert_close(head.score(feats), cm.score(wav), rtol=2e-3, atol=2e-3)


def test_recompute_from_fine_tunes_the_last_layer_on_cached_states(tmp_path: Path) -> None:
    from safespeak.models import build

    torch.manual_seed(0)
    model = build("ssl-mhfa", backbone="whisper", backbone_config=TINY.to_dict())
    model.ssl.requires_grad_(False)
    model.ssl.encoder.layers[1].requires_grad_(True)  # fine-tune the last of 2 layers
    trials = _trials(tmp_path, 4)
    cache = FeatureCache(tmp_path / "f", backbone_fingerprint(model.ssl), CropPolicy("first", 3200))
    cache.build(trials, hidden_state_extractor(model.ssl.eval()), progress=False)
    head = CachedHead(model, recompute_from=1)
    batch = next(iter(DataLoader(CachedFeatureDataset(cache, trials), batch_size=4)))
    loss = torch.nn.functional.cross_entropy(head.train()(batch["audio"]), batch["label"])
    loss.backward()
    assert float(model.ssl.encoder.layers[1].fc1.weight.grad.abs().sum()) > 0
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    # the cached states up to layer 1's input stay valid: the view still equals the full model
    wav = torch.stack([torch.from_numpy(CropPolicy("first", 3200).apply(load_audio(t.path))) for t in trials])
    with torch.no_grad():
        torch.testing.assert_close(head.eval()(batch["audio"]), model.eval()(wav), rtol=1e-2, atol=1e-2)
    with pytest.raises(ValueError, match=r"start in 0 \.\. 1"):
        CachedHead(model, recompute_from=2)(batch["audio"])


def test_builds_for_overlapping_trial_lists_reuse_finished_shards(tmp_path: Path, model) -> None:
    trials = _trials(tmp_path, 6)
    cache = FeatureCache(
        tmp_path / "g", backbone_fingerprint(model.ssl), CropPolicy("first", 3200), shard_size=2
    )
    extract = Counting(model.ssl)
    assert cache.build(trials[:3], extract, progress=False) == 3  # "train"
    assert cache.build(trials, extract, progress=False) == 3  # train + "dev": only the new three
    assert cache.build(trials[1:4], extract, progress=False) == 0 and extract.files == 6
    assert cache.is_complete([t.trial_id for t in trials])
    with pytest.raises(ValueError, match="'X' has no audio path"):
        cache.build([Trial("X", 1)], extract, progress=False)


def test_fingerprint_covers_zero_dim_buffers() -> None:
    """BatchNorm's 0-d `num_batches_tracked` is hashed (frozen CM encoders have it), and its value counts."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(4)
    before = module_fingerprint(bn)
    assert module_fingerprint(bn) == before
    bn.num_batches_tracked += 1
    assert module_fingerprint(bn) != before
