"""What the ``begin_sequence`` hook buys a cell with a parametrized recurrent weight.

A parametrized weight (``torch.nn.utils.parametrize``, geotorch) is recomputed from its
underlying tensor at every read. A cell that reads it at every step of the unroll recomputes it
T times per forward (and backpropagates through T copies); one that reads it once in
``begin_sequence`` does it once. Both cells below compute the same function.

    python bench/begin_sequence.py [--seq-len 100] [--hidden 64] [--batch 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import rnnbench
from rnnbench.models import ARCHITECTURES
from rnnbench.models.model import make_model


class _Orthogonal(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size))
        torch.nn.utils.parametrizations.orthogonal(self, "weight_hh")

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> tuple:
        return (torch.zeros(batch_size, self.inp.out_features, device=device, dtype=dtype),)


class ReadsEveryStep(_Orthogonal):
    def forward(self, x_t: torch.Tensor, state: tuple) -> tuple:
        return (torch.tanh(self.inp(x_t) + state[0] @ self.weight_hh.T),)


class ReadsOnce(_Orthogonal):
    def begin_sequence(self) -> None:
        self.w = self.weight_hh

    def forward(self, x_t: torch.Tensor, state: tuple) -> tuple:
        return (torch.tanh(self.inp(x_t) + state[0] @ self.w.T),)


def step_ms(arch: str, seq_len: int, hidden: int, batch_size: int, repeats: int = 10) -> float:
    task = rnnbench.make_task("adding", seq_len=seq_len)
    batch = task.sample(batch_size, torch.Generator().manual_seed(0))
    model = make_model(arch, task, hidden_size=hidden, seed=0)
    optimizer = torch.optim.Adam(model.parameters())
    times = []
    for _ in range(repeats + 1):  # the first step warms up
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        task.loss(model(batch.x), batch).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rnnbench.register_cell("bench_reads_every_step")(ReadsEveryStep)
    rnnbench.register_cell("bench_reads_once")(ReadsOnce)
    try:
        shape = (args.seq_len, args.hidden, args.batch)
        naive = step_ms("bench_reads_every_step", *shape)
        hooked = step_ms("bench_reads_once", *shape)
    finally:
        ARCHITECTURES.remove("bench_reads_every_step")
        ARCHITECTURES.remove("bench_reads_once")
    print(f"T={args.seq_len} H={args.hidden} B={args.batch}, one thread, a training step:")
    print(f"  W read at every step      {naive:7.1f} ms")
    print(f"  W read in begin_sequence  {hooked:7.1f} ms  ({naive / hooked:.1f}x faster)")


if __name__ == "__main__":
    main()
