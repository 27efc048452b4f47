"""Running sweeps: executors train, the parent process alone writes the store.

* ``options``: what an executor is given (:class:`ExecutorOptions`) and yields (a runner)
* ``local``: the ``local`` executor, a pool of spawned worker processes
* ``ray_executor``: the ``ray`` executor, a Ray task per run
* ``workers``: setting up a worker process (threads, flush-to-zero, the sweep's imports)
* ``runner``: :func:`run_sweep`, resumable; the longest runs first
* ``progress``: the progress line and its work-weighted ETA
* ``cost``: the cost model, FLOPs per training step and per run

This package module stays torch-free: the CLI's parser reads :data:`EXECUTORS` for every
command, including those that only read a store.
"""

from rnnbench.execution.local import local_executor
from rnnbench.execution.options import Executor
from rnnbench.execution.ray_executor import ray_executor
from rnnbench.registry import Registry

#: An executor validates its options and sets up (a process pool, a Ray connection) when its
#: context is entered, before the store is touched, so bad input writes nothing; it tears down
#: on exit. The runner it yields never writes the store: it hands records to ``finish``.
EXECUTORS: Registry[Executor] = Registry("executor")
EXECUTORS.add("local", local_executor)
EXECUTORS.add("ray", ray_executor)

__all__ = ["EXECUTORS"]
