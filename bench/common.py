"""Plain-PyTorch references the benchmarks measure rnnbench against, in the same process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import rnnbench
from rnnbench.tasks import Batch, Task


def plain_step(
    model: nn.Module, task: Task, batch: Batch, optimizer: torch.optim.Optimizer
) -> Callable[[], None]:
    """One training step as a researcher writes it: forward, backward, clip_grad_norm_, Adam."""

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        task.loss(model(batch.x), batch).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def retain_grad_loop(
    model: rnnbench.models.RecurrentModel, task: Task, batch: Batch
) -> Callable[[], torch.Tensor]:
    """The obvious exact profile: an nn.*Cell loop with retain_grad on every h_t."""
    rnn, mode = model.core.rnn, model.core.mode
    cell_type = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}.get(mode, nn.RNNCell)
    extra = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    cell = cell_type(rnn.input_size, rnn.hidden_size, **extra).to(batch.x.device)
    cell.load_state_dict({k[:-3]: v for k, v in rnn.state_dict().items() if k.endswith("_l0")})

    def profile() -> torch.Tensor:
        n, hidden = batch.x.shape[0], rnn.hidden_size
        zeros = batch.x.new_zeros(n, hidden)
        state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] = (
            (zeros, zeros) if mode == "lstm" else zeros
        )
        hs = []
        for x_t in batch.x.unbind(1):
            state = cell(x_t, state)
            h = state[0] if isinstance(state, tuple) else state
            h.retain_grad()
            hs.append(h)
        task.dependency_loss(model.head(torch.stack(hs, 1)), batch).backward()
        return torch.stack([h.grad.norm() for h in hs])  # type: ignore[union-attr]

    return profile


def median_seconds(fn: Callable[[], object], repeats: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
