"""A model: a recurrent core and a linear head at every step, built by :func:`make_model`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

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
    arch_params: dict[str, Any] | None = None,
) -> RecurrentModel:
    """Build the model for ``task`` with architecture ``arch``; same arguments -> same weights.

    ``impl`` (``fused`` or ``loop``; ``None``: the core's own, fused for the built-ins) picks how
    a built-in core runs; resolve ``auto`` with :func:`rnnbench.models.cores.train_impl`, which
    knows the device and the batch. The module constructors draw from torch's global generator,
    so they run inside ``torch.random.fork_rng`` seeded from ``seed``: the caller's RNG state is
    left untouched. ``arch_params`` go to a user cell's constructor (``[archs.NAME]``).
    """
    spec = ARCHITECTURES.get(arch, "grid.arch")
    check_int("model.hidden_size", hidden_size, minimum=1, maximum=65_536)
    check_int("model.num_layers", num_layers, minimum=1, maximum=64)
    check_float("model.init_gain", init_gain, minimum=0.0, maximum=1e6)
    initialise = INITS.get(init, "model.init")
    params = spec.check_params(arch, dict(arch_params or {}), f"archs.{arch}")
    if impl is not None:
        check_impl(impl, arch)
        if impl == "auto":
            raise ConfigError("model.impl: resolve 'auto' first (rnnbench.models.cores.train_impl)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RecurrentModel(
            spec.build(task.input_size, hidden_size, num_layers, params), task.output_size
        )
        if impl is not None and isinstance(model.core, TorchCore):
            model.core.impl = impl
        g = torch.Generator().manual_seed(seed)
        if init != "default" or init_gain != 1.0:
            for module, name in model.core.recurrent_slots():
                _initialise_slot(module, name, lambda w: initialise(w, hidden_size, init_gain, g))
            if init == "identity":
                _zero_recurrent_biases(model.core)
    return model


def _initialise_slot(module: nn.Module, name: str, initialise: Callable[[Tensor], None]) -> None:
    """Apply ``initialise`` to the weight ``module.name`` so that it acts, or refuse.

    A plain parameter is written in place. A parametrized one (``torch.nn.utils.parametrize``,
    geotorch) is recomputed from its underlying tensor at every read, so writing into what a
    read returns would change nothing: the initialised matrix goes through the
    parametrization's ``right_inverse`` instead, and is read back to check that it took.
    """
    current = getattr(module, name)
    if isinstance(current, nn.Parameter) and not parametrize.is_parametrized(module, name):
        initialise(current)
        return
    target = current.detach().clone()
    initialise(target)
    where = f"model.init: {type(module).__name__}.{name}"
    if not parametrize.is_parametrized(module, name):
        raise ConfigError(
            f"{where} is not a parameter (a {type(current).__name__} computed from others), so "
            'init and init_gain cannot act on it; use init = "default" with init_gain = 1'
        )
    try:
        with torch.no_grad():
            setattr(module, name, target)  # through right_inverse
    except NotImplementedError:
        raise ConfigError(
            f"{where} is parametrized without a right_inverse, so init and init_gain cannot "
            'act on it; use init = "default" with init_gain = 1'
        ) from None
    got = getattr(module, name).detach()
    if not torch.allclose(got, target, rtol=1e-4, atol=1e-5):
        raise ConfigError(
            f"{where} is parametrized and cannot take this init: after initialising it through "
            f"the parametrization its singular values are {_singular(got)}, wanted "
            f"{_singular(target)}; choose an init and init_gain it can represent"
        )


def _singular(weight: Tensor) -> str:
    values = torch.linalg.svdvals(weight.double())
    return f"{float(values.min()):.3g}..{float(values.max()):.3g}"


def _zero_recurrent_biases(core: RecurrentCore) -> None:
    # IRNN starts from h_t = relu(h_{t-1} + W x_t): biases at zero (Le et al. 2015, sec. 2).
    with torch.no_grad():
        for name, param in core.named_parameters():
            if name.split(".")[-1].startswith("bias"):
                param.zero_()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
