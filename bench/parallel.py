"""Local parallelism: a whole sweep with one worker process against two, and threads against
processes.

    python bench/parallel.py [--sweep tasks/smoke.toml] [--repeats 3] [--only-first N]
                             [--no-threads-variant]

Each variant runs the sweep from scratch into a fresh temporary store through
``rnnbench.execution.run_sweep`` (spawned worker processes, pool start-up included):

* ``1 proc x 1 thread``: workers=1, threads=1 (the serial reference);
* ``2 procs x 1 thread``: workers=2, threads=1 (the default on 2 cores);
* ``1 proc x 2 threads``: workers=1, threads=2.

Interleaved (the order rotates each round), medians of the paired ratios. Target (issue 5):
2 workers >= 1.7x one. ``--only-first N`` runs the sweep's first N runs only (a documented
subset, for sweeps too long to repeat).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, load_line, machine_line, median_ratio, median_s
from rnnbench.config import Sweep, load_sweep
from rnnbench.execution import SweepSummary, run_sweep

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.7


def variant(sweep: Sweep, workers: int, threads: int) -> Callable[[], SweepSummary]:
    def run() -> SweepSummary:
        with tempfile.TemporaryDirectory(prefix="rnnbench-parallel-") as folder:
            summary = run_sweep(
                sweep, Path(folder) / "results.db", workers=workers, threads=threads
            )
        if summary.statuses.get("error"):
            raise RuntimeError(f"{workers}x{threads}: {summary.line()}")
        return summary

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default=str(REPO / "tasks" / "smoke.toml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-first", type=int, default=0, help="run only the first N runs")
    parser.add_argument(
        "--no-threads-variant",
        action="store_true",
        help="skip 1 proc x 2 threads (for long sweeps: only the target's two variants)",
    )
    args = parser.parse_args()
    sweep = load_sweep(args.sweep)
    if args.only_first:
        sweep = dataclasses.replace(sweep, runs=sweep.runs[: args.only_first])
    print(machine_line(), "|", load_line())
    print(f"sweep {sweep.name}: {len(sweep.runs)} runs; medians of {args.repeats} rounds")
    variants = {
        "1 proc x 1 thread": variant(sweep, 1, 1),
        "2 procs x 1 thread": variant(sweep, 2, 1),
    }
    if not args.no_threads_variant:
        variants["1 proc x 2 threads"] = variant(sweep, 1, 2)
    times = interleaved(
        variants,
        args.repeats,
        warmup=False,  # each variant starts its own pool: start-up is part of what it costs
    )
    serial = times["1 proc x 1 thread"]
    print(f"{'variant':20} {'wall s':>7} {'runs/min':>9} {'speedup':>8}")
    for name, results in times.items():
        seconds = median_s(results)
        print(
            f"{name:20} {seconds:7.1f} {len(sweep.runs) / seconds * 60:9.1f} "
            f"{median_ratio(serial, results):8.2f}"
        )
    speedup = median_ratio(serial, times["2 procs x 1 thread"])
    line = (
        f"2 workers vs 1: {speedup:.2f}x (target >= {TARGET}x: "
        f"{'met' if speedup >= TARGET else 'missed'})"
    )
    if "1 proc x 2 threads" in times:
        versus = median_ratio(times["1 proc x 2 threads"], times["2 procs x 1 thread"])
        line += (
            f"; 2 processes x 1 thread are {versus:.2f}x the throughput of 1 process x 2 threads"
        )
    print(f"{line} | {load_line()}")


if __name__ == "__main__":
    main()
