"""The top layer of every core as a step function, for the dynamics diagnostics.

Backpropagation through time multiplies one Jacobian J_t = ∂s_{t+1}/∂s_t per step (Pascanu,
Mikolov & Bengio 2013, sec. 2), so what :mod:`rnnbench.diagnostics.dynamics` measures is a
property of the state transition, not of the whole forward. A :class:`Stepper` exposes that
transition for the top layer of a core: its input sequence (the lower layers' outputs, computed
once under ``no_grad`` and then held fixed, as the gradient profile does), its initial state,
and a ``step(x_t, state) -> state`` on state tuples whose batch rows are independent of each
other (a row-wise step is what lets every row of every J_t be taken in one batched backward,
below).

* ``TorchCore`` (``rnn``, ``rnn_relu``, ``lstm``, ``gru``): ``torch.*_cell`` on the top layer's
  detached parameters, the same equations as the fused kernels; state (h,) or, for the LSTM,
  (h, c). Their Jacobians and gate activations are also written in closed form from the same
  gate equations (:func:`builtin_jacobian`, :class:`GateJacobians`): exact like the generic
  path below, without its S-fold replicated step, and applied to the QR method's frame without
  being formed (measured, hidden 64, batch 8, T = 60, one thread: the LSTM's 472 Jacobians took
  173 ms by replication; their closed form's coefficients take 2 ms).
* ``CellCore``: the top cell's ``forward``, after ``begin_sequence``; state = the tuple
  ``init_state`` returns.
* ``SequenceCore``: the top layer's own ``init_state`` + ``step``, where it defines them (the
  built-in ``mingru`` and ``lru`` do; :mod:`rnnbench.models.sequence`).

**Exact Jacobians for any step** (:func:`autograd_jacobian`): a step reads only (x_t, s_t), so
each row (x_t, s_t) is replicated S times (S = the state size), the replicated state is made a
leaf, and one ``torch.autograd.grad`` of Σ_i out[row_i, i] gives row i of J_t in replica i:
every row of every Jacobian in one backward, with no finite differences, and gradients only
w.r.t. the states (no parameter's ``.grad`` is written). Rows are taken in chunks of about
:data:`CHUNK_BYTES`.

A stepper without closed-form activations has its sigmoids and tanhs read while its step runs
(:mod:`rnnbench.diagnostics.dynamics`, :func:`~rnnbench.diagnostics.dynamics.saturation`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnbench.errors import ConfigError
from rnnbench.models import CellCore, RecurrentCore, TorchCore, unroll
from rnnbench.models.cores import CELL_FUNCTIONS
from rnnbench.models.sequence import SequenceCore

State = tuple[Tensor, ...]
Step = Callable[[Tensor, State], State]

#: about how much memory one chunk of replicated rows (or of Jacobians) may take
CHUNK_BYTES = 256 * 2**20
#: tensors of a row's width that one replicated step is assumed to keep for its backward
WORKING_COPIES = 16
#: a unit is saturated where its slope is below this: σ'(z) = s(1 − s), 1 − tanh²
SATURATED = 0.01


class Tally:
    """Saturated units per step, counted as the activations are computed (``[T]`` each)."""

    def __init__(self, steps: int, batch: int, device: torch.device) -> None:
        self.batch = batch
        zeros = functools.partial(torch.zeros, steps, dtype=torch.float64, device=device)
        self.saturated = {"gate": zeros(), "tanh": zeros()}
        self.units = {"gate": zeros(), "tanh": zeros()}
        self.forget: Tensor | None = None

    def add(self, kind: str, values: Tensor, start: int) -> None:
        """``values`` ``[n * B, ...]`` (time-major rows) of a sigmoid (``"gate"``) or a tanh,
        for the n steps from ``start``."""
        steps = len(values) // self.batch
        v = values.detach().reshape(steps, -1)
        slope = v * (1 - v) if kind == "gate" else 1 - v * v
        self.saturated[kind][start : start + steps] += (slope < SATURATED).sum(1)
        self.units[kind][start : start + steps] += v.shape[1]

    def add_forget(self, forget: Tensor, start: int) -> None:
        steps = len(forget) // self.batch
        if self.forget is None:
            self.forget = torch.zeros_like(self.units["gate"])
        self.forget[start : start + steps] = forget.double().reshape(steps, -1).mean(1)

    def fraction(self, kind: str) -> Tensor:
        """Saturated / units per step: NaN at every step where no unit of that kind exists."""
        return self.saturated[kind] / self.units[kind]


Activations = Callable[[Tensor, State, Tally, int], None]


class Jacobians:
    """The Jacobians J = ∂step(x, s)/∂s of a block of N rows, ``[N, S, S]``, as the measurements
    read them: as J Jᵀ (for the singular values), or applied to a frame (the QR method)."""

    def __init__(self, dense: Tensor) -> None:
        self._dense = dense

    def double(self) -> Jacobians:
        return Jacobians(self._dense.double())

    def gram(self) -> Tensor:
        """J Jᵀ ``[N, S, S]``."""
        return self._dense @ self._dense.mT

    def apply(self, frame: Tensor, rows: slice) -> Tensor:
        """J @ frame for the rows ``rows`` (``frame`` ``[n, S, k]``)."""
        return self._dense[rows] @ frame


ClosedForm = Callable[[Tensor, State, bool], Jacobians]


@dataclass(frozen=True)
class Stepper:
    """The top layer of a core as a step: ``step(inputs[:, t], s_{t-1}) = s_t`` from
    ``initial``; ``activations``, where known, tallies a block of steps' gates from their
    equations, and ``closed`` gives the Jacobians without autograd."""

    inputs: Tensor  # [B, T, I], the top layer's input sequence (detached)
    initial: State
    step: Step
    activations: Activations | None = None  # None: captured from the step's sigmoids and tanhs
    closed: ClosedForm | None = None

    def jacobians(self, x: Tensor, state: State, hidden_only: bool) -> Jacobians:
        """J = ∂step(x, s)/∂s of each row; with ``hidden_only`` the block ∂h/∂h of the first
        state tensor, the others held fixed."""
        if self.closed is not None:
            return self.closed(x, state, hidden_only)
        return Jacobians(autograd_jacobian(self.step, x, state, hidden_only))


def has_step(core: RecurrentCore) -> bool:
    """Whether the dynamics diagnostics can be taken: every core but a sequence core whose top
    layer lacks ``init_state`` + ``step``."""
    if isinstance(core, SequenceCore):
        return all(
            callable(getattr(type(core.layers[-1]), n, None)) for n in ("init_state", "step")
        )
    return isinstance(core, TorchCore | CellCore)


def trajectory(stepper: Stepper) -> State:
    """The states along the inputs, no grad: each ``[T + 1, B, d]``, index 0 the initial state,
    index t + 1 the state after step t."""
    state = stepper.initial
    states = [state]
    with torch.no_grad():
        for x_t in stepper.inputs.unbind(1):
            state = tuple(stepper.step(x_t, state))
            states.append(state)
    return tuple(torch.stack(parts) for parts in zip(*states, strict=True))


@functools.singledispatch
def stepper(core: RecurrentCore, x: Tensor) -> Stepper:
    """The top layer of ``core`` as a :class:`Stepper` driven by ``x`` ``[B, T, I]``."""
    raise ConfigError(
        f"{type(core).__name__} exposes no step/init_state, so its Jacobians through time, "
        "Lyapunov spectrum and saturation cannot be taken"
    )


@stepper.register
def _torch_core(core: TorchCore, x: Tensor) -> Stepper:
    inputs = x
    with torch.no_grad():
        for layer in range(core.num_layers - 1):
            inputs = unroll(core.mode, inputs, [p.detach() for p in core.layer_params(layer)])
    params = [p.detach() for p in core.layer_params(core.num_layers - 1)]
    h0 = x.new_zeros(x.shape[0], core.hidden_size)
    return Stepper(
        inputs=inputs,
        initial=(h0, h0.clone()) if core.mode == "lstm" else (h0,),
        step=functools.partial(builtin_step, core.mode, params),
        activations=functools.partial(builtin_activations, core.mode, params),
        closed=functools.partial(builtin_jacobian, core.mode, params),
    )


@stepper.register
def _cell_core(core: CellCore, x: Tensor) -> Stepper:
    core.begin_sequence()
    cells: list[Any] = list(core.cells)
    top = cells[-1]
    batch = x.shape[0]
    inputs = x
    if len(cells) > 1:
        states = [tuple(cell.init_state(batch, x.device, x.dtype)) for cell in cells[:-1]]
        outputs = []
        with torch.no_grad():
            for x_t in x.unbind(1):
                inp = x_t
                for k, cell in enumerate(cells[:-1]):
                    states[k] = tuple(cell(inp, states[k]))
                    inp = states[k][0]
                outputs.append(inp)
        inputs = torch.stack(outputs, dim=1)

    def step(x_t: Tensor, state: State) -> State:
        return tuple(top(x_t, state))

    initial = tuple(top.init_state(batch, x.device, x.dtype))
    return Stepper(inputs, initial, step)


@stepper.register
def _sequence_core(core: SequenceCore, x: Tensor) -> Stepper:
    if not has_step(core):
        name = type(core.layers[-1]).__name__
        raise ConfigError(
            f"{name} exposes no step/init_state, so its Jacobians through time, Lyapunov "
            "spectrum and saturation cannot be taken; define init_state(batch_size, device, "
            "dtype) and step(x_t, state) on it (rnnbench.models.sequence)"
        )
    top: Any = core.layers[-1]
    with torch.no_grad():
        for layer in core.layers[:-1]:
            x = layer(x)

    def step(x_t: Tensor, state: State) -> State:
        return tuple(top.step(x_t, state))

    initial = tuple(top.init_state(x.shape[0], x.device, x.dtype))
    return Stepper(x, initial, step)


# --- any step: autograd --------------------------------------------------------------------------


def autograd_jacobian(step: Step, x: Tensor, state: State, hidden_only: bool) -> Tensor:
    """Every row's J ``[N, S, S]`` by the replicated backward (module docstring), in chunks."""
    sizes = [s[0].numel() for s in state]  # a state tensor's size per row
    width = sizes[0] if hidden_only else sum(sizes)
    per_row = width * (width + x.shape[1]) * x.element_size() * WORKING_COPIES
    chunk = max(1, CHUNK_BYTES // per_row)
    return torch.cat(
        [
            _replicated(
                step, x[a : a + chunk], tuple(s[a : a + chunk] for s in state), width, hidden_only
            )
            for a in range(0, x.shape[0], chunk)
        ]
    )


def _replicated(step: Step, x: Tensor, state: State, width: int, hidden_only: bool) -> Tensor:
    rows = x.shape[0]
    leaves = tuple(
        s.detach().repeat_interleave(width, 0).requires_grad_(j == 0 or not hidden_only)
        for j, s in enumerate(state)
    )
    wrt = leaves[:1] if hidden_only else leaves
    with torch.enable_grad():
        out = step(x.repeat_interleave(width, 0), leaves)
        flat = out[0] if hidden_only else torch.cat([o.reshape(len(o), -1) for o in out], 1)
        # replica i of a row keeps only output i: its gradient is row i of that row's J
        picked = flat.reshape(rows, width, width).diagonal(dim1=1, dim2=2).sum()
        if not picked.requires_grad:  # nothing the step computes reads a state or a weight
            return x.new_zeros(rows, width, width)
        grads = torch.autograd.grad(picked, wrt, allow_unused=True)
    parts = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt, strict=True)]
    return torch.cat([p.reshape(len(p), -1) for p in parts], 1).reshape(rows, width, width)


# --- the built-in cores in closed form ----------------------------------------------------------


def builtin_step(mode: str, params: list[Tensor], x: Tensor, state: State) -> State:
    """One step of ``torch.<mode>_cell``: state (h,) or (h, c)."""
    cell = CELL_FUNCTIONS[mode]
    if mode == "lstm":
        return tuple(cell(x, (state[0], state[1]), *params))
    return (cell(x, state[0], *params),)


def builtin_gates(mode: str, params: list[Tensor], x: Tensor, state: State) -> dict[str, Tensor]:
    """The gate values of one step by torch's equations (gate order LSTM i, f, g, o; GRU r, z,
    n; both biases), with what the Jacobian needs."""
    w_ih, w_hh, b_ih, b_hh = params
    from_x, from_h = F.linear(x, w_ih, b_ih), F.linear(state[0], w_hh, b_hh)
    if mode == "lstm":
        i, f, g, o = (from_x + from_h).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = torch.addcmul(f * state[1], i, g)
        return {"i": i, "f": f, "g": g, "o": o, "c": state[1], "tanh_c": torch.tanh(c)}
    if mode == "gru":
        x_r, x_z, x_n = from_x.chunk(3, dim=1)
        h_r, h_z, h_n = from_h.chunk(3, dim=1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        return {"r": r, "z": z, "n": torch.tanh(x_n + r * h_n), "h_n": h_n, "h": state[0]}
    pre = from_x + from_h
    return {"h": torch.tanh(pre) if mode == "rnn_tanh" else torch.relu(pre), "pre": pre}


def builtin_activations(
    mode: str, params: list[Tensor], x: Tensor, state: State, tally: Tally, start: int
) -> None:
    """Sigmoid units: LSTM i, f, o / GRU r, z. Tanh units: LSTM g and tanh(c_t) / GRU n / the
    tanh RNN's h. The ReLU RNN has neither. The LSTM's mean forget gate per step beside."""
    gates = builtin_gates(mode, params, x, state)
    kinds = {
        "lstm": (("i", "f", "o"), ("g", "tanh_c")),
        "gru": (("r", "z"), ("n",)),
        "rnn_tanh": ((), ("h",)),
        "rnn_relu": ((), ()),
    }[mode]
    for kind, names in zip(("gate", "tanh"), kinds, strict=True):
        for name in names:
            tally.add(kind, gates[name], start)
    if mode == "lstm":
        tally.add_forget(gates["f"], start)


class GateJacobians(Jacobians):
    """A built-in step's Jacobians from its gates, never formed unless asked for: row block r
    of J is Σ_a diag(mix[:, r, a]) W_a on the h columns (W_a the gate blocks of W_hh) plus
    ``diag_h``, and ``diag_c`` on the c columns (the LSTM's), each ``[N, R, H]``. Applying it to
    a frame costs one matmul with W_hh, where a formed J costs S² per row (the LSTM's QR
    method: 47 ms instead of 193 ms at hidden 64, batch 8, 200 steps)."""

    def __init__(
        self, mix: Tensor, w_hh: Tensor, diag_h: Tensor | None, diag_c: Tensor | None
    ) -> None:
        self.mix, self.w_hh, self.diag_h, self.diag_c = mix, w_hh, diag_h, diag_c

    def double(self) -> GateJacobians:
        diag_h, diag_c = (None if d is None else d.double() for d in (self.diag_h, self.diag_c))
        return GateJacobians(self.mix.double(), self.w_hh.double(), diag_h, diag_c)

    def _h_columns(self) -> Tensor:
        """∂(every row block)/∂h ``[N, R·H, H]``."""
        rows, blocks, _, size = self.mix.shape[0], *self.mix.shape[1:]
        out = self.mix.new_zeros(rows, blocks, size, size)
        for a, w_a in enumerate(self.w_hh.view(-1, size, size)):
            out.addcmul_(self.mix[:, :, a, :, None], w_a)
        if self.diag_h is not None:
            out.diagonal(dim1=-2, dim2=-1).add_(self.diag_h)
        return out.view(rows, -1, size)

    def gram(self) -> Tensor:
        """J Jᵀ = M Mᵀ + C Cᵀ (M the h columns, C the diagonal c blocks): half the products;
        for one gate block without diagonals (the vanilla RNNs) diag(e) W Wᵀ diag(e), no
        product per row at all."""
        if self.mix.shape[1:3] == (1, 1) and self.diag_h is None and self.diag_c is None:
            e = self.mix[:, 0, 0]
            return e[:, :, None] * (self.w_hh @ self.w_hh.T) * e[:, None, :]
        h_columns = self._h_columns()
        gram = h_columns @ h_columns.mT
        if self.diag_c is not None:
            rows, blocks, size = self.diag_c.shape
            view = gram.view(rows, blocks, size, blocks, size)
            for r in range(blocks):
                for q in range(blocks):
                    view[:, r, :, q].diagonal(dim1=-2, dim2=-1).add_(
                        self.diag_c[:, r] * self.diag_c[:, q]
                    )
        return gram

    def apply(self, frame: Tensor, rows: slice) -> Tensor:
        mix = self.mix[rows]
        n, blocks, gates, size = mix.shape
        h_part = frame[:, :size]  # [n, H, k]
        mixed = (self.w_hh @ h_part).view(n, 1, gates, size, -1)  # W_a q for every gate a
        out = (mix[..., None] * mixed).sum(2)  # [n, R, H, k]
        if self.diag_h is not None:
            out += self.diag_h[rows, :, :, None] * h_part[:, None]
        if self.diag_c is not None:
            out += self.diag_c[rows, :, :, None] * frame[:, None, size:]
        return out.reshape(n, blocks * size, -1)


def builtin_jacobian(
    mode: str, params: list[Tensor], x: Tensor, state: State, hidden_only: bool
) -> GateJacobians:
    """∂s_{t+1}/∂s_t of a built-in step in closed form, from its gates."""
    w_hh = params[1]
    g = builtin_gates(mode, params, x, state)
    if mode in ("rnn_tanh", "rnn_relu"):
        slope = 1 - g["h"] ** 2 if mode == "rnn_tanh" else (g["pre"] > 0).to(x.dtype)
        return GateJacobians(slope[:, None, None], w_hh, None, None)
    if mode == "gru":  # h' = (1 − z) n + z h,  n = tanh(x_n + r ⊙ (W_hn h + b_hn))
        r, z, n = g["r"], g["z"], g["n"]
        dn = (1 - z) * (1 - n * n)
        e = torch.stack([dn * g["h_n"] * r * (1 - r), (g["h"] - n) * z * (1 - z), dn * r], 1)
        return GateJacobians(e[:, None], w_hh, z[:, None], None)
    # the LSTM: c' = f c + i g,  h' = o tanh(c')
    i, f, cand, o, tanh_c = g["i"], g["f"], g["g"], g["o"], g["tanh_c"]
    beta = o * (1 - tanh_c * tanh_c)  # ∂h'/∂c'
    to_c = torch.stack([cand * i * (1 - i), g["c"] * f * (1 - f), i * (1 - cand * cand)], 1)
    to_c = torch.cat([to_c, torch.zeros_like(to_c[:, :1])], 1)  # o does not reach c'
    to_h = beta[:, None] * to_c
    to_h[:, 3] = tanh_c * o * (1 - o)
    if hidden_only:
        return GateJacobians(to_h[:, None], w_hh, None, None)
    return GateJacobians(torch.stack([to_h, to_c], 1), w_hh, None, torch.stack([beta * f, f], 1))
