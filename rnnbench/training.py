"""The one training loop, shared by every task and architecture, and the run record it produces.

Per step: sample -> forward -> loss -> backward -> pre-clip global gradient norm -> divergence
check -> clip -> optimizer step. Clipping sits between backward and step; clipping before
backward (as locuslab/TCN ``copymem_test.py`` does) clips nothing.

A non-finite loss or gradient norm ends the run with status ``diverged`` at that step (data, not
a crash); an exception becomes status ``error`` with its message. Either way the sweep goes on.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnbench.config import ClipSpec, RunConfig, TrainSettings
from rnnbench.gradients import gradient_norms_through_time, summarize_profile
from rnnbench.memory import memory_probe
from rnnbench.models import RecurrentModel, make_model
from rnnbench.registry import Registry
from rnnbench.tasks import Batch, Task

# --- optimizers and clipping: registries ---------------------------------------------------

OptimizerFactory = Callable[[Iterable[nn.Parameter], TrainSettings], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
OPTIMIZERS.add("adam", lambda p, s: torch.optim.Adam(p, lr=s.lr, weight_decay=s.weight_decay))
OPTIMIZERS.add(
    "rmsprop",
    lambda p, s: torch.optim.RMSprop(p, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay),
)
OPTIMIZERS.add(
    "sgd",
    lambda p, s: torch.optim.SGD(p, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay),
)

#: clip(params, threshold, total_norm) clips the params' .grad in place and returns a 0-d bool
#: tensor: was anything clipped? (torch's clip functions take the *parameters*, not the grads:
#: handing them gradient tensors, whose own .grad is None, silently clips nothing.)
Clipper = Callable[[list[nn.Parameter], float, Tensor], Tensor]


def _clip_none(params: list[nn.Parameter], threshold: float, total_norm: Tensor) -> Tensor:
    return torch.zeros((), dtype=torch.bool, device=total_norm.device)


def _clip_norm(params: list[nn.Parameter], threshold: float, total_norm: Tensor) -> Tensor:
    # Pascanu, Mikolov & Bengio 2013, Alg. 1 ("rescale"): g <- g * threshold / ||g||; reuses the
    # norm already computed for the record instead of computing it a second time.
    torch.nn.utils.clip_grads_with_norm_(params, threshold, total_norm)
    return total_norm > threshold


def _clip_value(params: list[nn.Parameter], threshold: float, total_norm: Tensor) -> Tensor:
    largest = torch.stack([p.grad.abs().max() for p in params if p.grad is not None]).max()
    torch.nn.utils.clip_grad_value_(params, threshold)
    return largest > threshold


CLIPPERS: Registry[Clipper] = Registry("clip")
CLIPPERS.add("none", _clip_none)
CLIPPERS.add("norm", _clip_norm)
CLIPPERS.add("value", _clip_value)


# --- seeds ----------------------------------------------------------------------------------


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from named parts: runs and data streams never share a generator state."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))


def evaluation_set(config: RunConfig, task: Task) -> Batch:
    """The fixed held-out set that judges ``solved``: the same for every seed and architecture
    of a task, and drawn from a stream no training seed uses."""
    return task.sample(config.diagnostics.eval_size, generator("eval", task.name, task.params()))


# --- environment ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = out.stdout.strip()
    # Outside a checkout (an installed wheel, a copied tree) git prints nothing or "HEAD".
    return (
        revision if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision) else None
    )


def environment(device: str) -> dict[str, Any]:
    from rnnbench import __version__

    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor()
    return {
        "rnnbench": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "device_name": name or platform.machine(),
        "threads": torch.get_num_threads(),
        "git_revision": _git_revision(),
        "pid": os.getpid(),
    }


# --- the loop ------------------------------------------------------------------------------


def _downsample(values: np.ndarray, points: int, reduce: Callable[..., Any]) -> dict[str, list]:
    """At most ``points`` (step, value) pairs; each point reduces one bucket of steps (mean for
    the loss, max for the gradient norm so spikes stay visible)."""
    n = len(values)
    if n == 0:
        return {"step": [], "value": []}
    size = max(1, math.ceil(n / points))
    steps, reduced = [], []
    for start in range(0, n, size):
        bucket = values[start : start + size]
        steps.append(min(start + size, n) - 1)
        with np.errstate(invalid="ignore"):
            reduced.append(float(reduce(bucket)))
    return {"step": steps, "value": reduced}


def _checkpoint_steps(steps: int, checkpoints: int) -> frozenset[int]:
    """Init (0), ``checkpoints`` evenly spaced steps, and the end (``steps``)."""
    return frozenset(round(i * steps / (checkpoints + 1)) for i in range(checkpoints + 2))


def _evaluate(model: RecurrentModel, task: Task, data: Batch, chunk: int) -> dict[str, float]:
    device = next(model.parameters()).device
    with torch.no_grad():
        outputs = [model(x.to(device)).cpu() for x in data.x.split(chunk)]
    return task.metrics(torch.cat(outputs), data)


def _profile(
    model: RecurrentModel, task: Task, batch: Batch, step: int, metrics: dict[str, float]
) -> dict[str, Any]:
    norms = gradient_norms_through_time(model, task, batch).cpu()
    summary = summarize_profile(norms, task.recurrence_window())
    return {
        "step": step,
        "norms": norms.tolist(),
        "grad_factor": summary.factor,
        "grad_span": summary.span,
        "below_floor": summary.below_floor,
        **{f"eval_{k}": v for k, v in metrics.items()},
    }


def _param_stats(model: nn.Module, step: int) -> dict[str, Any]:
    """Per-parameter gradient and weight norms (the seeds' ``grad_stats``)."""
    return {
        "step": step,
        "grad_norm": {
            n: (float(p.grad.norm()) if p.grad is not None else None)
            for n, p in model.named_parameters()
        },
        "weight_norm": {n: float(p.detach().norm()) for n, p in model.named_parameters()},
    }


def train_run(config: RunConfig, device: str = "cpu") -> dict[str, Any]:
    """Train one run and return its record (see :mod:`rnnbench.store` for the fields).

    Exceptions are not caught here; :func:`execute_run` turns them into ``error`` records.
    """
    started = time.perf_counter()
    # Vanishing gradients pass through the denormal range; without flush-to-zero a CPU step
    # was measured 9x slower (REFERENCE.md). Flushing puts the floor at ~1e-38.
    torch.set_flush_denormal(True)
    task = config.make_task()
    settings, diag = config.train, config.diagnostics
    model = make_model(
        config.arch,
        task,
        hidden_size=config.model.hidden_size,
        num_layers=config.model.num_layers,
        init=config.model.init,
        init_gain=config.model.init_gain,
        seed=derive_seed("model", config.seed),
    ).to(device)
    model.train()  # cuDNN's RNN backward needs training mode; there is no dropout to switch
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS.get(settings.optimizer, "train.optimizer")(params, settings)
    clip = ClipSpec.parse(config.clip)
    clipper = CLIPPERS.get(clip.mode, "grid.clip")
    train_data = generator("train", config.seed)
    eval_data = evaluation_set(config, task)
    profile_batch = task.sample(
        diag.profile_batch_size, generator("profile", task.name, task.params())
    ).to(device)
    checkpoints = _checkpoint_steps(settings.steps, diag.checkpoints)
    chunk = max(settings.batch_size, 256)

    losses = torch.full((settings.steps,), math.nan, device=device)
    norms = torch.full((settings.steps,), math.nan, device=device)
    clipped = torch.zeros(settings.steps, dtype=torch.bool, device=device)
    # On a GPU a host sync per step would serialise the pipeline; check finiteness in blocks and
    # locate the first bad step afterwards. On the CPU a per-step check costs nothing.
    check_every = 1 if device == "cpu" else 50
    profiles: list[dict[str, Any]] = []
    param_stats: list[dict[str, Any]] = []
    diverged_step: int | None = None
    done = 0
    for step in range(settings.steps):
        if step in checkpoints:
            profiles.append(
                _profile(model, task, profile_batch, step, _evaluate(model, task, eval_data, chunk))
            )
        batch = task.sample(settings.batch_size, train_data).to(device)
        loss = task.loss(model(batch.x), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in params if p.grad is not None]
        total = torch.nn.utils.get_total_norm(grads)
        losses[step] = loss.detach()
        norms[step] = total
        done = step + 1
        if (step + 1) % check_every == 0 or step + 1 == settings.steps:
            window = slice(step - step % check_every, step + 1)  # the steps since the last check
            finite = torch.isfinite(losses[window]) & torch.isfinite(norms[window])
            if not bool(finite.all()):
                diverged_step = window.start + int((~finite).nonzero()[0, 0])
                done = diverged_step
                break
        if step in checkpoints:
            param_stats.append(_param_stats(model, step))
        clipped[step] = clipper(params, clip.threshold, total)
        optimizer.step()

    status = "ok" if diverged_step is None else "diverged"
    record: dict[str, Any] = {
        **_identity(config, device),
        "status": status,
        "steps": done,
        "baseline_loss": task.baseline_loss,
        "diverged_step": diverged_step,
    }
    loss_values = losses[:done].double().cpu().numpy()
    norm_values = norms[: done + (diverged_step is not None)].double().cpu().numpy()
    record["curves"] = {
        "loss": _downsample(loss_values, diag.curve_points, np.mean),
        "grad_norm": _downsample(norm_values, diag.curve_points, np.max),
    }
    finite_norms = norm_values[np.isfinite(norm_values)]
    record["max_grad_norm"] = float(finite_norms.max()) if finite_norms.size else math.nan
    record["clipped_fraction"] = float(clipped[:done].float().mean()) if done else 0.0
    if status == "ok":
        final = _evaluate(model, task, eval_data, chunk)
        profiles.append(_profile(model, task, profile_batch, settings.steps, final))
        probe = memory_probe(
            model,
            task,
            generator("probe", task.name, task.params()),
            max_lag=diag.probe_max_lag,
            size=diag.probe_size,
            ridge=diag.probe_ridge,
        )
        record.update(
            final_loss=final["loss"],
            normalized_loss=final["normalized_loss"],
            accuracy=final["accuracy"],
            solved=task.solved(final),
            memory_capacity=probe.memory_capacity,
            probe_span=probe.probe_span,
            probe={"r2": probe.r2},
        )
    else:
        record.update(
            final_loss=math.nan,
            normalized_loss=math.nan,
            accuracy=math.nan,
            solved=False,
            probe={"r2": []},
        )
    first, last = profiles[0], profiles[-1]
    record.update(
        grad_factor_init=first["grad_factor"],
        grad_span_init=first["grad_span"],
        grad_factor=last["grad_factor"],
        grad_span=last["grad_span"],
        profiles=profiles,
        param_stats=param_stats,
        metrics={
            "trajectory_hash": hashlib.sha256(
                loss_values.tobytes() + norm_values.tobytes()
            ).hexdigest(),
            "parameters": sum(p.numel() for p in params),
        },
    )
    record["wall_s"] = time.perf_counter() - started
    return record


def _identity(config: RunConfig, device: str) -> dict[str, Any]:
    """The fields that say which run a record is, and where it ran."""
    return {
        "run_id": config.run_id,
        "sweep": config.sweep,
        "task": config.task,
        "arch": config.arch,
        "seq_len": config.seq_len,
        "clip": config.clip,
        "seed": config.seed,
        "config": config.to_dict(),
        "env": environment(device),
    }


def error_record(
    config: RunConfig, exc: BaseException, wall_s: float, device: str
) -> dict[str, Any]:
    """The record of a run that raised: status ``error`` and the message, retried on re-run."""
    return {
        **_identity(config, device),
        "status": "error",
        "steps": 0,
        "error": f"{exc.__class__.__name__}: {exc}",
        "wall_s": wall_s,
        "metrics": {"traceback": "".join(traceback.format_exception(exc))[-4000:]},
    }


def execute_run(config: RunConfig, device: str = "cpu") -> dict[str, Any]:
    """:func:`train_run`, with any exception recorded as an ``error`` run instead of raised."""
    started = time.perf_counter()
    try:
        return train_run(config, device)
    except Exception as exc:
        return error_record(config, exc, time.perf_counter() - started, device)
