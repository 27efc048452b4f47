"""Architectures: recurrent cores, user cells, their initialisation, and the model around them.

* ``cores``: the built-in ``nn.RNN/LSTM/GRU`` cores, run fused or as a loop (``model.impl``)
* ``cells``: the contract of a user cell, and the core that unrolls it
* ``sequence``: the contract of a sequence-level core (a parallel scan), and its wrapper
* ``architectures``: the :data:`ARCHITECTURES` registry and :func:`register_cell`
* ``init``: the :data:`INITS` registry of recurrent-weight initialisations
* ``model``: :class:`RecurrentModel` (core + head) and :func:`make_model`
* ``contract``: the user-cell contract, checked before a sweep runs (:func:`check_cells`)

Importing the package registers the built-in architectures.
"""

from rnnbench.models import layernorm as layernorm
from rnnbench.models import lru as lru
from rnnbench.models import mingru as mingru
from rnnbench.models.architectures import (
    ARCHITECTURES,
    Architecture,
    register_cell,
    register_core,
)
from rnnbench.models.cells import CellCore, CellFactory
from rnnbench.models.contract import CellUse, check_cells
from rnnbench.models.cores import (
    BUILTIN_ARCHS,
    IMPLS,
    RecurrentCore,
    TorchCore,
    check_impl,
    train_impl,
    unroll,
)
from rnnbench.models.init import INITS
from rnnbench.models.model import RecurrentModel, count_parameters, make_model
from rnnbench.models.sequence import SequenceCore

__all__ = [
    "ARCHITECTURES",
    "BUILTIN_ARCHS",
    "IMPLS",
    "INITS",
    "Architecture",
    "CellCore",
    "CellFactory",
    "CellUse",
    "RecurrentCore",
    "RecurrentModel",
    "SequenceCore",
    "TorchCore",
    "check_cells",
    "check_impl",
    "count_parameters",
    "make_model",
    "register_cell",
    "register_core",
    "train_impl",
    "unroll",
]
