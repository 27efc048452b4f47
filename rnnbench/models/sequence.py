"""Sequence-level cores: modules that map a whole input sequence to its hidden states at once.

Linear recurrences computed by a parallel scan (LRU, minGRU, S4D, Mamba-style layers) are
sequence modules, not step functions; unrolling them one step at a time would throw away what
makes them interesting. A sequence core is any ``nn.Module`` with

* ``__init__(input_size, hidden_size, **params)``; ``params`` come from ``[archs.NAME]``;
* ``forward(x [B, T, I], perturbation=None) -> h [B, T, H]``.

**The perturbation contract.** ``perturbation [B, T, H]``, when given, is added to h_t before
h_t feeds step t+1 (and the output), so its gradient is exactly the total dL/dh_t: the same
contract as a user cell's unrolled loop. For a linear recurrence h_t = a_t ⊙ h_{t-1} + b_t,
adding it to the drive (b_t + p_t) is exact and costs nothing extra: the scan carries the
perturbed h_t forward. A core that accepts ``perturbation`` gets the exact hidden-state
gradient profile; one that does not still gets the input profile ||dL/dx_t||
(:mod:`rnnbench.diagnostics.gradients`), and its hidden-profile fields are missing values.

**Optional: ``init_state`` + ``step`` give the dynamics diagnostics**
(:mod:`rnnbench.diagnostics.dynamics`: Jacobians through time, the Lyapunov spectrum, gate
saturation). A scan hides the state transition those need, so a layer may expose it:

* ``init_state(batch_size, device, dtype) -> tuple[Tensor, ...]``: the state before step 0;
* ``step(x_t [B, I], state) -> state``: one step of the recurrence ``forward`` computes, each
  batch row independent of the others.

Only the top layer's pair is read. The built-in ``mingru`` and ``lru`` define both; a core
without them still gets every other diagnostic.

The optional hooks of a cell (``begin_sequence``, ``after_step``) apply too; ``begin_sequence``
is simply the start of ``forward`` here, so only ``after_step`` is called by rnnbench.

Register one with ``register_core("name")(MyCore)`` (:mod:`rnnbench.models.architectures`);
:mod:`rnnbench.models.contract` checks it before a sweep runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from rnnbench.models.cells import hooks, stack_layers, weight_hh_slots
from rnnbench.models.cores import RecurrentCore

CoreFactory = Callable[..., nn.Module]


def accepts_perturbation(module: nn.Module) -> bool:
    """Whether ``module.forward`` takes a ``perturbation`` argument (the exact hidden profile)."""
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False
    return "perturbation" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class SequenceCore(RecurrentCore):
    """``num_layers`` sequence modules, each feeding its hidden states to the next; the
    perturbation (a gradient profile's) goes to the top layer."""

    def __init__(
        self,
        factory: CoreFactory,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.layers = stack_layers(factory, input_size, hidden_size, num_layers, params)
        self.exact_hidden = accepts_perturbation(self.layers[-1])
        self._after = hooks(self.layers, "after_step")

    @property
    def impl(self) -> str:  # type: ignore[override]
        """How the top layer ran (a core may name its path: ``scan`` / ``sequential``)."""
        named = getattr(self.layers[-1], "impl", None)
        return named if isinstance(named, str) else "sequence"

    def forward(self, x: Tensor, perturbation: Tensor | None = None) -> Tensor:
        top = self.num_layers - 1
        for k, layer in enumerate(self.layers):
            if k == top and perturbation is not None:
                x = layer(x, perturbation=perturbation)
            else:
                x = layer(x)
        return x

    def after_step(self) -> None:
        for hook in self._after:
            hook()

    @property
    def has_after_step(self) -> bool:
        return bool(self._after)

    def recurrent_slots(self) -> list[tuple[nn.Module, str]]:
        return weight_hh_slots(self.layers)
