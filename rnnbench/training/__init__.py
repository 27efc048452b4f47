"""Training: the one loop, its optimizers and clipping, its seeds, and the record it builds.

* ``optim``: the :data:`OPTIMIZERS` and :data:`CLIPPERS` registries
* ``seeds``: named generators; the fixed held-out set
* ``record``: environment, identity, trajectory hash and curves of a run's record
* ``loop``: :func:`train_run` and :func:`execute_run`
"""

from rnnbench.training.loop import build_model, execute_run, train_run
from rnnbench.training.optim import CLIPPERS, OPTIMIZERS
from rnnbench.training.record import environment, error_record, trajectory_hash
from rnnbench.training.seeds import derive_seed, evaluation_set, generator

__all__ = [
    "CLIPPERS",
    "OPTIMIZERS",
    "build_model",
    "derive_seed",
    "environment",
    "error_record",
    "evaluation_set",
    "execute_run",
    "generator",
    "train_run",
    "trajectory_hash",
]
