"""Tasks: layouts as the literature defines them, baselines checked empirically, pure sampling."""

import math

import pytest
import torch

import rnnbench
from rnnbench import ConfigError, make_task
from rnnbench.tasks import TASKS, AddingTask, CopyTask


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("delay", [1, 5, 100])
def test_copy_layout_matches_urnn(delay: int) -> None:
    task = CopyTask(seq_len=delay)
    batch = task.sample(64, gen())
    tokens = batch.x.argmax(-1)
    assert batch.x.shape == (64, delay + 20, 10)
    assert torch.equal(batch.x.sum(-1), torch.ones(64, delay + 20))  # one-hot
    data = tokens[:, :10]
    assert ((data >= 1) & (data <= 8)).all()
    assert (tokens[:, 10 : delay + 9] == 0).all()  # T-1 blanks
    assert (tokens[:, delay + 9] == 9).all()  # the marker
    assert (tokens[:, delay + 10 :] == 0).all()  # 10 blanks
    assert (batch.y[:, : delay + 10] == 0).all()
    assert torch.equal(batch.y[:, -10:], data)
    assert task.recurrence_window() == (10, delay + 10)


@pytest.mark.parametrize("placement", ["halves", "anywhere"])
def test_adding_layout(placement: str) -> None:
    length = 50
    batch = AddingTask(seq_len=length, placement=placement).sample(2000, gen())
    values, markers = batch.x[..., 0], batch.x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert torch.equal(markers.sum(1), torch.full((2000,), 2.0))
    assert torch.allclose((values * markers).sum(1), batch.y)
    positions = markers.nonzero()[:, 1].view(-1, 2)
    if placement == "halves":
        assert (positions[:, 0] < length // 2).all() and (positions[:, 1] >= length // 2).all()
    else:  # both markers may fall in the same half
        same_half = (positions < length // 2).all(1) | (positions >= length // 2).all(1)
        assert same_half.float().mean() > 0.3


def test_sampling_is_pure_and_seeded() -> None:
    task = make_task("copy", seq_len=10)
    state = torch.random.get_rng_state()
    a, b, c = task.sample(8, gen(1)), task.sample(8, gen(1)), task.sample(8, gen(2))
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


def test_copy_baseline_is_the_memoryless_loss() -> None:
    # The best memoryless predictor: blank everywhere, uniform over the 8 symbols at recall.
    for delay in (100, 1000):
        task = CopyTask(seq_len=delay)
        batch = task.sample(10_000, gen())
        logits = torch.full((10_000, task.total_len, 9), -1e9)
        logits[:, :, 0] = 0.0
        logits[:, -10:, 0] = -1e9
        logits[:, -10:, 1:] = 0.0
        empirical = float(task.loss(logits, batch))
        assert empirical == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-5)
    assert CopyTask(seq_len=100).baseline_loss == pytest.approx(0.1733, abs=1e-4)
    assert CopyTask(seq_len=1000).baseline_loss == pytest.approx(0.0204, abs=1e-4)


@pytest.mark.parametrize("placement", ["halves", "anywhere"])
def test_adding_baseline_is_the_memoryless_loss(placement: str) -> None:
    task = AddingTask(seq_len=100, placement=placement)
    batch = task.sample(20_000, gen(3))
    constant = torch.ones(20_000, 100, 1)  # predict the mean of the sum, 1.0
    empirical = float(task.loss(constant, batch))
    assert empirical == pytest.approx(task.baseline_loss, rel=0.03)
    assert task.baseline_loss == pytest.approx(1 / 6)


def test_metrics_and_solved() -> None:
    task = CopyTask(seq_len=5)
    batch = task.sample(32, gen())
    perfect = torch.nn.functional.one_hot(batch.y, 9).float() * 50
    metrics = task.metrics(perfect, batch)
    assert metrics["accuracy"] == 1.0 and task.solved(metrics)
    assert metrics["normalized_loss"] == pytest.approx(metrics["loss"] / task.baseline_loss)
    adding = AddingTask(seq_len=10, solve_mse=0.01)
    data = adding.sample(32, gen())
    out = torch.zeros(32, 10, 1)
    out[:, -1, 0] = data.y + 0.02
    metrics = adding.metrics(out, data)
    assert metrics["accuracy"] == 1.0  # |error| < 0.04
    assert metrics["loss"] == pytest.approx(0.0004, rel=1e-3) and adding.solved(metrics)


def test_dependency_loss_is_the_recall_part_of_the_loss() -> None:
    task = CopyTask(seq_len=5)
    batch = task.sample(4, gen())
    logits = torch.randn(4, task.total_len, 9, generator=gen(1))
    blanks_only = logits.clone()
    blanks_only[:, -10:] = 0
    assert task.dependency_loss(logits, batch) < task.loss(logits, batch)
    logits_no_recall = logits.clone()
    logits_no_recall[:, :-10] += 3.0  # changing non-recall outputs leaves it unchanged
    assert torch.equal(
        task.dependency_loss(logits, batch), task.dependency_loss(logits_no_recall, batch)
    )


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(
        ConfigError, match=r"tasks.adding.placement: must be one of halves, anywhere"
    ):
        make_task("adding", seq_len=10, placement="middle")
    with pytest.raises(ConfigError, match=r"tasks.copy.delay: unknown parameter; allowed: seq_len"):
        make_task("copy", seq_len=10, delay=3)
    with pytest.raises(ConfigError, match=r"unknown task 'parity'; allowed: adding, copy"):
        make_task("parity", seq_len=10)
    with pytest.raises(ConfigError, match=r"seq_len"):
        make_task("copy", seq_len=0)


def test_user_task_registers_and_trains() -> None:
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass(frozen=True)
    class Last(AddingTask):
        """Recall the value at the first marker only."""

        name: ClassVar[str] = "test_last"

        def sample(self, batch_size: int, generator: torch.Generator) -> rnnbench.Batch:
            batch = super().sample(batch_size, generator)
            first = batch.x[..., 1].argmax(1)
            return rnnbench.Batch(batch.x, batch.x[torch.arange(batch_size), first, 0])

    TASKS.add("test_last", Last)
    try:
        task = make_task("test_last", seq_len=8)
        model = rnnbench.make_model("gru", task, hidden_size=8)
        batch = task.sample(4, gen())
        assert task.loss(model(batch.x), batch).ndim == 0
        TASKS.add("test_last", Last)  # the same definition again (a re-run cell): accepted

        class Other(Last):
            pass

        with pytest.raises(ValueError, match="already registered"):
            TASKS.add("test_last", Other)  # another definition under a taken name
    finally:
        TASKS.remove("test_last")
