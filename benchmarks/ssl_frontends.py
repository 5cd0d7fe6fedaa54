"""Speed of the DPHuBERT-sp0.75 backbone and of SSL countermeasure training steps (CPU by default).

Rows (each with its baseline measured in the same run, ratio = baseline time / ours, > 1: ours faster):
- `extract_features`: our attention (`scaled_dot_product_attention` with the additive -10000 key mask)
  vs the reference formulation (explicit `q @ k`, mask add, row-max subtraction, softmax, `@ v`), same
  weights; the script checks both give the same hidden states first.
- training step, frozen backbone (run under `no_grad`, kept in eval) vs the same step fine-tuning it.
- training step with per-layer gradient checkpointing vs without (ratio < 1 is its price in time; it buys
  activation memory, which this CPU script does not measure).

Run: ``.venv/bin/python benchmarks/ssl_frontends.py [--batch 4] [--repeats 3] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time
import types
from collections.abc import Callable

import torch

from safespeak.models import build
from safespeak.models.ssl.dphubert import PrunedWav2Vec2, _SelfAttention, build_dphubert


def _reference_attention(self: _SelfAttention, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    b, t, _ = x.shape
    shape = (b, t, self.heads, self.head_dim)
    q = self.q_proj(x).view(shape).transpose(2, 1)  # (B, H, T, Dh)
    k = self.k_proj(x).view(shape).permute(0, 2, 3, 1)  # (B, H, Dh, T)
    v = self.v_proj(x).view(shape).transpose(2, 1)
    w = (self.head_dim**-0.5 * q) @ k  # (B, H, T, T)
    if mask is not None:
        w = w + mask
    w = torch.softmax(w - w.max(dim=-1, keepdim=True)[0], dim=-1)
    return self.out_proj((w @ v).transpose(2, 1).reshape(b, t, self.heads * self.head_dim))


def _timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _features_row(batch: int, repeats: int) -> tuple[str, float, float]:
    torch.manual_seed(0)
    ours = build_dphubert().eval()
    ref: PrunedWav2Vec2 = build_dphubert().eval()
    ref.load_state_dict(ours.state_dict())
    for m in ref.modules():
        if isinstance(m, _SelfAttention):
            m.forward = types.MethodType(_reference_attention, m)
    x = torch.randn(batch, 64_600)
    lengths = torch.tensor([64_600 - 8000 * i for i in range(batch)])
    with torch.no_grad():
        a, _ = ours.extract_features(x, lengths)
        b, _ = ref.extract_features(x, lengths)
        diff = max(float((p - q).abs().max()) for p, q in zip(a, b, strict=True))
        assert diff < 1e-4, f"attention variants disagree by {diff}"
        t_ours = _timed(lambda: ours.extract_features(x, lengths), repeats)
        t_ref = _timed(lambda: ref.extract_features(x, lengths), repeats)
    return f"extract_features sp0.75 (B={batch}, 4 s, masked)", t_ref, t_ours


def _step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(model.param_groups(1e-4, 1e-6))
    model.train()

    def run() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return run


def _train_rows(batch: int, repeats: int) -> list[tuple[str, float, float]]:
    x, y = torch.randn(batch, 64_600), torch.arange(batch) % 2
    times = {}
    for name, kw in {
        "plain": {},
        "frozen": {"freeze": True},
        "ckpt": {"gradient_checkpointing": True},
    }.items():
        torch.manual_seed(0)
        model = build("ssl-aasist", aggregation="weighted-sum", **kw)
        times[name] = _timed(_step(model, x, y), repeats)
    return [
        (f"ssl-aasist train step, frozen vs fine-tuned (B={batch})", times["plain"], times["frozen"]),
        (f"ssl-aasist train step, grad. checkpointing vs none (B={batch})", times["plain"], times["ckpt"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="waveforms per batch (4 s each)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [_features_row(args.batch, args.repeats), *_train_rows(max(args.batch // 2, 1), args.repeats)]
    print(f"{'case':<62} {'baseline s':>11} {'ours s':>8} {'ratio':>6}")
    for name, base, ours in rows:
        print(f"{name:<62} {base:>11.3f} {ours:>8.3f} {base / ours:>6.2f}")


if __name__ == "__main__":
    main()
