"""The dynamics diagnostics are exact: Jacobians through time against per-sample autograd, the
Lyapunov spectrum against a linear oracle and a two-trajectory estimate, gate saturation
against the gate equations; and the built-in sequence cores' steps reproduce their forward."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import rnnbench
from rnnbench.diagnostics.dynamics import (
    Saturation,
    driven_inputs,
    has_step,
    jacobian_singular_values,
    jacobian_summary,
    lyapunov_spectrum,
    saturation,
)
from rnnbench.errors import ConfigError
from rnnbench.models import ARCHITECTURES, register_cell
from rnnbench.models.lru import sequential_scan
from rnnbench.models.mingru import sequential

SPECTRUM = [0.95, 0.8, 0.6, 0.45, 0.3, 0.2, 0.1, 0.05]


@pytest.fixture
def registered() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        ARCHITECTURES.remove(name)


def adding(seq_len: int = 20) -> rnnbench.Task:
    return rnnbench.make_task("adding", seq_len=seq_len)


def sample(task: rnnbench.Task, size: int, seed: int = 1) -> rnnbench.Batch:
    return task.sample(size, torch.Generator().manual_seed(seed))


def driven(task: rnnbench.Task, steps: int, size: int, seed: int = 5) -> rnnbench.Batch:
    x = driven_inputs(task, steps, size, torch.Generator().manual_seed(seed))
    return rnnbench.Batch(x, torch.zeros(size))


# --- the linear oracle ---------------------------------------------------------------------------


class LinearCell(nn.Module):
    """h_{t+1} = W h_t + U x_t with W = Q diag(SPECTRUM) Qᵀ: every Jacobian is W, whose singular
    values are SPECTRUM, and whose Lyapunov exponents are log SPECTRUM."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(7)
        q, _ = torch.linalg.qr(torch.randn(hidden_size, hidden_size, generator=g).double())
        w = q @ torch.diag(torch.tensor(SPECTRUM, dtype=torch.float64)) @ q.T
        self.weight_hh = nn.Parameter(w.float())
        self.weight_ih = nn.Parameter(torch.randn(hidden_size, input_size, generator=g))

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> tuple:
        return (torch.zeros(batch_size, self.weight_hh.shape[0], device=device, dtype=dtype),)

    def forward(self, x_t: Tensor, state: tuple) -> tuple:
        return (state[0] @ self.weight_hh.T + x_t @ self.weight_ih.T,)


def test_linear_oracle(registered: list[str]) -> None:
    register_cell("test_linear")(LinearCell)
    registered.append("test_linear")
    task = adding()
    model = rnnbench.make_model("test_linear", task, hidden_size=8)
    exponents = lyapunov_spectrum(model, task, driven(task, 300, 4), k=8, warmup=50)
    want = torch.log(torch.tensor(SPECTRUM, dtype=torch.float64))
    assert exponents.dtype == torch.float64 and exponents.shape == (8,)
    torch.testing.assert_close(exponents, want, rtol=0, atol=1e-6)
    sigma = jacobian_singular_values(model, task, sample(task, 3), k=8)
    assert sigma.dtype == torch.float64 and sigma.shape == (task.total_len - 1, 8)
    torch.testing.assert_close(sigma, want.exp().expand_as(sigma), rtol=0, atol=1e-6)
    # k is clipped to the state size
    assert lyapunov_spectrum(model, task, sample(task, 2), k=20).shape == (8,)
    assert jacobian_singular_values(model, task, sample(task, 2), k=20).shape[1] == 8


# --- the tanh RNN against two nearby trajectories ------------------------------------------------


def two_trajectory_exponent(
    model: rnnbench.models.RecurrentModel, x: Tensor, warmup: int, delta: float = 1e-8
) -> float:
    """λ_1 from two nearby trajectories, the neighbour δ away and renormalised to δ after every
    step: the mean log growth of the separation (Benettin et al. 1980), no Jacobian taken.

    A chaotic trajectory in float64 would part from the float32 one the model runs after
    ~log(1e7)/λ_1 steps, and a finite-time exponent of a different trajectory differs by
    several percent (measured: 0.4-4 % at gain 3 over 900 steps x 16 sequences). So the
    reference trajectory is the model's own float32 one (an nn.RNNCell copy of the weights),
    and the separation F(h + δu) − F(h) is computed in float64 from it."""
    w_ih, w_hh, b_ih, b_hh = model.core.layer_params(0)
    cell = nn.RNNCell(w_ih.shape[1], w_hh.shape[0])
    with torch.no_grad():
        for mine, theirs in zip(cell.parameters(), (w_ih, w_hh, b_ih, b_hh), strict=True):
            mine.copy_(theirs)
    w_ih64, w_hh64, b64 = w_ih.detach().double(), w_hh.detach().double(), (b_ih + b_hh).double()
    g = torch.Generator().manual_seed(11)
    h = torch.zeros(x.shape[0], w_hh.shape[0])
    direction = torch.randn(h.shape, generator=g, dtype=torch.float64)
    direction /= direction.norm(dim=1, keepdim=True)
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    with torch.no_grad():
        h = cell(x[:, 0], h)  # step 0 reads the initial state; J_0 maps step 0 to step 1
        for t, x_t in enumerate(x[:, 1:].unbind(1)):
            drive = x_t.double() @ w_ih64.T + b64
            base = h.double()
            gap = torch.tanh(drive + (base + delta * direction) @ w_hh64.T)
            gap = gap - torch.tanh(drive + base @ w_hh64.T)
            if t >= warmup:
                total += torch.log(gap.norm(dim=1) / delta)
            direction = gap / gap.norm(dim=1, keepdim=True)
            h = cell(x_t, h)
    return float(total.mean() / (x.shape[1] - 1 - warmup))


@pytest.mark.parametrize(("gain", "regime"), [(3.0, "chaotic"), (0.6, "contracting")])
def test_largest_exponent_matches_two_nearby_trajectories(gain: float, regime: str) -> None:
    task = adding()
    model = rnnbench.make_model(
        "rnn", task, hidden_size=32, init="orthogonal", init_gain=gain, seed=2
    )
    batch = driven(task, 1000, 16)
    ours = float(lyapunov_spectrum(model, task, batch, k=4, warmup=100)[0])
    reference = two_trajectory_exponent(model, batch.x, warmup=100)
    assert (reference > 0.1) if regime == "chaotic" else (reference < -0.1)
    assert ours == pytest.approx(reference, rel=0.02)


# --- exact Jacobians -----------------------------------------------------------------------------

BUILTIN_CELLS = {"rnn": nn.RNNCell, "rnn_relu": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}

#: a single-sample step: (x_t [1, I], state tuple of [1, d]) -> state tuple
Step = Callable[[Tensor, tuple], tuple]


def builtin_step(model: rnnbench.models.RecurrentModel, arch: str, layer: int) -> Step:
    """An nn.*Cell copy of one layer of a built-in core, as a step on state tuples."""
    rnn = model.core.rnn
    extra = {"nonlinearity": "relu"} if arch == "rnn_relu" else {}
    size = rnn.input_size if layer == 0 else rnn.hidden_size
    cell = BUILTIN_CELLS[arch](size, rnn.hidden_size, **extra)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(rnn, f"{name}_l{layer}"))
    if arch == "lstm":
        return lambda x, s: tuple(cell(x, (s[0], s[1])))
    return lambda x, s: (cell(x, s[0]),)


def reference_singular_values(
    steps: list[Step], initial: list[tuple], x: Tensor, k: int, part: str, at: list[int]
) -> dict[int, np.ndarray]:
    """Per step t in ``at``: the median over the batch of the k largest singular values of
    ∂s_{t+1}/∂s_t, each from torch.autograd.functional.jacobian of a single-sample step."""
    states = [list(s) for s in initial]
    top_inputs, tops = [], []
    for x_t in x.unbind(1):
        inp = x_t
        for layer, step in enumerate(steps):
            if layer == len(steps) - 1:
                top_inputs.append(inp.detach())
            states[layer] = list(step(inp, tuple(states[layer])))
            inp = states[layer][0]
        tops.append([s.detach() for s in states[-1]])
    result = {}
    for t in at:
        values = []
        for b in range(x.shape[0]):
            state = [s[b : b + 1] for s in tops[t]]
            x_next = top_inputs[t + 1][b : b + 1]
            values.append(single_sample_svd(steps[-1], x_next, state, part)[:k])
        result[t] = np.median(np.stack(values), axis=0)
    return result


def single_sample_svd(step: Step, x_t: Tensor, state: list[Tensor], part: str) -> np.ndarray:
    sizes = [s.shape[1] for s in state]
    if part == "hidden":

        def f(h: Tensor) -> Tensor:
            return step(x_t, (h[None], *state[1:]))[0][0]

        point = state[0][0]
    else:

        def f(flat: Tensor) -> Tensor:
            pieces = tuple(p[None] for p in flat.split(sizes))
            return torch.cat([s[0] for s in step(x_t, pieces)])

        point = torch.cat([s[0] for s in state])
    jac = torch.autograd.functional.jacobian(f, point)
    return torch.linalg.svdvals(jac.double()).numpy()


def zero_states(sizes: list[int], batch: int) -> tuple:
    return tuple(torch.zeros(batch, size) for size in sizes)


BUILTIN_CASES = [
    ("rnn", 1, "state"),
    ("rnn_relu", 1, "state"),
    ("lstm", 1, "state"),
    ("lstm", 1, "hidden"),
    ("gru", 1, "state"),
    ("gru", 2, "state"),
    ("lstm", 2, "hidden"),
]


@pytest.mark.parametrize(("arch", "layers", "part"), BUILTIN_CASES)
def test_builtin_jacobians_are_exact(arch: str, layers: int, part: str) -> None:
    task = adding(12)
    model = rnnbench.make_model(
        arch, task, hidden_size=6, num_layers=layers, init="orthogonal", init_gain=1.5, seed=4
    )
    batch = sample(task, 5)
    ours = jacobian_singular_values(model, task, batch, k=3, part=part)
    steps = [builtin_step(model, arch, layer) for layer in range(layers)]
    sizes = [6, 6] if arch == "lstm" else [6]
    initial = [zero_states(sizes, 5) for _ in range(layers)]
    at = [0, 4, task.total_len - 2]
    want = reference_singular_values(steps, initial, batch.x, 3, part, at)
    assert ours.shape == (task.total_len - 1, 3)
    for t in at:
        torch.testing.assert_close(ours[t], torch.from_numpy(want[t]), rtol=1e-5, atol=1e-7)


def layer_step(module: nn.Module, name: str) -> Step:
    method = getattr(module, name)
    return lambda x, s: tuple(method(x, s))


@pytest.mark.parametrize(
    ("arch", "params", "part", "layers"),
    [
        ("lstm_ln", {}, "state", 1),
        ("lstm_ln", {}, "hidden", 1),
        ("lstm_ln", {}, "state", 2),
        ("gru_ln", {}, "state", 1),
        ("mingru", {}, "state", 1),
        ("mingru", {}, "state", 2),
        ("lru", {"r_min": 0.5}, "state", 1),
        ("lru", {"r_min": 0.5}, "hidden", 2),
    ],
)
def test_user_cell_and_sequence_core_jacobians_are_exact(
    arch: str, params: dict[str, Any], part: str, layers: int
) -> None:
    task = adding(10)
    model = rnnbench.make_model(
        arch, task, hidden_size=6, num_layers=layers, seed=3, arch_params=params
    )
    batch = sample(task, 4)  # an even batch: the median of the two middle values
    ours = jacobian_singular_values(model, task, batch, k=3, part=part)
    core: Any = model.core
    x = batch.x
    if hasattr(core, "cells"):  # a cell stack, every layer stepped
        modules = list(core.cells)
        steps = [layer_step(m, "forward") for m in modules]
    else:  # a sequence core's lower layers feed the top one their whole forward's outputs
        modules = list(core.layers[-1:])
        with torch.no_grad():
            for layer in core.layers[:-1]:
                x = layer(x)
        steps = [layer_step(modules[0], "step")]
    initial = [tuple(m.init_state(4, torch.device("cpu"), torch.float32)) for m in modules]
    at = [0, 3, task.total_len - 2]
    want = reference_singular_values(steps, initial, x, 3, part, at)
    for t in at:
        torch.testing.assert_close(ours[t], torch.from_numpy(want[t]), rtol=1e-5, atol=1e-7)


def test_the_lru_jacobian_is_its_eigenvalues() -> None:
    """J = the rotation-scaling by λ on each (Re, Im) pair: singular values |λ|, each twice, at
    every step, and Lyapunov exponents log |λ|."""
    task = adding(10)
    model = rnnbench.make_model("lru", task, hidden_size=8, seed=0, arch_params={"r_min": 0.3})
    layer: Any = model.core.layers[0]
    modulus = torch.exp(-torch.exp(layer.nu_log.detach().double()))
    want = modulus.repeat_interleave(2).sort(descending=True).values
    sigma = jacobian_singular_values(model, task, sample(task, 3), k=8)
    torch.testing.assert_close(sigma, want.expand_as(sigma), rtol=1e-6, atol=1e-7)
    # the slowest pair of moduli is 0.963 / 0.986: Q needs a few hundred steps to separate them
    exponents = lyapunov_spectrum(model, task, driven(task, 1000, 2), k=8, warmup=400)
    torch.testing.assert_close(exponents, want.log(), rtol=1e-5, atol=1e-6)


# --- the sequence cores' steps reproduce their forward ------------------------------------------


@pytest.mark.parametrize("impl", ["sequential", "scan"])
def test_unrolling_the_mingru_step_reproduces_its_forward(impl: str) -> None:
    task = adding(40)
    model = rnnbench.make_model("mingru", task, hidden_size=8, arch_params={"impl": impl})
    layer: Any = model.core.layers[0]
    x = sample(task, 4).x
    with torch.no_grad():
        forward = layer(x)
        state = layer.init_state(4, x.device, x.dtype)
        steps = []
        for x_t in x.unbind(1):
            state = layer.step(x_t, state)
            steps.append(state[0])
        assert len(state) == 1
        direct = sequential(layer.linear_z(x), layer.linear_h(x))
    torch.testing.assert_close(torch.stack(steps, 1), forward, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.stack(steps, 1), direct, rtol=1e-6, atol=1e-7)


def test_unrolling_the_lru_step_reproduces_the_scans_complex_states() -> None:
    task = adding(40)
    model = rnnbench.make_model("lru", task, hidden_size=8, arch_params={"r_min": 0.7})
    layer: Any = model.core.layers[0]
    x = sample(task, 4).x
    with torch.no_grad():
        gamma = layer.gamma_log.exp()
        drive = torch.complex(x @ layer.b_re.T, x @ layer.b_im.T) * gamma
        states = sequential_scan(drive, layer.log_lambda())
        state = layer.init_state(4, x.device, x.dtype)
        re, im = [], []
        for x_t in x.unbind(1):
            state = layer.step(x_t, state)
            re.append(state[0])
            im.append(state[1])
    torch.testing.assert_close(torch.stack(re, 1), states.real, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.stack(im, 1), states.imag, rtol=1e-5, atol=1e-6)


# --- saturation ----------------------------------------------------------------------------------


def scaled(arch: str, scale: float, task: rnnbench.Task) -> rnnbench.models.RecurrentModel:
    model = rnnbench.make_model(arch, task, hidden_size=8, seed=1)
    with torch.no_grad():
        for p in model.core.parameters():
            p.mul_(scale)
    return model


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_huge_weights_saturate_and_tiny_weights_do_not(arch: str) -> None:
    task = adding()
    batch = sample(task, 16)
    huge = saturation(scaled(arch, 300.0, task), task, batch)
    tiny = saturation(scaled(arch, 1e-3, task), task, batch)
    assert isinstance(huge, Saturation)
    assert huge.gate.shape == huge.tanh.shape == (task.total_len,)
    assert huge.gate.dtype == torch.float64
    assert float(huge.gate[1:].min()) > 0.9
    # the LSTM's tanh units are g (saturated) and tanh(c_t), saturated only once |c_t| > 3
    assert float(huge.tanh[1:].min()) > (0.45 if arch == "lstm" else 0.9)
    assert float(tiny.gate.max()) == 0.0 and float(tiny.tanh.max()) == 0.0
    assert (huge.forget is None) == (arch == "gru")


def test_the_lstm_forget_curve_is_the_mean_forget_gate() -> None:
    task = adding()
    model = rnnbench.make_model(
        "lstm", task, hidden_size=8, seed=1, init_gain=2.0, init="orthogonal"
    )
    batch = sample(task, 6)
    ours = saturation(model, task, batch)
    w_ih, w_hh, b_ih, b_hh = (p.detach() for p in model.core.layer_params(0))
    h = c = torch.zeros(6, 8)
    forget, gates_saturated = [], []
    for x_t in batch.x.unbind(1):
        gates = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, _, o = (torch.sigmoid(gates[:, k * 8 : (k + 1) * 8]) for k in range(4))
        forget.append(f.double().mean())
        sig = torch.cat([i, f, o], 1)
        gates_saturated.append((sig * (1 - sig) < 0.01).double().mean())
        c = f * c + i * torch.tanh(gates[:, 16:24])
        h = o * torch.tanh(c)
    assert ours.forget is not None
    torch.testing.assert_close(ours.forget, torch.stack(forget), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours.gate, torch.stack(gates_saturated))


class GatedCell(nn.Module):
    """A cell computing its activations every way a user might: torch.sigmoid, Tensor.tanh,
    F.sigmoid, an in-place tanh_, torch.special.expit."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.inp = nn.Linear(input_size, 3 * hidden_size)
        self.weight_hh = nn.Parameter(torch.randn(3 * hidden_size, hidden_size) * 2.0)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> tuple:
        return (torch.zeros(batch_size, self.weight_hh.shape[1], device=device, dtype=dtype),)

    def forward(self, x_t: Tensor, state: tuple) -> tuple:
        a, b, c = (self.inp(x_t) + state[0] @ self.weight_hh.T).chunk(3, dim=1)
        z = torch.sigmoid(a)
        r = torch.special.expit(b) * nn.functional.sigmoid(b)
        n = c.clone().tanh_()
        return (z * n + (1 - z) * r.tanh(),)


def test_a_user_cells_activations_are_captured(registered: list[str]) -> None:
    register_cell("test_gated")(GatedCell)
    registered.append("test_gated")
    task = adding()
    model = rnnbench.make_model("test_gated", task, hidden_size=5, seed=0)
    batch = sample(task, 4)
    ours = saturation(model, task, batch)
    cell: Any = model.core.cells[0]
    h = torch.zeros(4, 5)
    gate, tanh = [], []
    with torch.no_grad():
        for x_t in batch.x.unbind(1):
            a, b, c = (cell.inp(x_t) + h @ cell.weight_hh.T).chunk(3, dim=1)
            sig = torch.cat([torch.sigmoid(a), torch.sigmoid(b), torch.sigmoid(b)], 1)
            r = torch.sigmoid(b) ** 2
            tanhs = torch.cat([torch.tanh(c), torch.tanh(r)], 1)
            gate.append((sig * (1 - sig) < 0.01).double().mean())
            tanh.append((1 - tanhs**2 < 0.01).double().mean())
            h = cell(x_t, (h,))[0]
    torch.testing.assert_close(ours.gate, torch.stack(gate))
    torch.testing.assert_close(ours.tanh, torch.stack(tanh))
    assert ours.forget is None
    assert 0.0 < float(ours.gate.mean()) < 1.0


def test_the_layer_norm_lstm_captures_its_three_gates_only() -> None:
    task = adding()
    model = rnnbench.make_model("lstm_ln", task, hidden_size=4, seed=0)
    batch = sample(task, 3)
    ours = saturation(model, task, batch)
    cell: Any = model.core.cells[0]
    h = c = torch.zeros(3, 4)
    gate = []
    with torch.no_grad():
        for x_t in batch.x.unbind(1):
            pre = nn.functional.layer_norm(
                x_t @ cell.weight_ih.T, (16,), cell.gain_ih, cell.bias_ih
            )
            pre = pre + nn.functional.layer_norm(h @ cell.weight_hh.T, (16,), cell.gain_hh)
            sig = torch.sigmoid(torch.cat([pre[:, :8], pre[:, 12:]], 1))  # i, f, o
            gate.append((sig * (1 - sig) < 0.01).double().mean())
            h, c = cell(x_t, (h, c))
    torch.testing.assert_close(ours.gate, torch.stack(gate))


def test_a_relu_rnn_has_no_gates_and_no_tanh() -> None:
    task = adding()
    result = saturation(rnnbench.make_model("rnn_relu", task, hidden_size=4), task, sample(task, 2))
    assert result.gate.shape == (task.total_len,) and bool(result.gate.isnan().all())
    assert bool(result.tanh.isnan().all()) and result.forget is None
    lru = rnnbench.make_model("lru", task, hidden_size=4)
    assert bool(saturation(lru, task, sample(task, 2)).gate.isnan().all())
    rnn = saturation(rnnbench.make_model("rnn", task, hidden_size=4), task, sample(task, 2))
    assert bool(rnn.gate.isnan().all()) and not bool(rnn.tanh.isnan().any())


# --- arguments, cores without a step, side effects ---------------------------------------------

CLOSED = """
import torch
from torch import nn
import rnnbench

@rnnbench.register_core("test_closed")
class Closed(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True)
    def forward(self, x):
        return self.gru(x)[0]
"""


def test_bad_arguments_are_refused_in_one_line() -> None:
    task = adding(8)
    model = rnnbench.make_model("gru", task, hidden_size=4)
    batch = sample(task, 2)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: jacobian_singular_values(model, task, batch, part="cell"), r"part.*'cell'"),
        (lambda: jacobian_singular_values(model, task, batch, k=0), r"\bk\b.*0"),
        (lambda: lyapunov_spectrum(model, task, batch, k=0), r"\bk\b.*0"),
        (lambda: lyapunov_spectrum(model, task, batch, warmup=7), r"warmup.*7"),
        (lambda: lyapunov_spectrum(model, task, batch, warmup=-1), r"warmup.*-1"),
    ]
    for call, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


def test_a_sequence_core_without_a_step_is_refused(registered: list[str]) -> None:
    exec(compile(CLOSED, "closed", "exec"), {})
    registered.append("test_closed")
    task = adding(6)
    model = rnnbench.make_model("test_closed", task, hidden_size=4)
    assert not has_step(model.core)
    assert has_step(rnnbench.make_model("lru", task, hidden_size=4).core)
    assert has_step(rnnbench.make_model("lstm", task, hidden_size=4).core)
    assert has_step(rnnbench.make_model("gru_ln", task, hidden_size=4).core)
    batch = sample(task, 2)
    for function in (jacobian_singular_values, lyapunov_spectrum, saturation):
        with pytest.raises(ConfigError, match=r"no `?step`?.*init_state") as info:
            function(model, task, batch)
        assert "\n" not in str(info.value)


class DropoutCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.5)
        self.drop = nn.Dropout(0.5)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> tuple:
        return (torch.zeros(batch_size, self.weight_hh.shape[0], device=device, dtype=dtype),)

    def forward(self, x_t: Tensor, state: tuple) -> tuple:
        return (torch.tanh(self.inp(x_t) + self.drop(state[0]) @ self.weight_hh.T),)


@pytest.mark.parametrize("arch", ["lstm", "test_dropout", "mingru"])
def test_deterministic_and_free_of_side_effects(arch: str, registered: list[str]) -> None:
    register_cell("test_dropout")(DropoutCell)
    registered.append("test_dropout")
    task = adding(10)
    model = rnnbench.make_model(arch, task, hidden_size=4, seed=0)
    model.train()
    model.head.eval()  # a mixed state must come back as it was
    modes = [m.training for m in model.modules()]
    batch = sample(task, 3)
    rng = torch.get_rng_state()
    calls = [
        lambda: jacobian_singular_values(model, task, batch, k=2),
        lambda: jacobian_singular_values(model, task, batch, part="hidden"),
        lambda: lyapunov_spectrum(model, task, batch, k=3, warmup=2),
        lambda: saturation(model, task, batch).gate,
        lambda: saturation(model, task, batch).tanh,
    ]
    for call in calls:
        first, second = call(), call()
        assert torch.equal(first.nan_to_num(), second.nan_to_num())
    assert torch.equal(torch.get_rng_state(), rng)
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())


def test_a_memoryless_cell_has_zero_jacobians(registered: list[str]) -> None:
    @register_cell("test_memoryless")
    class Memoryless(nn.Module):
        def __init__(self, input_size: int, hidden_size: int) -> None:
            super().__init__()
            self.inp = nn.Linear(input_size, hidden_size)

        def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> tuple:
            return (torch.zeros(batch_size, self.inp.out_features, device=device, dtype=dtype),)

        def forward(self, x_t: Tensor, state: tuple) -> tuple:
            return (torch.tanh(self.inp(x_t)),)

    registered.append("test_memoryless")
    task = adding(6)
    model = rnnbench.make_model("test_memoryless", task, hidden_size=3)
    sigma = jacobian_singular_values(model, task, sample(task, 2))
    assert sigma.shape == (5, 3) and float(sigma.abs().max()) == 0.0


# --- driven inputs and the summary ---------------------------------------------------------------


def test_driven_inputs_are_task_sequences_end_to_end() -> None:
    task = adding(7)
    x = driven_inputs(task, 30, 3, torch.Generator().manual_seed(0))
    assert x.shape == (3, 30, task.input_size)
    g = torch.Generator().manual_seed(0)
    pieces = [task.sample(3, g).x for _ in range(5)]  # 35 steps, cut to 30
    torch.testing.assert_close(x, torch.cat(pieces, 1)[:, :30], rtol=0, atol=0)
    assert driven_inputs(task, 5, 2, torch.Generator()).shape == (2, 5, 2)


def test_jacobian_summary_reads_the_window() -> None:
    sigma = torch.tensor([[0.5, 0.1], [2.0, 0.1], [4.0, 0.1], [1.0, 0.1], [0.25, 0.1]])
    # window [1, 4) holds J_1 and J_2 (J_t maps step t to t + 1)
    geomean, above = jacobian_summary(sigma.double(), (1, 4))
    assert geomean == pytest.approx(math.sqrt(8.0)) and above == 1.0
    geomean, above = jacobian_summary(sigma.double(), (0, 6))
    assert geomean == pytest.approx((0.5 * 2 * 4 * 1 * 0.25) ** 0.2) and above == 0.4
    assert all(math.isnan(v) for v in jacobian_summary(sigma.double(), (3, 4)))
    assert all(math.isnan(v) for v in jacobian_summary(sigma[:0].double(), (0, 1)))
    # σ_1 alone reads the same
    assert jacobian_summary(sigma[:, 0].double(), (1, 4)) == jacobian_summary(sigma, (1, 4))


def test_the_lyapunov_spectrum_is_descending() -> None:
    task = adding(20)
    model = rnnbench.make_model("gru", task, hidden_size=6, init="orthogonal", init_gain=1.5)
    batch = driven(task, 80, 4)
    exponents = lyapunov_spectrum(model, task, batch, k=6, warmup=10)
    assert bool((exponents[:-1] >= exponents[1:]).all())
    assert bool(exponents.isfinite().all())
