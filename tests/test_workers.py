"""Worker processes: what a worker is pinned to, and how it ends."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from threadpoolctl import threadpool_info

from rnnbench.execution.local import _init_pool_worker
from rnnbench.execution.workers import pin_threads


def blas_threads(info: list[dict]) -> set[int]:
    return {pool["num_threads"] for pool in info if pool["user_api"] == "blas"}


def test_a_pool_worker_pins_numpy_blas_to_its_thread_count() -> None:
    # Unpinned, numpy's OpenBLAS keeps one spinning thread per core in every worker.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=_init_pool_worker, initargs=(1, (), None)
    ) as pool:
        info = pool.submit(threadpool_info).result()
        processes = list(pool._processes.values())
    assert blas_threads(info) == {1}
    assert [p.exitcode for p in processes] == [0]  # the early exit still reports success


def test_pinning_in_this_process_is_undone_by_restore() -> None:
    import numpy  # noqa: F401
    import torch

    before = (blas_threads(threadpool_info()), torch.get_num_threads())
    restore = pin_threads(1)
    try:
        assert (blas_threads(threadpool_info()), torch.get_num_threads()) == ({1}, 1)
    finally:
        restore()
    assert (blas_threads(threadpool_info()), torch.get_num_threads()) == before


def test_the_defaults_count_the_cores_this_process_may_use() -> None:
    # Under Slurm, taskset or a container the machine's core count is not ours to use.
    import shutil
    import subprocess
    import sys

    import pytest

    if shutil.which("taskset") is None:
        pytest.skip("needs taskset")
    check = (
        "from rnnbench.execution.workers import available_cpus, default_workers; "
        "print(available_cpus(), default_workers('cpu'))"
    )
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", check], capture_output=True, text=True
    )
    assert out.stdout.split() == ["1", "1"], out.stderr
