"""Grid axes over any field, and user cells with their own parameters (issue: compare anything)."""

from __future__ import annotations

import sys
import textwrap
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnnbench.config.hashing import run_key
from rnnbench.errors import ConfigError
from rnnbench.models import ARCHITECTURES
from rnnbench.sweep import load_sweep, parse_sweep
from tests.helpers import rnnbench_cli

#: A user cell with two constructor parameters (one without an annotation: its default's type
#: says what it takes).
GATED_CELL = '''
import torch
from torch import nn
import rnnbench


@rnnbench.register_cell("gated")
class Gated(nn.Module):
    """A tanh cell with a scalar gate: h' = g h + (1 - g) tanh(W x + U h)."""

    def __init__(self, input_size, hidden_size, gate_bias: float = 1.0, scale=2):
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) / hidden_size**0.5)
        self.gate = torch.sigmoid(torch.tensor(float(gate_bias)))
        self.scale = scale

    def init_state(self, batch_size, device, dtype):
        return (torch.zeros(batch_size, self.weight_hh.shape[0], device=device, dtype=dtype),)

    def forward(self, x_t, state):
        h = state[0]
        new = torch.tanh(self.inp(x_t) + h @ self.weight_hh.T)
        return (self.gate * h + (1 - self.gate) * new,)
'''

EXAMPLE = """
name = "example"
imports = ["gated_cells"]
[grid]
task = ["adding"]
arch = ["lstm", "gru", "gated"]
seq_len = [50, 100]
clip = ["none", "norm:1"]
seed = [0, 1, 2]
[grid.train]
lr = [1e-3, 3e-3]
[grid.model]
init = ["default", "orthogonal"]
hidden_size = [64, 128]
[grid.tasks.adding]
placement = ["halves", "anywhere"]
[grid.archs.gated]
gate_bias = [0.0, 1.0]
"""


@pytest.fixture
def cell_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder with the cell module; the cell is forgotten afterwards (the sweeps import it
    into this process, and other tests list the registered architectures)."""
    (tmp_path / "gated_cells.py").write_text(GATED_CELL)
    yield tmp_path
    ARCHITECTURES.remove("gated")
    sys.modules.pop("gated_cells", None)


def sweep_at(folder: Path, text: str, name: str = "s.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_issue_example_grid_expands_with_scoped_axes(cell_dir: Path) -> None:
    runs = load_sweep(sweep_at(cell_dir, EXAMPLE)).runs
    by_arch = Counter(run.arch for run in runs)
    # T x clip x seed = 12, times lr 2 x init 2 x hidden 2 x placement 2 = 192 per arch;
    # gate_bias multiplies only the gated cell's runs
    assert by_arch == {"lstm": 192, "gru": 192, "gated": 384}
    assert len({run.run_id for run in runs}) == len(runs)
    lstm = next(run for run in runs if run.arch == "lstm")
    assert set(lstm.axes) == {
        "tasks.adding.placement",
        "train.lr",
        "model.init",
        "model.hidden_size",
    }
    assert lstm.arch_params == {}
    gated = [run for run in runs if run.arch == "gated"]
    assert {run.arch_params["gate_bias"] for run in gated} == {0.0, 1.0}
    assert {run.axes["archs.gated.gate_bias"] for run in gated} == {0.0, 1.0}
    assert {run.task_params["placement"] for run in runs} == {"halves", "anywhere"}
    assert {(run.train.lr, run.model.init, run.model.hidden_size) for run in runs} == {
        (lr, init, h)
        for lr in (1e-3, 3e-3)
        for init in ("default", "orthogonal")
        for h in (64, 128)
    }


def test_cell_parameters_are_part_of_the_run_id(cell_dir: Path) -> None:
    base = """
    imports = ["gated_cells"]
    [grid]
    task = ["adding"]
    arch = ["gated"]
    seq_len = [10]
    clip = ["none"]
    seed = [0]
    """
    plain = load_sweep(sweep_at(cell_dir, base)).runs[0]
    set_one = load_sweep(sweep_at(cell_dir, base + "[archs.gated]\ngate_bias = 0.5\n")).runs[0]
    assert set_one.arch_params == {"gate_bias": 0.5}
    assert plain.run_id != set_one.run_id
    # the same value as the constructor's default is still a different run config
    as_axis = load_sweep(sweep_at(cell_dir, base + "[grid.archs.gated]\ngate_bias = [0.5]\n"))
    assert as_axis.runs[0].run_id == set_one.run_id  # axis or scalar: the same run


def test_runs_of_built_ins_keep_their_run_ids() -> None:
    """Stores written before grid axes and cell parameters existed still resume: a run of the
    five fixed axes hashes exactly the config it always had."""
    data = tomllib.loads(
        '[grid]\ntask = ["adding"]\narch = ["gru"]\nseq_len = [10]\nclip = ["none"]\nseed = [3]\n'
    )
    run = parse_sweep(data).runs[0]
    old = {k: v for k, v in run.to_dict().items() if k not in ("arch_params", "code", "axes")}
    assert run.run_id == run_key(old)
    swept = parse_sweep({**data, "grid": {**data["grid"], "train": {"lr": [1e-3]}}}).runs[0]
    assert swept.axes == {"train.lr": 1e-3}
    assert swept.run_id == run.run_id  # 1e-3 is the default: sweeping it is the same run


BAD = [
    ("[grid.train]\nlr = [1e-3, -1.0]", "grid.train.lr[1]: must be in [1e-12, 1000], got -1.0"),
    ("[train]\nlr = 1e-3\n[grid.train]\nlr = [1e-3, 3e-3]", "grid.train.lr: also set as train.lr"),
    (
        "[tasks.adding.train]\nlr = 1e-2\n[grid.train]\nlr = [1e-3]",
        "grid.train.lr: also set as tasks.adding.train.lr",
    ),
    ('[grid.model]\ninit = ["default", "bogus"]', "grid.model.init[1]: unknown init 'bogus'"),
    ("[grid.model]\nwidth = [1, 2]", "grid.model.width: unknown key; allowed: hidden_size"),
    ("[grid.model]\nhidden_size = []", "grid.model.hidden_size: must list at least one value"),
    ("[grid.model]\nhidden_size = [8, 8]", "grid.model.hidden_size: lists a value twice"),
    ("[grid.tasks.copy]\nn_symbols = [4]", "grid.tasks.copy: not in grid.task; allowed: adding"),
    (
        '[grid.tasks.adding]\nplacement = ["halves", "nowhere"]',
        "grid.tasks.adding.placement[1]: ",
    ),
    (
        '[tasks.adding]\nplacement = "halves"\n[grid.tasks.adding]\nplacement = ["anywhere"]',
        "grid.tasks.adding.placement: also set as tasks.adding.placement",
    ),
    ("[grid.archs.lstm]\nwidth = [1]", "grid.archs.lstm: not in grid.arch; allowed: gru, gated"),
    (
        "[grid.archs.gru]\nwidth = [1]",
        "grid.archs.gru: 'gru' is a built-in architecture and takes no parameters",
    ),
    (
        "[archs.gated]\nnope = 1",
        "archs.gated.nope: unknown parameter; accepted: gate_bias: float = 1.0, scale: int = 2",
    ),
    (
        '[grid.archs.gated]\ngate_bias = [0.0, "x"]',
        "grid.archs.gated.gate_bias[1]: expected a number, got 'x'",
    ),
    ("[archs.gated]\nscale = 1.5", "archs.gated.scale: expected an integer, got 1.5"),
    (
        "[archs.gated]\nscale = 2\n[grid.archs.gated]\nscale = [1, 3]",
        "grid.archs.gated.scale: also set as archs.gated.scale",
    ),
    ("[grid.widths]\nx = [1]", "grid.widths: unknown axis; allowed: task, arch, seq_len"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_a_bad_axis_names_the_element_and_what_is_allowed(
    cell_dir: Path, extra: str, message: str
) -> None:
    text = (
        'imports = ["gated_cells"]\n[grid]\ntask = ["adding"]\narch = ["gru", "gated"]\n'
        'seq_len = [10]\nclip = ["none"]\nseed = [0]\n' + extra + "\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_sweep(sweep_at(cell_dir, text))
    assert message in str(caught.value)


def test_a_bad_cell_parameter_exits_2_in_one_line_and_writes_nothing(cell_dir: Path) -> None:
    sweep = sweep_at(
        cell_dir,
        'imports = ["gated_cells"]\n[grid]\ntask = ["adding"]\narch = ["gated"]\n'
        'seq_len = [10]\nclip = ["none"]\nseed = [0]\n[archs.gated]\ngate = 1.0\n',
    )
    store = cell_dir / "out.db"
    result = rnnbench_cli("run", str(sweep), "--store", str(store), check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "archs.gated.gate: unknown parameter; accepted: gate_bias: float = 1.0" in result.stderr
    assert not store.exists()


def test_list_shows_user_cells_and_their_parameters(cell_dir: Path) -> None:
    sweep = sweep_at(
        cell_dir,
        'imports = ["gated_cells"]\n[grid]\ntask = ["adding"]\narch = ["gated"]\n'
        'seq_len = [10]\nclip = ["none"]\nseed = [0]\n',
    )
    listed = rnnbench_cli("list", "--sweep", str(sweep)).stdout
    assert "  gated: user cell Gated [gated_cells.Gated]" in listed
    assert "    gate_bias: float = 1.0" in listed and "    scale: int = 2" in listed
    assert "    placement: str = 'halves'" in listed  # the tasks' parameters too
    by_import = rnnbench_cli("list", "--import", "gated_cells", cwd=cell_dir).stdout
    assert "gate_bias: float = 1.0" in by_import
