"""Running a sweep: executors train, the parent alone writes the store.

Resumable by construction: a run's key is the hash of its config, the store commits one
transaction per finished run, and a re-run skips every run already ``ok`` or ``diverged``
(``error`` runs are retried). Executors are registered in :data:`EXECUTORS`: ``local`` (a pool
of spawned worker processes; a worker that dies takes only its run with it: the pool is rebuilt
and unfinished runs are retried up to ``max_retries`` times) and ``ray`` (a Ray task per run, on
a local Ray instance or a cluster; see :mod:`rnnbench.ray_executor`).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rnnbench.config import RunConfig, Sweep, import_plugins, load_sweep
from rnnbench.cost import run_flops
from rnnbench.errors import ConfigError
from rnnbench.registry import Registry
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
    """One line on a terminal: runs done / total, statuses and an ETA.

    The ETA weighs runs by their estimated work (:func:`rnnbench.cost.run_flops`), not by
    count: the runs are scheduled longest first, so a count-based ETA would start far too high.
    """

    def __init__(self, total: int, stream: TextIO | None, work: float = 0.0) -> None:
        self.total, self.stream, self.done = total, stream, 0
        self.work, self.work_done = work, 0.0
        # On a terminal one line redrawn in place; in a log file a line per ~10% of the runs.
        self.redraw = bool(stream is not None and stream.isatty())
        self.every = 1 if self.redraw else max(1, total // 10)
        self.started = time.perf_counter()
        self.counts: Counter[str] = Counter()

    def update(self, status: str, work: float = 0.0) -> None:
        self.done += 1
        self.counts[status] += 1
        self.work_done += work
        if self.stream is None or (self.done % self.every and self.done != self.total):
            return
        elapsed = time.perf_counter() - self.started
        if self.work > 0 and self.work_done > 0:
            eta = elapsed / self.work_done * max(self.work - self.work_done, 0.0)
        else:
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


def pin_threads(threads: int) -> Callable[[], None]:
    """Pin torch and numpy's BLAS to ``threads`` threads; returns a function that restores the
    previous settings (a worker process never calls it).

    torch.set_num_threads does not reach numpy's OpenBLAS, which starts one thread per core
    that spin-waits after every call (the diagnostics' polyfit and ridge solves). Measured on
    the 2-core CPU: a 1-thread worker burned 1.3 cores (9.2 s CPU in 7.1 s of runs), taking
    the second core from the other worker; pinned, 6.6 s CPU in 6.6 s."""
    import numpy  # noqa: F401  (loads numpy's BLAS, so the limit below reaches it)
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    blas = threadpool_limits(limits=threads, user_api="blas")

    def restore() -> None:
        blas.restore_original_limits()
        torch.set_num_threads(previous)

    return restore


def init_worker(threads: int, plugins: tuple[str, ...], base: str | None) -> None:
    """Set up a worker process (of the local pool, or a Ray task's): torch and BLAS threads,
    flush-to-zero, and the sweep's imports (raises :class:`ConfigError` if one fails)."""
    from rnnbench.numerics import flush_denormals

    pin_threads(threads)
    flush_denormals()
    import_plugins(plugins, Path(base) if base else None)


def _init_pool_worker(threads: int, plugins: tuple[str, ...], base: str | None) -> None:
    init_worker(threads, plugins, base)
    # A pool worker holds nothing worth finalizing (only the parent writes the store), yet
    # interpreter shutdown with torch loaded took 0.6-0.8 s per worker, which every sweep waited
    # for in pool.shutdown. Registered last, this runs first at exit and ends the process.
    # (Not for Ray: its long-lived workers call init_worker once per task and exit on their own.)
    atexit.register(_exit_now)


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _work(config: RunConfig, device: str) -> dict[str, Any]:
    from rnnbench.training import execute_run

    return execute_run(config, device)


def default_workers(device: str) -> int:
    # On the CPU two 1-thread processes gave ~12% more throughput than one 2-thread process.
    return 1 if device == "cuda" else max(1, os.cpu_count() or 1)


#: What an executor hands each finished run's record to (the parent's only store writer).
Finish = Callable[[dict[str, Any]], None]

#: Runs ``pending``, calling ``finish`` once per run as each finishes; returns how many runs
#: were resubmitted because the process running them died (as far as the executor can tell).
Runner = Callable[[list[RunConfig], Finish], int]


@dataclass(frozen=True)
class ExecutorOptions:
    """How to run a sweep, as given by the caller (``None``: the executor's default)."""

    sweep: Sweep
    device: str = "cpu"
    workers: int | None = None
    threads: int | None = None
    max_retries: int = 2
    address: str | None = None


#: An executor validates its options and sets up (a process pool, a Ray connection) when its
#: context is entered, before the store is touched, so bad input writes nothing; it tears down
#: on exit. The runner it yields never writes the store: it hands records to ``finish``.
Executor = Callable[[ExecutorOptions], AbstractContextManager[Runner]]
EXECUTORS: Registry[Executor] = Registry("executor")


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
    executor: str = "local",
    address: str | None = None,
) -> SweepSummary:
    """Run every run of ``sweep`` not already in ``store``; returns counts by status.

    ``executor="local"``: ``workers=0`` trains in this process (for debugging); otherwise
    ``workers`` spawned worker processes, each pinned to ``threads`` torch threads (default:
    cores / workers). ``executor="ray"``: each run is a Ray task on a local Ray instance, or on
    the cluster at ``address`` (see :mod:`rnnbench.ray_executor`). Either way this process alone
    writes the store, one transaction per finished run.
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    if device not in DEVICES:
        raise ConfigError(f"--device: must be one of {', '.join(DEVICES)}, got {device!r}")
    if threads is not None and threads < 0:
        raise ConfigError(f"--threads: must be >= 1 (or 0 for the default), got {threads}")
    if max_retries < 0:
        raise ConfigError(f"max_retries: must be >= 0, got {max_retries}")
    make_executor = EXECUTORS.get(executor, "--executor")
    options = ExecutorOptions(
        sweep=sweep,
        device=device,
        workers=workers,
        threads=threads or None,
        max_retries=max_retries,
        address=address,
    )
    started = time.perf_counter()
    unique = list({run.run_id: run for run in sweep.runs}.values())
    with make_executor(options) as execute, Store(store) as results:
        results.acquire_writer()
        done = results.completed_run_ids()
        # Longest run first (LPT, Graham 1969): the pool hands each free worker the next run, so
        # a long run left for last would run alone while the other workers idle.
        costs = {run.run_id: run_flops(run) for run in unique if run.run_id not in done}
        pending = sorted(
            (run for run in unique if run.run_id in costs),
            key=lambda run: costs[run.run_id],
            reverse=True,
        )
        summary = SweepSummary(total=len(unique), skipped=len(unique) - len(pending))
        results.set_meta(f"sweep:{sweep.name}", sweep.source)
        if progress is not None:  # announced only once the store is known to be usable
            progress.write(
                f"sweep {sweep.name!r}: {len(unique)} runs, {summary.skipped} already in "
                f"{store}, {len(pending)} to run\n"
            )
        bar = Progress(len(pending), progress, sum(costs.values()))

        def finish(record: dict[str, Any]) -> None:
            results.record_run(record)
            summary.statuses[record["status"]] += 1
            bar.update(record["status"], costs.get(record["run_id"], 0.0))
            if on_record is not None:
                on_record(record)

        if pending:
            summary.retried = execute(pending, finish)
    summary.wall_s = time.perf_counter() - started
    return summary


def _check_device_here(device: str) -> None:
    """Refuse a device this machine lacks before any store is opened: otherwise every run would
    fail in its worker, each one retried, and the sweep end in a store of errors."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            why = "torch is built without CUDA" if torch.version.cuda is None else "no GPU visible"
            raise ConfigError(
                f"--device: cuda is not available on this machine ({why}, torch "
                f"{torch.__version__}); allowed here: cpu (or --executor ray on a GPU cluster)"
            )


@contextmanager
def local_executor(options: ExecutorOptions) -> Iterator[Runner]:
    """Worker processes on this machine (``workers=0``: this process)."""
    if options.address is not None:
        raise ConfigError("--address: only with --executor ray")
    _check_device_here(options.device)
    workers = default_workers(options.device) if options.workers is None else options.workers
    if workers < 0:
        raise ConfigError(f"--workers: must be >= 0, got {workers}")
    threads = options.threads or max(1, (os.cpu_count() or 1) // max(workers, 1))

    def run(pending: list[RunConfig], finish: Finish) -> int:
        if workers:
            return _run_in_pool(
                pending,
                workers,
                threads,
                options.device,
                options.max_retries,
                options.sweep,
                finish,
            )
        restore = pin_threads(threads)
        try:
            for config in pending:
                finish(_work(config, options.device))
        finally:
            restore()
        return 0

    yield run


@contextmanager
def _ray(options: ExecutorOptions) -> Iterator[Runner]:
    # Imported on use: rnnbench.ray_executor imports this module (a cycle otherwise), and it is
    # only needed, and Ray only imported, when a sweep asks for this executor.
    from rnnbench.ray_executor import ray_executor

    with ray_executor(options) as run:
        yield run


EXECUTORS.add("local", local_executor)
EXECUTORS.add("ray", _ray)


def _run_in_pool(
    pending: list[RunConfig],
    workers: int,
    threads: int,
    device: str,
    max_retries: int,
    sweep: Sweep,
    finish: Finish,
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
            initializer=_init_pool_worker,
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
    # The executor has no public way to stop a running task; terminating its processes is safe
    # because workers hold no state: only the parent writes the store. They are read before
    # shutdown(), which drops the executor's reference to them (Python 3.11: _processes = None).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


def _collect(
    futures: dict[Future[dict[str, Any]], RunConfig],
    attempts: Counter[str],
    max_retries: int,
    device: str,
    finish: Finish,
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
