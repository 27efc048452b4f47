"""Helpers shared by the end-to-end tests: the CLI in a subprocess, and background sweeps."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rnnbench.results.store import Store, StoreError

REPO = Path(__file__).resolve().parents[1]

#: 8 runs of about a second each on one core (0.2 s each at 150 steps on a fast 2-core VM,
#: which let a sweep finish inside the kill test's 0.8 s window): long enough to be killed
#: mid-run.
SLOW_SWEEP = """
name = "slow"
[grid]
task = ["adding"]
arch = ["rnn", "lstm"]
seq_len = [40]
clip = ["none", "norm:1.0"]
seed = [0, 1]
[model]
hidden_size = 32
[train]
steps = 600
batch_size = 32
[diagnostics]
checkpoints = 1
eval_size = 64
profile_batch_size = 8
probe_max_lag = 4
probe_size = 16
"""


#: ReLU RNN, recurrent weights 1.5 I, plain SGD at lr 0.5: without clipping every seed explodes
#: to a non-finite loss within two steps (measured: step 1 for seeds 0-7); with norm clipping at
#: 1 all 8 seeds finish. The divergence test and the plugin's planted regression both use it.
def exploding_sweep(name: str = "explode", clip: str = "none", imports: str = "") -> str:
    return f"""
name = "{name}"
{f'imports = ["{imports}"]' if imports else ""}
[grid]
task = ["adding"]
arch = ["rnn_relu"]
seq_len = [20]
clip = ["{clip}"]
seed = [0, 1, 2, 3, 4, 5, 6, 7]
[model]
hidden_size = 16
init = "identity"
init_gain = 1.5
[train]
steps = 40
batch_size = 16
lr = 0.5
optimizer = "sgd"
[diagnostics]
checkpoints = 1
eval_size = 32
profile_batch_size = 8
probe_max_lag = 4
probe_size = 16
curve_points = 10
"""


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


#: A report's smoke sweep: copy and adding, three architectures, three clip modes, T in {10, 20},
#: 8 steps of a width-4 model: every section of a report in seconds (the layout and screenshot
#: tests draw it).
REPORT_SMOKE = """
name = "smoke"
[grid]
task = ["copy", "adding"]
arch = ["rnn", "lstm", "gru"]
seq_len = [10, 20]
clip = ["none", "norm:1.0", "value:0.5"]
seed = [0]
[model]
hidden_size = 4
[train]
steps = 8
batch_size = 8
[diagnostics]
checkpoints = 1
eval_size = 32
profile_batch_size = 8
probe_max_lag = 4
probe_size = 16
curve_points = 5
"""


#: A two-label comparison as a user runs one: a baseline store of the built-ins and a store of
#: the user's cell (examples/compare_cell/mycell.py, registered as "mgu") plus the lstm, on the
#: adding problem at two T, with and without clipping, two seeds. Tiny and fast: the report's
#: tables and figures are what is exercised, not what learns.
_COMPARE = """
name = "{name}"
{imports}
[grid]
task = ["adding"]
arch = {archs}
seq_len = [8, 16]
clip = ["none", "norm:1.0"]
seed = [0, 1]
[model]
hidden_size = 8
[train]
steps = 12
batch_size = 16
lr = 1e-2
[diagnostics]
checkpoints = 1
eval_size = 32
profile_batch_size = 8
probe_max_lag = 4
probe_size = 16
task_probe_size = 64
curve_points = 6
"""


def comparison_stores(root: Path, threads: int = 1) -> tuple[Path, Path]:
    """(baseline store: rnn, lstm, gru; mine: mgu and lstm), written under ``root``. One torch
    thread by default: these runs are too small to gain from two, and on a busy 2-core machine
    two threads made them 10-60x slower (4 s against 33-240 s, measured)."""
    import rnnbench

    cell = REPO / "examples" / "compare_cell" / "mycell.py"
    (root / "mycell.py").write_text(cell.read_text())
    stores = []
    for name, archs, imports in (
        ("baseline", '["rnn", "lstm", "gru"]', ""),
        ("mine", '["mgu", "lstm"]', 'imports = ["mycell"]'),
    ):
        sweep = root / f"{name}.toml"
        sweep.write_text(_COMPARE.format(name=name, archs=archs, imports=imports))
        store = root / f"{name}.db"
        rnnbench.run_sweep(sweep, store, workers=0, threads=threads, progress=None)
        stores.append(store)
    return stores[0], stores[1]
