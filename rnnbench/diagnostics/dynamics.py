"""The dynamics of the top layer: exact Jacobians through time, the Lyapunov spectrum, and gate
saturation, measured along the trajectory a batch's inputs drive from the initial state.

Backpropagation through time multiplies one Jacobian J_t = ∂s_{t+1}/∂s_t per step, so the
gradient reaching k steps back is bounded by the product of their largest singular values, and
vanishes or explodes with it (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training
recurrent neural networks", sec. 2-3). Three views of that product:

* :func:`jacobian_singular_values`: the k largest singular values of every J_t, the median over
  the batch; :func:`jacobian_summary` reads the geometric mean of σ_1 and the fraction of
  steps with σ_1 > 1 inside a task's recurrence window.
* :func:`lyapunov_spectrum`: the asymptotic growth rates of the product itself, by the QR
  method of Benettin, Galgani, Giorgilli & Strelcyn 1980 ("Lyapunov characteristic exponents
  for smooth dynamical systems and for Hamiltonian systems", Meccanica 15): a frame Q is
  pushed through each J_t and re-orthonormalised, Q, R = qr(J_t Q), and the exponents are the
  mean log |diag R|. Engelken, Wolf & Abbott 2020 ("Lyapunov spectra of chaotic recurrent
  neural networks") compute RNN spectra this way, and Vogt et al. 2022 ("On Lyapunov exponents
  for RNNs: understanding information propagation using dynamical systems tools") read λ_1 > 0
  as exploding and λ_1 ≪ 0 as vanishing gradients. Products of many Jacobians are what the
  singular values of a single one cannot show (their directions need not align), and the
  spectrum is an asymptotic quantity: it is taken on a long trajectory with the task's own
  input statistics, :func:`driven_inputs`.
* :func:`saturation`: the fraction of sigmoid and tanh units whose slope is below 0.01, the
  units through which no gradient flows (the LSTM's mean forget gate beside: its c path's
  per-step factor).

The state s is the top layer's: for the LSTM (h, c), for a user cell every tensor of its state
tuple, for a sequence core its step state (:mod:`rnnbench.diagnostics.steppers` has the step
functions). A sequence core whose top layer defines no ``init_state`` + ``step`` has none of
these (:func:`has_step`).

**Cost** (hidden 64, batch 8, T = 60, one CPU thread): the Jacobians of the built-in cores are
in closed form (:class:`~rnnbench.diagnostics.steppers.GateJacobians`), so the QR method costs
16-48 ms on 200 steps and saturation 2-8 ms on a batch of 64; the singular values are bounded
below by LAPACK's symmetric eigensolver on every J_t Jᵀ_t: 35-40 ms for 472 problems of
64 x 64 (rnn, gru, the LSTM's ``part="hidden"``), ~180 ms for the LSTM's full (h, c) state,
128 x 128 (an SVD costs 1.6x that, float32 saves a third and loses σ_k's accuracy). User cells
take their Jacobians by a replicated backward, 3-10x slower.

Every measurement runs in eval mode (a dropout cell's Jacobian would be random otherwise) under
IEEE float32 (:func:`rnnbench.numerics.full_float32`), inside ``torch.random.fork_rng``, and
puts the model's modes back; it writes no parameter's ``.grad``. Singular values and the QR
method are computed in float64 from the float32 Jacobians.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from rnnbench.diagnostics.steppers import (
    CHUNK_BYTES,
    WORKING_COPIES,
    Jacobians,
    State,
    Step,
    Stepper,
    Tally,
    has_step,
    stepper,
    trajectory,
)
from rnnbench.errors import ConfigError
from rnnbench.models import RecurrentModel
from rnnbench.numerics import full_float32
from rnnbench.tasks import Batch, Task

__all__ = [
    "Saturation",
    "driven_inputs",
    "has_step",
    "jacobian_singular_values",
    "jacobian_summary",
    "lyapunov_spectrum",
    "saturation",
]

#: what the Jacobians are of: the whole state, or the first state tensor's own block
PARTS = ("state", "hidden")
#: the seed of the QR method's initial frame (a private generator: the caller's RNG is untouched)
_FRAME_SEED = 20_200_601


def jacobian_singular_values(
    model: RecurrentModel, task: Task, batch: Batch, k: int = 4, *, part: str = "state"
) -> Tensor:
    """The k largest singular values of J_t = ∂s_{t+1}/∂s_t for t in [0, T − 1), the median
    over the batch for each rank: float64 ``[T − 1, k]`` (T = ``batch.x.shape[1]``).

    ``part="state"``: the whole state (the LSTM's (h, c), 2H dims); ``part="hidden"``: the block
    ∂h_{t+1}/∂h_t of the first state tensor, the others held fixed. k is clipped to the state
    size. ``task`` is not read (the batch carries the inputs); it keeps the signature of the
    other diagnostics."""
    if part not in PARTS:
        raise ConfigError(f"part: expected one of {', '.join(PARTS)}, got {part!r}")
    _check_k(k)
    with _measuring(model, batch.x):
        steps = stepper(model.core, batch.x)
        states = trajectory(steps)
        width = _width(states, part == "hidden")
        k = min(k, width)
        values = [
            _top_singular_values(jac.gram(), k).view(n, -1, k)
            for n, jac in _jacobians(steps, states, part == "hidden")
        ]
    if not values:
        return torch.zeros(0, k, dtype=torch.float64, device=batch.x.device)
    return _median(torch.cat(values))


def _median(values: Tensor) -> Tensor:
    """The median over dim 1, numpy's: the mean of the two middle values for an even count
    (``torch.median`` takes the lower one; ``torch.quantile`` refuses 16M elements)."""
    ordered = values.sort(dim=1).values
    middle = ordered.shape[1]
    return (ordered[:, (middle - 1) // 2] + ordered[:, middle // 2]) / 2


def lyapunov_spectrum(
    model: RecurrentModel, task: Task, batch: Batch, k: int = 8, *, warmup: int = 0
) -> Tensor:
    """The k largest Lyapunov exponents (nats per step, descending), float64 ``[k]``, by the QR
    method along the trajectory ``batch.x`` drives (module docstring): Q_0 a fixed random
    orthonormal ``[S, k]``; per step Q, R = qr(J_t Q); after ``warmup`` steps (while Q turns
    towards the most expanding directions) the log |diag R| are summed; divided by the number
    of summed steps; the mean over the batch. k is clipped to the state size S."""
    _check_k(k)
    jacobians = batch.x.shape[1] - 1
    if not 0 <= warmup < jacobians:
        raise ConfigError(
            f"warmup: must lie in [0, T - 1) = [0, {jacobians}) for a batch of T = "
            f"{jacobians + 1} steps (T - 1 Jacobians), got {warmup}"
        )
    with _measuring(model, batch.x):
        steps = stepper(model.core, batch.x)
        states = trajectory(steps)
        width = _width(states, False)
        frame = _initial_frame(width, min(k, width), batch.x.device)
        frame = frame.expand(batch.x.shape[0], *frame.shape)
        total = frame.new_zeros(batch.x.shape[0], frame.shape[-1])
        t, size = 0, batch.x.shape[0]
        for n, jac in _jacobians(steps, states, False):
            for step in range(n):
                frame, r = torch.linalg.qr(jac.apply(frame, slice(step * size, (step + 1) * size)))
                if t >= warmup:
                    total += r.diagonal(dim1=-2, dim2=-1).abs().log()
                t += 1
    exponents = total.mean(0) / (jacobians - warmup)
    return exponents.sort(descending=True).values


def driven_inputs(task: Task, steps: int, size: int, generator: torch.Generator) -> Tensor:
    """``[size, steps, input_size]``: independent task sequences (``task.sample(size,
    generator).x``) end to end, cut to ``steps``: a trajectory long enough for the Lyapunov
    spectrum (a T = 5 task sequence is not), with the task's own input statistics."""
    if steps < 1 or size < 1:
        raise ConfigError(f"driven_inputs: need steps >= 1 and size >= 1, got {steps}, {size}")
    pieces, length = [], 0
    while length < steps:
        pieces.append(task.sample(size, generator).x)
        length += pieces[-1].shape[1]
    return torch.cat(pieces, dim=1)[:, :steps]


@dataclass(frozen=True)
class Saturation:
    """Per step t in [0, T): the fraction of the top layer's sigmoid units (over the batch)
    with σ'(z) = s(1 − s) < 0.01, of its tanh units with 1 − tanh² < 0.01 (NaN at every step
    where the architecture has none), and the built-in LSTM's mean forget gate (None for every
    other architecture). All float64 ``[T]``."""

    gate: Tensor
    tanh: Tensor
    forget: Tensor | None


def saturation(model: RecurrentModel, task: Task, batch: Batch) -> Saturation:
    """Gate and tanh saturation of the top layer along the trajectory ``batch.x`` drives.

    Built-in cores: from their gate equations (sigmoid units LSTM i, f, o / GRU r, z; tanh
    units LSTM g and tanh(c_t) / GRU n / the tanh RNN's h). A user cell or a sequence core's
    step: every sigmoid and tanh output the step computes with one row per batch row (an
    activation of a weight alone is not a unit), whatever the gate it is."""
    with _measuring(model, batch.x), torch.no_grad():
        steps = stepper(model.core, batch.x)
        states = trajectory(steps)
        batch_size, length = steps.inputs.shape[:2]
        tally = Tally(length, batch_size, batch.x.device)
        row = (steps.inputs.shape[2] + _width(states, False)) * batch.x.element_size()
        chunk = max(1, CHUNK_BYTES // (batch_size * row * WORKING_COPIES))
        for start in range(0, length, chunk):
            stop = min(start + chunk, length)
            x, state = _rows(steps, states, start, stop)
            if steps.activations is None:
                _captured(steps.step, x, state, tally, start)
            else:
                steps.activations(x, state, tally, start)
    return Saturation(tally.fraction("gate"), tally.fraction("tanh"), tally.forget)


def jacobian_summary(sigma: Tensor, window: tuple[int, int]) -> tuple[float, float]:
    """(the geometric mean of σ_1, the fraction of Jacobians with σ_1 > 1) over the Jacobians
    inside ``window`` = [start, stop) of steps (``task.recurrence_window()``): J_t maps step t
    to t + 1, so those are J_t for t in [start, stop − 1). NaN, NaN if there are none."""
    start, stop = max(window[0], 0), max(window[1] - 1, 0)
    top = (sigma[:, 0] if sigma.dim() == 2 else sigma)[start:stop].double()
    if top.numel() == 0:
        return math.nan, math.nan
    return float(top.log().mean().exp()), float((top > 1).double().mean())


# --- helpers -------------------------------------------------------------------------------------


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k: the number of singular values or exponents must be >= 1, got {k!r}")


@contextmanager
def _measuring(model: RecurrentModel, x: Tensor) -> Iterator[None]:
    """Eval mode, IEEE float32, autograd on, and the caller's RNG state, modes and settings
    back afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), full_float32(), torch.enable_grad():
            model.eval()
            yield
    finally:
        for module, training in modes:
            module.training = training


def _width(states: State, hidden_only: bool) -> int:
    """The state size S (``states`` as :func:`trajectory` gives them)."""
    sizes = [s[0].reshape(s.shape[1], -1).shape[1] for s in states]
    return sizes[0] if hidden_only else sum(sizes)


def _rows(stepper: Stepper, states: State, start: int, stop: int) -> tuple[Tensor, State]:
    """The (x_t, s_{t−1}) of steps [start, stop) as time-major rows ``[(stop − start) B, ...]``:
    ``states[j][t]`` is the state step t reads."""
    x = stepper.inputs[:, start:stop].transpose(0, 1)
    rows = x.reshape(-1, x.shape[-1])
    return rows, tuple(s[start:stop].reshape(-1, *s.shape[2:]) for s in states)


def _jacobians(
    stepper: Stepper, states: State, hidden_only: bool
) -> Iterator[tuple[int, Jacobians]]:
    """J_t for t = 0, 1, ..., T − 2 in float64 blocks of n steps (rows time-major, n·B of them;
    J_t reads x_{t+1} and the state after step t), each about :data:`CHUNK_BYTES` when formed."""
    batch_size, length = stepper.inputs.shape[:2]
    width = _width(states, hidden_only)
    chunk = max(1, CHUNK_BYTES // (batch_size * width * width * 8))
    for start in range(1, length, chunk):
        stop = min(start + chunk, length)
        x, state = _rows(stepper, states, start, stop)
        yield stop - start, stepper.jacobians(x, state, hidden_only).double()


def _top_singular_values(gram: Tensor, k: int) -> Tensor:
    """The k largest singular values of each J from J Jᵀ ``[..., S, S]`` (float64), ``[..., k]``:
    the square roots of its top eigenvalues (a symmetric eigenproblem costs 0.6x an SVD here,
    and in float64 σ_k stays accurate far below float32's rounding of J itself)."""
    eigenvalues = torch.linalg.eigvalsh(gram)
    return eigenvalues[..., -k:].flip(-1).clamp_min(0).sqrt()


def _initial_frame(width: int, k: int, device: torch.device) -> Tensor:
    """Q_0: a fixed random orthonormal ``[S, k]`` in float64 from a private generator."""
    g = torch.Generator().manual_seed(_FRAME_SEED)
    q, _ = torch.linalg.qr(torch.randn(width, k, generator=g, dtype=torch.float64))
    return q.to(device)


#: every way to compute a sigmoid or a tanh, in place or not (F.sigmoid/F.tanh call the Tensor
#: methods; listed for a torch where they dispatch themselves)
_KINDS: dict[Any, str] = {
    **dict.fromkeys(
        (torch.sigmoid, torch.sigmoid_, Tensor.sigmoid, Tensor.sigmoid_, F.sigmoid), "gate"
    ),
    torch.special.expit: "gate",
    **dict.fromkeys((torch.tanh, torch.tanh_, Tensor.tanh, Tensor.tanh_, F.tanh), "tanh"),
}


class _Capture(TorchFunctionMode):
    """Tallies each sigmoid / tanh output with one row per (step, batch) row of the block; an
    activation of a weight (a decay σ(a) shared by every row) is not a unit and is skipped."""

    def __init__(self, tally: Tally, rows: int, start: int) -> None:
        super().__init__()
        self.tally, self.rows, self.start = tally, rows, start

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        kind = _KINDS.get(func)
        if kind and isinstance(out, Tensor) and out.dim() > 0 and out.shape[0] == self.rows:
            self.tally.add(kind, out, self.start)
        return out


def _captured(step: Step, x: Tensor, state: State, tally: Tally, start: int) -> None:
    """Run ``step`` on a block of time-major rows and tally what its sigmoids and tanhs give:
    each output read by a ``TorchFunctionMode`` and counted at once, before the step can
    modify it in place."""
    with torch.no_grad(), _Capture(tally, x.shape[0], start):
        step(x, state)
