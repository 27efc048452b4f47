"""User cells: any ``nn.Module`` stepping ``(x_t, state) -> state``, unrolled over time.

A user cell is any ``nn.Module`` with

* ``__init__(input_size, hidden_size)``
* ``init_state(batch_size, device, dtype) -> tuple[Tensor, ...]`` whose first element is h
* ``forward(x_t [B, I], state) -> state`` (a tuple whose first element is the new h)

Register it with ``register_cell("mycell")(MyCell)`` (:mod:`rnnbench.models.architectures`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rnnbench.errors import ConfigError
from rnnbench.models.cores import RecurrentCore

CellFactory = Callable[[int, int], nn.Module]


class CellCore(RecurrentCore):
    """Unrolls one user cell per layer over time (``unbind``, never ``x[:, t]``: indexing a
    tensor that requires grad inside the loop makes backward quadratic in T)."""

    impl = "loop"

    def __init__(
        self, cell_factory: CellFactory, input_size: int, hidden_size: int, num_layers: int
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cells = nn.ModuleList(
            cell_factory(input_size if k == 0 else hidden_size, hidden_size)
            for k in range(num_layers)
        )

    def forward(self, x: Tensor, perturbation: Tensor | None = None) -> Tensor:
        """``perturbation`` ``[T, B, H]``, if given, is added to the top layer's h_t before it
        feeds step t+1 and the head, so its gradient is exactly dL/dh_t."""
        batch = x.shape[0]
        states = [cell.init_state(batch, x.device, x.dtype) for cell in self.cells]  # type: ignore[operator]
        top = self.num_layers - 1
        outputs = []
        for t, x_t in enumerate(x.unbind(1)):
            inp = x_t
            for k, cell in enumerate(self.cells):
                state = tuple(cell(inp, states[k]))
                if k == top and perturbation is not None:
                    state = (state[0] + perturbation[t], *state[1:])
                states[k] = state
                inp = state[0]
            outputs.append(inp)
        return torch.stack(outputs, dim=1)

    def recurrent_weights(self) -> list[Tensor]:
        weights = []
        for cell in self.cells:
            weight = getattr(cell, "weight_hh", None)
            if not isinstance(weight, Tensor):
                raise ConfigError(
                    "model.init: 'orthogonal' and 'identity' need the cell to name its "
                    "recurrent weight 'weight_hh'; use init = \"default\""
                )
            weights.append(weight)
        return weights
