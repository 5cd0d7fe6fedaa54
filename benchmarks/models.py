"""Training-step and inference cost of the AASIST-family models on CPU, against a reference-style baseline.

For every model: forward + backward + Adam step time and peak memory at batch B x 64,600 samples (SSL
heads: B x 201 frames x 1024 features), and eval-mode inference time per 4 s utterance (batch 1).
AASIST and SEMAA are also run through a straightforward re-implementation of the reference's
approach, written here with the same parameters: sinc filters rebuilt in numpy on every forward, all
70 filters convolved, a second full-size map for |.|, `max_pool2d` with int64 indices on NCHW maps,
the no-effect `bn1` + SELU computed in every block, no channels-last. The graph back end (a few ms) is
shared. The script asserts that both give the same logits (1e-4) before timing.

Where "ours" saves time and memory: the first encoder block, whose maps are the largest (32 channels x
24 x 21,490 steps per utterance), runs in chunks of one batch row x 1,536 steps
(`blocks._ChunkedSingleChannelBlock`): per chunk conv1 taps -> BN -> SELU -> conv2 + skip -> max-pool,
with chunk temporaries that stay in cache and in the allocator's heap instead of fresh full-size maps
(page faults, DRAM traffic); only the input, uint8 pool positions and the pooled output are kept, and
backward recomputes conv1/BN/SELU per chunk (not conv2). Its BN batch statistics come from the 6 x 6
moments of the conv1 taps, and the BN backward's two global terms are applied after the chunk loop
through linearity, so no pass needs a stored full-size gradient. Elsewhere: sinc filters are a buffer
and only the 69 filters that survive the 3 x 3 pool are convolved; |.| in place when no gradient is
needed; pooling through ATen's `max_pool2d` keeping uint8 window positions; the no-effect `bn1` skipped;
channels-last maps for the oneDNN convolutions.

Peak memory: each measurement runs in a fresh subprocess; the figure is the peak resident set size
(`getrusage` ru_maxrss) minus the resident size just before the first timed step (model, optimiser
state and input already allocated), i.e. the extra memory the step needs at its peak. Large tensors are
mmap-allocated by glibc and returned on free, so RSS follows the live tensors.

    python benchmarks/models.py                  # full table (slow on a shared 2-core machine)
    python benchmarks/models.py --batch 2 --steps 1 --models aasist
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

MODELS = ("aasist", "aasist-l", "semaa", "ssl-aasist-head", "ssl-semaa-head")
WITH_BASELINE = ("aasist", "aasist-l", "semaa")


def _rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * (resource.getpagesize() // 1024)


def _reference_frontend(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from safespeak.models.blocks import sinc_band_pass_table

    fe = model.frontend
    filters = sinc_band_pass_table(fe.sinc.out_channels, fe.sinc.kernel_size)  # rebuilt every call
    y = F.conv1d(x.unsqueeze(1), filters.unsqueeze(1)).unsqueeze(1)  # (B, 1, 70, T')
    y = F.max_pool2d(torch.abs(y), (3, 3))
    return F.selu(fe.first_bn(y))


def _reference_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    identity = x
    if not block.first:
        out = F.selu(block.bn1(x))  # computed and discarded, as in the reference
    out = block.conv1(x)
    out = F.selu(block.bn2(out), inplace=True)
    out = block.conv2(out)
    if block.conv_downsample is not None:
        identity = block.conv_downsample(identity)
    out += identity
    return F.max_pool2d(out, (1, 3)) if block.pool else out


class ReferenceStyle(nn.Module):
    """The same network and parameters, run the way the reference code runs it (see module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        e = _reference_frontend(m, x)
        for block in m.encoder:
            e = _reference_block(block, e)
        if hasattr(m, "head"):  # SEMAA
            return m.head(e)[1]
        from safespeak.models.blocks import graph_readout

        e = torch.abs(e)
        e_s = torch.max(e, dim=3)[0].transpose(1, 2)
        e_t = torch.max(e, dim=2)[0].transpose(1, 2)
        t1, t2, s1, s2, m1, m2 = m.graph(e_s, e_t)
        hidden = m.drop(graph_readout(torch.max(t1, t2), torch.max(s1, s2), torch.max(m1, m2)))
        return m.out_layer(hidden)


def _inputs(name: str, batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if name.startswith("ssl"):
        return torch.randn(batch, 201, 1024, generator=g)
    return 0.1 * torch.randn(batch, 64_600, generator=g)


def _build(name: str, impl: str) -> nn.Module:
    from safespeak.models import build

    torch.manual_seed(0)
    model = build(name)
    return ReferenceStyle(model) if impl == "reference-style" else model


def measure(name: str, impl: str, batch: int, steps: int) -> dict[str, float]:
    """Run in a child process: train-step time (fastest step: least disturbed by other load), peak extra RSS,
    inference time per utterance."""
    model = _build(name, impl).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = _inputs(name, batch), torch.arange(batch) % 2

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # warm-up: allocates Adam state and oneDNN primitives
    before = _rss_kib()
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, peak0)
    model.eval()
    one = _inputs(name, 1)
    with torch.no_grad():
        model(one)
        t0 = time.perf_counter()
        for _ in range(steps):
            model(one)
        infer = (time.perf_counter() - t0) / steps
    return {"step_s": min(times), "peak_mib": (peak - before) / 1024, "infer_s": infer}


def check_equal(name: str) -> float:
    """Max |logit difference| between ours and the reference-style run (eval mode, 2 inputs)."""
    model = _build(name, "ours").eval()
    x = _inputs(name, 2)
    with torch.no_grad():
        diff = (model(x) - ReferenceStyle(model)(x)).abs().max().item()
    assert diff <= 1e-4, f"{name}: outputs differ by {diff}"
    return diff


def _child(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    print(json.dumps(measure(args.child, args.impl, args.batch, args.steps)))
    return 0


def _run_child(name: str, impl: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", name, "--impl", impl, "--batch", str(args.batch),
           "--steps", str(args.steps), "--threads", str(args.threads)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), help="models to measure")
    p.add_argument("--batch", type=int, default=8, help="training batch size")
    p.add_argument("--steps", type=int, default=2, help="timed training steps (after one warm-up)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--impl", default="ours", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return _child(args)
    torch.set_num_threads(args.threads)
    print(
        f"batch {args.batch}, {args.steps} timed steps, {args.threads} thread(s), torch {torch.__version__}"
    )
    head = (
        f"{'model':<16} {'impl':<16} {'step s':>8} {'peak MiB':>9} {'infer s':>8} {'speed x':>8} {'mem x':>6}"
    )
    print(head)
    print("-" * len(head))
    for name in args.models:
        ours = _run_child(name, "ours", args)
        rows = [("ours", ours)]
        if name in WITH_BASELINE:
            check_equal(name)
            rows.insert(0, ("reference-style", _run_child(name, "reference-style", args)))
        base = rows[0][1]
        for impl, r in rows:
            speed = base["step_s"] / r["step_s"]
            mem = r["peak_mib"] / base["peak_mib"]
            print(f"{name:<16} {impl:<16} {r['step_s']:>8.2f} {r['peak_mib']:>9.0f} {r['infer_s']:>8.3f} "
                  f"{speed:>8.2f} {mem:>6.2f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
