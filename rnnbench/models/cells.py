"""User cells: any ``nn.Module`` stepping ``(x_t, state) -> state``, unrolled over time.

A user cell is any ``nn.Module`` with

* ``__init__(input_size, hidden_size, **params)``; ``params`` come from the sweep's
  ``[archs.NAME]`` (checked against the signature: :mod:`rnnbench.config.params`)
* ``init_state(batch_size, device, dtype) -> tuple[Tensor, ...]`` whose first element is h
* ``forward(x_t [B, I], state) -> state`` (a tuple whose first element is the new h, the
  state the next step reads)

and two optional hooks:

* ``begin_sequence()``, called once per forward before the unroll: for weights computed once
  per sequence (a parametrized W that would otherwise be recomputed at every step's read);
* ``after_step()``, called after every optimizer step: for projections and constraints (LTC's
  ``apply_weight_constraints``).

Register it with ``register_cell("mycell")(MyCell)`` (:mod:`rnnbench.models.architectures`);
:mod:`rnnbench.models.contract` checks the contract before a sweep runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from rnnbench.errors import ConfigError
from rnnbench.models.cores import RecurrentCore

CellFactory = Callable[..., nn.Module]


class CellCore(RecurrentCore):
    """Unrolls one user cell per layer over time (``unbind``, never ``x[:, t]``: indexing a
    tensor that requires grad inside the loop makes backward quadratic in T)."""

    impl = "loop"

    def __init__(
        self,
        cell_factory: CellFactory,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cells = stack_layers(cell_factory, input_size, hidden_size, num_layers, params)
        # the optional hooks, found once, so a step pays nothing without them
        self._begin = hooks(self.cells, "begin_sequence")
        self._after = hooks(self.cells, "after_step")

    def begin_sequence(self) -> None:
        for hook in self._begin:
            hook()

    def after_step(self) -> None:
        for hook in self._after:
            hook()

    @property
    def has_after_step(self) -> bool:
        return bool(self._after)

    def forward(self, x: Tensor, perturbation: Tensor | None = None) -> Tensor:
        """``perturbation`` ``[T, B, H]``, if given, is added to the top layer's h_t before it
        feeds step t+1 and the head, so its gradient is exactly dL/dh_t."""
        self.begin_sequence()
        batch = x.shape[0]
        states = [cell.init_state(batch, x.device, x.dtype) for cell in self.cells]  # type: ignore[operator]
        top = self.num_layers - 1
        # unbind, never perturbation[t]: each index of a tensor that requires grad adds a
        # full-size gradient to the backward, which made the profile quadratic in T
        nudges = perturbation.unbind(0) if perturbation is not None else None
        outputs = []
        for t, x_t in enumerate(x.unbind(1)):
            inp = x_t
            for k, cell in enumerate(self.cells):
                state = tuple(cell(inp, states[k]))
                if k == top and nudges is not None:
                    state = (state[0] + nudges[t], *state[1:])
                states[k] = state
                inp = state[0]
            outputs.append(inp)
        return torch.stack(outputs, dim=1)

    def recurrent_slots(self) -> list[tuple[nn.Module, str]]:
        return weight_hh_slots(self.cells)


def stack_layers(
    factory: Callable[..., nn.Module],
    input_size: int,
    hidden_size: int,
    num_layers: int,
    params: dict[str, Any] | None,
) -> nn.ModuleList:
    """``num_layers`` modules from a user factory (a cell's or a sequence core's), the first
    reading the input, the others the hidden states below; ``params`` go to each."""
    return nn.ModuleList(
        factory(input_size if k == 0 else hidden_size, hidden_size, **(params or {}))
        for k in range(num_layers)
    )


def weight_hh_slots(modules: nn.ModuleList) -> list[tuple[nn.Module, str]]:
    """Each module's ``weight_hh`` as an init slot, or the one-line refusal."""
    slots = []
    for module in modules:
        if not isinstance(getattr(module, "weight_hh", None), Tensor):
            raise ConfigError(
                f"model.init: {type(module).__name__} has no recurrent weight named "
                "'weight_hh', so init and init_gain cannot act on it; name it so, or use "
                'init = "default" with init_gain = 1'
            )
        slots.append((module, "weight_hh"))
    return slots


def hooks(cells: nn.ModuleList, name: str) -> list[Callable[[], Any]]:
    """The modules' optional hook ``name``, bound, for those that define it."""
    # looked up on the class: nn.Module.__getattr__ would also find submodules and parameters
    return [
        functools.partial(getattr(type(cell), name), cell)
        for cell in cells
        if callable(getattr(type(cell), name, None))
    ]
