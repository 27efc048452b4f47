"""Grid scale (pytest-benchmark; not in the default run): expanding a 10,000-run grid, and
resuming it against a store that holds all 10,000 runs, each take under 2 s.

    pytest bench/test_bench_grid.py --benchmark-only -s

Both are what a researcher waits for before the first run starts (or before a finished study
says "nothing to run"), so both include everything on that path: the sweep's validation, the
run ids (a hash of each config), the store's list of finished runs.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from rnnbench.execution.runner import run_sweep
from rnnbench.results.record import FIELDS, RunRecord
from rnnbench.results.schema import RUNS_TABLE
from rnnbench.results.store import Store
from rnnbench.sweep import Sweep, parse_sweep
from rnnbench.training.record import identity

TARGET_S = 2.0

#: 4 archs x 5 T x 2 clips x 5 seeds x 5 learning rates x 5 widths x 2 inits = 10,000 runs
GRID: dict[str, Any] = {
    "name": "scale",
    "grid": {
        "task": ["adding"],
        "arch": ["rnn", "rnn_relu", "lstm", "gru"],
        "seq_len": [10, 20, 40, 80, 160],
        "clip": ["none", "norm:1.0"],
        "seed": [0, 1, 2, 3, 4],
        "train": {"lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]},
        "model": {"hidden_size": [16, 32, 64, 128, 256], "init": ["default", "orthogonal"]},
    },
}


def expand() -> Sweep:
    sweep = parse_sweep(GRID)
    for run in sweep.runs:
        run.run_id  # noqa: B018 - the ids are part of what a resume needs
    return sweep


def _report(benchmark: Any, what: str) -> None:
    median = statistics.median(benchmark.stats.stats.data)
    print(f"\n{what}: median {median:.3f} s, {median / TARGET_S:.2f}x the {TARGET_S:g} s target")
    assert median < TARGET_S, f"{what} took {median:.2f} s (target {TARGET_S:g} s)"


def test_expanding_a_10k_run_grid(benchmark: Any) -> None:
    sweep = benchmark.pedantic(expand, rounds=3, iterations=1)
    assert len(sweep.runs) == 10_000 and len({r.run_id for r in sweep.runs}) == 10_000
    _report(benchmark, "expand 10,000 runs")


@pytest.fixture(scope="module")
def full_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sweep, Path]:
    """A store that holds every run of the grid (minimal ok records, written in one
    transaction: filling it run by run is not what is measured)."""
    sweep = expand()
    path = tmp_path_factory.mktemp("scale") / "scale.db"
    with Store(path) as store:
        rows = [
            RunRecord(**{**identity(run, "cpu"), "env": {}}, status="ok").to_row()
            for run in sweep.runs
        ]
        marks = ", ".join("?" for _ in FIELDS)
        store.conn.execute("BEGIN IMMEDIATE")
        store.conn.executemany(
            f"INSERT INTO {RUNS_TABLE} ({', '.join(FIELDS)}) VALUES ({marks})", rows
        )
        store.conn.execute("COMMIT")
    return sweep, path


def test_resuming_a_10k_run_grid_against_a_full_store(
    benchmark: Any, full_store: tuple[Sweep, Path]
) -> None:
    _, path = full_store

    def resume() -> Any:
        return run_sweep(expand(), path, workers=0, progress=None)

    summary = benchmark.pedantic(resume, rounds=3, iterations=1)
    assert summary.skipped == 10_000 and not summary.statuses, summary.line()
    _report(benchmark, "expand and resume 10,000 runs")
