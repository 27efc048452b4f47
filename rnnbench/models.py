"""Architectures: built-in recurrent cores and a registry for user-supplied cells.

A model is a recurrent *core* (input ``[B, T, I]`` -> top-layer hidden states ``[B, T, H]``)
followed by a linear *head* applied at every step. The built-in cores are plain
``torch.nn.RNN/LSTM/GRU`` modules (batch_first), so trained weights load into plain PyTorch.

A user cell is any ``nn.Module`` with

* ``__init__(input_size, hidden_size)``
* ``init_state(batch_size, device, dtype) -> tuple[Tensor, ...]`` whose first element is h
* ``forward(x_t [B, I], state) -> state`` (a tuple whose first element is the new h)

Register it with ``register_cell("mycell")(MyCell)``; rnnbench unrolls it over time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnbench.errors import ConfigError
from rnnbench.registry import Registry
from rnnbench.tasks import Task, check_float, check_int

State = tuple[Tensor, ...]


class RecurrentCore(nn.Module):
    """Maps inputs ``[B, T, I]`` to the top layer's hidden states ``[B, T, H]``."""

    hidden_size: int
    num_layers: int
    impl: str  # how it runs: "fused" or "loop" (``model.impl``; recorded as metrics.impl)

    def recurrent_weights(self) -> list[Tensor]:
        """The hidden-to-hidden weight matrix of each layer (gate blocks stacked on dim 0)."""
        raise NotImplementedError


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
    ``loop``.

    Measured on the 2-core CPU (one training step, loop / fused, RNN and GRU, copy task,
    ``bench/train_paths.py``; T counts the unrolled steps, T+20 for copy):
    0.68x / 0.77x at T=1020, batch 128, hidden 190 (24.8 M); 0.89x / 0.88x at T=1020, 128, 128
    (16.7 M); 0.80x / 0.77x at T=120, 256, 256 (7.9 M); between 0.88x and 1.04x from 2 M to
    7.2 M (T=50-420, batch x hidden 16,384-65,536); 1.1-1.4x below 1 M. The LSTM loop is never
    faster (0.97-3.9x). On a GPU the loop pays a kernel launch per op per step (REFERENCE.md),
    so the fused kernel always."""
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

    def recurrent_weights(self) -> list[Tensor]:
        return [getattr(self.rnn, f"weight_hh_l{k}") for k in range(self.num_layers)]

    def layer_params(self, layer: int) -> list[Tensor]:
        """``[w_ih, w_hh, b_ih, b_hh]`` of one layer, in the order ``torch.lstm`` & co. take."""
        return [
            getattr(self.rnn, f"{name}_l{layer}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]


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


CellFactory = Callable[[int, int], nn.Module]


class RecurrentModel(nn.Module):
    """Core + linear head. ``forward(x)`` returns per-step outputs ``[B, T, output_size]``."""

    def __init__(self, core: RecurrentCore, output_size: int) -> None:
        super().__init__()
        self.core = core
        self.head = nn.Linear(core.hidden_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.core(x))


@dataclass(frozen=True)
class Architecture:
    """How to build a core for ``(input_size, hidden_size, num_layers)``."""

    build: Callable[[int, int, int], RecurrentCore]
    description: str
    #: H x H blocks in the recurrent weight (1 RNN, 3 GRU, 4 LSTM): the g of the cost model
    #: (:mod:`rnnbench.cost`). A user cell's is unknown; 1 keeps its estimate a lower bound.
    gates: int = 1


ARCHITECTURES: Registry[Architecture] = Registry("arch")


def _torch_arch(mode: str, description: str, gates: int) -> Architecture:
    return Architecture(lambda i, h, n: TorchCore(mode, i, h, n), description, gates)


#: the built-in architectures, whose cores have both implementations (``model.impl``)
BUILTIN_ARCHS = ("rnn", "rnn_relu", "lstm", "gru")


ARCHITECTURES.add("rnn", _torch_arch("rnn_tanh", "vanilla RNN, tanh (nn.RNN)", 1))
ARCHITECTURES.add("rnn_relu", _torch_arch("rnn_relu", "vanilla RNN, ReLU (nn.RNN)", 1))
ARCHITECTURES.add("lstm", _torch_arch("lstm", "LSTM (nn.LSTM)", 4))
ARCHITECTURES.add("gru", _torch_arch("gru", "GRU (nn.GRU)", 3))


def register_cell(name: str, description: str = "") -> Callable[[CellFactory], CellFactory]:
    """Register a user recurrent cell under ``name`` (see the module docstring for the contract).

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
    >>> from rnnbench.tasks import make_task
    >>> model = make_model("doc_cell", make_task("adding", seq_len=5), hidden_size=4)
    >>> model(torch.zeros(2, 5, 2)).shape
    torch.Size([2, 5, 1])
    >>> ARCHITECTURES.remove("doc_cell")
    """

    def decorate(factory: CellFactory) -> CellFactory:
        ARCHITECTURES.add(
            name,
            Architecture(
                lambda i, h, n: CellCore(factory, i, h, n),
                description or f"user cell {getattr(factory, '__name__', name)}",
            ),
        )
        return factory

    return decorate


# --- initialisation of the recurrent weights -------------------------------------------------


def _init_default(weight: Tensor, hidden_size: int, gain: float, g: torch.Generator) -> None:
    """Keep the module's own (seeded) initialisation; ``gain`` scales it."""
    with torch.no_grad():
        weight.mul_(gain)


def _init_orthogonal(weight: Tensor, hidden_size: int, gain: float, g: torch.Generator) -> None:
    """An orthogonal matrix per gate block: singular values all ``gain`` (Saxe et al. 2014)."""
    with torch.no_grad():
        for block in weight.split(hidden_size, dim=0):
            gaussian = torch.randn(block.shape, generator=g, dtype=torch.float64)
            q, r = torch.linalg.qr(gaussian)
            q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # uniform (Haar) distribution
            block.copy_(q.to(block.dtype) * gain)


def _init_identity(weight: Tensor, hidden_size: int, gain: float, g: torch.Generator) -> None:
    """The identity per gate block times ``gain`` (IRNN, Le, Jaitly & Hinton 2015)."""
    with torch.no_grad():
        for block in weight.split(hidden_size, dim=0):
            block.copy_(torch.eye(hidden_size, dtype=block.dtype) * gain)


INITS: Registry[Callable[[Tensor, int, float, torch.Generator], None]] = Registry("init")
INITS.add("default", _init_default)
INITS.add("orthogonal", _init_orthogonal)
INITS.add("identity", _init_identity)


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
    a built-in core runs; resolve ``auto`` with :func:`train_impl`, which knows the device and
    the batch. The module constructors draw from torch's global generator, so they run inside
    ``torch.random.fork_rng`` seeded from ``seed``: the caller's RNG state is left untouched.
    """
    spec = ARCHITECTURES.get(arch, "grid.arch")
    check_int("model.hidden_size", hidden_size, minimum=1, maximum=65_536)
    check_int("model.num_layers", num_layers, minimum=1, maximum=64)
    check_float("model.init_gain", init_gain, minimum=0.0, maximum=1e6)
    initialise = INITS.get(init, "model.init")
    if impl is not None:
        check_impl(impl, arch)
        if impl == "auto":
            raise ConfigError("model.impl: resolve 'auto' first (rnnbench.models.train_impl)")
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
