"""Running a sweep: executors train, the parent alone writes the store.

Resumable by construction: a run's key is the hash of its config, the store commits one
transaction per finished run, and a re-run skips every run already ``ok`` or ``diverged``
(``error`` runs are retried). Executors are registered in :data:`EXECUTORS`: ``local`` (a pool
of spawned worker processes; a worker that dies takes only its run with it: the pool is rebuilt
and unfinished runs are retried up to ``max_retries`` times) and ``ray`` (a Ray task per run, on
a local Ray instance or a cluster; see :mod:`rnnbench.execution.ray_executor`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rnnbench.config.schema import RunConfig
from rnnbench.errors import ConfigError
from rnnbench.execution import EXECUTORS
from rnnbench.execution.cost import run_flops
from rnnbench.execution.options import DEVICES, ExecutorOptions
from rnnbench.execution.progress import Progress
from rnnbench.results.record import RunRecord
from rnnbench.results.store import Store
from rnnbench.sweep import Sweep, load_sweep


@dataclass
class SweepSummary:
    total: int
    skipped: int
    statuses: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    retried: int = 0  # runs resubmitted because the worker process running them died
    first_error: str | None = None  # the message of the first run that ended in ``error``

    @property
    def ok(self) -> bool:
        """No run ended in ``error`` (a diverged run is data, not a failure)."""
        return not self.statuses.get("error")

    def line(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "nothing run"
        retried = f", {self.retried} retried after a worker died" if self.retried else ""
        line = (
            f"{self.total} runs: {self.skipped} already in the store, {counts}{retried} "
            f"({self.wall_s:.1f} s)"
        )
        return line if self.first_error is None else f"{line}; first error: {self.first_error}"


def run_sweep(
    sweep: str | Path | Sweep,
    store: str | Path,
    *,
    workers: int | None = None,
    threads: int | None = None,
    device: str = "cpu",
    max_retries: int = 2,
    progress: TextIO | None = None,
    on_record: Callable[[RunRecord], None] | None = None,
    executor: str = "local",
    address: str | None = None,
) -> SweepSummary:
    """Run every run of ``sweep`` not already in ``store``; returns counts by status.

    ``executor="local"``: ``workers=0`` trains in this process (for debugging); otherwise
    ``workers`` spawned worker processes, each pinned to ``threads`` torch threads (default:
    cores / workers). ``executor="ray"``: each run is a Ray task on a local Ray instance, or on
    the cluster at ``address`` (see :mod:`rnnbench.execution.ray_executor`). Either way this
    process alone writes the store, one transaction per finished run.
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    options = _options(sweep, device, workers, threads, max_retries, address)
    make_executor = EXECUTORS.get(executor, "--executor")
    started = time.perf_counter()
    with make_executor(options) as execute, Store(store) as results:
        results.acquire_writer()
        summary, pending, costs = _plan(sweep, results)
        results.set_meta(f"sweep:{sweep.name}", sweep.source)
        if progress is not None:  # announced only once the store is known to be usable
            progress.write(
                f"sweep {sweep.name!r}: {summary.total} runs, {summary.skipped} already in "
                f"{store}, {len(pending)} to run\n"
            )
        bar = Progress(len(pending), progress, sum(costs.values()))

        def finish(record: RunRecord) -> None:
            results.record_run(record)
            summary.statuses[record["status"]] += 1
            if record["status"] == "error" and summary.first_error is None:
                summary.first_error = record["error"]
            bar.update(record["status"], costs.get(record["run_id"], 0.0))
            if on_record is not None:
                on_record(record)

        if pending:
            summary.retried = execute(pending, finish)
    summary.wall_s = time.perf_counter() - started
    return summary


def _options(
    sweep: Sweep,
    device: str,
    workers: int | None,
    threads: int | None,
    max_retries: int,
    address: str | None,
) -> ExecutorOptions:
    """The caller's options, checked where no executor would check them."""
    if device not in DEVICES:
        raise ConfigError(f"--device: must be one of {', '.join(DEVICES)}, got {device!r}")
    if threads is not None and threads < 0:
        raise ConfigError(f"--threads: must be >= 1 (or 0 for the default), got {threads}")
    if max_retries < 0:
        raise ConfigError(f"max_retries: must be >= 0, got {max_retries}")
    return ExecutorOptions(
        sweep=sweep,
        device=device,
        workers=workers,
        threads=threads or None,
        max_retries=max_retries,
        address=address,
    )


def _plan(sweep: Sweep, results: Store) -> tuple[SweepSummary, list[RunConfig], dict[str, float]]:
    """The runs still to do, longest first, with each one's estimated work (FLOPs)."""
    unique = list({run.run_id: run for run in sweep.runs}.values())
    done = results.completed_run_ids()
    # Longest run first (LPT, Graham 1969): the pool hands each free worker the next run, so
    # a long run left for last would run alone while the other workers idle.
    costs = {run.run_id: run_flops(run) for run in unique if run.run_id not in done}
    pending = sorted(
        (run for run in unique if run.run_id in costs),
        key=lambda run: costs[run.run_id],
        reverse=True,
    )
    return SweepSummary(total=len(unique), skipped=len(unique) - len(pending)), pending, costs
