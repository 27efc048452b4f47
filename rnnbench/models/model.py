"""A model: a recurrent core and a linear head at every step, built by :func:`make_model`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnbench.config.fields import check_float, check_int
from rnnbench.errors import ConfigError
from rnnbench.models.architectures import ARCHITECTURES
from rnnbench.models.cores import RecurrentCore, TorchCore, check_impl
from rnnbench.models.init import INITS
from rnnbench.tasks import Task


class RecurrentModel(nn.Module):
    """Core + linear head. ``forward(x)`` returns per-step outputs ``[B, T, output_size]``."""

    def __init__(self, core: RecurrentCore, output_size: int) -> None:
        super().__init__()
        self.core = core
        self.head = nn.Linear(core.hidden_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.core(x))


def make_model(
    arch: str,
    task: Task,
    *,
    hidden_size: int = 128,
    num_layers: int = 1,
    init: str = "default",
    init_gain: float = 1.0,
    seed: int = 0,
    impl: str | None = None,
) -> RecurrentModel:
    """Build the model for ``task`` with architecture ``arch``; same arguments -> same weights.

    ``impl`` (``fused`` or ``loop``; ``None``: the core's own, fused for the built-ins) picks how
    a built-in core runs; resolve ``auto`` with :func:`rnnbench.models.cores.train_impl`, which
    knows the device and the batch. The module constructors draw from torch's global generator,
    so they run inside ``torch.random.fork_rng`` seeded from ``seed``: the caller's RNG state is
    left untouched.
    """
    spec = ARCHITECTURES.get(arch, "grid.arch")
    check_int("model.hidden_size", hidden_size, minimum=1, maximum=65_536)
    check_int("model.num_layers", num_layers, minimum=1, maximum=64)
    check_float("model.init_gain", init_gain, minimum=0.0, maximum=1e6)
    initialise = INITS.get(init, "model.init")
    if impl is not None:
        check_impl(impl, arch)
        if impl == "auto":
            raise ConfigError("model.impl: resolve 'auto' first (rnnbench.models.cores.train_impl)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RecurrentModel(
            spec.build(task.input_size, hidden_size, num_layers), task.output_size
        )
        if impl is not None and isinstance(model.core, TorchCore):
            model.core.impl = impl
        g = torch.Generator().manual_seed(seed)
        if init != "default" or init_gain != 1.0:
            for weight in model.core.recurrent_weights():
                initialise(weight, hidden_size, init_gain, g)
            if init == "identity":
                _zero_recurrent_biases(model.core)
    return model


def _zero_recurrent_biases(core: RecurrentCore) -> None:
    # IRNN starts from h_t = relu(h_{t-1} + W x_t): biases at zero (Le et al. 2015, sec. 2).
    with torch.no_grad():
        for name, param in core.named_parameters():
            if name.split(".")[-1].startswith("bias"):
                param.zero_()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
