"""The Ray executor end to end through the CLI, on a local Ray instance (one per test: starting
one takes a few seconds): the same results as the local executor, user modules imported in Ray
workers, a worker that dies is retried, and bad input is refused before the store exists."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import rnnbench_cli

from rnnbench import load_results
from rnnbench.cli import main
from rnnbench.execution.ray_executor import NOT_INSTALLED

#: Ray is an optional extra; scripts/setup.sh (and so CI) installs it, so these do run there.
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed")


def outcome(store: Path) -> dict[str, tuple[str, str]]:
    """run_id -> (status, trajectory hash): what 'the same results' means."""
    frame = load_results(store)
    assert frame["run_id"].is_unique
    return {r.run_id: (r.status, r.metrics["trajectory_hash"]) for r in frame.itertuples()}


@needs_ray
def test_ray_executor_gives_the_same_runs_as_the_local_executor(
    write_sweep, tmp_path: Path
) -> None:
    sweep = write_sweep()
    local, on_ray = tmp_path / "local.db", tmp_path / "ray.db"
    common = ("run", str(sweep), "--threads", "1", "--no-progress")
    done = rnnbench_cli(*common, "--store", str(local), "--workers", "2")
    assert done.returncode == 0, done.stderr
    done = rnnbench_cli(*common, "--store", str(on_ray), "--executor", "ray")
    assert done.returncode == 0, done.stderr
    assert "8 runs: 0 already in the store, 8 ok" in done.stdout
    expected = outcome(local)
    assert len(expected) == 8 and {status for status, _ in expected.values()} == {"ok"}
    assert outcome(on_ray) == expected
    assert {e["threads"] for e in load_results(on_ray)["env"]} == {1}


#: Two runs of user cells from two modules the sweep imports; a few steps each.
CELL_SWEEP = """
imports = ["raycells", "fragile"]
[grid]
task = ["adding"]
arch = ["mgu", "dies_once"]
seq_len = [6]
clip = ["norm:1.0"]
seed = [0]
[model]
hidden_size = 8
[train]
steps = 5
batch_size = 4
[diagnostics]
checkpoints = 1
eval_size = 8
profile_batch_size = 4
probe_max_lag = 2
probe_size = 8
"""

#: The README's minimal gated cell (Zhou et al. 2016).
MGU = """
import torch
from torch import nn

import rnnbench


@rnnbench.register_cell("mgu")
class MinimalGatedUnit(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.inp = nn.Linear(input_size, 2 * hidden_size)
        self.weight_hh = nn.Parameter(torch.empty(2 * hidden_size, hidden_size))
        nn.init.orthogonal_(self.weight_hh)

    def init_state(self, batch_size, device, dtype):
        return (torch.zeros(batch_size, self.weight_hh.shape[1], device=device, dtype=dtype),)

    def forward(self, x_t, state):
        (h,) = state
        f_in, c_in = self.inp(x_t).chunk(2, dim=-1)
        w_f, w_c = self.weight_hh.chunk(2, dim=0)
        f = torch.sigmoid(f_in + h @ w_f.T)
        c = torch.tanh(c_in + (f * h) @ w_c.T)
        return ((1 - f) * h + f * c,)
"""

#: An Elman cell whose first forward pass in a run kills its process, as a segfault or the OOM
#: killer would: the marker file (next to the module) makes only the first attempt die. (The
#: contract check steps every user cell in the parent on a batch of 2 before the sweep starts;
#: the runs' batches are larger.)
DIES_ONCE = """
import os
from pathlib import Path

import torch
from torch import nn

import rnnbench

MARKER = Path(__file__).with_name("died.pid")


@rnnbench.register_cell("dies_once")
class DiesOnce(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.weight_hh = nn.Parameter(torch.eye(hidden_size))

    def init_state(self, batch_size, device, dtype):
        return (torch.zeros(batch_size, self.weight_hh.shape[0], device=device, dtype=dtype),)

    def forward(self, x_t, state):
        if x_t.shape[0] > 2 and not MARKER.exists():
            MARKER.write_text(str(os.getpid()))
            os._exit(1)
        return (torch.tanh(self.inp(x_t) + state[0] @ self.weight_hh.T),)
"""


@needs_ray
def test_user_cells_run_in_ray_workers_and_a_task_whose_worker_dies_is_retried(
    tmp_path: Path,
) -> None:
    # One Ray instance for both checks: starting one is most of this test's time.
    (tmp_path / "raycells.py").write_text(MGU)
    (tmp_path / "fragile.py").write_text(DIES_ONCE)
    sweep = tmp_path / "cells.toml"
    sweep.write_text(CELL_SWEEP)
    store = tmp_path / "cells.db"
    done = rnnbench_cli(
        "run", str(sweep), "--store", str(store), "--executor", "ray", "--no-progress"
    )
    assert done.returncode == 0, done.stderr
    assert "2 runs: 0 already in the store, 2 ok" in done.stdout
    frame = load_results(store).set_index("arch")
    assert sorted(frame.index) == ["dies_once", "mgu"] and set(frame["status"]) == {"ok"}
    mgu = frame.loc["mgu"]
    assert len(mgu["profiles"][0]["norms"]) == 6 and mgu["grad_factor"] > 0
    dead = int((tmp_path / "died.pid").read_text())  # the first attempt did die ...
    assert frame.loc["dies_once", "env"]["pid"] != dead  # ... and a retry recorded the run


def test_an_unknown_executor_exits_2_and_writes_nothing(
    write_sweep, tmp_path: Path, capsys
) -> None:
    sweep = write_sweep()
    with pytest.raises(SystemExit) as exited:
        main(["run", str(sweep), "--store", str(tmp_path / "r.db"), "--executor", "nope"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "'local', 'ray'" in err
    assert list(tmp_path.iterdir()) == [sweep]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--address", "auto"], "--address: only with --executor ray"),
        (["--executor", "local", "--address", "auto"], "--address: only with --executor ray"),
        (["--executor", "ray", "--workers", "0"], "--workers: must be >= 1 with --executor ray"),
    ],
)
def test_bad_executor_options_exit_2_and_write_nothing(
    write_sweep, tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    sweep = write_sweep()
    assert main(["run", str(sweep), "--store", str(tmp_path / "r.db"), *extra]) == 2
    err = capsys.readouterr().err
    assert f"rnnbench: error: {message}" in err
    if "--address" in extra:  # refused before anything else is said
        assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [sweep]  # no store, no lock file


def test_ray_missing_is_a_one_line_error_naming_the_extra(
    write_sweep, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    sweep = write_sweep()
    assert main(["run", str(sweep), "--store", str(tmp_path / "r.db"), "--executor", "ray"]) == 2
    assert f"rnnbench: error: {NOT_INSTALLED}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [sweep]


#: What an --address error says is allowed (spelled out: it is what the user reads).
ADDRESS_EXPECTED = (
    "expected 'auto', HOST:PORT of a running Ray head, or nothing for a local instance"
)


class FakeRay(SimpleNamespace):
    """Stands in for the ``ray`` module: a bad --address must be refused before ray.init, which
    would raise a ValueError traceback (malformed) or retry the GCS for minutes (nothing there).
    Its ``init`` records the call and fails as Ray does when it finds no cluster."""

    def __init__(self) -> None:
        super().__init__(calls=[], is_initialized=lambda: False)

    def init(self, **settings: object) -> None:
        self.calls.append(settings)
        raise ConnectionError("Could not find any running Ray instance.")


def run_with_address(
    write_sweep, tmp_path: Path, capsys, monkeypatch, address: str
) -> tuple[int, str, FakeRay]:
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    sweep = write_sweep()
    argv = ["run", str(sweep), "--store", str(tmp_path / "r.db"), "--executor", "ray"]
    code = main([*argv, "--address", address])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == [sweep]  # no store, no lock file
    return code, err, fake


def closed_port() -> int:
    """A local port with nothing listening: bound (so the OS picked a free one), never listened."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "address", ["nonsense", "local", "ray://127.0.0.1:10001", "head:port", ":6379", "h:70000"]
)
def test_a_malformed_address_exits_2_before_ray_init_and_writes_nothing(
    write_sweep, tmp_path: Path, capsys, monkeypatch, address: str
) -> None:
    code, err, fake = run_with_address(write_sweep, tmp_path, capsys, monkeypatch, address)
    assert code == 2 and not fake.calls
    assert f"rnnbench: error: --address: not an address: {address!r}; {ADDRESS_EXPECTED}" in err


def test_an_address_with_nothing_listening_exits_2_before_ray_init_and_writes_nothing(
    write_sweep, tmp_path: Path, capsys, monkeypatch
) -> None:
    address = f"127.0.0.1:{closed_port()}"
    code, err, fake = run_with_address(write_sweep, tmp_path, capsys, monkeypatch, address)
    assert code == 2 and not fake.calls
    expected = f"--address: cannot reach {address} (connection refused); {ADDRESS_EXPECTED}"
    assert f"rnnbench: error: {expected}" in err


@pytest.mark.parametrize(
    ("failure", "reason"),
    [(TimeoutError(), "no answer within 3 s"), (socket.gaierror(), "unknown host 'head'")],
)
def test_an_unreachable_head_is_named_with_the_reason(
    write_sweep, tmp_path: Path, capsys, monkeypatch, failure: OSError, reason: str
) -> None:
    def connect(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(socket, "create_connection", connect)
    code, err, fake = run_with_address(write_sweep, tmp_path, capsys, monkeypatch, "head:6379")
    assert code == 2 and not fake.calls
    assert f"--address: cannot reach head:6379 ({reason}); " in err


def test_address_auto_is_left_to_ray(write_sweep, tmp_path: Path, capsys, monkeypatch) -> None:
    # Ray looks 'auto' up itself (RAY_ADDRESS, the last `ray start` here); no check of ours.
    code, err, fake = run_with_address(write_sweep, tmp_path, capsys, monkeypatch, "auto")
    assert code == 2 and [call["address"] for call in fake.calls] == ["auto"]
    assert "rnnbench: error: --address auto: Could not find any running Ray instance." in err


@pytest.mark.parametrize(
    ("device", "workers", "gpus", "share"),
    [
        ("cuda", 4, 1, 0.25),
        ("cuda", None, 1, 1.0),
        ("cuda", 2, 4, 1.0),
        ("cuda", 4, 2, 0.5),
        ("cpu", 4, 0, 0.0),
    ],
)
def test_runs_share_a_gpu_as_the_local_executor_does(
    device: str, workers: int | None, gpus: float, share: float
) -> None:
    # before: a whole GPU per run, so --workers 4 on one GPU ran one run at a time
    from rnnbench.execution.ray_executor import gpu_share

    assert gpu_share(device, workers, gpus) == share
