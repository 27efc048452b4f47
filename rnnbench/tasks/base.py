"""What a task is: :class:`Task`, its :class:`Batch`, the :data:`TASKS` registry.

Every task is a frozen dataclass of its parameters whose ``sample`` is a pure, vectorised function
of (parameters, ``torch.Generator``): no global RNG is read or written, so a run's data depend only
on its seed. Tasks differ only in how they sample, score and measure; the training loop is shared.

Add a task by subclassing :class:`Task` and registering it::

    @TASKS.register("my_task")
    @dataclass(frozen=True)
    class MyTask(Task): ...

See :class:`Task` for what a task writes, including the optional :meth:`Task.memory_items`
(what its network must hold, for the task memory probe).
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
class MemoryItem:
    """One piece of information a task needs its network to hold, for the task memory probe
    (:mod:`rnnbench.diagnostics.task_memory`), over a batch of ``B`` sequences.

    * ``name``: what it is, e.g. ``"symbol 3"``, ``"first marked value"``
    * ``presented``: long ``[B]``, the step at which it enters the input, per sequence
    * ``target``: what a readout of h_t should recover: long ``[B]`` class labels in
      ``[0, classes)`` when ``classes > 0``, else float values ``[B, D]``
    * ``needed``: long ``[B]``, the delay (steps after ``presented``) at which the task reads it
    * ``classes``: ``> 1``: decoded by a linear classifier's held-out accuracy (chance
      ``1/classes``); ``0``: by a linear regression's held-out r^2 (chance 0)

    A malformed item raises :class:`ConfigError` when it is made.
    """

    name: str
    presented: Tensor
    target: Tensor
    needed: Tensor
    classes: int = 0

    def __post_init__(self) -> None:
        where = f"memory item {self.name!r}"
        size = self.presented.shape[0] if self.presented.ndim == 1 else -1
        for field, value in (("presented", self.presented), ("needed", self.needed)):
            if value.dtype != torch.long or value.shape != (size,):
                raise ConfigError(
                    f"{where}: {field} must be long [B] (B = the batch), got "
                    f"{value.dtype} {list(value.shape)}"
                )
        if bool((self.needed < 0).any()):
            raise ConfigError(f"{where}: needed must be a delay >= 0")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int):
            raise ConfigError(f"{where}: classes must be an int, got {self.classes!r}")
        if self.classes < 0 or self.classes == 1:
            raise ConfigError(
                f"{where}: classes must be 0 (regression) or at least 2, got {self.classes}"
            )
        if self.classes:
            if self.target.dtype != torch.long or self.target.shape != (size,):
                raise ConfigError(
                    f"{where}: target must be class labels, long [B] = [{size}], got "
                    f"{self.target.dtype} {list(self.target.shape)}"
                )
            if bool(((self.target < 0) | (self.target >= self.classes)).any()):
                raise ConfigError(f"{where}: target labels must lie in [0, {self.classes})")
        elif (
            not self.target.is_floating_point()
            or self.target.ndim != 2
            or self.target.shape[0] != size
            or self.target.shape[1] < 1
        ):
            raise ConfigError(
                f"{where}: target must be float values [B, D] = [{size}, D], got "
                f"{self.target.dtype} {list(self.target.shape)}"
            )


@dataclass(frozen=True)
class Task:
    """Base class. Subclasses are frozen dataclasses whose fields are the task's parameters.

    A task writes :meth:`sample`, :meth:`probe_sample`, :attr:`baseline_loss`, :meth:`loss`,
    :meth:`metrics` and :meth:`solved`; :attr:`total_len`, :meth:`recurrence_window` and
    :meth:`dependency_loss` have defaults. For the task memory probe it also writes
    :meth:`memory_items`: for a sampled batch, one :class:`MemoryItem` per piece of information
    the network must hold, with the step it is presented at, what a readout should recover, and
    the delay at which the task reads it. The copy task's ten data symbols::

        def memory_items(self, batch):
            symbols = batch.x[:, :10].argmax(-1)  # 1..8
            n = len(batch)
            return [
                MemoryItem(f"symbol {j}", presented=torch.full((n,), j),
                           target=symbols[:, j] - 1, needed=torch.full((n,), self.seq_len + 10),
                           classes=8)
                for j in range(10)
            ]

    Without it (the default returns ``[]``) the task has no task probe. All of a task's items
    are decoded the same way (all classes > 1, or all regression), so they share one score.
    """

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

    def memory_items(self, batch: Batch) -> list[MemoryItem]:
        """What the task probe decodes from h_t in ``batch`` (:class:`MemoryItem`); ``[]``
        (the default): this task has no task probe."""
        return []

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
