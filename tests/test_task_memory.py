"""The task memory probe: what the task needs, decoded from h_t at every delay since it was
presented, on the task's own inputs. A shift register holding the last C inputs must show a task
span of exactly C - 1 and chance beyond it; a memoryless cell must show a span of 0."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import rnnbench
from rnnbench.diagnostics.task_memory import (
    MAX_DELAYS,
    TaskProbeResult,
    _ridge,
    task_memory_probe,
)
from rnnbench.errors import ConfigError
from rnnbench.models import ARCHITECTURES, register_cell
from rnnbench.models.model import RecurrentModel, make_model
from rnnbench.tasks import AddingTask, Batch, CopyTask, MemoryItem, Task

DEPTH = 6  # the delay line's C: it holds x_t .. x_{t-5}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class DelayLine(nn.Module):
    """h_t = [x_t, h_{t-1}[:-I]]: a linear shift register holding the last H / I inputs exactly."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        assert hidden_size % input_size == 0
        self.input_size = input_size
        self.hidden = hidden_size
        self.unused = nn.Parameter(torch.zeros(1))  # the probe reads the device from it

    def init_state(
        self, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, ...]:
        return (torch.zeros(batch_size, self.hidden, device=device, dtype=dtype),)

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return (torch.cat([x_t, state[0][:, : self.hidden - self.input_size]], dim=1),)


class Memoryless(nn.Module):
    """h_t = tanh(U x_t): what the present input says, nothing of the past."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden = hidden_size
        self.inp = nn.Linear(input_size, hidden_size)

    def init_state(
        self, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, ...]:
        return (torch.zeros(batch_size, self.hidden, device=device, dtype=dtype),)

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return (torch.tanh(self.inp(x_t)),)


@pytest.fixture(scope="module", autouse=True)
def cells() -> Iterator[None]:
    register_cell("test_delay_line")(DelayLine)
    register_cell("test_memoryless")(Memoryless)
    yield
    ARCHITECTURES.remove("test_delay_line")
    ARCHITECTURES.remove("test_memoryless")


TASKS = {"copy": CopyTask(seq_len=20), "adding": AddingTask(seq_len=40)}


def delay_line(task: Task, depth: int = DEPTH) -> RecurrentModel:
    return make_model("test_delay_line", task, hidden_size=depth * task.input_size)


def memoryless(task: Task) -> RecurrentModel:
    return make_model("test_memoryless", task, hidden_size=32)


def probe(model: RecurrentModel, task: Task, seed: int = 0, size: int = 512) -> TaskProbeResult:
    result = task_memory_probe(model, task, gen(seed), size=size, ridge=1e-6)
    assert result is not None
    return result


def normalised(result: TaskProbeResult) -> np.ndarray:
    return (np.array(result.score) - result.chance) / (1.0 - result.chance)


@pytest.mark.parametrize("name", list(TASKS))
def test_a_delay_line_holds_the_task_items_for_exactly_its_depth(name: str) -> None:
    task = TASKS[name]
    result = probe(delay_line(task), task)
    score = normalised(result)
    delays = np.array(result.delays)
    assert result.span == DEPTH - 1, (result.span, result.score[: DEPTH + 2])
    assert (score[delays < DEPTH] > 0.99).all(), result.score[:DEPTH]
    assert (score[delays >= DEPTH] < 0.15).all(), result.score[DEPTH:]  # chance beyond
    assert result.delays == list(range(len(result.delays)))  # every delay, from 0


@pytest.mark.parametrize("name", list(TASKS))
def test_a_memoryless_cell_decodes_at_delay_0_only(name: str) -> None:
    task = TASKS[name]
    result = probe(memoryless(task), task)
    score = normalised(result)
    assert result.span == 0, result.score[:4]
    assert score[0] > 0.9, result.score[0]
    assert (score[1:] < 0.15).all(), result.score[1:]
    assert probe(delay_line(task), task).span == DEPTH - 1  # the probe tells them apart


def test_the_result_names_its_metric_chance_and_the_delay_the_task_needs() -> None:
    copy = probe(memoryless(TASKS["copy"]), TASKS["copy"])
    assert (copy.metric, copy.chance, copy.needed) == ("accuracy", 1 / 8, 20 + 10)
    # symbol 0 is presented at step 0 of T + 20 steps: delays 0 .. T + 19
    assert copy.delays == list(range(20 + 20))
    task = TASKS["adding"]
    adding = probe(memoryless(task), task, seed=3)
    first = task.sample(512, gen(3)).x[..., 1].argmax(1)
    wanted = (task.seq_len - 1 - first).sort().values[(512 - 1) // 2]  # the lower median
    assert (adding.metric, adding.chance, adding.needed) == ("r2", 0.0, int(wanted))
    assert 0.6 * task.seq_len < adding.needed < 0.9 * task.seq_len  # about 3T/4
    assert adding.delays[0] == 0 and adding.delays[-1] <= task.seq_len - 1


def test_long_sequences_are_probed_at_evenly_spaced_delays() -> None:
    task = AddingTask(seq_len=600)
    result = probe(memoryless(task), task, size=64)
    assert len(result.delays) == MAX_DELAYS == len(result.score)
    assert result.delays[0] == 0 and result.delays == sorted(set(result.delays))
    assert result.delays[-1] > 500
    assert result.span == 0


def test_copy_items_are_the_data_symbols_recalled_after_the_marker() -> None:
    task = CopyTask(seq_len=5)
    batch = task.sample(16, gen())
    tokens = batch.x.argmax(-1)
    items = task.memory_items(batch)
    assert len(items) == 10
    rows = torch.arange(16)
    for j, item in enumerate(items):
        assert item.name == f"symbol {j}" and item.classes == 8
        assert item.presented.dtype == item.needed.dtype == torch.long
        assert torch.equal(item.presented, torch.full((16,), j))
        assert torch.equal(item.needed, torch.full((16,), 5 + 10))
        assert torch.equal(item.target, tokens[:, j] - 1)  # labels 0..7 for symbols 1..8
        recalled = batch.y[rows, item.presented + item.needed]  # recalled at step T + 10 + j
        assert torch.equal(recalled, item.target + 1)


@pytest.mark.parametrize("placement", ["halves", "anywhere"])
def test_the_adding_item_is_the_first_marked_value_read_at_the_last_step(placement: str) -> None:
    task = AddingTask(seq_len=12, placement=placement)
    batch = task.sample(32, gen())
    (item,) = task.memory_items(batch)
    values, markers = batch.x[..., 0], batch.x[..., 1]
    rows = torch.arange(32)
    assert item.name == "first marked value" and item.classes == 0
    assert item.presented.dtype == item.needed.dtype == torch.long
    assert (markers[rows, item.presented] == 1).all()
    before = torch.arange(12) < item.presented[:, None]
    assert (markers * before).sum() == 0  # no marker earlier: it is the first
    assert item.target.shape == (32, 1)
    assert torch.equal(item.target[:, 0], values[rows, item.presented])
    assert torch.equal(item.presented + item.needed, torch.full((32,), 11))  # the last step


@dataclass(frozen=True)
class NoItems(AddingTask):
    def memory_items(self, batch: Batch) -> list[MemoryItem]:
        return Task.memory_items(self, batch)


def test_a_task_without_items_has_no_task_probe() -> None:
    task = NoItems(seq_len=10)
    assert task.memory_items(task.sample(4, gen())) == []
    assert task_memory_probe(memoryless(task), task, gen(), size=64, ridge=1e-3) is None


def test_too_few_sequences_leave_no_delay_evaluable() -> None:
    task = TASKS["adding"]
    result = task_memory_probe(memoryless(task), task, gen(), size=12, ridge=1e-3)
    assert result is not None
    assert (result.delays, result.score, result.span) == ([], [], None)


def test_same_seed_same_result_and_no_global_state_touched() -> None:
    task = TASKS["copy"]
    model = memoryless(task)
    model.train()
    state = torch.random.get_rng_state()
    first = probe(model, task, seed=5, size=64)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert probe(model, task, seed=5, size=64) == first
    assert probe(model, task, seed=6, size=64) != first


@dataclass(frozen=True)
class BadItems(AddingTask):
    kind: str = "mixed"

    def memory_items(self, batch: Batch) -> list[MemoryItem]:
        (item,) = super().memory_items(batch)
        if self.kind == "late":
            return [MemoryItem("late", item.presented + self.seq_len, item.target, item.needed)]
        labels = (item.target[:, 0] > 0.5).long()
        return [item, MemoryItem("half", item.presented, labels, item.needed, classes=2)]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("mixed", "'first marked value' is decoded by r2 but 'half' by accuracy"),
        ("late", "memory item 'late': presented must be a step in [0, 12)"),
    ],
)
def test_a_task_with_inconsistent_items_is_refused(kind: str, message: str) -> None:
    task = BadItems(seq_len=12, kind=kind)
    with pytest.raises(ConfigError, match=re.escape(message)):
        task_memory_probe(memoryless(task), task, gen(), size=32, ridge=1e-3)


def test_a_malformed_item_is_refused_when_it_is_made() -> None:
    steps = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ConfigError, match=r"memory item 'x': target must be class labels"):
        MemoryItem("x", steps, torch.zeros(4), steps, classes=3)
    with pytest.raises(ConfigError, match=r"memory item 'x': target must be float values \[B, D\]"):
        MemoryItem("x", steps, torch.zeros(4), steps)
    with pytest.raises(ConfigError, match=r"memory item 'x': classes must be 0 .* or at least 2"):
        MemoryItem("x", steps, steps, steps, classes=1)
    with pytest.raises(ConfigError, match=r"memory item 'x': presented must be long \[B\]"):
        MemoryItem("x", steps.float(), torch.zeros(4, 1), steps)


def test_without_a_penalty_and_with_fewer_rows_than_units_the_readouts_still_hold() -> None:
    task = TASKS["copy"]  # the delay line's 60 units, 8 of them constant, 32 fit rows
    for ridge in (0.0, 1e-6):
        result = task_memory_probe(delay_line(task), task, gen(), size=64, ridge=ridge)
        assert result is not None and result.span == DEPTH - 1, (ridge, result)
        assert normalised(result)[:DEPTH].min() > 0.99


def test_the_dual_readout_is_the_ridge_readout() -> None:
    rng = np.random.default_rng(0)
    x_fit, y_fit, x_test = (
        rng.normal(size=(3, 20, 50)),
        rng.normal(size=(3, 20, 4)),
        rng.normal(size=(3, 7, 50)),
    )
    dual = _ridge(x_fit, y_fit, x_test, 0.1)  # 50 features > 20 rows: the dual form
    for g in range(3):
        xc, yc = x_fit[g] - x_fit[g].mean(0), y_fit[g] - y_fit[g].mean(0)
        weights = np.linalg.solve(xc.T @ xc + 0.1 * 20 * np.eye(50), xc.T @ yc)
        primal = (x_test[g] - x_fit[g].mean(0)) @ weights + y_fit[g].mean(0)
        assert np.allclose(dual[g], primal)


def test_a_sweep_with_a_malformed_memory_item_is_refused_before_it_runs() -> None:
    """A task whose items the probe would refuse makes the sweep exit 2 at load, naming the
    task, rather than every run recording the same error."""
    from dataclasses import dataclass as frozen_dataclass
    from typing import ClassVar

    from rnnbench.tasks import TASKS, AddingTask
    from rnnbench.tasks.base import MemoryItem

    @frozen_dataclass(frozen=True)
    class FloatPresented(AddingTask):
        name: ClassVar[str] = "float_presented"

        def memory_items(self, batch: rnnbench.Batch) -> list[MemoryItem]:
            n = len(batch)
            return [MemoryItem("v", torch.zeros(n), batch.x[:, 0, :1], torch.zeros(n).long())]

    TASKS.register("float_presented")(FloatPresented)
    try:
        grid = {"task": "float_presented", "arch": "rnn", "seq_len": 6, "clip": "none", "seed": 0}
        with pytest.raises(
            rnnbench.ConfigError, match="memory item 'v': presented must be"
        ) as info:
            rnnbench.parse_sweep({"name": "m", "grid": grid})
        assert "\n" not in str(info.value)
        off = rnnbench.parse_sweep(
            {"name": "m", "grid": grid, "diagnostics": {"task_probe": False}}
        )
        assert len(off.runs) == 1  # without the probe the items are never read
    finally:
        TASKS.remove("float_presented")
