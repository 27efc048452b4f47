"""Seeds: every run and data stream draws from its own named generator.

No global RNG is read or written, so a run's data and weights depend only on its config.
"""

from __future__ import annotations

import hashlib

import torch

from rnnbench.config.schema import RunConfig
from rnnbench.tasks import Batch, Task


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from named parts: runs and data streams never share a generator state."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))


def data_stream(kind: str, task: Task) -> torch.Generator:
    """The generator of one of a task's fixed data sets (``eval``, ``profile``, ``probe``): the
    same for every seed and architecture, drawn from a stream no training seed uses, and fixed
    by the task's canonical parameters (:meth:`Task.canonical_params`)."""
    return generator(kind, task.name, task.canonical_params())


def evaluation_set(config: RunConfig, task: Task) -> Batch:
    """The fixed held-out set that judges ``solved``."""
    return task.sample(config.diagnostics.eval_size, data_stream("eval", task))
