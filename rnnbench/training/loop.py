"""The one training loop, shared by every task and architecture.

Per step: sample -> forward -> loss -> backward -> pre-clip global gradient norm -> divergence
check -> clip -> optimizer step.

Diagnostics (gradient profiles and per-parameter norms at checkpoints, the memory probe at the
end) run between steps and never touch the training state or its random streams, so switching
them off (``[diagnostics] enabled = false``) leaves the trajectory bit-identical.

A non-finite loss or gradient norm ends the run with status ``diverged`` at that step (data, not
a crash); an exception becomes status ``error`` with its message. Either way the sweep goes on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnbench.config.schema import ClipSpec, DiagnosticSettings, RunConfig
from rnnbench.diagnostics.dynamics import driven_inputs
from rnnbench.diagnostics.memory import memory_probe
from rnnbench.models import RecurrentModel, make_model, train_impl
from rnnbench.numerics import flushed_denormals, full_float32
from rnnbench.results.record import RunRecord
from rnnbench.tasks import Batch, Task, task_for
from rnnbench.training import checkpoints
from rnnbench.training.optim import CLIPPERS, OPTIMIZERS, Clipper
from rnnbench.training.record import downsample, error_record, identity, trajectory_hash
from rnnbench.training.seeds import data_stream, derive_seed, evaluation_set, generator


def _checkpoint_steps(steps: int, checkpoints: int) -> frozenset[int]:
    """Init (0), ``checkpoints`` evenly spaced steps, and the end (``steps``)."""
    return frozenset(round(i * steps / (checkpoints + 1)) for i in range(checkpoints + 2))


def _check_interval(device: str) -> int:
    """Steps per host read of the per-step loss and norm (and divergence check): on a GPU each
    read is a sync that would serialise the pipeline, so 50; on the CPU a read is free, so 1."""
    return 1 if device == "cpu" else 50


def _to_host(values: list[Tensor]) -> list[float]:
    """0-d tensors as Python floats. On a GPU one stacked transfer (one sync) for the block; on
    the CPU ``.item()`` each, a plain load (measured cheaper than index writes into a
    preallocated tensor plus an isfinite check on it)."""
    if values[0].device.type == "cpu":
        return [v.item() for v in values]
    return [float(v) for v in torch.stack(values).tolist()]


def _first_nonfinite(losses: list[float], norms: list[float]) -> int | None:
    for i, (loss, norm) in enumerate(zip(losses, norms, strict=True)):
        if not (math.isfinite(loss) and math.isfinite(norm)):
            return i
    return None


def _evaluate(model: RecurrentModel, task: Task, data: Batch, chunk: int) -> dict[str, float]:
    device = next(model.parameters()).device
    with torch.no_grad():
        outputs = [model(x.to(device)).cpu() for x in data.x.split(chunk)]
    return task.metrics(torch.cat(outputs), data)


def _param_stats(model: nn.Module, step: int) -> dict[str, Any]:
    """Per-parameter gradient and weight norms (the record's ``param_stats``)."""
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
        arch_params=config.arch_params,
    ).to(device)


@dataclass
class _Run:
    """What one run trains with: built once, before the first step."""

    config: RunConfig
    device: str
    task: Task
    model: RecurrentModel
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    clip: ClipSpec
    clipper: Clipper
    train_data: torch.Generator
    eval_data: Batch
    profile_batch: Batch
    checkpoints: frozenset[int]
    chunk: int  # evaluation batch size
    driven: Batch | None  # the Lyapunov spectrum's long driven trajectory

    @classmethod
    def build(cls, config: RunConfig, device: str) -> _Run:
        task = task_for(config)
        settings, diag = config.train, config.diagnostics
        model = build_model(config, task, device)
        model.train()  # cuDNN's RNN backward needs training mode; there is no dropout to switch
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = OPTIMIZERS.get(settings.optimizer, "train.optimizer")(params, settings)
        clip = ClipSpec.parse(config.clip)
        profile_stream = data_stream("profile", task)
        return cls(
            config=config,
            device=device,
            task=task,
            model=model,
            params=params,
            optimizer=optimizer,
            clip=clip,
            clipper=CLIPPERS.get(clip.mode, "grid.clip"),
            train_data=generator("train", config.seed),
            eval_data=evaluation_set(config, task),
            profile_batch=task.sample(diag.profile_batch_size, profile_stream).to(device),
            checkpoints=(
                _checkpoint_steps(settings.steps, diag.checkpoints) if diag.enabled else frozenset()
            ),
            chunk=max(settings.batch_size, 256),
            driven=_driven(task, diag, device),
        )

    def evaluate(self) -> dict[str, float]:
        return _evaluate(self.model, self.task, self.eval_data, self.chunk)

    def profile(self, step: int, metrics: dict[str, float]) -> dict[str, Any]:
        diag = self.config.diagnostics
        ends = step in (0, self.config.train.steps)
        return checkpoints.profile_entry(
            self.model,
            self.task,
            self.profile_batch,
            step,
            metrics,
            diag,
            dynamics=ends or diag.dynamics_at_checkpoints,
        )

    def lyapunov(self) -> list[float] | None:
        return checkpoints.lyapunov(self.model, self.task, self.driven, self.config.diagnostics)


def _driven(task: Task, diag: DiagnosticSettings, device: str) -> Batch | None:
    """``jacobian_batch`` task sequences, concatenated to ``lyapunov_steps`` steps (from their
    own data stream: the same for every run of the task), or None where the spectrum is off."""
    if not (diag.enabled and diag.lyapunov):
        return None
    x = driven_inputs(
        task, diag.lyapunov_steps, diag.jacobian_batch, data_stream("lyapunov", task)
    )
    return Batch(x, x.new_zeros(x.shape[0])).to(device)


@dataclass
class _Trajectory:
    """What the loop has recorded so far. The per-step loss and pre-clip norm reach the host
    in blocks of ``check_every`` steps and are checked for divergence there; the first bad
    step of a block is located afterwards."""

    check_every: int
    losses: list[float] = field(default_factory=list)
    norms: list[float] = field(default_factory=list)
    clip_flags: list[Tensor] = field(default_factory=list)  # 0-d bools, left on the device
    profiles: list[dict[str, Any]] = field(default_factory=list)
    #: the Lyapunov spectra (init, end) and the task probe (the record's ``dynamics``)
    dynamics: dict[str, Any] = field(default_factory=dict)
    param_stats: list[dict[str, Any]] = field(default_factory=list)
    diverged_step: int | None = None
    _block_losses: list[Tensor] = field(default_factory=list)
    _block_norms: list[Tensor] = field(default_factory=list)

    def log(self, loss: Tensor, norm: Tensor, last: bool) -> bool:
        """Record one step's loss and norm; False once the run has diverged."""
        self._block_losses.append(loss)
        self._block_norms.append(norm)
        if len(self._block_losses) < self.check_every and not last:
            return True
        losses, norms = _to_host(self._block_losses), _to_host(self._block_norms)
        self._block_losses.clear()
        self._block_norms.clear()
        bad = _first_nonfinite(losses, norms)
        if bad is None:
            self.losses += losses
            self.norms += norms
            return True
        self.diverged_step = step = len(self.losses) + bad
        self.losses += losses[:bad]
        self.norms += norms[: bad + 1]  # the record keeps the norm that diverged
        # In blocks (GPU) the bad step shows only now: drop the checkpoints taken of the
        # non-finite model since, so the record is what per-step checking writes.
        self.profiles = [p for p in self.profiles if p["step"] <= step]
        self.param_stats = [p for p in self.param_stats if p["step"] < step]
        return False


def _step(run: _Run, trajectory: _Trajectory, step: int) -> bool:
    """One optimizer step (with the checkpoint's diagnostics first); False if it diverged."""
    if step in run.checkpoints:
        trajectory.profiles.append(run.profile(step, run.evaluate()))
        if step == 0:
            trajectory.dynamics["lyapunov_init"] = run.lyapunov()
    batch = run.task.sample(run.config.train.batch_size, run.train_data).to(run.device)
    loss = run.task.loss(run.model(batch.x), batch)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    total = torch.nn.utils.get_total_norm([p.grad for p in run.params if p.grad is not None])
    if not trajectory.log(loss.detach(), total, last=step + 1 == run.config.train.steps):
        return False
    if step in run.checkpoints:
        trajectory.param_stats.append(_param_stats(run.model, step))
    trajectory.clip_flags.append(run.clipper(run.params, run.clip.threshold, total))
    run.optimizer.step()
    if run.model.core.has_after_step:  # a user cell's constraints (models.cells)
        run.model.core.after_step()
    return True


def train_run(config: RunConfig, device: str = "cpu") -> RunRecord:
    """Train one run and return its record (:class:`~rnnbench.results.record.RunRecord`).

    The run computes in IEEE float32 with denormals flushed (:mod:`rnnbench.numerics`); the
    caller's settings of both are put back afterwards.
    Exceptions are not caught here; :func:`execute_run` turns them into ``error`` records.
    """
    started = time.perf_counter()
    with flushed_denormals(), full_float32():
        run = _Run.build(config, device)
        trajectory = _Trajectory(check_every=_check_interval(device))
        for step in range(config.train.steps):
            if not _step(run, trajectory, step):
                break
        fields = _outcome(run, trajectory)
    return RunRecord(**fields, wall_s=time.perf_counter() - started)


def _outcome(run: _Run, trajectory: _Trajectory) -> dict[str, Any]:
    """The record's fields (all but ``wall_s``) once the loop has ended."""
    done = len(trajectory.losses)
    losses = np.asarray(trajectory.losses, dtype=np.float64)
    norms = np.asarray(trajectory.norms, dtype=np.float64)
    finite_norms = norms[np.isfinite(norms)]
    points = run.config.diagnostics.curve_points
    fields: dict[str, Any] = {
        **identity(run.config, run.device),
        "status": "ok" if trajectory.diverged_step is None else "diverged",
        "steps": done,
        "baseline_loss": run.task.baseline_loss,
        "diverged_step": trajectory.diverged_step,
        "curves": {
            "loss": downsample(losses, points, np.mean),
            "grad_norm": downsample(norms, points, np.max),
        },
        "max_grad_norm": float(finite_norms.max()) if finite_norms.size else math.nan,
        # float32 mean on the device, as the record has always computed it
        "clipped_fraction": (
            float(torch.stack(trajectory.clip_flags[:done]).float().mean()) if done else 0.0
        ),
    }
    if trajectory.diverged_step is None:
        fields |= _final_evaluation(run, trajectory)
    else:  # no final evaluation or probe of a non-finite model: missing values
        fields |= {"solved": False, "probe": {"r2": []}}
    profiles = trajectory.profiles
    first, last = (profiles[0], profiles[-1]) if profiles else (None, None)
    return fields | {
        # Without diagnostics there are no profiles: the profile fields are missing values.
        "grad_factor_init": first["grad_factor"] if first else math.nan,
        "grad_span_init": first["grad_span"] if first else None,
        "grad_factor": last["grad_factor"] if last else math.nan,
        "grad_span": last["grad_span"] if last else None,
        "input_factor_init": first["input_factor"] if first else math.nan,
        "input_span_init": first["input_span"] if first else None,
        "input_factor": last["input_factor"] if last else math.nan,
        "input_span": last["input_span"] if last else None,
        **checkpoints.dynamics_fields(first, last, trajectory.dynamics),
        "profiles": profiles,
        "dynamics": trajectory.dynamics,
        "param_stats": trajectory.param_stats,
        "metrics": {
            "trajectory_hash": trajectory_hash(losses, norms),
            "impl": run.model.core.impl,
            "parameters": sum(p.numel() for p in run.params),
        },
    }


def _final_evaluation(run: _Run, trajectory: _Trajectory) -> dict[str, Any]:
    """A finished run's held-out metrics, and with diagnostics its final profile (appended to
    the trajectory's) and the memory probe."""
    final = run.evaluate()
    fields: dict[str, Any] = {
        "final_loss": final["loss"],
        "normalized_loss": final["normalized_loss"],
        "accuracy": final["accuracy"],
        "solved": run.task.solved(final),
        "probe": {"r2": []},
    }
    diag = run.config.diagnostics
    if not diag.enabled:
        return fields
    trajectory.profiles.append(run.profile(run.config.train.steps, final))
    trajectory.dynamics["lyapunov"] = run.lyapunov()
    trajectory.dynamics["task_probe"] = checkpoints.task_probe(
        run.model, run.task, data_stream("task_probe", run.task), diag
    )
    probe = memory_probe(
        run.model,
        run.task,
        data_stream("probe", run.task),
        max_lag=diag.probe_max_lag,
        size=diag.probe_size,
        ridge=diag.probe_ridge,
    )
    return fields | {
        "memory_capacity": probe.memory_capacity,
        "probe_span": probe.probe_span,
        "probe": {"r2": probe.r2},
    }


def execute_run(config: RunConfig, device: str = "cpu") -> RunRecord:
    """:func:`train_run`, with any exception recorded as an ``error`` run instead of raised."""
    started = time.perf_counter()
    try:
        return train_run(config, device)
    except Exception as exc:
        return error_record(config, exc, time.perf_counter() - started, device)
