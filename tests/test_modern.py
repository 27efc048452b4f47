"""The modern architectures (lru, mingru, lstm_ln, gru_ln): each computes its paper's equations
(against a step-by-step reference written here, from the parameters alone), its profiles are
exact (against per-step autograd), its two paths agree, its parameters act, and it trains."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import rnnbench
from rnnbench.errors import ConfigError
from rnnbench.sweep import parse_sweep
from rnnbench.training import train_run

# --- independent step-by-step references --------------------------------------------------------

#: a reference layer: (module, inputs x_t) -> (outputs o_t, the state tensors of every step whose
#: gradients make up the hidden profile)
Reference = Callable[[nn.Module, list[Tensor]], tuple[list[Tensor], list[list[Tensor]]]]


def ref_layer_norm(a: Tensor, gain: Tensor, bias: Tensor | None = None) -> Tensor:
    mean = a.mean(-1, keepdim=True)
    var = ((a - mean) ** 2).mean(-1, keepdim=True)
    out = (a - mean) / torch.sqrt(var + 1e-5) * gain
    return out if bias is None else out + bias


def ref_lru(m: nn.Module, xs: list[Tensor]) -> tuple[list[Tensor], list[list[Tensor]]]:
    """Real arithmetic: x = λ x + γ B u as (Re, Im) pairs, λ = |λ|(cos φ + i sin φ)."""
    modulus = torch.exp(-torch.exp(m.nu_log))
    phase = torch.exp(m.theta_log)
    lam_re, lam_im = modulus * torch.cos(phase), modulus * torch.sin(phase)
    gamma = torch.exp(m.gamma_log)
    n = lam_re.shape[0]
    re = im = xs[0].new_zeros(xs[0].shape[0], n)
    outs, states = [], []
    for u in xs:
        drive_re, drive_im = gamma * (u @ m.b_re.T), gamma * (u @ m.b_im.T)
        re, im = lam_re * re - lam_im * im + drive_re, lam_re * im + lam_im * re + drive_im
        re.retain_grad()
        im.retain_grad()
        states.append([re, im])
        y = re @ m.c_re.T - im @ m.c_im.T
        y = y + (u * m.d if m.d.dim() == 1 else u @ m.d.T)
        gated = torch.nn.functional.gelu(y) @ m.glu.weight.T + m.glu.bias
        width = gated.shape[1] // 2
        out = gated[:, :width] * torch.sigmoid(gated[:, width:])
        outs.append(out + u if u.shape[1] == out.shape[1] else out)
    return outs, states


def ref_mingru(m: nn.Module, xs: list[Tensor]) -> tuple[list[Tensor], list[list[Tensor]]]:
    h = xs[0].new_zeros(xs[0].shape[0], m.linear_z.out_features)
    outs, states = [], []
    for x in xs:
        z = torch.sigmoid(x @ m.linear_z.weight.T + m.linear_z.bias)
        v = x @ m.linear_h.weight.T + m.linear_h.bias
        candidate = torch.where(v >= 0, v + 0.5, torch.sigmoid(v))
        h = (1 - z) * h + z * candidate
        h.retain_grad()
        outs.append(h)
        states.append([h])
    return outs, states


def ref_lstm_ln(m: nn.Module, xs: list[Tensor]) -> tuple[list[Tensor], list[list[Tensor]]]:
    size = m.hidden_size
    h = c = xs[0].new_zeros(xs[0].shape[0], size)
    outs, states = [], []
    for x in xs:
        pre = ref_layer_norm(x @ m.weight_ih.T, m.gain_ih, m.bias_ih)
        pre = pre + ref_layer_norm(h @ m.weight_hh.T, m.gain_hh)
        i, f, g, o = (pre[:, k * size : (k + 1) * size] for k in range(4))  # torch order
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ref_layer_norm(c, m.gain_c, m.bias_c))
        h.retain_grad()
        outs.append(h)
        states.append([h])
    return outs, states


def ref_gru_ln(m: nn.Module, xs: list[Tensor]) -> tuple[list[Tensor], list[list[Tensor]]]:
    size = m.hidden_size
    h = xs[0].new_zeros(xs[0].shape[0], size)
    outs, states = [], []
    for x in xs:
        gx = ref_layer_norm(x @ m.weight_ih.T, m.gain_ih, m.bias_ih)
        gh = ref_layer_norm(h @ m.weight_hh.T, m.gain_hh, m.bias_hh)
        r = torch.sigmoid(gx[:, :size] + gh[:, :size])
        z = torch.sigmoid(gx[:, size : 2 * size] + gh[:, size : 2 * size])
        n = torch.tanh(gx[:, 2 * size :] + r * gh[:, 2 * size :])
        h = (1 - z) * n + z * h
        h.retain_grad()
        outs.append(h)
        states.append([h])
    return outs, states


REFERENCES: dict[str, Reference] = {
    "lru": ref_lru,
    "mingru": ref_mingru,
    "lstm_ln": ref_lstm_ln,
    "gru_ln": ref_gru_ln,
}

#: (arch, [archs.NAME] parameters): every architecture, and both paths of the scanned ones
VARIANTS = [
    ("lru", {"impl": "scan", "r_min": 0.8}),
    ("lru", {"impl": "sequential", "r_min": 0.8}),
    ("mingru", {"impl": "scan"}),
    ("mingru", {"impl": "sequential"}),
    ("lstm_ln", {}),
    ("gru_ln", {}),
]
IDS = [f"{arch}-{params.get('impl', 'cell')}" for arch, params in VARIANTS]


def layers_of(model: rnnbench.models.RecurrentModel) -> list[nn.Module]:
    core: Any = model.core
    return list(core.layers if hasattr(core, "layers") else core.cells)


def reference(
    model: rnnbench.models.RecurrentModel, arch: str, xs: list[Tensor]
) -> tuple[Tensor, list[list[Tensor]]]:
    """The top layer's outputs [B, T, H] and its per-step state tensors, layer by layer."""
    states: list[list[Tensor]] = []
    for layer in layers_of(model):
        xs, states = REFERENCES[arch](layer, xs)
    return torch.stack(xs, 1), states


def setup(
    arch: str, params: dict[str, Any], layers: int = 1, seq_len: int = 30, exact: bool = False
) -> tuple[rnnbench.models.RecurrentModel, rnnbench.Task, rnnbench.Batch]:
    """A small model and batch; ``exact``: in float64 (see :func:`exact_for`)."""
    task = rnnbench.make_task("adding", seq_len=seq_len)
    model = rnnbench.make_model(
        arch, task, hidden_size=8, num_layers=layers, seed=1, arch_params=params
    )
    batch = task.sample(6, torch.Generator().manual_seed(2))
    if exact:
        model = model.double()
        y = batch.y.double() if batch.y.is_floating_point() else batch.y
        batch = rnnbench.Batch(batch.x.double(), y)
    return model, task, batch


def exact_for(arch: str) -> bool:
    """Layer norm divides by a pre-activation's spread, small at the first steps (h ~ 0), so
    float32 rounding, amplified, differs between two correct implementations by up to 2e-4
    relative: the layer-norm cells are compared in float64 (which rnnbench runs as well)."""
    return arch.endswith("_ln")


# --- the equations -------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(("arch", "params"), VARIANTS, ids=IDS)
def test_outputs_match_the_step_by_step_reference(
    arch: str, params: dict[str, Any], layers: int
) -> None:
    model, _, batch = setup(arch, params, layers, exact=True)  # the equations, not rounding
    with torch.no_grad():
        ours = model.core(batch.x)
    expected, _ = reference(model, arch, list(batch.x.unbind(1)))
    torch.testing.assert_close(ours, expected.detach(), rtol=1e-5, atol=1e-8)


# --- exact profiles ------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(("arch", "params"), VARIANTS, ids=IDS)
def test_hidden_profile_is_the_total_gradient_of_each_state(
    arch: str, params: dict[str, Any], layers: int
) -> None:
    model, task, batch = setup(arch, params, layers, exact=exact_for(arch))
    ours = rnnbench.gradient_norms_through_time(model, task, batch, wrt="hidden")
    assert all(p.grad is None for p in model.parameters())
    outputs, states = reference(model, arch, list(batch.x.unbind(1)))
    task.dependency_loss(model.head(outputs), batch).backward()
    # the LRU's state is complex: its profile is the norm over (Re, Im) together
    expected = torch.stack(
        [torch.cat([s.grad.double().flatten() for s in step]).norm() for step in states]
    )
    assert ours.shape == (task.total_len,)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-30)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(("arch", "params"), VARIANTS, ids=IDS)
def test_input_profile_matches_per_step_leaves(
    arch: str, params: dict[str, Any], layers: int
) -> None:
    model, task, batch = setup(arch, params, layers, exact=exact_for(arch))
    ours = rnnbench.gradient_norms_through_time(model, task, batch, wrt="input")
    leaves = [x_t.clone().requires_grad_(True) for x_t in batch.x.unbind(1)]
    outputs, _ = reference(model, arch, leaves)
    task.dependency_loss(model.head(outputs), batch).backward()
    expected = torch.stack([leaf.grad.double().norm() for leaf in leaves])
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-30)


@pytest.mark.parametrize("impl", ["scan", "sequential"])
def test_lru_perturbation_is_the_real_view_of_the_complex_state(impl: str) -> None:
    # p[..., :N] moves Re x_t and p[..., N:] moves Im x_t: the gradient, entry by entry
    model, task, batch = setup("lru", {"impl": impl, "r_min": 0.8})
    perturbation = torch.zeros(6, 30, 8, requires_grad=True)
    loss = task.dependency_loss(model.head(model.core(batch.x, perturbation=perturbation)), batch)
    (ours,) = torch.autograd.grad(loss, perturbation)
    outputs, states = reference(model, "lru", list(batch.x.unbind(1)))
    task.dependency_loss(model.head(outputs), batch).backward()
    expected = torch.stack([torch.cat([re.grad, im.grad], dim=1) for re, im in states], dim=1)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-7)


# --- the two paths -------------------------------------------------------------------------------


def both_paths(arch: str, params: dict[str, Any], seq_len: int) -> tuple[Tensor, Tensor]:
    task = rnnbench.make_task("adding", seq_len=seq_len)
    batch = task.sample(4, torch.Generator().manual_seed(0))
    outs = []
    for impl in ("scan", "sequential"):
        model = rnnbench.make_model(
            arch, task, hidden_size=32, seed=0, arch_params={**params, "impl": impl}
        )
        with torch.no_grad():
            outs.append(model.core(batch.x))
        assert model.core.impl == impl
    return outs[0], outs[1]


@pytest.mark.parametrize("gate_bias", [0.0, -4.0])
def test_mingru_scan_and_sequential_agree_at_1000_steps(gate_bias: float) -> None:
    # gate_bias -4: z ~ 0.02, a memory of ~50 steps, the case where rounding accumulates most
    task = rnnbench.make_task("adding", seq_len=1000)
    batch = task.sample(4, torch.Generator().manual_seed(0))
    model = rnnbench.make_model("mingru", task, hidden_size=32, seed=0)
    layer: Any = model.core.layers[0]
    with torch.no_grad():
        layer.linear_z.bias.add_(gate_bias)
        layer.requested = "scan"
        scan = model.core(batch.x)
        assert model.core.impl == "scan"
        layer.requested = "sequential"
        sequential = model.core(batch.x)
        assert model.core.impl == "sequential"
    torch.testing.assert_close(scan, sequential, rtol=1e-5, atol=0.0)


def test_lru_scan_and_sequential_agree() -> None:
    scan, sequential = both_paths("lru", {"r_min": 0.95}, seq_len=1000)
    # both are float32 recurrences with |λ| near 1: rounding grows with t either way
    torch.testing.assert_close(scan, sequential, rtol=1e-4, atol=1e-5)
    short_scan, short_sequential = both_paths("lru", {}, seq_len=37)  # a partial last chunk
    torch.testing.assert_close(short_scan, short_sequential, rtol=1e-5, atol=1e-6)


def test_auto_resolves_by_the_fixed_rule_and_names_the_path() -> None:
    for arch in ("lru", "mingru"):
        model, _, batch = setup(arch, {})
        assert model.core.impl == "auto"  # not resolved before a forward
        model(batch.x)
        assert model.core.impl == "sequential"  # the CPU rule
    from rnnbench.models.lru import lru_path
    from rnnbench.models.mingru import mingru_path

    assert lru_path("auto", "cuda", 1000) == mingru_path("auto", "cuda", 1000) == "scan"
    assert lru_path("scan", "cpu", 10) == mingru_path("scan", "cpu", 10) == "scan"


def test_a_nonzero_perturbation_of_the_mingru_scan_is_computed_exactly() -> None:
    model, _, batch = setup("mingru", {"impl": "scan"})
    nudge = torch.randn(6, 30, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        nudged = model.core(batch.x, perturbation=nudge)  # negative entries: no log exists
        assert model.core.impl == "sequential"
        model.core.layers[0].requested = "sequential"
        expected = model.core(batch.x, perturbation=nudge)
    torch.testing.assert_close(nudged, expected)


# --- parameters ----------------------------------------------------------------------------------


def test_lru_ring_parameters_set_the_eigenvalues() -> None:
    task = rnnbench.make_task("adding", seq_len=10)
    params = {"r_min": 0.9, "r_max": 0.99, "max_phase": 0.5}
    model = rnnbench.make_model("lru", task, hidden_size=64, num_layers=2, arch_params=params)
    for layer in layers_of(model):
        modulus = torch.exp(-torch.exp(layer.nu_log.detach()))
        assert modulus.shape == (32,)
        assert float(modulus.min()) >= 0.9 - 1e-6 and float(modulus.max()) <= 0.99 + 1e-6
        assert float(torch.exp(layer.theta_log.detach()).max()) <= 0.5
        # γ = sqrt(1 − |λ|²) at initialisation
        torch.testing.assert_close(layer.gamma_log.exp() ** 2, 1 - modulus**2)


def test_lru_needs_an_even_hidden_size_and_a_valid_ring() -> None:
    task = rnnbench.make_task("adding", seq_len=10)
    with pytest.raises(ConfigError, match="even hidden_size"):
        rnnbench.make_model("lru", task, hidden_size=7)
    with pytest.raises(ConfigError, match="r_min"):
        rnnbench.make_model("lru", task, hidden_size=8, arch_params={"r_min": 0.9, "r_max": 0.5})
    with pytest.raises(ConfigError, match="impl"):
        rnnbench.make_model("mingru", task, hidden_size=8, arch_params={"impl": "fast"})


@pytest.mark.parametrize(("arch", "gates"), [("lstm_ln", 4), ("gru_ln", 3)])
def test_init_acts_on_the_layer_norm_cells_recurrent_weight(arch: str, gates: int) -> None:
    task = rnnbench.make_task("adding", seq_len=10)
    model = rnnbench.make_model(arch, task, hidden_size=8, init="orthogonal", init_gain=0.5)
    weight = layers_of(model)[0].weight_hh.detach()
    assert weight.shape == (gates * 8, 8)
    for block in weight.split(8):
        torch.testing.assert_close(block @ block.T, 0.25 * torch.eye(8), atol=1e-5, rtol=0)


# --- the training loop ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "params"),
    [("lru", {}), ("mingru", {"impl": "scan"}), ("lstm_ln", {}), ("gru_ln", {})],
)
def test_a_short_training_run_records_finite_profiles(arch: str, params: dict[str, Any]) -> None:
    sweep: dict[str, Any] = {
        "name": "modern",
        "grid": {"task": "adding", "arch": arch, "seq_len": 8, "clip": "norm:1.0", "seed": 0},
        "model": {"hidden_size": 8, "num_layers": 2},
        "train": {"steps": 5, "batch_size": 8},
        "diagnostics": {
            "checkpoints": 1,
            "eval_size": 16,
            "profile_batch_size": 4,
            "probe_max_lag": 2,
            "probe_size": 8,
        },
    }
    if params:
        sweep["archs"] = {arch: params}
    record = train_run(parse_sweep(sweep).runs[0])
    assert record["status"] == "ok"
    profile = record["profiles"][-1]
    for field in ("norms", "input_norms"):
        assert len(profile[field]) == 8
        assert all(math.isfinite(v) and v > 0 for v in profile[field])
    if arch == "mingru":
        assert record["metrics"]["impl"] == "scan"
