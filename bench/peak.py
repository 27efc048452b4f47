"""This machine's fp32 matmul peak, and the fraction of it a plain training step reaches.

    python bench/peak.py [--sizes 1024,2048,3072] [--seq-len 1000] [--batch 128] [--hidden 128]

Peak: the best median GFLOP/s of torch.mm on square fp32 matrices (2·n³ FLOPs each). Then, per
architecture, one plain training step (fused nn.X + head, forward + backward + clip_grad_norm_
+ Adam) on the copy task, its matmul FLOPs from the formula in docs/performance.md
(``rnnbench.execution.cost.step_flops``), the achieved GFLOP/s and the fraction of the peak.
Both are measured in the same process, interleaved, so the fraction is a ratio of side-by-side
figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rnnbench
from bench.common import load_line, machine_line, plain_step
from rnnbench.execution.cost import step_flops
from rnnbench.models import ARCHITECTURES


def matmul_seconds(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: MKL's first call allocates its buffers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,2048,3072")
    parser.add_argument("--seq-len", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archs", default="rnn,lstm,gru")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    print(machine_line(), "|", load_line())
    task = rnnbench.make_task("copy", seq_len=args.seq_len)
    steps = {}
    for arch in args.archs.split(","):
        model = rnnbench.make_model(arch, task, hidden_size=args.hidden, seed=0)
        batch = task.sample(args.batch, torch.Generator().manual_seed(0))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        steps[arch] = plain_step(model, task, batch, optimizer)
        steps[arch]()  # warm-up
    sizes = [int(n) for n in args.sizes.split(",")]
    # Rounds alternate matmuls and training steps so the machine's load hits both alike.
    mm: dict[int, list[float]] = {n: [] for n in sizes}
    step_times: dict[str, list[float]] = {arch: [] for arch in steps}
    for _ in range(args.repeats):
        for n in sizes:
            mm[n].append(matmul_seconds(n, 3))
        for arch, step in steps.items():
            start = time.perf_counter()
            step()
            step_times[arch].append(time.perf_counter() - start)
    print(f"{'torch.mm n':>10} {'ms':>8} {'GFLOP/s':>8}")
    rates = {}
    for n in sizes:
        seconds = statistics.median(mm[n])
        rates[n] = 2 * n**3 / seconds / 1e9
        print(f"{n:10d} {seconds * 1e3:8.2f} {rates[n]:8.1f}")
    peak = max(rates.values())
    print(f"peak: {peak:.1f} GFLOP/s fp32 (n={max(rates, key=rates.__getitem__)})")
    print(
        f"plain training step, copy T={args.seq_len} ({task.total_len} steps unrolled), "
        f"batch {args.batch}, hidden {args.hidden}, Adam + clip_grad_norm_:"
    )
    print(f"{'arch':5} {'step s':>8} {'GFLOP':>7} {'GFLOP/s':>8} {'of peak':>8}")
    for arch, times in step_times.items():
        seconds = statistics.median(times)
        flops = step_flops(
            ARCHITECTURES.get(arch).gates,
            task.total_len,
            args.batch,
            args.hidden,
            task.input_size,
            task.output_size,
        )
        print(
            f"{arch:5} {seconds:8.3f} {flops / 1e9:7.2f} {flops / seconds / 1e9:8.1f} "
            f"{flops / seconds / 1e9 / peak:8.1%}"
        )
    print(load_line())


if __name__ == "__main__":
    main()
