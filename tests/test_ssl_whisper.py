"""Whisper front-end: log-mel vs transformers' extractor, encoder vs transformers' WhisperEncoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from safespeak.models.ssl.whisper import (
    WhisperBackbone,
    WhisperEncoderConfig,
    WhisperLogMel,
    load_hf_whisper,
    whisper_mel_filters,
)

transformers = pytest.importorskip("transformers")

TINY = WhisperEncoderConfig(n_mels=16, d_model=32, layers=2, heads=4, ffn_dim=64, max_positions=50)


def _speechlike(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16_000
    f0 = 120 + 40 * np.sin(2 * np.pi * 3 * t)
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / 16_000) + 0.02 * rng.standard_normal(n)
    return (x * (t < n / 32_000)).astype(np.float32)  # second half silent: exercises the 8-unit floor


def _hf_encoder_config() -> object:
    return transformers.WhisperConfig(
        num_mel_bins=TINY.n_mels,
        d_model=TINY.d_model,
        encoder_layers=TINY.layers,
        encoder_attention_heads=TINY.heads,
        encoder_ffn_dim=TINY.ffn_dim,
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=64,
        max_source_positions=TINY.max_positions,
        max_target_positions=16,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_match_transformers(n_mels: int) -> None:
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(201, n_mels, 0.0, 8000.0, 16_000, norm="slaney", mel_scale="slaney")
    np.testing.assert_allclose(whisper_mel_filters(n_mels), ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_feature_extractor(n_mels: int) -> None:
    fe = transformers.WhisperFeatureExtractor(feature_size=n_mels)
    mel = WhisperLogMel(n_mels)
    for n, seed in ((12_345, 0), (40_000, 1)):
        x = _speechlike(n, seed)
        ref = fe(x, sampling_rate=16_000, padding="do_not_pad", return_tensors="np")["input_features"]
        ours = mel(torch.from_numpy(x)[None])
        assert ours.shape == (1, n_mels, n // 160) == ref.shape
        assert float(np.abs(ours.numpy() - ref).max()) <= 1e-4


def test_log_mel_floor_is_per_example() -> None:
    mel = WhisperLogMel(80)
    loud, quiet = _speechlike(8000, 0), 1e-3 * _speechlike(8000, 1)
    both = mel(torch.from_numpy(np.stack([loud, quiet])))
    alone = mel(torch.from_numpy(quiet)[None])
    torch.testing.assert_close(both[1:], alone, rtol=0, atol=1e-6)
    assert float(both[1].max()) < float(both[0].max()) - 0.5  # the quiet one keeps its own level


def test_encoder_matches_transformers_whisper_encoder() -> None:
    torch.manual_seed(0)
    from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFEncoder

    hf = HFEncoder(_hf_encoder_config()).eval()
    ours = WhisperBackbone(TINY).eval()
    ours.encoder.load_state_dict(hf.state_dict(), strict=True)
    mel = torch.randn(2, TINY.n_mels, 2 * TINY.max_positions)  # HF only takes the full 2 x positions
    with torch.no_grad():
        ref = hf(mel, output_hidden_states=True)
        hidden = ours.encoder(mel)
    assert len(hidden) == TINY.layers + 1
    torch.testing.assert_close(hidden[-1], ref.last_hidden_state, rtol=0, atol=1e-5)
    for ours_h, ref_h in zip(hidden[:-1], ref.hidden_states[:-1], strict=True):
        torch.testing.assert_close(ours_h, ref_h, rtol=0, atol=1e-5)


def test_load_hf_whisper_from_local_directory(tmp_path) -> None:
    torch.manual_seed(1)
    hf = transformers.WhisperModel(_hf_encoder_config()).eval()
    hf.save_pretrained(tmp_path)
    ours = load_hf_whisper(tmp_path)
    assert ours.config == TINY
    mel = torch.randn(1, TINY.n_mels, 100)
    with torch.no_grad():
        torch.testing.assert_close(
            ours.encoder(mel)[-1], hf.encoder(mel).last_hidden_state, rtol=0, atol=1e-5
        )


def test_any_length_and_output_lengths() -> None:
    torch.manual_seed(0)
    bb = WhisperBackbone(TINY).eval()
    lengths = torch.tensor([400, 1000, 3200, 15_999])
    for n in lengths.tolist():
        hidden, out_len = bb.extract_features(torch.randn(1, n), torch.tensor([n]))
        assert all(h.shape == (1, int(out_len[0]), TINY.d_model) for h in hidden)
    assert bb.output_lengths(lengths).tolist() == [1, 3, 10, 50]
    with pytest.raises(ValueError, match="positional table"):
        bb.extract_features(torch.randn(1, 16_160))  # 101 mel frames -> 51 positions > 50
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        bb.extract_features(torch.randn(4000))


def test_pad_to_30s_trims_to_the_input_frames() -> None:
    cfg = WhisperEncoderConfig(n_mels=16, d_model=32, layers=1, heads=4, ffn_dim=64, pad_to_30s=True)
    bb = WhisperBackbone(cfg).eval()
    x = torch.randn(2, 8000)
    with torch.no_grad():
        padded, _ = bb.extract_features(x)
        full = bb.encoder(bb.mel(torch.nn.functional.pad(x, (0, 480_000 - 8000))))
    assert padded[0].shape == (2, 25, 32)
    torch.testing.assert_close(padded[-1], full[-1][:, :25])


def test_ssl_model_with_whisper_backbone_restores_from_checkpoint_config() -> None:
    from safespeak.models import build

    torch.manual_seed(0)
    model = build(
        "ssl-aasist", backbone="whisper", backbone_config=TINY.to_dict(), aggregation="weighted-sum"
    ).eval()
    x = 0.1 * torch.randn(2, 8000)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 2)
    again = build("ssl-aasist", **model.checkpoint_config()).eval()
    again.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(again(x), out)
    assert not any("mel." in k for k in model.state_dict())  # derived buffers are not saved
    with pytest.raises(ValueError, match="unknown Whisper encoder config keys"):
        WhisperEncoderConfig.from_dict({"d_model": 8, "nope": 1})


def test_semaa_head_on_whisper_features_trains() -> None:
    from safespeak.models import build

    torch.manual_seed(0)
    model = build("ssl-semaa", backbone="whisper", backbone_config=TINY.to_dict(), freeze=True)
    x, y = 0.1 * torch.randn(4, 8000), torch.tensor([0, 1, 0, 1])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model.ssl.encoder.conv1.weight.grad is None  # frozen front-end
    assert float(model.head.frontend.proj.weight.grad.abs().sum()) > 0


@pytest.mark.filterwarnings("ignore")  # tracer warnings about Python-side shape checks
def test_onnx_export_matches_onnxruntime_at_an_untraced_length(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from safespeak.models import build

    torch.manual_seed(0)
    model = build("ssl-mhfa", backbone="whisper", backbone_config=TINY.to_dict()).eval()
    assert model.max_input_length == 2 * TINY.max_positions * 160 + 159
    path = tmp_path / "w.onnx"
    with torch.no_grad():
        torch.onnx.export(
            model, (0.1 * torch.randn(2, 8000),), str(path), dynamo=False, opset_version=17,
            input_names=["x"], dynamic_axes={"x": {0: "b", 1: "t"}},
        )  # fmt: skip
    x = 0.1 * torch.randn(3, 11_111)
    with torch.no_grad():
        ref = model(x).numpy()
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    assert float(np.abs(out - ref).max()) <= 1e-4


def test_pad_to_30s_override_is_kept_by_the_checkpoint_config() -> None:
    from safespeak.models import build

    cfg = WhisperEncoderConfig(n_mels=16, d_model=24, layers=1, heads=2, ffn_dim=32)
    model = build("ssl-mhfa", backbone="whisper", backbone_config=cfg.to_dict(), pad_to_30s=True)
    assert model.ssl.pad_to_30s and model.max_input_length == 480_000
    again = build("ssl-mhfa", **model.checkpoint_config())
    assert again.ssl.pad_to_30s and again.ssl.config == model.ssl.config
    with pytest.raises(ValueError, match="whisper' only"):
        build("ssl-mhfa", pad_to_30s=True)
