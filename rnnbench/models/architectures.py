"""The architecture registry: the built-in cores and the user cells registered beside them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rnnbench.config.params import ParamSpec, signature_params
from rnnbench.errors import ConfigError
from rnnbench.models.cells import CellCore, CellFactory
from rnnbench.models.cores import RecurrentCore, TorchCore
from rnnbench.models.sequence import CoreFactory, SequenceCore
from rnnbench.registry import Registry, origin


@dataclass(frozen=True)
class Architecture:
    """How to build a core for ``(input_size, hidden_size, num_layers, params)``."""

    build: Callable[[int, int, int, dict[str, Any]], RecurrentCore]
    description: str
    #: H x H blocks in the recurrent weight (1 RNN, 3 GRU, 4 LSTM): the g of the cost model
    #: (:mod:`rnnbench.execution.cost`). A user cell's is unknown; 1 keeps its estimate a lower
    #: bound.
    gates: int = 1
    #: where the core is defined (``module.qualname`` of a user cell), so that registering
    #: the same cell again is told apart from another cell under a taken name
    origin: str = ""
    #: the parameters ``[archs.NAME]`` may set (a user cell's constructor's); None: none
    params: ParamSpec | None = None
    #: the module that defines it, for the run's code version; None for the built-ins
    module: str | None = None

    @property
    def user(self) -> bool:
        return self.module is not None

    def check_params(self, name: str, values: dict[str, Any], where: str) -> dict[str, Any]:
        """``values`` for ``[archs.NAME]`` checked against what the architecture accepts."""
        if self.params is None:
            if values:
                raise ConfigError(
                    f"{where}: {name!r} is a built-in architecture and takes no parameters; "
                    "its settings are in [model]"
                )
            return {}
        return self.params.check(where, values)


ARCHITECTURES: Registry[Architecture] = Registry("arch")


def _torch_arch(mode: str, description: str, gates: int) -> Architecture:
    return Architecture(
        lambda i, h, n, _: TorchCore(mode, i, h, n), description, gates, f"torch.nn ({mode})"
    )


ARCHITECTURES.add("rnn", _torch_arch("rnn_tanh", "vanilla RNN, tanh (nn.RNN)", 1))
ARCHITECTURES.add("rnn_relu", _torch_arch("rnn_relu", "vanilla RNN, ReLU (nn.RNN)", 1))
ARCHITECTURES.add("lstm", _torch_arch("lstm", "LSTM (nn.LSTM)", 4))
ARCHITECTURES.add("gru", _torch_arch("gru", "GRU (nn.GRU)", 3))


def register_cell(
    name: str, description: str = "", *, builtin: bool = False
) -> Callable[[CellFactory], CellFactory]:
    """Register a user recurrent cell under ``name`` (the contract:
    :mod:`rnnbench.models.cells`). Its constructor's parameters after ``input_size`` and
    ``hidden_size`` are settable from the sweep's ``[archs.NAME]``.

    >>> import torch
    >>> from torch import nn
    >>> @register_cell("doc_cell")
    ... class Elman(nn.Module):
    ...     def __init__(self, input_size, hidden_size):
    ...         super().__init__()
    ...         self.inp = nn.Linear(input_size, hidden_size)
    ...         self.weight_hh = nn.Parameter(torch.eye(hidden_size))
    ...     def init_state(self, batch_size, device, dtype):
    ...         size = self.weight_hh.shape[0]
    ...         return (torch.zeros(batch_size, size, device=device, dtype=dtype),)
    ...     def forward(self, x_t, state):
    ...         return (torch.tanh(self.inp(x_t) + state[0] @ self.weight_hh.T),)
    >>> from rnnbench.models.model import make_model
    >>> from rnnbench.tasks import make_task
    >>> model = make_model("doc_cell", make_task("adding", seq_len=5), hidden_size=4)
    >>> model(torch.zeros(2, 5, 2)).shape
    torch.Size([2, 5, 1])
    >>> ARCHITECTURES.remove("doc_cell")
    """

    return _register(name, description, builtin, CellCore, "cell")


def register_core(
    name: str, description: str = "", *, builtin: bool = False
) -> Callable[[CoreFactory], CoreFactory]:
    """Register a sequence-level core under ``name`` (the contract:
    :mod:`rnnbench.models.sequence`). Its constructor's parameters after ``input_size`` and
    ``hidden_size`` are settable from the sweep's ``[archs.NAME]``. ``builtin``: one of
    rnnbench's own (no code version in the run key)."""

    return _register(name, description, builtin, SequenceCore, "core")


def _register(
    name: str,
    description: str,
    builtin: bool,
    core: Callable[..., RecurrentCore],
    kind: str,
) -> Callable[[Any], Any]:
    """The decorator of :func:`register_cell` / :func:`register_core`: ``core`` wraps the
    factory into a stack of ``num_layers``."""

    def decorate(factory: Any) -> Any:
        ARCHITECTURES.add(
            name,
            Architecture(
                lambda i, h, n, params: core(factory, i, h, n, params),
                description or f"user {kind} {getattr(factory, '__name__', name)}",
                origin=origin(factory) or "",
                params=signature_params(factory),
                module=None if builtin else getattr(factory, "__module__", None) or "__main__",
            ),
        )
        return factory

    return decorate
