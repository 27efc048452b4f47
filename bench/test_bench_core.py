"""pytest-benchmark benchmarks (not in the default run: `pytest bench --benchmark-only`).

Save a baseline with `--benchmark-save=base` and gate a change with
`--benchmark-compare=0001_base --benchmark-compare-fail=median:10%`.
"""

from __future__ import annotations

import pytest
import torch

import rnnbench
from bench.common import plain_step

SEQ_LEN, BATCH, HIDDEN = 200, 64, 64


def setup(arch: str) -> tuple:
    torch.set_flush_denormal(True)
    task = rnnbench.make_task("copy", seq_len=SEQ_LEN)
    model = rnnbench.make_model(arch, task, hidden_size=HIDDEN, seed=0)
    batch = task.sample(BATCH, torch.Generator().manual_seed(0))
    return task, model, batch


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_training_step(benchmark, arch: str) -> None:
    task, model, batch = setup(arch)
    step = plain_step(model, task, batch, torch.optim.Adam(model.parameters(), lr=1e-3))
    benchmark(step)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_gradient_profile(benchmark, arch: str) -> None:
    task, model, batch = setup(arch)
    norms = benchmark(rnnbench.gradient_norms_through_time, model, task, batch)
    assert norms.shape == (task.total_len,) and bool(torch.isfinite(norms).all())
