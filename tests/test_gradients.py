"""The gradient profile is exact: it agrees with an independent per-step autograd computation."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import rnnbench
from rnnbench.diagnostics.summary import summarize_profile

CELLS = {"rnn": nn.RNNCell, "rnn_relu": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def reference_norms(
    model: rnnbench.models.RecurrentModel,
    task: rnnbench.Task,
    batch: rnnbench.Batch,
    wrt: str = "hidden",
) -> torch.Tensor:
    """||dL/dh_t|| from nn.*Cell copies of the weights, unrolled, with retain_grad per step; or
    with ``wrt="input"`` ||dL/dx_t||, every x_t a leaf of its own."""
    rnn, arch = model.core.rnn, model.core.mode
    hidden = model.core.hidden_size
    cells = []
    for layer in range(rnn.num_layers):
        size = task.input_size if layer == 0 else hidden
        extra = {"nonlinearity": arch[4:]} if arch.startswith("rnn") else {}
        cell = CELLS["rnn" if arch.startswith("rnn") else arch](size, hidden, **extra)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(rnn, f"{name}_l{layer}"))
        cells.append(cell)
    n = batch.x.shape[0]
    states: list = [
        (torch.zeros(n, hidden), torch.zeros(n, hidden))
        if arch == "lstm"
        else torch.zeros(n, hidden)
        for _ in cells
    ]
    hs = []
    xs = [x_t.clone().requires_grad_(True) for x_t in batch.x.unbind(1)]
    for x_t in xs:
        inp = x_t
        for k, cell in enumerate(cells):
            states[k] = cell(inp, states[k])
            inp = states[k][0] if arch == "lstm" else states[k]
        inp.retain_grad()
        hs.append(inp)
    task.dependency_loss(model.head(torch.stack(hs, 1)), batch).backward()
    return torch.stack([v.grad.double().norm() for v in (hs if wrt == "hidden" else xs)])


@pytest.mark.parametrize("method", ["probe", "loop", None])
@pytest.mark.parametrize("arch", ["rnn", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("task_name", ["copy", "adding"])
def test_profile_is_exact(arch: str, layers: int, task_name: str, method: str | None) -> None:
    task = rnnbench.make_task(task_name, seq_len=25)
    model = rnnbench.make_model(
        arch, task, hidden_size=16, num_layers=layers, seed=3, init="orthogonal", init_gain=1.2
    )
    batch = task.sample(8, torch.Generator().manual_seed(1))
    ours = rnnbench.gradient_norms_through_time(model, task, batch, method=method)
    # the computation leaves no gradients on the model's parameters
    assert all(p.grad is None for p in model.parameters())
    reference = reference_norms(model, task, batch)
    assert ours.shape == (task.total_len,)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-30)


@pytest.mark.parametrize("arch", ["rnn", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("task_name", ["copy", "adding"])
def test_input_profile_is_exact(arch: str, layers: int, task_name: str) -> None:
    task = rnnbench.make_task(task_name, seq_len=25)
    model = rnnbench.make_model(
        arch, task, hidden_size=16, num_layers=layers, seed=3, init="orthogonal", init_gain=1.2
    )
    batch = task.sample(8, torch.Generator().manual_seed(1))
    ours = rnnbench.gradient_norms_through_time(model, task, batch, wrt="input")
    assert all(p.grad is None for p in model.parameters())
    reference = reference_norms(model, task, batch, wrt="input")
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-30)


def test_an_unknown_profile_method_is_named() -> None:
    task = rnnbench.make_task("adding", seq_len=5)
    model = rnnbench.make_model("lstm", task, hidden_size=4, seed=0)
    batch = task.sample(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"expected one of \['loop', 'probe'\], got 'fast'"):
        rnnbench.gradient_norms_through_time(model, task, batch, method="fast")


def test_profile_of_a_user_cell_is_exact() -> None:
    class Elman(nn.Module):
        def __init__(self, input_size: int, hidden_size: int) -> None:
            super().__init__()
            self.inp = nn.Linear(input_size, hidden_size)
            self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.3)

        def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> tuple:
            return (torch.zeros(batch_size, self.weight_hh.shape[0], device=device, dtype=dtype),)

        def forward(self, x_t: torch.Tensor, state: tuple) -> tuple:
            return (torch.tanh(self.inp(x_t) + state[0] @ self.weight_hh.T),)

    rnnbench.register_cell("test_elman")(Elman)
    try:
        task = rnnbench.make_task("adding", seq_len=20)
        model = rnnbench.make_model("test_elman", task, hidden_size=8, seed=0)
        batch = task.sample(4, torch.Generator().manual_seed(0))
        ours = rnnbench.gradient_norms_through_time(model, task, batch)
        # independent: retain_grad on each h_t of a hand-written loop over the same weights
        cell = model.core.cells[0]
        h = torch.zeros(4, 8)
        hs = []
        for x_t in batch.x.unbind(1):
            h = cell(x_t, (h,))[0]
            h.retain_grad()
            hs.append(h)
        task.loss(model.head(torch.stack(hs, 1)), batch).backward()
        reference = torch.stack([x.grad.double().norm() for x in hs])
        torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-30)
    finally:
        rnnbench.ARCHITECTURES.remove("test_elman")


def test_factor_and_span_of_a_geometric_profile() -> None:
    # norm_t = 0.5 ** (steps back): factor 0.5; 1e-6 relative threshold reached after 19.9 steps
    steps = np.arange(60)
    norms = 0.5 ** (59 - steps)
    summary = summarize_profile(norms, (0, 60))
    assert summary.factor == pytest.approx(0.5)
    assert summary.span == 20  # 0.5**19 = 1.9e-6 >= 1e-6 > 0.5**20
    exploding = summarize_profile(1.1 ** (59 - steps), (0, 60))
    assert exploding.factor == pytest.approx(1.1)
    assert exploding.span == 60


def test_zeros_below_the_float_floor_are_not_fitted() -> None:
    norms = 0.1 ** (29 - np.arange(30.0))
    norms[:10] = 0.0  # underflowed
    summary = summarize_profile(norms, (0, 30))
    assert summary.factor == pytest.approx(0.1)  # a log(0) would have broken the fit
    assert summary.below_floor == 10
    assert math.isnan(summarize_profile(np.zeros(5), (0, 5)).factor)


def test_vanishing_and_exploding_recurrences_are_told_apart() -> None:
    task = rnnbench.make_task("adding", seq_len=60)
    batch = task.sample(16, torch.Generator().manual_seed(0))
    window = task.recurrence_window()
    small = rnnbench.make_model("rnn", task, hidden_size=32, init="orthogonal", init_gain=0.5)
    large = rnnbench.make_model("rnn_relu", task, hidden_size=32, init="identity", init_gain=1.05)
    vanishing = summarize_profile(rnnbench.gradient_norms_through_time(small, task, batch), window)
    exploding = summarize_profile(rnnbench.gradient_norms_through_time(large, task, batch), window)
    assert vanishing.factor < 0.7
    assert exploding.factor > 1.0
    assert vanishing.span < exploding.span


def reference_cell_norms(
    model: rnnbench.models.RecurrentModel, task: rnnbench.Task, batch: rnnbench.Batch
) -> torch.Tensor:
    """||dL/dc_t|| of the top LSTM layer from the LSTM equations written out, a zero
    perturbation added to each c_t before it feeds h_t and c_{t+1} (so its gradient is the
    total dL/dc_t); an independent loop, not the scan the diagnostic uses."""
    rnn, hidden = model.core.rnn, model.core.hidden_size
    n, steps = batch.x.shape[:2]
    layers = rnn.num_layers
    states = [(torch.zeros(n, hidden), torch.zeros(n, hidden)) for _ in range(layers)]
    nudges = [torch.zeros(n, hidden, requires_grad=True) for _ in range(steps)]
    outputs = []
    for t, x_t in enumerate(batch.x.unbind(1)):
        inp = x_t
        for k in range(layers):
            w_ih, w_hh, b_ih, b_hh = (
                getattr(rnn, f"{name}_l{k}")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            h, c = states[k]
            i, f, g, o = (inp @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            if k == layers - 1:
                c = c + nudges[t]
            h = torch.sigmoid(o) * torch.tanh(c)
            states[k] = (h, c)
            inp = h
        outputs.append(inp)
    loss = task.dependency_loss(model.head(torch.stack(outputs, 1)), batch)
    grads = torch.autograd.grad(loss, nudges)
    return torch.stack([g.double().norm() for g in grads])


@pytest.mark.parametrize("method", ["probe", "loop"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("task_name", ["copy", "adding"])
def test_lstm_cell_state_profile_is_exact(task_name: str, layers: int, method: str) -> None:
    task = rnnbench.make_task(task_name, seq_len=25)
    model = rnnbench.make_model("lstm", task, hidden_size=16, num_layers=layers, seed=3)
    batch = task.sample(8, torch.Generator().manual_seed(1))
    ours = rnnbench.gradient_norms_through_time(model, task, batch, wrt="cell", method=method)
    reference = reference_cell_norms(model, task, batch)
    assert ours.shape == (task.total_len,)
    assert (reference[: -task.total_len // 2] > 0).all()
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-12)


def test_the_cell_profile_is_the_lstm_s_alone() -> None:
    task = rnnbench.make_task("adding", seq_len=10)
    model = rnnbench.make_model("gru", task, hidden_size=8)
    batch = task.sample(4, torch.Generator().manual_seed(0))
    with pytest.raises(rnnbench.ConfigError, match="wrt='cell': only the built-in lstm"):
        rnnbench.gradient_norms_through_time(model, task, batch, wrt="cell")


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_the_checkpoint_profiles_are_the_single_ones(arch: str) -> None:
    task = rnnbench.make_task("copy", seq_len=12)
    model = rnnbench.make_model(arch, task, hidden_size=8, seed=2)
    batch = task.sample(4, torch.Generator().manual_seed(0))
    from rnnbench.diagnostics.gradients import profile_norms

    together = profile_norms(model, task, batch)
    assert set(together) == ({"hidden", "input", "cell"} if arch == "lstm" else {"hidden", "input"})
    for wrt, norms in together.items():
        alone = rnnbench.gradient_norms_through_time(model, task, batch, wrt=wrt)
        assert torch.equal(norms, alone), wrt
