"""Helpers shared by the end-to-end tests: the CLI in a subprocess, and background sweeps."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rnnbench.store import Store, StoreError

REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def rnnbench_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m rnnbench.cli ARGS`` in a fresh interpreter (no state shared with the test)."""
    return subprocess.run(
        [sys.executable, "-m", "rnnbench.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=600,
        **kwargs,
    )


def run_command(sweep: Path, store: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rnnbench.cli",
        "run",
        str(sweep),
        "--store",
        str(store),
        "--no-progress",
        *extra,
    ]


def start_sweep(
    sweep: Path, store: Path, *, workers: int, at_least: int, **popen: Any
) -> subprocess.Popen[str]:
    """Start ``rnnbench run`` in the background; return once ``at_least`` runs are stored."""
    popen = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen}
    command = run_command(sweep, store, "--workers", str(workers))
    process = subprocess.Popen(command, env=cli_env(), text=True, **popen)
    wait_for_runs(store, at_least, process)
    return process


def wait_for_runs(store: Path, at_least: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if stored_runs(store) >= at_least:
            return
        time.sleep(0.02)


def stored_runs(store: Path) -> int:
    """Runs in ``store`` so far (0 while the writer has not created its tables yet)."""
    try:
        with Store(store, readonly=True) as db:
            return db.count()
    except StoreError:
        return 0


def worker_pids(parent: int) -> list[int]:
    """The spawned pool workers of ``parent`` (Linux /proc; the resource tracker excluded)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    pids = []
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            pids.append(pid)
    return pids
