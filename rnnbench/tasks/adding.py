"""The adding problem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnbench.config.fields import check_float
from rnnbench.errors import ConfigError
from rnnbench.tasks.base import TASKS, Batch, MemoryItem, Task

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

    What the network must hold (:meth:`memory_items`): the first marked value, from its
    marker's step to the last step, where the sum is read:

    >>> (item,) = task.memory_items(batch)
    >>> item.name, item.presented.tolist(), round(float(item.target), 2), item.needed.tolist()
    ('first marked value', [1], 0.77, [4])
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

    def memory_items(self, batch: Batch) -> list[MemoryItem]:
        # The first marked value must be held until the sum is read at the last step; the
        # second is added where it appears and is not probed. argmax gives the first marker.
        first = batch.x[..., 1].argmax(1)
        value = batch.x[torch.arange(len(batch)), first, :1]
        needed = self.seq_len - 1 - first
        return [MemoryItem("first marked value", first, value, needed)]

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
