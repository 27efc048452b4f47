"""Gradient norms through time: the exact ||dL/dh_t|| for every step t of the top layer.

Backpropagation through time multiplies one Jacobian per step, so ||dL/dh_t|| shrinks (or grows)
roughly geometrically as t moves away from the loss (Bengio et al. 1994; Pascanu et al. 2013).
The profile and the two numbers derived from it, the per-step factor r and the gradient span,
make that measurable.

Exactness without giving up the fused kernels (cuDNN / MKL) for the built-in cores:

* ``nn.RNN`` / ``nn.LSTM``: run the top layer on ``[u_t, p_t]`` where ``p`` is a zero *probe*
  whose input weights are a detached copy of W_hh. The pre-activations then see
  ``W_hh (h_{t-1} + p_t)``, so ``p.grad[t]`` is exactly the gradient reaching h_{t-1} through the
  recurrence, and ``dL/dh_t = out.grad[t] + p.grad[t+1]``.
* ``nn.GRU``: h_{t-1} also enters inside ``r_t * (W_hn h_{t-1} + b_hn)`` and through the
  ``z_t * h_{t-1}`` shortcut, which an input probe cannot see. A second probe ``q`` feeds the
  candidate pre-activation with identity weights, so ``q.grad[t]`` is that pre-activation's
  gradient; with r_t and z_t recomputed from the (vectorised) outputs,
  ``dL/dh_{t-1} = out.grad[t-1] + p.grad[t] + W_hn^T (r_t * q.grad[t]) + z_t * dL/dh_t``,
  a cheap elementwise backward scan.
* user cells: a zero perturbation added to h_t inside the unrolled loop; its gradient is dL/dh_t.
* sequence cores (:mod:`rnnbench.models.sequence`): the same perturbation, ``[B, T, H]``, passed
  to the core's forward; a core that does not take one has no hidden profile.

Beside it, the **input profile** ||dL/dx_t|| is exact for any module whatever its internals
(one backward to the inputs): ``wrt="input"``. It carries the same geometric decay (dL/dx_t =
dL/dh_t ∂h_t/∂x_t), so its factor and span compare architectures that hide their state.

The built-ins have both paths: the fused probe (``"probe"``) and the same perturbation on a
loop over the functional cells (``"loop"``: ``torch.lstm_cell`` & co., one backward). Which is
faster depends on the device (on a GPU the loop pays a kernel launch per op per step; on a CPU
the fused backward gains nothing over per-step GEMMs); :func:`default_profile_method` encodes
the measurements (``bench/profile_cost.py``, docs/performance.md, section 3) as a fixed rule
per device type, architecture and width, never a timing taken at run time, so a run's profile
never depends on the machine's load. Both are exact; they agree to float rounding
(tests/test_gradients.py).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from rnnbench.diagnostics.steppers import builtin_gates, stepper, trajectory
from rnnbench.errors import ConfigError
from rnnbench.models import CellCore, RecurrentCore, RecurrentModel, TorchCore, unroll
from rnnbench.models.sequence import SequenceCore
from rnnbench.numerics import full_float32
from rnnbench.tasks import Batch, Task

#: What a profile is taken with respect to: the top layer's hidden states, the inputs, or the
#: built-in LSTM's cell state c_t (the constant-error carousel, Hochreiter & Schmidhuber 1997).
WRT = ("hidden", "input", "cell")

HiddenLoss = Callable[[Tensor], Tensor]


def gradient_norms_through_time(
    model: RecurrentModel,
    task: Task,
    batch: Batch,
    *,
    full_loss: bool = False,
    method: str | None = None,
    wrt: str = "hidden",
) -> Tensor:
    """Exact ||dL/dh_t|| (Frobenius norm over batch and hidden units) for every step t, or with
    ``wrt="input"`` ||dL/dx_t|| (over batch and input features): exact for any module; or with
    ``wrt="cell"`` the built-in LSTM's ||dL/dc_t|| (:func:`cell_gradients`).

    ``L`` is the task's dependency loss (:meth:`Task.dependency_loss`: for the copy task the
    recall steps' cross-entropy terms; for adding the whole loss) unless ``full_loss``.
    Returns a float64 tensor of length ``task.total_len``; exact zeros mean the gradient fell
    below the float floor (see :func:`rnnbench.diagnostics.summary.summarize_profile`).
    ``method`` (``"probe"`` or ``"loop"``) picks the path for the built-in cores; by default the
    device's (:func:`default_profile_method`). User cells always use their own unrolled loop.
    """
    loss_fn = task.loss if full_loss else task.dependency_loss
    if wrt not in WRT:
        raise ConfigError(f"wrt: expected one of {', '.join(WRT)}, got {wrt!r}")
    if wrt == "cell" and not has_cell_profile(model.core):
        raise ConfigError(
            "wrt='cell': only the built-in lstm has a cell state c_t; use wrt='hidden' or 'input'"
        )
    if wrt == "hidden" and not has_hidden_profile(model.core):
        raise ConfigError(
            "wrt='hidden': this sequence core's forward takes no perturbation, so its hidden "
            "profile cannot be taken; use wrt='input' (exact for any module)"
        )

    def loss_of_hidden(hidden: Tensor) -> Tensor:
        return loss_fn(model.head(hidden), batch)

    with full_float32():  # exact means IEEE float32 on GPUs too (rnnbench.numerics)
        if wrt == "input":
            grads = input_gradients(model, batch.x, loss_of_hidden)
        elif wrt == "cell":
            assert isinstance(model.core, TorchCore)
            hidden = hidden_gradients(model.core, batch.x, loss_of_hidden, method)
            grads = cell_gradients(model.core, batch.x, hidden)
        else:
            grads = hidden_gradients(model.core, batch.x, loss_of_hidden, method)
    return grads.double().square().sum(dim=(0, 2)).sqrt()


def profile_norms(
    model: RecurrentModel, task: Task, batch: Batch, *, method: str | None = None
) -> dict[str, Tensor]:
    """Every exact profile the model has, of the dependency loss, sharing the work: ``"input"``
    always, ``"hidden"`` unless the core hides its state, ``"cell"`` for the built-in LSTM
    (from the same dL/dh_t). What the training loop records at each checkpoint."""

    def loss_of_hidden(hidden: Tensor) -> Tensor:
        return task.dependency_loss(model.head(hidden), batch)

    def norms(grads: Tensor) -> Tensor:
        return grads.double().square().sum(dim=(0, 2)).sqrt()

    out: dict[str, Tensor] = {}
    with full_float32():
        if has_hidden_profile(model.core):
            hidden = hidden_gradients(model.core, batch.x, loss_of_hidden, method)
            out["hidden"] = norms(hidden)
            if isinstance(model.core, TorchCore) and has_cell_profile(model.core):
                out["cell"] = norms(cell_gradients(model.core, batch.x, hidden))
        out["input"] = norms(input_gradients(model, batch.x, loss_of_hidden))
    return out


def has_hidden_profile(core: RecurrentCore) -> bool:
    """Whether the exact ||dL/dh_t|| can be taken: every core but a sequence core that takes
    no ``perturbation``."""
    return not isinstance(core, SequenceCore) or core.exact_hidden


def has_cell_profile(core: RecurrentCore) -> bool:
    """Whether ||dL/dc_t|| can be taken: the built-in LSTM."""
    return isinstance(core, TorchCore) and core.mode == "lstm"


def cell_gradients(core: TorchCore, x: Tensor, hidden_grads: Tensor) -> Tensor:
    """dL/dc_t ``[B, T, H]`` of the top LSTM layer, exactly, from the exact total dL/dh_t.

    c_t reaches the loss through h_t = o_t ⊙ tanh(c_t) and through c_{t+1} = f_{t+1} ⊙ c_t +
    i_{t+1} ⊙ g_{t+1}; the gates of step t+1 read h_t, never c_t (no peepholes). So
    dL/dc_t = dL/dh_t ⊙ o_t ⊙ (1 − tanh²(c_t)) + f_{t+1} ⊙ dL/dc_{t+1}: a backward scan over
    gates recomputed along the trajectory, whichever path (probe or loop) gave dL/dh_t."""
    steps = stepper(core, x)
    states = trajectory(steps)  # (h, c), each [T + 1, B, H]
    params = [p.detach() for p in core.layer_params(core.num_layers - 1)]
    length, batch = steps.inputs.shape[1], steps.inputs.shape[0]
    with torch.no_grad():
        # a step reads only (x_t, s_{t-1}): the gates of every step in one batched call
        gates = builtin_gates(
            "lstm",
            params,
            steps.inputs.transpose(0, 1).reshape(length * batch, -1),
            tuple(s[:-1].reshape(length * batch, -1) for s in states),
        )
        forget = gates["f"].view(length, batch, -1)
        outer = (gates["o"] * (1 - gates["tanh_c"].square())).view(length, batch, -1)
        grads = [hidden_grads[:, -1] * outer[-1]]
        for t in range(length - 2, -1, -1):
            grads.append(torch.addcmul(hidden_grads[:, t] * outer[t], forget[t + 1], grads[-1]))
    return torch.stack(grads[::-1], dim=1)


def input_gradients(model: RecurrentModel, x: Tensor, loss_of_hidden: HiddenLoss) -> Tensor:
    """dL/dx_t ``[B, T, I]``: one backward to a copy of the inputs (no weight gradients)."""
    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss_of_hidden(model.core(inputs)), inputs)
    return grad


@functools.singledispatch
def hidden_gradients(
    core: RecurrentCore, x: Tensor, loss_of_hidden: HiddenLoss, method: str | None = None
) -> Tensor:
    """dL/dh_t ``[B, T, H]`` of the top layer, exactly. Dispatches on the core's type."""
    raise TypeError(f"no gradient profile for core type {type(core).__name__}")


@hidden_gradients.register
def _cell_core(
    core: CellCore, x: Tensor, loss_of_hidden: HiddenLoss, method: str | None = None
) -> Tensor:
    batch, steps = x.shape[:2]
    perturbation = torch.zeros(
        steps, batch, core.hidden_size, device=x.device, dtype=x.dtype, requires_grad=True
    )
    with torch.enable_grad():
        hidden = core(x, perturbation=perturbation)
        (grad,) = torch.autograd.grad(loss_of_hidden(hidden), perturbation)
    return grad.transpose(0, 1)


@hidden_gradients.register
def _sequence_core(
    core: SequenceCore, x: Tensor, loss_of_hidden: HiddenLoss, method: str | None = None
) -> Tensor:
    perturbation = torch.zeros(
        *x.shape[:2], core.hidden_size, device=x.device, dtype=x.dtype, requires_grad=True
    )
    with torch.enable_grad():
        hidden = core(x, perturbation=perturbation)
        (grad,) = torch.autograd.grad(loss_of_hidden(hidden), perturbation)
    return grad


# --- fused built-in cores ----------------------------------------------------------------------

# torch.<mode>(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
# batch_first): the functional form behind nn.RNN/LSTM/GRU, so the probe runs the same kernel.
_FUSED_FUNCTIONS: dict[str, Callable[..., tuple[Tensor, ...]]] = {
    "rnn_tanh": torch.rnn_tanh,
    "rnn_relu": torch.rnn_relu,
    "lstm": torch.lstm,
    "gru": torch.gru,
}


def _initial_state(core: TorchCore, batch: int, layers: int, like: Tensor) -> Tensor | tuple:
    h0 = torch.zeros(layers, batch, core.hidden_size, device=like.device, dtype=like.dtype)
    return (h0, h0.clone()) if core.mode == "lstm" else h0


def _fused(core: TorchCore, inputs: Tensor, params: list[Tensor], layers: int) -> Tensor:
    # train=True: cuDNN implements the RNN backward only for training-mode forward passes.
    function = _FUSED_FUNCTIONS[core.mode]
    hx = _initial_state(core, inputs.shape[0], layers, inputs)
    with warnings.catch_warnings():
        # The probe's weights are built per call, so cuDNN packs them itself (one small copy);
        # its "not part of single contiguous chunk" warning is expected here.
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single")
        return function(inputs, hx, params, True, layers, 0.0, True, False, True)[0]


def _top_layer_input(core: TorchCore, x: Tensor) -> Tensor:
    """The input sequence of the top layer (the lower layers' outputs; no gradient needed)."""
    if core.num_layers == 1:
        return x
    lower = [p.detach() for k in range(core.num_layers - 1) for p in core.layer_params(k)]
    with torch.no_grad():
        return _fused(core, x, lower, core.num_layers - 1)


def default_profile_method(device_type: str, mode: str, hidden_size: int) -> str:
    """The faster exact path for a built-in core: the loop on the CPU except the LSTM below
    hidden 128, the fused probe on GPUs (measured: docs/performance.md, section 3)."""
    if device_type != "cpu" or (mode == "lstm" and hidden_size < 128):
        return "probe"
    return "loop"


@hidden_gradients.register
def _torch_core(
    core: TorchCore, x: Tensor, loss_of_hidden: HiddenLoss, method: str | None = None
) -> Tensor:
    method = method or default_profile_method(x.device.type, core.mode, core.hidden_size)
    if method not in _TORCH_CORE_METHODS:
        raise ValueError(
            f"profile method: expected one of {sorted(_TORCH_CORE_METHODS)}, got {method!r}"
        )
    return _TORCH_CORE_METHODS[method](core, x, loss_of_hidden)


def _loop(core: TorchCore, x: Tensor, loss_of_hidden: HiddenLoss) -> Tensor:
    """The top layer unrolled over its functional cell, a zero perturbation added to each h_t:
    the perturbation's gradient is dL/dh_t, all steps in one backward pass. The weights are
    detached, so the backward computes no weight gradients."""
    inputs = _top_layer_input(core, x)
    params = [p.detach() for p in core.layer_params(core.num_layers - 1)]
    batch, steps = inputs.shape[:2]
    perturbation = torch.zeros(
        steps, batch, core.hidden_size, device=x.device, dtype=x.dtype, requires_grad=True
    )
    with torch.enable_grad():
        hidden = unroll(core.mode, inputs, params, perturbation)
        (grad,) = torch.autograd.grad(loss_of_hidden(hidden), perturbation)
    return grad.transpose(0, 1)


def _probe(core: TorchCore, x: Tensor, loss_of_hidden: HiddenLoss) -> Tensor:
    """The fused kernel run on ``[u_t, p_t]`` (see the module docstring)."""
    inputs = _top_layer_input(core, x)
    w_ih, w_hh, b_ih, b_hh = (p.detach() for p in core.layer_params(core.num_layers - 1))
    hidden_size = core.hidden_size
    batch, steps = inputs.shape[:2]
    zeros = torch.zeros(batch, steps, hidden_size, device=x.device, dtype=x.dtype)
    gru = core.mode == "gru"
    probe = zeros.clone().requires_grad_(True)
    candidate_probe = zeros.clone().requires_grad_(True) if gru else None
    if gru:
        # Columns [W_ih | W_hh for r,z (0 for n) | I for n only]; gate order is (r, z, n).
        gates_r_z = w_hh.clone()
        gates_r_z[2 * hidden_size :] = 0
        identity_n = torch.zeros(3 * hidden_size, hidden_size, device=x.device, dtype=x.dtype)
        identity_n[2 * hidden_size :] = torch.eye(hidden_size, device=x.device, dtype=x.dtype)
        weight = torch.cat([w_ih, gates_r_z, identity_n], dim=1)
        probes = torch.cat([inputs, probe, candidate_probe], dim=-1)  # type: ignore[list-item]
    else:
        weight = torch.cat([w_ih, w_hh], dim=1)
        probes = torch.cat([inputs, probe], dim=-1)
    with torch.enable_grad():
        hidden = _fused(core, probes, [weight, w_hh, b_ih, b_hh], 1)
        wrt = [hidden, probe] + ([candidate_probe] if candidate_probe is not None else [])
        grads = torch.autograd.grad(loss_of_hidden(hidden), wrt, allow_unused=True)
    direct = _zero_if_none(grads[0], zeros)
    through_recurrence = _zero_if_none(grads[1], zeros)
    # dL/dh_t = direct[t] + (gradient arriving from step t+1 through W_hh) = probe.grad[t+1]
    shifted = torch.zeros_like(direct)
    shifted[:, :-1] = through_recurrence[:, 1:]
    if not gru:
        return direct + shifted
    hidden = hidden.detach()
    candidate = _zero_if_none(grads[2], zeros)
    return _gru_scan(hidden, inputs, w_ih, w_hh, b_ih, b_hh, direct + shifted, candidate)


def _gru_scan(
    hidden: Tensor,
    inputs: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    partial: Tensor,
    candidate_grad: Tensor,
) -> Tensor:
    """Adds the two GRU paths an input probe misses: ``W_hn^T (r_t * dn_t)`` and the
    ``z_t * h_{t-1}`` shortcut (a backward scan). All tensors ``[B, T, ...]``."""
    hidden_size = hidden.shape[-1]
    previous = torch.cat([torch.zeros_like(hidden[:, :1]), hidden[:, :-1]], dim=1)
    from_input = inputs @ w_ih.T + b_ih
    from_hidden = previous @ w_hh.T + b_hh
    reset = torch.sigmoid(from_input[..., :hidden_size] + from_hidden[..., :hidden_size])
    update = torch.sigmoid(
        from_input[..., hidden_size : 2 * hidden_size]
        + from_hidden[..., hidden_size : 2 * hidden_size]
    )
    w_hn = w_hh[2 * hidden_size :]
    # contribution to dL/dh_{t-1} from step t's candidate, stored at index t-1
    via_candidate = (reset * candidate_grad) @ w_hn
    local = partial.clone()
    local[:, :-1] += via_candidate[:, 1:]
    # dL/dh_{t-1} = local[t-1] + z_t * dL/dh_t: one fused addcmul per step, time-major so each
    # step reads and writes contiguous memory (the scan is the only sequential part).
    local_tm = local.transpose(0, 1).contiguous()
    update_tm = update.transpose(0, 1).contiguous()
    out = torch.empty_like(local_tm)
    out[-1] = local_tm[-1]
    for t in range(local_tm.shape[0] - 2, -1, -1):
        torch.addcmul(local_tm[t], update_tm[t + 1], out[t + 1], out=out[t])
    return out.transpose(0, 1)


def _zero_if_none(grad: Tensor | None, zeros: Tensor) -> Tensor:
    return zeros if grad is None else grad


_TORCH_CORE_METHODS: dict[str, Callable[[TorchCore, Tensor, HiddenLoss], Tensor]] = {
    "probe": _probe,
    "loop": _loop,
}
