"""The copy (copy-memory) task."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnbench.config.fields import check_float
from rnnbench.errors import ConfigError
from rnnbench.tasks.base import TASKS, Batch, MemoryItem, Task


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

    What the network must hold (:meth:`memory_items`): data symbol j, presented at step j and
    recalled at step T + 10 + j, so needed T + 10 steps after it was presented:

    >>> item = task.memory_items(batch)[3]
    >>> item.name, item.presented.tolist(), item.target.tolist(), item.needed.tolist()
    ('symbol 3', [3], [0], [13])
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

    def memory_items(self, batch: Batch) -> list[MemoryItem]:
        # each data symbol, as its label symbol - 1 among the 8, read at the j-th recall step
        symbols = batch.x[:, : self.recall_len].argmax(-1)
        n = len(batch)
        needed = torch.full((n,), self.seq_len + self.recall_len, dtype=torch.long)
        return [
            MemoryItem(
                name=f"symbol {j}",
                presented=torch.full((n,), j, dtype=torch.long),
                target=symbols[:, j] - 1,
                needed=needed,
                classes=self.n_symbols,
            )
            for j in range(self.recall_len)
        ]

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
