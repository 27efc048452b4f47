"""The one training loop, shared by every task and architecture, and the run record it produces.

Per step: sample -> forward -> loss -> backward -> pre-clip global gradient norm -> divergence
check -> clip -> optimizer step. Clipping sits between backward and step; clipping before
backward (as locuslab/TCN ``copymem_test.py`` does) clips nothing.

Diagnostics (gradient profiles and per-parameter norms at checkpoints, the memory probe at the
end) run between steps and never touch the training state or its random streams, so switching
them off (``[diagnostics] enabled = false``) leaves the trajectory bit-identical.

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
from rnnbench.models import RecurrentModel, make_model, train_impl
from rnnbench.numerics import flush_denormals, full_float32
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


def _check_interval(device: str) -> int:
    """Steps per host read of the per-step loss and norm (and divergence check): on a GPU each
    read is a sync that would serialise the pipeline, so 50; on the CPU a read is free, so 1."""
    return 1 if device == "cpu" else 50


def _to_host(values: list[Tensor]) -> list[float]:
    """0-d tensors as Python floats. On a GPU one stacked transfer (one sync) for the block; on
    the CPU ``.item()`` each, a plain load (~1 us a value, against ~65 us a step measured for
    index writes into a preallocated tensor plus an isfinite check on it)."""
    if values[0].device.type == "cpu":
        return [v.item() for v in values]
    return [float(v) for v in torch.stack(values).tolist()]


def _first_nonfinite(losses: list[float], norms: list[float]) -> int | None:
    for i, (loss, norm) in enumerate(zip(losses, norms, strict=True)):
        if not (math.isfinite(loss) and math.isfinite(norm)):
            return i
    return None


def trajectory_hash(losses: np.ndarray, norms: np.ndarray) -> str:
    """The record's ``metrics.trajectory_hash``: SHA-256 of the float64 per-step losses and
    pre-clip gradient norms. Equal hashes mean the same trajectory, bit for bit."""
    return hashlib.sha256(
        np.asarray(losses, dtype=np.float64).tobytes()
        + np.asarray(norms, dtype=np.float64).tobytes()
    ).hexdigest()


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


def build_model(config: RunConfig, task: Task, device: str = "cpu") -> RecurrentModel:
    """The run's model with its initial weights (seeded from the run's seed alone), running
    the implementation ``model.impl`` resolves to on ``device`` (``model.core.impl``)."""
    impl = train_impl(
        config.model.impl,
        torch.device(device).type,
        config.arch,
        config.train.batch_size,
        config.model.hidden_size,
        task.total_len,
    )
    return make_model(
        config.arch,
        task,
        hidden_size=config.model.hidden_size,
        num_layers=config.model.num_layers,
        init=config.model.init,
        init_gain=config.model.init_gain,
        seed=derive_seed("model", config.seed),
        impl=impl,
    ).to(device)


def train_run(config: RunConfig, device: str = "cpu") -> dict[str, Any]:
    """Train one run and return its record (see :mod:`rnnbench.store` for the fields).

    The run computes in IEEE float32 with denormals flushed (:mod:`rnnbench.numerics`).
    Exceptions are not caught here; :func:`execute_run` turns them into ``error`` records.
    """
    started = time.perf_counter()
    flush_denormals()
    with full_float32():
        return _train(config, device, started)


def _train(config: RunConfig, device: str, started: float) -> dict[str, Any]:
    task = config.make_task()
    settings, diag = config.train, config.diagnostics
    model = build_model(config, task, device)
    model.train()  # cuDNN's RNN backward needs training mode; there is no dropout to switch
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS.get(settings.optimizer, "train.optimizer")(params, settings)
    clip = ClipSpec.parse(config.clip)
    clipper = CLIPPERS.get(clip.mode, "grid.clip")
    train_data = generator("train", config.seed)
    eval_data = evaluation_set(config, task)
    chunk = max(settings.batch_size, 256)
    profile_batch = task.sample(
        diag.profile_batch_size, generator("profile", task.name, task.params())
    ).to(device)
    checkpoints = (
        _checkpoint_steps(settings.steps, diag.checkpoints) if diag.enabled else frozenset()
    )

    # The per-step loss and pre-clip norm reach the host in blocks of ``check_every`` steps and
    # are checked for divergence there; the first bad step of a block is located afterwards.
    check_every = _check_interval(device)
    block_losses: list[Tensor] = []
    block_norms: list[Tensor] = []
    loss_log: list[float] = []
    norm_log: list[float] = []
    clip_flags: list[Tensor] = []  # 0-d bools, left on the device until the run ends
    profiles: list[dict[str, Any]] = []
    param_stats: list[dict[str, Any]] = []
    diverged_step: int | None = None
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
        block_losses.append(loss.detach())
        block_norms.append(total)
        if len(block_losses) == check_every or step + 1 == settings.steps:
            losses, norms = _to_host(block_losses), _to_host(block_norms)
            block_losses.clear()
            block_norms.clear()
            bad = _first_nonfinite(losses, norms)
            if bad is not None:
                diverged_step = len(loss_log) + bad
                loss_log += losses[:bad]
                norm_log += norms[: bad + 1]  # the record keeps the norm that diverged
                # In blocks (GPU) the bad step shows only now: drop the checkpoints taken of
                # the non-finite model since, so the record is what per-step checking writes.
                profiles = [p for p in profiles if p["step"] <= diverged_step]
                param_stats = [p for p in param_stats if p["step"] < diverged_step]
                break
            loss_log += losses
            norm_log += norms
        if step in checkpoints:
            param_stats.append(_param_stats(model, step))
        clip_flags.append(clipper(params, clip.threshold, total))
        optimizer.step()
    done = len(loss_log)

    status = "ok" if diverged_step is None else "diverged"
    record: dict[str, Any] = {
        **_identity(config, device),
        "status": status,
        "steps": done,
        "baseline_loss": task.baseline_loss,
        "diverged_step": diverged_step,
    }
    loss_values = np.asarray(loss_log, dtype=np.float64)
    norm_values = np.asarray(norm_log, dtype=np.float64)
    record["curves"] = {
        "loss": _downsample(loss_values, diag.curve_points, np.mean),
        "grad_norm": _downsample(norm_values, diag.curve_points, np.max),
    }
    finite_norms = norm_values[np.isfinite(norm_values)]
    record["max_grad_norm"] = float(finite_norms.max()) if finite_norms.size else math.nan
    # float32 mean on the device, as the record has always computed it
    record["clipped_fraction"] = (
        float(torch.stack(clip_flags[:done]).float().mean()) if done else 0.0
    )
    if status == "ok":
        final = _evaluate(model, task, eval_data, chunk)
        record.update(
            final_loss=final["loss"],
            normalized_loss=final["normalized_loss"],
            accuracy=final["accuracy"],
            solved=task.solved(final),
        )
        if diag.enabled:
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
                memory_capacity=probe.memory_capacity,
                probe_span=probe.probe_span,
                probe={"r2": probe.r2},
            )
        else:
            record.update(memory_capacity=math.nan, probe_span=None, probe={"r2": []})
    else:
        record.update(
            final_loss=math.nan,
            normalized_loss=math.nan,
            accuracy=math.nan,
            solved=False,
            probe={"r2": []},
        )
    # Without diagnostics there are no profiles: the profile-derived fields are missing values.
    first = profiles[0] if profiles else None
    last = profiles[-1] if profiles else None
    record.update(
        grad_factor_init=first["grad_factor"] if first else math.nan,
        grad_span_init=first["grad_span"] if first else None,
        grad_factor=last["grad_factor"] if last else math.nan,
        grad_span=last["grad_span"] if last else None,
        profiles=profiles,
        param_stats=param_stats,
        metrics={
            "trajectory_hash": trajectory_hash(loss_values, norm_values),
            "impl": model.core.impl,
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
