"""Plain-PyTorch references the benchmarks measure rnnbench against, in the same process, and
the helpers that time them side by side (a shared, noisy machine: only ratios of interleaved
measurements mean anything)."""

from __future__ import annotations

import dataclasses
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import rnnbench
from rnnbench.config import ClipSpec, RunConfig
from rnnbench.tasks import Batch, Task, task_for
from rnnbench.training import build_model, generator, trajectory_hash


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


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), for the header of every table."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(device: str = "cpu") -> str:
    if device.startswith("cuda"):
        return f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return (
        f"device {cpu_name()} ({torch.get_num_threads()} torch threads, "
        f"{torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}"
    )


@dataclass
class PlainResult:
    """The per-step values of a plain run, left as tensors: reading them inside the loop
    would cost a host read per step that the reference does not pay."""

    losses: list[torch.Tensor]
    norms: list[torch.Tensor]

    @property
    def trajectory_hash(self) -> str:
        values = torch.stack(self.losses).double().cpu().numpy()
        grad = torch.stack(self.norms).double().cpu().numpy() if self.norms else np.zeros(0)
        return trajectory_hash(values, grad)

    def loss_values(self) -> list[float]:
        return [float(v) for v in torch.stack(self.losses).double().cpu()]


def plain_training(config: RunConfig, device: str = "cpu") -> Callable[[], PlainResult]:
    """The run ``config`` describes, as a researcher writes it: the same model and weights, the
    same optimizer and batches (the run's own training stream) as ``train_run``, nothing else:
    nn.X + linear head, zero_grad, backward, clip_grad_norm_ (if the config clips by norm),
    optimizer step. Always the fused ``nn.X``, whatever ``model.impl`` says: that is the
    researcher's script. Returns a function that trains a fresh model; its result's trajectory
    hash equals the rnnbench record's when both did the same work on the same kernel (computed
    when read, after the clock has stopped)."""
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, impl="fused"))
    task = task_for(config)
    clip = ClipSpec.parse(config.clip)
    if clip.mode not in ("none", "norm"):
        raise ValueError(f"plain_training: clip {config.clip!r} has no plain equivalent here")
    optimizers = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
    settings = config.train

    def train() -> PlainResult:
        model = build_model(config, task, device)
        optimizer = optimizers[settings.optimizer](model.parameters(), lr=settings.lr)
        data = generator("train", config.seed)
        losses: list[torch.Tensor] = []
        norms: list[torch.Tensor] = []
        for _ in range(settings.steps):
            batch = task.sample(settings.batch_size, data).to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss(model(batch.x), batch)
            loss.backward()
            if clip.mode == "norm":
                norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), clip.threshold))
            optimizer.step()
            losses.append(loss.detach())
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return PlainResult(losses, norms)

    return train


def interleaved(
    variants: dict[str, Callable[[], Any]], repeats: int, *, warmup: bool = True
) -> dict[str, list[tuple[float, Any]]]:
    """Run every variant ``repeats`` times, round-robin, rotating the order each round so drift
    in the machine's load (other jobs share it) hits every variant alike. Returns, per variant,
    (seconds, result) of each repeat. ``warmup`` runs each once first, untimed."""
    names = list(variants)
    if warmup:
        for name in names:
            variants[name]()
    out: dict[str, list[tuple[float, Any]]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            result = variants[name]()
            out[name].append((time.perf_counter() - start, result))
    return out


def median_ratio(num: list[tuple[float, Any]], den: list[tuple[float, Any]]) -> float:
    """Median over repeats of the paired ratio num/den (the same round of ``interleaved``)."""
    return statistics.median(a / b for (a, _), (b, _) in zip(num, den, strict=True))


def median_s(times: list[tuple[float, Any]]) -> float:
    return statistics.median(t for t, _ in times)


def load_line() -> str:
    """The 1/5/15-minute load averages: on a shared machine, the context every figure needs."""
    try:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load average unknown"
