"""Synthetic long-range tasks: the copy (copy-memory) task and the adding problem.

Every task is a frozen dataclass of its parameters whose ``sample`` is a pure, vectorised function
of (parameters, ``torch.Generator``): no global RNG is read or written, so a run's data depend only
on its seed. Tasks differ only in how they sample, score and measure; the training loop is shared.

Add a task by subclassing :class:`Task` and registering it::

    @TASKS.register("my_task")
    @dataclass(frozen=True)
    class MyTask(Task): ...
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnbench.errors import ConfigError
from rnnbench.registry import Registry


@dataclass(frozen=True)
class Batch:
    """One batch of a task. ``x``: inputs ``[batch, time, input_size]``; ``y``: targets."""

    x: Tensor
    y: Tensor

    def to(self, device: torch.device | str) -> Batch:
        if torch.device(device).type != "cuda" or self.x.device.type != "cpu":
            return Batch(self.x.to(device), self.y.to(device))
        # A blocking copy from pageable memory waits for every kernel queued before it, so the
        # host would sample batch k+1 only after step k finished on the GPU. Pinned memory and
        # an asynchronous copy let sampling overlap the previous step; the caching host
        # allocator keeps each pinned buffer alive until its copy has completed.
        return Batch(
            self.x.pin_memory().to(device, non_blocking=True),
            self.y.pin_memory().to(device, non_blocking=True),
        )

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Task:
    """Base class. Subclasses are frozen dataclasses whose fields are the task's parameters."""

    seq_len: int

    name: ClassVar[str] = ""
    min_seq_len: ClassVar[int] = 2
    input_size: ClassVar[int]
    output_size: ClassVar[int]

    def __post_init__(self) -> None:
        check_int(
            f"tasks.{self.name}.seq_len", self.seq_len, minimum=self.min_seq_len, maximum=100_000
        )

    # --- layout -------------------------------------------------------------------------------
    @property
    def total_len(self) -> int:
        """Number of time steps the network is unrolled for."""
        return self.seq_len

    def recurrence_window(self) -> tuple[int, int]:
        """``[start, stop)`` of the time steps where only the recurrence carries the gradient of
        the long-range dependency; the per-step gradient factor is fitted there."""
        return 0, self.total_len

    # --- data ---------------------------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def probe_sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Inputs ``[B, T, I]`` and recall targets ``[B, T, D]`` for the memory-capacity probe:
        a readout of h_t is asked to recover ``targets[:, t - k]`` (Jaeger 2001)."""
        raise NotImplementedError

    # --- scoring ------------------------------------------------------------------------------
    @property
    def baseline_loss(self) -> float:
        """Loss of the best memoryless predictor (the chance level)."""
        raise NotImplementedError

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        """Mean training loss of the model output ``[B, T, output_size]``."""
        raise NotImplementedError

    def dependency_loss(self, output: Tensor, batch: Batch) -> Tensor:
        """The terms of :meth:`loss` that depend on the long-range dependency: the gradient
        profile is taken of this, so what reaches early steps is the memory signal alone."""
        return self.loss(output, batch)

    def metrics(self, output: Tensor, batch: Batch) -> dict[str, float]:
        """``loss``, ``normalized_loss`` (loss / baseline) and ``accuracy``."""
        raise NotImplementedError

    def solved(self, metrics: dict[str, float]) -> bool:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TASKS: Registry[type[Task]] = Registry("task")


def make_task(name: str, **params: Any) -> Task:
    """Build a registered task, e.g. ``make_task("copy", seq_len=100)``.

    Unknown or invalid parameters raise :class:`ConfigError` naming the allowed ones.
    """
    cls = TASKS.get(name, "task")
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            f"tasks.{name}.{unknown[0]}: unknown parameter; allowed: {', '.join(allowed)}"
        )
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in params
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"tasks.{name}.{missing[0]}: required parameter is missing")
    return cls(**params)


def check_int(field: str, value: Any, *, minimum: int, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{field}: expected an integer in [{minimum}, {maximum}], got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{field}: must be in [{minimum}, {maximum}], got {value}")


def check_float(field: str, value: Any, *, minimum: float, maximum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{field}: expected a number in [{minimum}, {maximum}], got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{field}: must be in [{minimum}, {maximum}], got {value}")


@TASKS.register("copy")
@dataclass(frozen=True)
class CopyTask(Task):
    """Copy-memory task in the layout of Arjovsky, Shah & Bengio 2016 (uRNN).

    Symbols: blank 0, data 1..8, marker 9; inputs are one-hot over these 10 symbols. With delay
    ``seq_len = T`` the sequence is ``T + 20`` long::

        input : 10 data symbols | T-1 blanks | marker 9 | 10 blanks
        target: T+10 blanks                             | the 10 data symbols

    The loss is the mean cross-entropy over all ``T + 20`` steps and 9 output classes (blank +
    8 symbols). A memoryless model can only predict blanks and then guess uniformly over the 8
    symbols in the last 10 steps, so the baseline is ``10 ln 8 / (T + 20)``.

    Worked example (T = 3), kept true by the doctests:

    >>> task = CopyTask(seq_len=3)
    >>> batch = task.sample(1, torch.Generator().manual_seed(0))
    >>> batch.x.shape, batch.y.shape
    (torch.Size([1, 23, 10]), torch.Size([1, 23]))
    >>> batch.x.argmax(-1)[0].tolist()
    [5, 8, 6, 1, 4, 4, 4, 8, 2, 4, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    >>> batch.y[0].tolist()
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 8, 6, 1, 4, 4, 4, 8, 2, 4]
    >>> round(task.baseline_loss, 4)
    0.9041
    """

    n_symbols: int = 8
    recall_len: int = 10
    solve_accuracy: float = 0.99

    name: ClassVar[str] = "copy"
    min_seq_len: ClassVar[int] = 1  # the marker may follow the data directly
    input_size: ClassVar[int] = 10
    output_size: ClassVar[int] = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_symbols != 8 or self.recall_len != 10:
            # The uRNN layout fixes both; they are fields only so they appear in the stored config.
            raise ConfigError("copy: n_symbols must be 8 and recall_len 10 (uRNN layout)")
        check_float("tasks.copy.solve_accuracy", self.solve_accuracy, minimum=0.0, maximum=1.0)

    @property
    def total_len(self) -> int:
        return self.seq_len + 2 * self.recall_len

    @property
    def marker(self) -> int:
        return self.n_symbols + 1

    def recurrence_window(self) -> tuple[int, int]:
        # Between the last data symbol and the first recall step only the recurrence carries
        # the memory of the data symbols.
        return self.recall_len, self.seq_len + self.recall_len

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        symbols = torch.randint(
            1, self.n_symbols + 1, (batch_size, self.recall_len), generator=generator
        )
        tokens = torch.zeros(batch_size, self.total_len, dtype=torch.long)
        tokens[:, : self.recall_len] = symbols
        tokens[:, self.seq_len + self.recall_len - 1] = self.marker
        target = torch.zeros_like(tokens)
        target[:, -self.recall_len :] = symbols
        x = F.one_hot(tokens, self.input_size).float()
        return Batch(x, target)

    def probe_sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        # An i.i.d. drive over the data symbols at every step, as in Jaeger's memory capacity.
        tokens = torch.randint(
            1, self.n_symbols + 1, (batch_size, self.total_len), generator=generator
        )
        x = F.one_hot(tokens, self.input_size).float()
        return x, x[..., 1 : self.n_symbols + 1]

    @property
    def baseline_loss(self) -> float:
        return self.recall_len * math.log(self.n_symbols) / self.total_len

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(output.reshape(-1, self.output_size), batch.y.reshape(-1))

    def dependency_loss(self, output: Tensor, batch: Batch) -> Tensor:
        # The recall steps' share of the mean over all T+20 steps, so it is a part of L itself.
        recall = output[:, -self.recall_len :].reshape(-1, self.output_size)
        terms = F.cross_entropy(recall, batch.y[:, -self.recall_len :].reshape(-1), reduction="sum")
        return terms / (batch.y.numel())

    def metrics(self, output: Tensor, batch: Batch) -> dict[str, float]:
        loss = float(self.loss(output, batch))
        recall = output[:, -self.recall_len :].argmax(-1) == batch.y[:, -self.recall_len :]
        return {
            "loss": loss,
            "normalized_loss": loss / self.baseline_loss,
            "accuracy": float(recall.float().mean()),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        return metrics["accuracy"] >= self.solve_accuracy


ADDING_PLACEMENTS = ("halves", "anywhere")


@TASKS.register("adding")
@dataclass(frozen=True)
class AddingTask(Task):
    """Adding problem (Le, Jaitly & Hinton 2015; Arjovsky et al. 2016).

    Two input channels of length ``T``: channel 0 holds values drawn from U[0, 1], channel 1 holds
    exactly two markers. ``placement="halves"`` puts one marker uniformly in the first half and
    one in the second half (Le et al., uRNN); ``"anywhere"`` draws both uniformly without
    replacement (Bai et al. 2018, TCN). The target is the sum of the two marked values, read from
    the output at the last step; the loss is the MSE. Always predicting 1 (the mean of the sum)
    gives the memoryless baseline ``Var(U1 + U2) = 2/12 = 1/6``.

    Worked example (T = 6):

    >>> task = AddingTask(seq_len=6)
    >>> batch = task.sample(1, torch.Generator().manual_seed(0))
    >>> [round(v, 2) for v in batch.x[0, :, 0].tolist()]
    [0.5, 0.77, 0.09, 0.13, 0.31, 0.63]
    >>> batch.x[0, :, 1].tolist()
    [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    >>> round(float(batch.y[0]), 2)  # 0.77 + 0.31
    1.08
    >>> round(task.baseline_loss, 4)
    0.1667
    """

    placement: str = "halves"
    solve_mse: float = 0.01
    tolerance: float = 0.04

    name: ClassVar[str] = "adding"
    input_size: ClassVar[int] = 2
    output_size: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.placement not in ADDING_PLACEMENTS:
            raise ConfigError(
                f"tasks.adding.placement: must be one of {', '.join(ADDING_PLACEMENTS)}, "
                f"got {self.placement!r}"
            )
        check_float("tasks.adding.solve_mse", self.solve_mse, minimum=0.0, maximum=10.0)
        check_float("tasks.adding.tolerance", self.tolerance, minimum=0.0, maximum=10.0)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        length = self.seq_len
        values = torch.rand(batch_size, length, generator=generator)
        if self.placement == "halves":
            half = length // 2
            first = torch.randint(0, half, (batch_size,), generator=generator)
            second = torch.randint(half, length, (batch_size,), generator=generator)
        else:
            # Two distinct positions uniformly: the first of a random permutation's keys.
            keys = torch.rand(batch_size, length, generator=generator)
            first, second = keys.topk(2, dim=1).indices.unbind(1)
        markers = torch.zeros(batch_size, length)
        rows = torch.arange(batch_size)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        target = values[rows, first] + values[rows, second]
        return Batch(torch.stack([values, markers], dim=-1), target)

    def probe_sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = self.sample(batch_size, generator).x
        return x, x[..., :1]

    @property
    def baseline_loss(self) -> float:
        return 2.0 / 12.0

    def prediction(self, output: Tensor) -> Tensor:
        return output[:, -1, 0]

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        return F.mse_loss(self.prediction(output), batch.y)

    def metrics(self, output: Tensor, batch: Batch) -> dict[str, float]:
        error = self.prediction(output) - batch.y
        loss = float(error.square().mean())
        return {
            "loss": loss,
            "normalized_loss": loss / self.baseline_loss,
            "accuracy": float((error.abs() < self.tolerance).float().mean()),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        return metrics["loss"] <= self.solve_mse
