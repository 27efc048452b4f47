"""User sequence cores: the README's example gets both profiles exactly, a core that takes no
perturbation gets the input profile, and the core contract is checked before a sweep runs."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import rnnbench
from rnnbench.errors import ConfigError
from rnnbench.models import ARCHITECTURES
from rnnbench.results.store import load_results
from tests.helpers import REPO, rnnbench_cli
from tests.test_cells import sweep_file


def readme_core() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("```python\n# mycores.py")
    return text[start + len("```python\n") : text.index("```", start + 10)]


@pytest.fixture
def diag() -> Iterator[str]:
    exec(compile(readme_core(), "README.md", "exec"), {})
    yield "diag"
    ARCHITECTURES.remove("diag")


def reference(model: torch.nn.Module, task: rnnbench.Task, batch: rnnbench.Batch) -> tuple:
    """||dL/dh_t|| and ||dL/dx_t|| from an independent loop: every x_t its own leaf, every h_t
    kept with retain_grad (the total gradient reaching it)."""
    core = model.core.layers[0]
    xs = [x_t.clone().requires_grad_(True) for x_t in batch.x.unbind(1)]
    a = torch.sigmoid(core.logit_a)
    h, hs = torch.zeros(batch.x.shape[0], core.inp.out_features), []
    for x_t in xs:
        h = a * h + core.inp(x_t)
        h.retain_grad()
        hs.append(h)
    task.dependency_loss(model.head(torch.stack(hs, 1)), batch).backward()
    hidden = torch.stack([h.grad.double().norm() for h in hs])
    inputs = torch.stack([x.grad.double().norm() for x in xs])
    return hidden, inputs


@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_the_readme_core_gets_both_profiles_exactly(diag: str, task_name: str) -> None:
    task = rnnbench.make_task(task_name, seq_len=30)
    model = rnnbench.make_model(diag, task, hidden_size=8, seed=1, arch_params={"decay": 0.95})
    batch = task.sample(6, torch.Generator().manual_seed(2))
    want_hidden, want_input = reference(model, task, batch)
    hidden = rnnbench.gradient_norms_through_time(model, task, batch)
    inputs = rnnbench.gradient_norms_through_time(model, task, batch, wrt="input")
    torch.testing.assert_close(hidden, want_hidden, rtol=1e-4, atol=0)
    torch.testing.assert_close(inputs, want_input, rtol=1e-4, atol=0)


CLOSED = """
import torch
from torch import nn
import rnnbench

@rnnbench.register_core("closed")
class Closed(nn.Module):
    '''A GRU layer behind a sequence interface that takes no perturbation.'''
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True)
    def forward(self, x):
        return self.gru(x)[0]
"""


def test_a_core_without_perturbation_gets_the_input_profile_and_the_report_says_so(
    tmp_path: Path,
) -> None:
    (tmp_path / "closed_core.py").write_text(CLOSED)
    sweep = sweep_file(tmp_path, "closed_core", arch="closed")
    text = sweep.read_text().replace('arch = ["closed"]', 'arch = ["closed", "gru"]')
    sweep.write_text(text.replace("checkpoints = 0", "checkpoints = 1"))
    store = tmp_path / "runs.db"
    ran = rnnbench_cli(
        "run",
        str(sweep),
        "--store",
        str(store),
        "--workers",
        "0",
        "--no-progress",
        "--report",
        str(tmp_path / "report"),
    )
    assert ran.returncode == 0, ran.stderr
    frame = load_results(store).set_index("arch")
    closed, gru = frame.loc["closed"], frame.loc["gru"]
    assert closed["grad_factor"] != closed["grad_factor"] and closed["grad_span"] is pd_na()
    assert closed["input_factor"] > 0 and gru["input_factor"] > 0 and gru["grad_factor"] > 0
    assert all(p["norms"] is None and len(p["input_norms"]) == 6 for p in closed["profiles"])
    md = (tmp_path / "report" / "report.md").read_text()
    assert "closed hides the hidden state" in md and "input profile ‖∂L/∂x_t‖" in md


def pd_na() -> object:
    import pandas as pd

    return pd.NA


def test_hidden_profile_of_a_closed_core_is_refused_in_one_line() -> None:
    exec(compile(CLOSED, "closed", "exec"), {})
    try:
        task = rnnbench.make_task("adding", seq_len=5)
        model = rnnbench.make_model("closed", task, hidden_size=4)
        batch = task.sample(2, torch.Generator().manual_seed(0))
        with pytest.raises(ConfigError, match=r"takes no perturbation.*use wrt='input'"):
            rnnbench.gradient_norms_through_time(model, task, batch)
    finally:
        ARCHITECTURES.remove("closed")


BROKEN = {
    "shape": (
        "return self.inp(x)[:, :-1]",
        "forward(x [B, T, I]) must return h [B, T, H] = [2, 4, 4]; got [2, 3, 4]",
    ),
    "perturbation dropped": (
        "h = self.scan(self.inp(x))\n"
        "            return h if perturbation is None else h + perturbation",
        "the perturbation of h_0 does not reach the later steps, though the input at step 0 does",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_core_contract_violation_exits_2_before_the_store(tmp_path: Path, case: str) -> None:
    body, message = BROKEN[case]
    source = textwrap.dedent(f"""
    import torch
    from torch import nn
    import rnnbench

    @rnnbench.register_core("c")
    class Core(nn.Module):
        def __init__(self, input_size, hidden_size):
            super().__init__()
            self.inp = nn.Linear(input_size, hidden_size)
        def scan(self, b):
            h, out = torch.zeros_like(b[:, 0]), []
            for b_t in b.unbind(1):
                h = 0.5 * h + b_t
                out.append(h)
            return torch.stack(out, 1)
        def forward(self, x, perturbation=None):
            {body}
    """)
    (tmp_path / "bad_core.py").write_text(source)
    store = tmp_path / "out.db"
    result = rnnbench_cli("run", str(sweep_file(tmp_path, "bad_core")), "--store", str(store))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"arch 'c': {message}" in result.stderr
    assert not store.exists()


@pytest.mark.parametrize(
    ("arch", "extra", "message"),
    [
        (
            "mingru",
            '[model]\ninit = "xavier_uniform"\n',
            "arch 'mingru': model.init: MinGRU has no recurrent weight named 'weight_hh'",
        ),
        (
            "lru",
            "[model]\nhidden_size = 7\n",
            "arch 'lru': model.hidden_size: the LRU needs an even",
        ),
        (
            "lru",
            "[archs.lru]\nr_min = 0.99\nr_max = 0.5\n",
            "arch 'lru' (r_min=0.99, r_max=0.5): archs.lru: need 0 <= r_min <= r_max <= 1",
        ),
    ],
)
def test_a_setting_a_built_in_core_cannot_take_exits_2_before_the_store(
    tmp_path: Path, arch: str, extra: str, message: str
) -> None:
    """Built-in cells and cores are built once before the sweep, like user ones: a setting they
    refuse is exit 2 and no store, not an error recorded (and retried) in every run."""
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        f'[grid]\ntask = ["adding"]\narch = ["gru", "{arch}"]\nseq_len = [6]\nclip = ["none"]\n'
        f"seed = [0]\n{extra}"
    )
    store = tmp_path / "out.db"
    result = rnnbench_cli("run", str(sweep), "--store", str(store))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not store.exists()
