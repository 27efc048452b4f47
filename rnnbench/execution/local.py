"""The ``local`` executor: a pool of spawned worker processes on this machine.

A worker that dies takes only its run with it: the runs in flight with it are rerun one at a
time to find the one that killed it, and only that run is charged (retried up to ``max_retries``
times, then recorded as ``error``). ``workers=0`` trains in this process (for debugging).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnnbench.config.schema import RunConfig
from rnnbench.errors import ConfigError
from rnnbench.execution.options import ExecutorOptions, Finish, Runner
from rnnbench.execution.workers import (
    available_cpus,
    default_workers,
    init_worker,
    pin_threads,
)
from rnnbench.results.record import RunRecord

if TYPE_CHECKING:
    from rnnbench.sweep import Sweep


def _init_pool_worker(threads: int, plugins: tuple[str, ...], base: str | None) -> None:
    init_worker(threads, plugins, base)
    # A pool worker holds nothing worth finalizing (only the parent writes the store), yet
    # interpreter shutdown with torch loaded takes most of a second per worker, which every
    # sweep waited for in pool.shutdown. Registered last, this runs first at exit and ends the
    # process. (Not for Ray: its long-lived workers call init_worker once per task and exit on
    # their own.)
    atexit.register(_exit_now)


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _work(config: RunConfig, device: str) -> RunRecord:
    # Imported in the worker: this module loads torch-free, for the CLI's parser.
    from rnnbench.training import execute_run

    return execute_run(config, device)


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
    threads = options.threads or max(1, available_cpus() // max(workers, 1))

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


@dataclass
class _Pool:
    """How to start the spawned workers of a sweep."""

    threads: int
    device: str
    sweep: Sweep

    def start(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),  # no fork after torch's threads
            initializer=_init_pool_worker,
            initargs=(self.threads, self.sweep.imports, self.sweep.base),
        )


def _run_in_pool(
    pending: list[RunConfig],
    workers: int,
    threads: int,
    device: str,
    max_retries: int,
    sweep: Sweep,
    finish: Finish,
) -> int:
    """Run ``pending`` in a spawned pool; returns how many runs had to be resubmitted because
    the worker process running them died.

    At most ``workers`` runs are in flight. A worker that dies breaks the whole pool, and every
    run in flight fails with it, though only one of them killed it: those runs are suspects,
    not culprits. Each suspect then runs alone, in a pool of one worker, where a death can only
    be its own: that death is charged to it, and after ``max_retries`` charged deaths the run is
    recorded as ``error``. No other run is ever charged.
    """
    pool = _Pool(threads, device, sweep)
    queue = deque(pending)
    deaths: Counter[str] = Counter()
    resubmitted = 0
    while queue:
        suspects = _round(pool, queue, workers, finish)
        resubmitted += len(suspects)
        for run in suspects:
            resubmitted += _alone(pool, run, deaths, max_retries, finish)
    return resubmitted


def _alone(
    pool: _Pool, run: RunConfig, deaths: Counter[str], max_retries: int, finish: Finish
) -> int:
    """Run a suspect alone until it finishes or has died ``max_retries + 1`` times; returns how
    many times it was resubmitted after a death of its own."""
    from rnnbench.training import error_record

    while _round(pool, deque([run]), 1, finish):
        deaths[run.run_id] += 1
        if deaths[run.run_id] > max_retries:
            finish(error_record(run, RuntimeError("worker process died"), 0.0, pool.device))
            return deaths[run.run_id] - 1
    return deaths[run.run_id]


def _round(pool: _Pool, queue: deque[RunConfig], workers: int, finish: Finish) -> list[RunConfig]:
    """Run the queue in one pool, keeping at most ``workers`` runs in flight, until it is empty
    or a worker dies; returns the runs that were in flight when it died (empty if none did)."""
    executor = pool.start(min(workers, len(queue)))
    in_flight: dict[Future[RunRecord], RunConfig] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                try:
                    future = executor.submit(_work, queue[0], pool.device)
                except BrokenProcessPool:
                    # a worker died after the last result came in and before this submit: the
                    # run never started, so it stays queued (no suspect); the in-flight ones are
                    return _broken(executor, in_flight, finish)
                in_flight[future] = queue.popleft()
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                try:
                    record = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                finish(record)
                del in_flight[future]
            if broken:
                return _broken(executor, in_flight, finish)
    except BaseException:
        # Interrupted (Ctrl-C, or SIGINT to this process alone): a normal shutdown would first
        # run every queued run. Stop the workers instead; finished runs are already committed
        # and the interrupted ones are redone on resume.
        _stop(executor)
        raise
    executor.shutdown(wait=True)
    return []


def _broken(
    executor: ProcessPoolExecutor, in_flight: dict[Future[RunRecord], RunConfig], finish: Finish
) -> list[RunConfig]:
    """Shut a broken pool down; record its runs that still finished, return the suspects."""
    executor.shutdown(wait=True, cancel_futures=True)
    return _harvest(in_flight, finish)


def _harvest(in_flight: dict[Future[RunRecord], RunConfig], finish: Finish) -> list[RunConfig]:
    """Record the runs of a broken pool that still finished; return the others, the suspects."""
    suspects = []
    for future, run in in_flight.items():
        if future.done() and future.exception() is None:
            finish(future.result())
        else:
            suspects.append(run)
    return suspects


def _stop(pool: ProcessPoolExecutor) -> None:
    # The executor has no public way to stop a running task; terminating its processes is safe
    # because workers hold no state: only the parent writes the store. They are read before
    # shutdown(), which drops the executor's reference to them (Python 3.11: _processes = None).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
