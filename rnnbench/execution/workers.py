"""Setting up a worker process (of the local pool, or a Ray task's) and how many to start.

Torch is imported where it is used: this module is loaded by the CLI's parser, through the
executor registry, for every command.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from rnnbench.registry import import_plugins


def pin_threads(threads: int) -> Callable[[], None]:
    """Pin torch and numpy's BLAS to ``threads`` threads; returns a function that restores the
    previous settings (a worker process never calls it).

    torch.set_num_threads does not reach numpy's OpenBLAS, which starts one thread per core
    that spin-waits after every call (the diagnostics' polyfit and ridge solves): an unpinned
    1-thread worker takes CPU from the others (measured: docs/performance.md, sections 4-5)."""
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


def default_workers(device: str) -> int:
    # On the CPU one 1-thread process per core beats fewer, wider ones (docs/performance.md).
    return 1 if device == "cuda" else available_cpus()


def available_cpus() -> int:
    """The cores this process may run on: its CPU affinity where the platform has one (Slurm's
    --cpus-per-task, taskset and containers set it), else the machine's core count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows: no affinity call
        return max(1, os.cpu_count() or 1)
