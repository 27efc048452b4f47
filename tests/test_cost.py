"""The cost model, and the scheduling and progress it drives: longest run first, ETA by work."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from rnnbench.config import RunConfig
from rnnbench.execution.cost import forward_flops, run_flops, step_flops
from rnnbench.execution.progress import Progress
from rnnbench.execution.runner import run_sweep
from rnnbench.sweep import Sweep, parse_sweep


def sweep_runs(**overrides: Any) -> list[RunConfig]:
    data: dict[str, Any] = {
        "name": "cost",
        "grid": {"task": "adding", "arch": "rnn", "seq_len": 10, "clip": "none", "seed": 0},
        "model": {"hidden_size": 8},
        "train": {"steps": 3, "batch_size": 4},
        "diagnostics": {"eval_size": 16, "profile_batch_size": 4, "probe_size": 8},
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        data[section][name] = value
    return parse_sweep(data).runs


@pytest.mark.parametrize(("arch_gates", "inputs", "outputs"), [(1, 2, 1), (3, 10, 9), (4, 10, 9)])
def test_one_layer_step_is_the_documented_formula(
    arch_gates: int, inputs: int, outputs: int
) -> None:
    t, b, h = 1020, 128, 190
    documented = 6 * arch_gates * t * b * h * (inputs + h) + 6 * t * b * h * outputs
    assert step_flops(arch_gates, t, b, h, inputs, outputs) == documented


def test_a_second_layer_adds_an_h_by_h_input_projection() -> None:
    g, t, b, h = 4, 50, 8, 16
    extra = forward_flops(g, t, b, h, 3, 2, layers=2) - forward_flops(g, t, b, h, 3, 2)
    assert extra == t * 2 * b * (h + h) * g * h


def test_run_cost_grows_with_every_size_and_counts_the_diagnostics() -> None:
    (base,) = sweep_runs()
    for bigger in (
        sweep_runs(grid__seq_len=20),
        sweep_runs(grid__arch="lstm"),
        sweep_runs(model__hidden_size=16),
        sweep_runs(model__num_layers=2),
        sweep_runs(train__steps=6),
        sweep_runs(train__batch_size=8),
        sweep_runs(diagnostics__checkpoints=8),
    ):
        assert run_flops(bigger[0]) > run_flops(base)
    (off,) = sweep_runs(diagnostics__enabled=False)
    assert run_flops(off) < run_flops(base)


def test_a_sweep_runs_longest_first_whatever_the_file_order(tmp_path: Path) -> None:
    runs = sweep_runs(grid__seq_len=[10, 40, 20], grid__arch=["rnn", "gru"])
    order: list[str] = []
    summary = run_sweep(
        Sweep(name="cost", runs=runs),
        tmp_path / "results.db",
        workers=0,
        on_record=lambda record: order.append(record["run_id"]),
    )
    assert summary.statuses == {"ok": 6}
    cost = {run.run_id: run_flops(run) for run in runs}
    assert [cost[i] for i in order] == sorted(cost.values(), reverse=True)
    assert order != [run.run_id for run in runs]  # the file's order was not already that


def test_the_eta_weighs_finished_runs_by_their_work() -> None:
    stream = io.StringIO()
    bar = Progress(total=4, stream=stream, work=100.0)
    bar.every = 1
    bar.started = time.perf_counter() - 90.0  # 90 s spent ...
    bar.update("ok", work=90.0)  # ... on the one run holding 90% of the work
    # By count 3 runs of 4 remain (ETA 270 s); by work 10% remains (ETA 10 s).
    assert "ETA 10s" in stream.getvalue()
