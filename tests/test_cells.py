"""User cells: the contract checked before a sweep runs, inits that act (or refuse), the two
hooks, and the code version in the run key."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rnnbench.errors import ConfigError
from rnnbench.models import ARCHITECTURES, register_cell
from rnnbench.models.model import make_model
from rnnbench.results.store import load_results
from rnnbench.sweep import load_sweep
from rnnbench.tasks import make_task
from rnnbench.training.loop import train_run
from tests.helpers import rnnbench_cli

HEADER = """
import torch
from torch import nn
from torch.nn.utils import parametrizations
import rnnbench
"""

GOOD_INIT = """
    def init_state(self, batch_size, device, dtype):
        return (torch.zeros(batch_size, self.hidden, device=device, dtype=dtype),)
"""


def cell(body: str, init_state: str = GOOD_INIT, name: str = "c") -> str:
    return (
        HEADER
        + textwrap.dedent(f'''
    @rnnbench.register_cell("{name}")
    class Cell(nn.Module):
        def __init__(self, input_size, hidden_size):
            super().__init__()
            self.hidden = hidden_size
            self.inp = nn.Linear(input_size, hidden_size)
            self.weight_hh = nn.Parameter(torch.eye(hidden_size) * 0.5)
            self.out = nn.Linear(hidden_size, hidden_size)
    ''')
        + textwrap.indent(textwrap.dedent(init_state), "    ")
        + textwrap.indent(textwrap.dedent(body), "    ")
    )


STEP = "torch.tanh(self.inp(x_t) + state[0] @ self.weight_hh.T)"
VIOLATIONS = {
    "bare tensor": (
        f"def forward(self, x_t, state):\n    return {STEP}\n",
        GOOD_INIT,
        "forward must return a tuple of [B, H] tensors with h first, got a bare tensor [2, 4]",
    ),
    "wrong shape": (
        f"def forward(self, x_t, state):\n    return ({STEP}[:, :2],)\n",
        GOOD_INIT,
        "forward must return h first, shaped [B, H] = [2, 4]; got [2, 2]",
    ),
    "readout as h": (
        f"def forward(self, x_t, state):\n    h = {STEP.replace('state[0]', 'state[1]')}\n"
        "    return (self.out(h), h)\n",
        "def init_state(self, batch_size, device, dtype):\n"
        "    z = torch.zeros(batch_size, self.hidden, device=device, dtype=dtype)\n"
        "    return (z, z)\n",
        "forward's h (state[0]) is not what the next step reads",
    ),
    "init_state tensor": (
        f"def forward(self, x_t, state):\n    return ({STEP},)\n",
        "def init_state(self, batch_size, device, dtype):\n"
        "    return torch.zeros(batch_size, self.hidden)\n",
        "init_state must return a tuple of [B, H] tensors with h first, got a bare tensor",
    ),
    "forward raises": (
        "def forward(self, x_t, state):\n    return (x_t @ self.weight_hh,)\n",
        GOOD_INIT,
        "forward(x_t, state) raised RuntimeError: mat1 and mat2 shapes cannot be multiplied",
    ),
}


def sweep_file(folder: Path, module: str, arch: str = "c", extra: str = "") -> Path:
    path = folder / "s.toml"
    path.write_text(
        f'name = "cells"\nimports = ["{module}"]\n[grid]\ntask = ["adding"]\narch = ["{arch}"]\n'
        'seq_len = [6]\nclip = ["none"]\nseed = [0]\n[model]\nhidden_size = 4\n'
        "[train]\nsteps = 3\nbatch_size = 4\n[diagnostics]\ncheckpoints = 0\neval_size = 8\n"
        f"profile_batch_size = 2\nprobe_max_lag = 2\nprobe_size = 8\n{extra}"
    )
    return path


@pytest.mark.parametrize("case", list(VIOLATIONS))
def test_a_contract_violation_exits_2_in_one_line_before_the_store(
    tmp_path: Path, case: str
) -> None:
    body, init_state, message = VIOLATIONS[case]
    (tmp_path / "bad_cell.py").write_text(cell(body, init_state))
    store = tmp_path / "out.db"
    result = rnnbench_cli("run", str(sweep_file(tmp_path, "bad_cell")), "--store", str(store))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"arch 'c': {message}" in result.stderr
    assert not store.exists()


def test_a_memoryless_control_cell_is_allowed(tmp_path: Path, registered: list[str]) -> None:
    body = "def forward(self, x_t, state):\n    return (torch.tanh(self.inp(x_t)),)\n"
    (tmp_path / "memoryless.py").write_text(cell(body))
    registered.append("c")  # registered in this process by the sweep's import
    assert len(load_sweep(sweep_file(tmp_path, "memoryless")).runs) == 1
    sys.modules.pop("memoryless", None)


@pytest.fixture
def registered() -> list[str]:
    names: list[str] = []
    yield names
    for name in names:
        ARCHITECTURES.remove(name)


def _orthogonal_cell(name: str, registered: list[str]) -> None:
    @register_cell(name)
    class Orth(torch.nn.Module):
        def __init__(self, input_size: int, hidden_size: int) -> None:
            super().__init__()
            self.inp = torch.nn.Linear(input_size, hidden_size)
            self.weight_hh = torch.nn.Parameter(torch.randn(hidden_size, hidden_size))
            torch.nn.utils.parametrizations.orthogonal(self, "weight_hh")

        def init_state(self, batch_size: int, device: object, dtype: object) -> tuple:
            return (torch.zeros(batch_size, self.inp.out_features),)

        def forward(self, x_t: torch.Tensor, state: tuple) -> tuple:
            return (torch.tanh(self.inp(x_t) + state[0] @ self.weight_hh.T),)

    registered.append(name)


def test_init_acts_through_a_parametrization_or_refuses(registered: list[str]) -> None:
    """An orthogonal parametrization recomputes W at every read: writing into the read did
    nothing (singular values stayed 1 for every init and gain). Now the init goes through
    right_inverse and is read back; what the constraint cannot represent is refused."""
    _orthogonal_cell("orth", registered)
    task = make_task("adding", seq_len=5)

    def weight(model: torch.nn.Module) -> torch.Tensor:
        return model.core.cells[0].weight_hh.detach()

    default = weight(make_model("orth", task, hidden_size=6, seed=0))
    orthogonal = weight(make_model("orth", task, hidden_size=6, seed=0, init="orthogonal"))
    assert not torch.allclose(default, orthogonal)  # the init acted
    assert torch.allclose(orthogonal @ orthogonal.T, torch.eye(6), atol=1e-5)
    with pytest.raises(ConfigError, match=r"parametrized and cannot take this init.*1\.5"):
        make_model("orth", task, hidden_size=6, seed=0, init="orthogonal", init_gain=1.5)


def test_init_gain_acts_on_a_plain_cell_weight() -> None:
    task = make_task("adding", seq_len=5)
    model = make_model("rnn", task, hidden_size=8, init="orthogonal", init_gain=0.7)
    singular = torch.linalg.svdvals(model.core.recurrent_weights()[0].detach())
    assert torch.allclose(singular, torch.full((8,), 0.7), atol=1e-5)


HOOKED = (
    HEADER
    + """
CALLS = {"begin": 0, "after": 0}


@rnnbench.register_cell("hooked")
class Hooked(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.raw = nn.Parameter(torch.randn(hidden_size, hidden_size))

    def begin_sequence(self):
        CALLS["begin"] += 1
        self.w = self.raw * 0.1  # computed once per sequence, not at every step

    def after_step(self):
        CALLS["after"] += 1
        with torch.no_grad():
            self.raw.clamp_(-1.0, 1.0)  # a constraint, as LTC's apply_weight_constraints

    def init_state(self, batch_size, device, dtype):
        return (torch.zeros(batch_size, self.raw.shape[0], device=device, dtype=dtype),)

    def forward(self, x_t, state):
        return (torch.tanh(self.inp(x_t) + state[0] @ self.w.T),)
"""
)


def test_the_hooks_run_once_per_sequence_and_after_every_optimizer_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registered: list[str]
) -> None:
    (tmp_path / "hooked_cell.py").write_text(HOOKED)
    monkeypatch.syspath_prepend(str(tmp_path))
    run = load_sweep(sweep_file(tmp_path, "hooked_cell", arch="hooked")).runs[0]
    registered.append("hooked")
    module = importlib.import_module("hooked_cell")
    module.CALLS.update(begin=0, after=0)
    record = train_run(run)
    assert record.status == "ok"
    assert module.CALLS["after"] == 3  # train.steps
    # one forward per training step, plus the final evaluation and the final profile
    assert module.CALLS["begin"] >= 3
    sys.modules.pop("hooked_cell", None)


EDITABLE = (
    HEADER
    + """
@rnnbench.register_cell("editable")
class Editable(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.weight_hh = nn.Parameter(torch.eye(hidden_size) * SCALE)

    def init_state(self, batch_size, device, dtype):
        return (torch.zeros(batch_size, self.weight_hh.shape[0], device=device, dtype=dtype),)

    def forward(self, x_t, state):
        return (torch.tanh(self.inp(x_t) + state[0] @ self.weight_hh.T),)
"""
)


def test_editing_a_cell_trains_it_again_and_summaries_refuse_to_pool_versions(
    tmp_path: Path,
) -> None:
    source = tmp_path / "editable_cell.py"
    source.write_text("SCALE = 0.5\n" + EDITABLE)
    sweep = sweep_file(tmp_path, "editable_cell", arch="editable")
    store = tmp_path / "runs.db"
    run = ("run", str(sweep), "--store", str(store), "--workers", "0", "--no-progress")
    assert rnnbench_cli(*run).returncode == 0
    again = rnnbench_cli(*run)
    assert "nothing run" in again.stdout or "already" in again.stdout, again.stdout
    source.write_text("SCALE = 0.9\n" + EDITABLE)
    edited = rnnbench_cli(*run)
    assert edited.returncode == 0 and "1 run" in edited.stdout, edited.stdout
    frame = load_results(store)
    assert len(frame) == 2  # the old version's result stays in the store
    versions = [config["code"]["editable_cell"] for config in frame["config"]]
    assert len(set(versions)) == 2
    assert all(env["user_code"]["distributions"].get("torch") for env in frame["env"])
    report = rnnbench_cli("report", "--store", str(store), "--out", str(tmp_path / "r"))
    assert report.returncode == 2
    assert "two versions of the user code: module 'editable_cell'" in report.stderr
    assert "--sweep FILE" in report.stderr
    chosen = rnnbench_cli(
        "report", "--store", str(store), "--out", str(tmp_path / "r"), "--sweep", str(sweep)
    )
    assert chosen.returncode == 0, chosen.stderr
