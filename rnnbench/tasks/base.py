"""What a task is: :class:`Task`, its :class:`Batch`, the :data:`TASKS` registry.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from rnnbench.config.fields import check_int
from rnnbench.errors import ConfigError
from rnnbench.registry import Registry

if TYPE_CHECKING:
    from rnnbench.config.schema import RunConfig


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
    #: Parameters added after stores existed, with the value every earlier run implicitly had.
    #: At that value a parameter is left out of :meth:`canonical_params`, so the data seeds
    #: (held-out set, profile batch, probe) of earlier runs stay what they were, as their run
    #: ids do (a field the user does not write is not in the run id).
    neutral: ClassVar[dict[str, Any]] = {}

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

    def canonical_params(self) -> dict[str, Any]:
        """The parameters that fix the task's data: all of them, with defaults, but those of
        :attr:`neutral` at their neutral value."""
        return {
            k: v
            for k, v in self.params().items()
            if k not in self.neutral or v != self.neutral[k]
        }


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


def task_for(config: RunConfig) -> Task:
    """The task of one run: its name, sequence length and parameters."""
    return make_task(config.task, seq_len=config.seq_len, **config.task_params)
