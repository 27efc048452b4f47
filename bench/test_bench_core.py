"""pytest-benchmark benchmarks (not in the default run: `pytest bench --benchmark-only`).

Save a baseline with `--benchmark-save=base` and gate a change with
`--benchmark-compare=0001_base --benchmark-compare-fail=median:10%`. What is gated is rnnbench's
own code: a run through `train_run` (the loop, its bookkeeping and the record; with and without
diagnostics) and the exact gradient profile. The plain-PyTorch step is measured beside them as
the reference, so a slower machine shows up there too.
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
def test_plain_training_step(benchmark, arch: str) -> None:
    task, model, batch = setup(arch)
    step = plain_step(model, task, batch, torch.optim.Adam(model.parameters(), lr=1e-3))
    benchmark(step)


def run_config(arch: str, diagnostics: bool) -> rnnbench.RunConfig:
    """20 training steps of the shape above, through rnnbench's loop."""
    data = {
        "name": "bench",
        "grid": {"task": "copy", "arch": arch, "seq_len": SEQ_LEN, "clip": "norm:1.0", "seed": 0},
        "model": {"hidden_size": HIDDEN},
        "train": {"steps": STEPS, "batch_size": BATCH},
        "diagnostics": {"enabled": diagnostics, "eval_size": 256, "checkpoints": 1},
    }
    return rnnbench.parse_sweep(data).runs[0]


STEPS = 20


@pytest.mark.parametrize("diagnostics", [False, True], ids=["diag-off", "diag-on"])
@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_rnnbench_training_run(benchmark, arch: str, diagnostics: bool) -> None:
    config = run_config(arch, diagnostics)
    record = benchmark.pedantic(rnnbench.train_run, args=(config,), rounds=3, iterations=1)
    assert record.status == "ok" and record.steps == STEPS


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_gradient_profile(benchmark, arch: str) -> None:
    task, model, batch = setup(arch)
    norms = benchmark(rnnbench.gradient_norms_through_time, model, task, batch)
    assert norms.shape == (task.total_len,) and bool(torch.isfinite(norms).all())
