"""The local pool: a run whose worker dies is charged for it, and no other run is."""

from __future__ import annotations

import sys
import textwrap
from collections import deque
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import rnnbench

#: A user cell that kills its worker process (no exception, no cleanup) on the one run that
#: unrolls it for 10 steps: the T = 10 run of the sweep below, and no other.
CRASHING_CELL = '''
import os
import torch
from torch import nn
import rnnbench

@rnnbench.register_cell("crash_at_ten")
class CrashAtTen(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.weight_hh = nn.Parameter(torch.eye(hidden_size) * 0.5)
        self.steps = 0
    def init_state(self, batch_size, device, dtype):
        self.steps = 0
        return (torch.zeros(batch_size, self.weight_hh.shape[0], device=device, dtype=dtype),)
    def forward(self, x_t, state):
        self.steps += 1
        if self.steps == 10:
            os._exit(1)
        return (torch.tanh(self.inp(x_t) + state[0] @ self.weight_hh.T),)
'''

SWEEP = """
name = "crash"
imports = ["crashcell"]
[grid]
task = ["adding"]
arch = ["crash_at_ten"]
seq_len = [4, 5, 6, 7, 8, 9, 10]
clip = ["none"]
seed = [0]
[model]
hidden_size = 4
[train]
steps = 3
batch_size = 4
[diagnostics]
checkpoints = 0
eval_size = 8
profile_batch_size = 4
probe_max_lag = 2
probe_size = 8
# the dynamics step the cell outside a forward (the Lyapunov spectrum for lyapunov_steps
# steps, the Jacobians and saturation once more after a trajectory), which this cell counts
# as steps of one sequence: off, so that only the T = 10 run makes it count to 10
lyapunov = 0
jacobian_top_k = 0
saturation = false
"""


@pytest.mark.slow
@pytest.mark.parametrize("max_retries", [0, 2])
def test_a_worker_that_dies_is_charged_to_its_run_alone(tmp_path: Path, max_retries: int) -> None:
    (tmp_path / "crashcell.py").write_text(textwrap.dedent(CRASHING_CELL))
    sweep = tmp_path / "crash.toml"
    sweep.write_text(SWEEP)
    try:
        summary = rnnbench.run_sweep(
            sweep, tmp_path / "r.db", workers=2, threads=1, max_retries=max_retries
        )
    finally:  # the sweep's import registered the cell in this process too
        rnnbench.ARCHITECTURES.remove("crash_at_ten")
        sys.modules.pop("crashcell", None)
    frame = rnnbench.load_results(tmp_path / "r.db").set_index("seq_len")
    assert frame.loc[10, "status"] == "error"
    assert frame.loc[10, "error"] == "RuntimeError: worker process died"
    innocent = frame.drop(index=10)
    assert len(innocent) == 6 and set(innocent["status"]) == {"ok"}, innocent[["status", "error"]]
    assert summary.statuses == {"ok": 6, "error": 1}


BROKEN_SWEEP = """
name = "broken"
[grid]
task = ["adding"]
arch = ["rnn"]
seq_len = [5]
clip = ["none"]
seed = [0, 1]
[model]
hidden_size = 4
init = "orthogonal"
[train]
steps = 2
batch_size = 4
[diagnostics]
enabled = false
eval_size = 8
"""


def test_run_exits_1_when_a_run_errored_and_names_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rnnbench.cli import main
    from rnnbench.models import init as inits

    def broken(weight, hidden_size, gain, g):  # the INITS signature
        raise RuntimeError("planted failure")

    monkeypatch.setitem(inits.INITS._entries, "orthogonal", broken)
    sweep = tmp_path / "broken.toml"
    sweep.write_text(BROKEN_SWEEP)
    store = tmp_path / "r.db"
    code = main(["run", str(sweep), "--store", str(store), "--workers", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "2 error" in out and "first error: RuntimeError: planted failure" in out
    assert main(["results", "--store", str(store)]) == 0
    table = capsys.readouterr().out
    assert "error" in table.splitlines()[0] and "planted failure" in table


def test_a_diverged_run_is_data_and_exits_0(tmp_path: Path) -> None:
    from rnnbench.cli import main
    from tests.helpers import exploding_sweep

    sweep = tmp_path / "explode.toml"
    sweep.write_text(exploding_sweep())
    store = tmp_path / "r.db"
    assert main(["run", str(sweep), "--store", str(store), "--workers", "0", "--no-progress"]) == 0
    assert set(rnnbench.load_results(store)["status"]) == {"diverged"}


class _BreaksOnSecondSubmit:
    """An executor whose pool breaks after its first run finished and before the next is
    submitted: a worker died in between, which CI hit once under load
    (``submit`` raises ``BrokenProcessPool``)."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, fn: Any, run: Any, device: str) -> Future[Any]:
        if self.submitted:
            raise BrokenProcessPool("a child process terminated abruptly")
        self.submitted.append(run)
        future: Future[Any] = Future()
        future.set_result(f"record of {run}")
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def test_a_pool_that_breaks_between_two_submits_loses_no_run() -> None:
    from rnnbench.execution import local

    executor = _BreaksOnSecondSubmit()
    pool = SimpleNamespace(start=lambda workers: executor, device="cpu")
    queue: deque[Any] = deque(["a", "b", "c"])
    finished: list[str] = []
    suspects = local._round(pool, queue, 1, finished.append)  # type: ignore[arg-type]
    assert finished == ["record of a"]
    # b was never started: not a suspect of the death, but back at the head of the queue
    assert suspects == [] and list(queue) == ["b", "c"]
