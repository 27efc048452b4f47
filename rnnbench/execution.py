"""Running a sweep: worker processes train, the parent alone writes the store.

Resumable by construction: a run's key is the hash of its config, the store commits one
transaction per finished run, and a re-run skips every run already ``ok`` or ``diverged``
(``error`` runs are retried). A worker that dies takes only its run with it: the pool is
rebuilt and unfinished runs are retried up to ``max_retries`` times.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rnnbench.config import RunConfig, Sweep, import_plugins, load_sweep
from rnnbench.errors import ConfigError
from rnnbench.store import Store

DEVICES = ("cpu", "cuda")


@dataclass
class SweepSummary:
    total: int
    skipped: int
    statuses: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    retried: int = 0  # runs resubmitted because the worker process running them died

    def line(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "nothing run"
        retried = f", {self.retried} retried after a worker died" if self.retried else ""
        return (
            f"{self.total} runs: {self.skipped} already in the store, {counts}{retried} "
            f"({self.wall_s:.1f} s)"
        )


class Progress:
    """One line on a terminal: runs done / total, statuses and an ETA."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.stream, self.done = total, stream, 0
        # On a terminal one line redrawn in place; in a log file a line per ~10% of the runs.
        self.redraw = bool(stream is not None and stream.isatty())
        self.every = 1 if self.redraw else max(1, total // 10)
        self.started = time.perf_counter()
        self.counts: Counter[str] = Counter()

    def update(self, status: str) -> None:
        self.done += 1
        self.counts[status] += 1
        if self.stream is None or (self.done % self.every and self.done != self.total):
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        width = 24
        filled = round(width * self.done / max(self.total, 1))
        counts = " ".join(f"{s} {n}" for s, n in sorted(self.counts.items()))
        self.stream.write(
            f"{chr(13) if self.redraw else ''}[{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} {counts} | {elapsed:.0f}s elapsed, ETA {eta:.0f}s "
        )
        if self.done == self.total or not self.redraw:
            self.stream.write("\n")
        self.stream.flush()


def _init_worker(threads: int, plugins: tuple[str, ...], base: str | None) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    import_plugins(plugins, Path(base) if base else None)


def _work(config: RunConfig, device: str) -> dict[str, Any]:
    from rnnbench.training import execute_run

    return execute_run(config, device)


def default_workers(device: str) -> int:
    # On the CPU two 1-thread processes gave ~12% more throughput than one 2-thread process.
    return 1 if device == "cuda" else max(1, os.cpu_count() or 1)


def run_sweep(
    sweep: str | Path | Sweep,
    store: str | Path,
    *,
    workers: int | None = None,
    threads: int | None = None,
    device: str = "cpu",
    max_retries: int = 2,
    progress: TextIO | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> SweepSummary:
    """Run every run of ``sweep`` not already in ``store``; returns counts by status.

    ``workers=0`` trains in this process (for debugging); otherwise ``workers`` spawned worker
    processes, each pinned to ``threads`` torch threads (default: cores / workers).
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    if device not in DEVICES:
        raise ConfigError(f"--device: must be one of {', '.join(DEVICES)}, got {device!r}")
    workers = default_workers(device) if workers is None else workers
    if workers < 0:
        raise ConfigError(f"--workers: must be >= 0, got {workers}")
    threads = threads or max(1, (os.cpu_count() or 1) // max(workers, 1))
    started = time.perf_counter()
    unique = list({run.run_id: run for run in sweep.runs}.values())
    with Store(store) as results:
        results.acquire_writer()
        done = results.completed_run_ids()
        pending = [run for run in unique if run.run_id not in done]
        summary = SweepSummary(total=len(unique), skipped=len(unique) - len(pending))
        results.set_meta(f"sweep:{sweep.name}", sweep.source)
        bar = Progress(len(pending), progress)

        def finish(record: dict[str, Any]) -> None:
            results.record_run(record)
            summary.statuses[record["status"]] += 1
            bar.update(record["status"])
            if on_record is not None:
                on_record(record)

        if workers == 0:
            import torch

            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for run in pending:
                    finish(_work(run, device))
            finally:
                torch.set_num_threads(previous)
        else:
            summary.retried = _run_in_pool(
                pending, workers, threads, device, max_retries, sweep, finish
            )
    summary.wall_s = time.perf_counter() - started
    return summary


def _run_in_pool(
    pending: list[RunConfig],
    workers: int,
    threads: int,
    device: str,
    max_retries: int,
    sweep: Sweep,
    finish: Callable[[dict[str, Any]], None],
) -> int:
    """Run ``pending`` in a spawned pool; returns how many runs had to be resubmitted."""
    attempts: Counter[str] = Counter()
    context = multiprocessing.get_context("spawn")  # no fork after torch has started threads
    initargs = (threads, sweep.imports, sweep.base)
    queue = list(pending)
    while queue:
        pool = ProcessPoolExecutor(
            min(workers, len(queue)),
            mp_context=context,
            initializer=_init_worker,
            initargs=initargs,
        )
        futures = {pool.submit(_work, run, device): run for run in queue}
        try:
            queue = _collect(futures, attempts, max_retries, device, finish)
        except BaseException:
            # Interrupted (Ctrl-C, or SIGINT to this process alone): a normal shutdown would
            # first run every queued run. Cancel them and stop the workers instead; finished
            # runs are already committed and the interrupted ones are redone on resume.
            _stop(pool)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
    return sum(attempts.values())


def _stop(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=False, cancel_futures=True)
    # The executor has no public way to stop a running task; terminating its processes is safe
    # because workers hold no state: only the parent writes the store.
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        process.terminate()


def _collect(
    futures: dict[Future[dict[str, Any]], RunConfig],
    attempts: Counter[str],
    max_retries: int,
    device: str,
    finish: Callable[[dict[str, Any]], None],
) -> list[RunConfig]:
    """Record runs as they finish. Returns the runs to retry: those lost with a worker that
    died, until a run has been lost ``max_retries`` times (then it is recorded as ``error``)."""
    from rnnbench.training import error_record

    retry: list[RunConfig] = []
    while futures:
        finished, _ = wait(futures, return_when=FIRST_COMPLETED)
        for future in finished:
            run = futures.pop(future)
            try:
                finish(future.result())
            except BrokenProcessPool:
                attempts[run.run_id] += 1
                if attempts[run.run_id] > max_retries:
                    finish(error_record(run, RuntimeError("worker process died"), 0.0, device))
                else:
                    retry.append(run)
    return retry
