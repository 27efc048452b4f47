"""What an executor is: the options it is given, and the runner it yields.

Executors are registered in :data:`rnnbench.execution.EXECUTORS`. Torch-free: the CLI's parser
reads the registry's names for every command.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnnbench.config.schema import RunConfig
from rnnbench.results.record import RunRecord

if TYPE_CHECKING:
    from rnnbench.sweep import Sweep

DEVICES = ("cpu", "cuda")

#: What an executor hands each finished run's record to (the parent's only store writer).
Finish = Callable[[RunRecord], None]

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


#: An executor: a context manager over the options that yields a runner (see EXECUTORS).
Executor = Callable[[ExecutorOptions], AbstractContextManager[Runner]]
