"""The ``ray`` executor: every run is a Ray task; the driver (this process) alone writes the store.

``rnnbench run SWEEP --store DB --executor ray`` starts a private local Ray instance;
``--address ADDR`` (e.g. ``auto`` on a cluster node) sends the tasks to a running cluster
instead. Records come back to the driver as tasks finish and each is committed at once, so
killing the driver loses no finished run and a re-run resumes like the local executor.

Same config, seed and ``--threads`` give the same trajectory as the local executor: a task pins
torch to ``threads`` threads (default 1, and that many Ray CPUs are reserved for it), enables
flush-to-zero exactly as a local worker does, and calls the same
:func:`rnnbench.training.loop.execute_run`.

A task whose worker process (or node) dies is resubmitted by Ray itself up to ``max_retries``
times; Python exceptions are not retried (``execute_run`` turns them into ``error`` records, so
there are none to retry). A task that still fails becomes an ``error`` record, retried on the
next re-run. Ray keeps its retry count to itself, so
:attr:`rnnbench.execution.runner.SweepSummary.retried` stays 0 here.

Ray is an optional dependency (``pip install 'rnnbench[ray]'``), imported only when this
executor is used. On a cluster, the modules a sweep lists in ``imports`` must be importable on
every node (installed, on a shared file system, or shipped with a Ray ``runtime_env``); see
``docs/cluster.md``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from rnnbench.config.schema import RunConfig
from rnnbench.errors import ConfigError
from rnnbench.execution.options import ExecutorOptions, Finish, Runner
from rnnbench.execution.workers import available_cpus, init_worker
from rnnbench.results.record import RunRecord

NOT_INSTALLED = "--executor ray: Ray is not installed; pip install 'rnnbench[ray]'"

#: What ``--address`` accepts, for the errors that refuse anything else.
ADDRESS_EXPECTED = (
    "expected 'auto', HOST:PORT of a running Ray head, or nothing for a local instance"
)

#: Seconds to wait for the head's port to accept a TCP connection. A head that is up answers
#: in milliseconds; ray.init itself would retry an unreachable GCS for minutes.
REACH_TIMEOUT_S = 3.0


def _train(
    config: RunConfig, device: str, threads: int, imports: tuple[str, ...], base: str | None
) -> RunRecord:
    """One run, in a Ray worker process. Ray reuses its workers for later tasks (possibly of
    another sweep), so the torch settings and the sweep's imports are applied per task."""
    # Imported here: this module loads torch-free, for the CLI's parser (the executor registry).
    from rnnbench.training import error_record, execute_run

    try:
        init_worker(threads, imports, base)
    except ConfigError as exc:
        # A node that cannot import the sweep's modules: the record says which one and why,
        # instead of a Ray traceback.
        return error_record(config, exc, 0.0, device)
    return execute_run(config, device)


@contextmanager
def ray_executor(options: ExecutorOptions) -> Iterator[Runner]:
    """Connect to Ray (or start a local instance) and yield a runner; shut down only an
    instance started here. A connection that already exists in this process (a notebook or a
    script that called ``ray.init``) is used as it is and left running."""
    workers = options.workers
    if workers is not None and workers < 1:
        raise ConfigError(
            f"--workers: must be >= 1 with --executor ray, got {workers} "
            "(0 = in this process is --executor local only)"
        )
    if workers is not None and options.address is not None:
        raise ConfigError(
            "--workers: not with --address; the cluster's CPUs decide how many runs go at once "
            "(--threads sets the CPUs per run)"
        )
    try:
        import ray
    except ImportError:
        raise ConfigError(NOT_INSTALLED) from None
    threads = options.threads or 1
    started = _connect(ray, options, threads)
    try:
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        if options.device == "cuda" and not cluster_gpus:
            # Ray would queue GPU tasks forever on a cluster without GPUs.
            raise ConfigError("--device cuda: the Ray cluster has no GPU")
        gpus = gpu_share(options.device, workers, cluster_gpus)
        task = ray.remote(
            max_retries=options.max_retries,
            retry_exceptions=False,
            num_cpus=threads,
            num_gpus=gpus,
        )(_train)

        def run(pending: list[RunConfig], finish: Finish) -> int:
            args = (options.device, threads, options.sweep.imports, options.sweep.base)
            refs = {task.remote(config, *args): config for config in pending}
            _collect(ray, refs, options.device, finish)
            return 0

        yield run
    finally:
        if started:
            ray.shutdown()


def gpu_share(device: str, workers: int | None, cluster_gpus: float) -> float:
    """The GPUs a run reserves: a whole one by default, and with ``--workers W`` on a local
    instance the share that lets W runs go at once (``--workers 4`` on one GPU: 0.25 each, as
    the local executor puts 4 workers on one card), never more than one."""
    if device != "cuda":
        return 0.0
    if not workers:
        return 1.0
    return min(1.0, cluster_gpus / workers)


def _connect(ray: ModuleType, options: ExecutorOptions, threads: int) -> bool:
    """``ray.init`` as this executor needs it; returns whether it started a new connection."""
    if ray.is_initialized():
        return False
    settings: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,  # a worker's output goes to Ray's log files, not over the bar
        "logging_level": logging.WARNING,
    }
    if options.address is None:
        # "local": a private instance even when RAY_ADDRESS or a running cluster is around,
        # sized so that --workers means runs at once, as with the local executor.
        cores = available_cpus()
        cpus = options.workers * threads if options.workers else max(cores, threads)
        settings.update(address="local", num_cpus=cpus)
    else:
        _check_address(options.address)
        settings["address"] = options.address
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if on_main else None
    try:
        ray.init(**settings)
    except ConnectionError as exc:
        raise ConfigError(f"--address {options.address}: {exc}") from None
    finally:
        # ray.init installs a SIGTERM handler that exits at once; put back the caller's (the
        # CLI's turns SIGTERM into KeyboardInterrupt, which cancels the tasks below).
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return True


def _check_address(address: str) -> None:
    """Refuse an ``--address`` that ray.init would choke on: a malformed one (Ray raises a bare
    ``ValueError``) or a HOST:PORT where nothing listens (Ray logs GCS timeouts and retries for
    minutes before giving up). ``auto`` is left to Ray, which looks it up (``RAY_ADDRESS``, the
    last ``ray start`` on this machine) and raises ``ConnectionError`` if nothing is found."""
    if address == "auto":
        return
    host, port = _split_address(address)
    try:
        # Only whether the port accepts connections; ray.init then does the real handshake.
        # Ray swaps localhost for this node's IP before connecting; checking the name as given
        # is still right because the GCS listens on all interfaces (`ray start`, Ray 2.60).
        with socket.create_connection((host, port), timeout=REACH_TIMEOUT_S):
            pass
    except socket.gaierror:
        reason = f"unknown host {host!r}"
    except ConnectionRefusedError:
        reason = "connection refused"
    except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
        reason = f"no answer within {REACH_TIMEOUT_S:g} s"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    else:
        return
    raise ConfigError(f"--address: cannot reach {address} ({reason}); {ADDRESS_EXPECTED}")


def _split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); a ConfigError for anything else, which
    covers ``local`` (the default without --address; ray.init would skip the CPU sizing above)
    and ``ray://`` Ray Client addresses (neither documented nor tested with this executor)."""
    host, colon, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # a bare IPv6 address: the port is ambiguous, as it is to Ray
        host = ""
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address: not an address: {address!r}; {ADDRESS_EXPECTED}")
    return host, int(port)


def _collect(ray: ModuleType, refs: dict[Any, RunConfig], device: str, finish: Finish) -> None:
    """Hand each record to ``finish`` as its task completes. Interrupted (Ctrl-C, SIGTERM, or
    ``finish`` failing), cancel every task still queued or running, then re-raise."""
    from ray.exceptions import RayError

    from rnnbench.training import error_record

    waiting = list(refs)
    try:
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            for ref in ready:
                config = refs.pop(ref)
                try:
                    record = ray.get(ref)
                except RayError as exc:
                    # Retries used up (worker or node died each time), or cancelled by Ray:
                    # an error record, which the next re-run retries, never a crashed sweep.
                    record = error_record(config, exc, 0.0, device)
                finish(record)
    except BaseException:
        for ref in refs:
            # Best effort while unwinding: a failing cancel must not hide the interrupt.
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
