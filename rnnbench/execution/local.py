"""The ``local`` executor: a pool of spawned worker processes on this machine.

A worker that dies takes only its run with it: the pool is rebuilt and unfinished runs are
retried up to ``max_retries`` times. ``workers=0`` trains in this process (for debugging).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rnnbench.config.schema import RunConfig
from rnnbench.errors import ConfigError
from rnnbench.execution.options import ExecutorOptions, Finish, Runner
from rnnbench.execution.workers import default_workers, init_worker, pin_threads
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
    futures: dict[Future[RunRecord], RunConfig],
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
