"""Built-in recurrent cores: ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``, run fused or as a loop.

A core maps inputs ``[B, T, I]`` to the top layer's hidden states ``[B, T, H]``. The built-in
cores are plain ``torch.nn`` modules (batch_first), so trained weights load into plain PyTorch;
:func:`unroll` runs one of their layers as a loop over the functional cell on the same
parameters, and :func:`train_impl` picks between the two by a fixed rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from rnnbench.errors import ConfigError
from rnnbench.registry import Registry

#: the built-in architectures, whose cores have both implementations (``model.impl``)
BUILTIN_ARCHS = ("rnn", "rnn_relu", "lstm", "gru")


class RecurrentCore(nn.Module):
    """Maps inputs ``[B, T, I]`` to the top layer's hidden states ``[B, T, H]``."""

    hidden_size: int
    num_layers: int
    impl: str  # how it runs: "fused" or "loop" (``model.impl``; recorded as metrics.impl)

    def recurrent_slots(self) -> list[tuple[nn.Module, str]]:
        """Where each layer's hidden-to-hidden weight matrix lives (gate blocks stacked on dim
        0), as (module, attribute): what ``model.init`` writes, through ``setattr`` where the
        attribute is parametrized."""
        raise NotImplementedError

    def recurrent_weights(self) -> list[Tensor]:
        """The hidden-to-hidden weight matrix of each layer, as the core reads it."""
        return [getattr(module, name) for module, name in self.recurrent_slots()]

    def after_step(self) -> None:
        """Called after every optimizer step (a user cell's constraints); nothing here."""

    @property
    def has_after_step(self) -> bool:
        return False


# torch.<mode>_cell(input, hx, w_ih, w_hh, b_ih, b_hh): one step of the same cell as the fused
# kernel (same gate order and equations), on plain tensors.
CELL_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "rnn_tanh": torch.rnn_tanh_cell,
    "rnn_relu": torch.rnn_relu_cell,
    "lstm": torch.lstm_cell,
    "gru": torch.gru_cell,
}


def unroll(
    mode: str, inputs: Tensor, params: list[Tensor], perturbation: Tensor | None = None
) -> Tensor:
    """One layer of a built-in core as a loop over its functional cell: inputs ``[B, T, I]`` and
    ``[w_ih, w_hh, b_ih, b_hh]`` -> hidden states ``[B, T, H]``, from a zero state.
    ``perturbation`` ``[T, B, H]``, if given, is added to each h_t before it feeds step t+1, so
    its gradient is exactly dL/dh_t (the gradient profile's loop path)."""
    cell = CELL_FUNCTIONS[mode]
    h = inputs.new_zeros(inputs.shape[0], params[1].shape[1])
    c = h
    # unbind, never inputs[:, t] or perturbation[t]: see CellCore
    nudges = perturbation.unbind(0) if perturbation is not None else None
    outputs = []
    for t, u in enumerate(inputs.unbind(1)):
        if mode == "lstm":
            h, c = cell(u, (h, c), *params)
        else:
            h = cell(u, h, *params)
        if nudges is not None:
            h = h + nudges[t]
        outputs.append(h)
    return torch.stack(outputs, dim=1)


#: How a built-in core runs its training forward/backward (``model.impl``). Both compute the
#: same function from the same parameters; they round differently (relative gradient
#: differences of 1e-5 to 1e-3 at T = 60-1000, ``bench/train_paths.py``), so the choice is part
#: of the run's configuration, and ``auto`` resolves by a fixed rule (:func:`train_impl`).
IMPLS: Registry[str] = Registry("impl")
IMPLS.add("auto", "the faster of the two for the device, architecture and shape")
IMPLS.add("fused", "the fused kernel: nn.RNN / nn.LSTM / nn.GRU (cuDNN, MKL)")
IMPLS.add("loop", "a loop over torch.*_cell, one time step at a time")


def check_impl(requested: str, arch: str) -> None:
    """:class:`ConfigError` unless ``requested`` is an allowed ``model.impl`` for ``arch``."""
    IMPLS.get(requested, "model.impl")
    if requested == "fused" and arch not in BUILTIN_ARCHS:
        raise ConfigError(
            f"model.impl: 'fused' needs a built-in architecture ({', '.join(BUILTIN_ARCHS)}); "
            f"{arch!r} is a user cell, always unrolled as a loop (use 'auto' or 'loop')"
        )


def train_impl(
    requested: str, device_type: str, arch: str, batch_size: int, hidden: int, time_steps: int
) -> str:
    """``requested`` with ``auto`` resolved: ``loop`` on the CPU for the vanilla RNNs and the GRU
    from batch x hidden x time steps = 7.5 million up, else ``fused``; a user cell is always a
    ``loop``. A fixed rule, never a timing taken at run time, so reruns stay bit-identical. It
    was written from one training step of each path (``bench/train_paths.py``; the table and the
    reasoning are in docs/performance.md, section 3): the loop wins on the CPU only with a lot
    of work per sequence, the LSTM loop never, and on a GPU the loop pays a kernel launch per
    op per step."""
    check_impl(requested, arch)
    if arch not in BUILTIN_ARCHS:
        return "loop"
    if requested != "auto":
        return requested
    if device_type == "cpu" and arch != "lstm" and batch_size * hidden * time_steps >= 7_500_000:
        return "loop"
    return "fused"


class TorchCore(RecurrentCore):
    """An ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` core (``mode`` names which), run by the fused
    kernel or, with ``impl="loop"``, by a loop over the functional cell on the same parameters
    (the state dict is the ``nn`` module's either way)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.mode = mode
        self.impl = "fused"  # make_model switches it to "loop" where the config says so
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        kwargs = {"batch_first": True, "num_layers": num_layers}
        module: nn.RNNBase
        if mode in ("rnn_tanh", "rnn_relu"):
            module = nn.RNN(input_size, hidden_size, nonlinearity=mode[4:], **kwargs)
        elif mode == "lstm":
            module = nn.LSTM(input_size, hidden_size, **kwargs)
        elif mode == "gru":
            module = nn.GRU(input_size, hidden_size, **kwargs)
        else:  # pragma: no cover - only reachable through a programming error
            raise ValueError(mode)
        self.rnn = module

    def forward(self, x: Tensor) -> Tensor:
        if self.impl == "fused":
            return self.rnn(x)[0]
        inputs = x
        for layer in range(self.num_layers):
            inputs = unroll(self.mode, inputs, self.layer_params(layer))
        return inputs

    def recurrent_slots(self) -> list[tuple[nn.Module, str]]:
        return [(self.rnn, f"weight_hh_l{k}") for k in range(self.num_layers)]

    def layer_params(self, layer: int) -> list[Tensor]:
        """``[w_ih, w_hh, b_ih, b_hh]`` of one layer, in the order ``torch.lstm`` & co. take."""
        return [
            getattr(self.rnn, f"{name}_l{layer}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]
