"""The user-cell contract, checked before a sweep touches its store.

Each user cell is built for every parameter combination the sweep runs it with and stepped
twice on a batch of 2, in the calling process. A broken rule is one :class:`ConfigError` line
naming the cell and the rule (the CLI's exit 2), instead of the same exception deep inside
every run. The rules (:mod:`rnnbench.models.cells`):

* ``init_state`` returns a tuple of ``[B, H]`` tensors;
* ``forward`` returns a tuple, h first, shaped ``[B, H]``;
* h is what the next step reads. A cell that returns a readout as h (an output projection,
  say) while the recurrence runs through another state element gives an all-zero gradient
  profile that looks like a vanished gradient; it is refused. A memoryless cell, whose next
  state reads no state at all, is allowed (a control);
* ``init`` / ``init_gain`` act on the cell (:func:`rnnbench.models.model.make_model` writes a
  parametrized weight through its ``right_inverse``, or refuses).

A sequence core (:mod:`rnnbench.models.sequence`) is run once on ``[2, 4, I]``: its output must
be ``[B, T, H]``, and where it takes a perturbation, a perturbation of h_0 must change h_0 and
reach the later steps whenever the input at step 0 does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnbench.errors import ConfigError
from rnnbench.models.cells import CellCore
from rnnbench.models.model import make_model
from rnnbench.models.sequence import SequenceCore
from rnnbench.numerics import full_float32
from rnnbench.tasks import Task

_BATCH = 2


@dataclass(frozen=True)
class CellUse:
    """One way a sweep builds a user cell: what :func:`check_cell` needs."""

    arch: str
    params: tuple[tuple[str, Any], ...]
    task: Task
    hidden_size: int
    num_layers: int
    init: str
    init_gain: float


def check_cells(uses: Sequence[CellUse]) -> None:
    """:func:`check_cell` for each distinct use (the first broken rule raises)."""
    seen: set[tuple[Any, ...]] = set()
    for use in uses:
        key = (
            use.arch,
            repr(use.params),
            type(use.task),
            use.task.input_size,
            use.task.output_size,
            use.hidden_size,
            use.num_layers,
            use.init,
            use.init_gain,
        )
        if key not in seen:
            seen.add(key)
            check_cell(use)


def check_cell(use: CellUse) -> None:
    """Build the cell as a run would and step it twice; ConfigError on the first broken rule."""
    params = dict(use.params)
    shown = ", ".join(f"{k}={v!r}" for k, v in use.params)
    where = f"arch {use.arch!r}" + (f" ({shown})" if shown else "")
    try:
        model = make_model(
            use.arch,
            use.task,
            hidden_size=use.hidden_size,
            num_layers=use.num_layers,
            init=use.init,
            init_gain=use.init_gain,
            arch_params=params,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"{where}: building it raised {_exc(exc)}") from None
    # as a run computes (IEEE float32), on a generator of its own: the caller's state is kept
    with torch.random.fork_rng(devices=[]), torch.no_grad(), full_float32():
        torch.manual_seed(0)
        if isinstance(model.core, SequenceCore):
            _check_sequence(model.core, use.task.input_size, where)
        else:
            assert isinstance(model.core, CellCore)
            _check_cells(model.core, use, where)


def _check_cells(core: CellCore, use: CellUse, where: str) -> None:
    try:
        core.begin_sequence()
    except Exception as exc:
        raise ConfigError(f"{where}: begin_sequence() raised {_exc(exc)}") from None
    for layer, cell in enumerate(core.cells):
        inputs = use.task.input_size if layer == 0 else use.hidden_size
        _check_steps(cell, inputs, use.hidden_size, where)


def _exc(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def _state(value: Any, what: str, hidden: int, where: str) -> tuple[Tensor, ...]:
    if isinstance(value, Tensor) or not isinstance(value, tuple | list):
        raise ConfigError(
            f"{where}: {what} must return a tuple of [B, H] tensors with h first, got "
            f"{_describe(value)}; e.g. return (h,) or (h, c)"
        )
    if not value or not all(isinstance(v, Tensor) for v in value):
        raise ConfigError(f"{where}: {what} must return a tuple of tensors, got {_describe(value)}")
    h = value[0]
    if tuple(h.shape) != (_BATCH, hidden):
        raise ConfigError(
            f"{where}: {what} must return h first, shaped [B, H] = [{_BATCH}, {hidden}]; "
            f"got {list(h.shape)}"
        )
    for k, element in enumerate(value[1:], start=1):
        if element.ndim < 1 or element.shape[0] != _BATCH:
            raise ConfigError(
                f"{where}: {what} state[{k}] must have the batch first, shaped [B, ...]; "
                f"got {list(element.shape)}"
            )
    return tuple(value)


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a bare tensor {list(value.shape)}"
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of " + ", ".join(_describe(v) for v in value)
    return type(value).__name__


def _check_steps(cell: nn.Module, inputs: int, hidden: int, where: str) -> None:
    try:
        state = cell.init_state(_BATCH, torch.device("cpu"), torch.float32)  # type: ignore[operator]
    except Exception as exc:
        raise ConfigError(
            f"{where}: init_state(batch_size, device, dtype) raised {_exc(exc)}"
        ) from None
    state = _state(state, "init_state", hidden, where)
    x1, x2 = torch.randn(_BATCH, inputs), torch.randn(_BATCH, inputs)
    first = _step(cell, x1, state, hidden, where)
    base = _step(cell, x2, first, hidden, where)
    moves = [
        not all(
            torch.equal(a, b)
            for a, b in zip(base, _step(cell, x2, _nudge(first, k), hidden, where), strict=True)
        )
        for k in range(len(first))
    ]
    if not moves[0] and any(moves[1:]):
        other = next(k for k in range(1, len(moves)) if moves[k])
        raise ConfigError(
            f"{where}: forward's h (state[0]) is not what the next step reads: changing it "
            f"changes nothing, changing state[{other}] does. The cell returns a readout as h, "
            "and its gradient profile would read all zeros; return the recurrent state first "
            "and compute the readout from it"
        )


_STEPS = 4


def _run_core(core: SequenceCore, x: Tensor, where: str, **kwargs: Tensor) -> Tensor:
    try:
        out = core(x, **kwargs)
    except Exception as exc:
        raise ConfigError(f"{where}: forward(x, perturbation) raised {_exc(exc)}") from None
    want = (_BATCH, _STEPS, core.hidden_size)
    if not isinstance(out, Tensor) or tuple(out.shape) != want:
        got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(
            f"{where}: forward(x [B, T, I]) must return h [B, T, H] = {list(want)}; got {got}"
        )
    return out


def _check_sequence(core: SequenceCore, inputs: int, where: str) -> None:
    """A sequence core's rules: h shaped [B, T, H]; a perturbation of h_0, where the core
    takes one, reaches the later steps whenever the input at step 0 does (the recurrence
    carries it), so its gradient is the total dL/dh_t."""
    x = torch.randn(_BATCH, _STEPS, inputs)
    base = _run_core(core, x, where)
    if not core.exact_hidden:
        return
    nudge = torch.zeros(_BATCH, _STEPS, core.hidden_size)
    nudge[:, 0] = torch.randn(_BATCH, core.hidden_size)
    nudged = _run_core(core, x, where, perturbation=nudge)
    if torch.equal(nudged[:, 0], base[:, 0]):
        raise ConfigError(
            f"{where}: perturbation[:, t] must be added to h_t (the output at step t); at t = 0 "
            "it changed nothing"
        )
    moved_x = x.clone()
    moved_x[:, 0] += torch.randn(_BATCH, inputs)
    remembers = not torch.equal(_run_core(core, moved_x, where)[:, 1:], base[:, 1:])
    if remembers and torch.equal(nudged[:, 1:], base[:, 1:]):
        raise ConfigError(
            f"{where}: the perturbation of h_0 does not reach the later steps, though the "
            "input at step 0 does: add it to h_t before h_t feeds step t+1 (for a linear "
            "recurrence, to the drive b_t), or the hidden profile misses the recurrence"
        )


def _nudge(state: tuple[Tensor, ...], k: int) -> tuple[Tensor, ...]:
    out = list(state)
    out[k] = out[k] + torch.randn_like(out[k])
    return tuple(out)


def _step(
    cell: nn.Module, x: Tensor, state: tuple[Tensor, ...], hidden: int, where: str
) -> tuple[Tensor, ...]:
    try:
        out = cell(x, state)
    except Exception as exc:
        raise ConfigError(f"{where}: forward(x_t, state) raised {_exc(exc)}") from None
    out = _state(out, "forward", hidden, where)
    if len(out) != len(state):
        raise ConfigError(
            f"{where}: forward returned {len(out)} state tensors, init_state {len(state)}; "
            "they must match (the state a step returns is the next step's input)"
        )
    return out
