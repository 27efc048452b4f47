"""What the training loop measures at a checkpoint, and what it records of it.

At every profile checkpoint (init, ``diagnostics.checkpoints`` evenly spaced steps, the end):

* the exact gradient profiles ||dL/dh_t||, ||dL/dx_t|| and the LSTM's ||dL/dc_t||, each with
  its per-step factor and span (:mod:`rnnbench.diagnostics.gradients`);
* the k largest singular values of the step Jacobian ds_{t+1}/ds_t at every step, the median
  over a sub-batch, and their summary over the recurrence window: the geometric mean of σ_1 and
  the fraction of steps with σ_1 > 1 (the factor BPTT multiplies per step: Pascanu et al. 2013);
* the fraction of saturated gate and tanh units per step, and the LSTM's forget gate.

The last two at init and at the end only with ``dynamics_at_checkpoints = false``. Together
with the two below they add 6.5 % to the quick study's runs at every checkpoint, 3.1 % at init
and end only (``bench/dynamics_cost.py``; docs/performance.md, section 11).

At init and at the end only: the Lyapunov spectrum along a long driven trajectory; at the end
only: the task memory probe. Each is switched off by its ``[diagnostics]`` field (0 / false);
none of them touches the training state or its random streams.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rnnbench.config.schema import DiagnosticSettings
from rnnbench.diagnostics.dynamics import (
    has_step,
    jacobian_singular_values,
    jacobian_summary,
    lyapunov_spectrum,
    saturation,
)
from rnnbench.diagnostics.gradients import profile_norms
from rnnbench.diagnostics.summary import summarize_profile
from rnnbench.diagnostics.task_memory import task_memory_probe
from rnnbench.models import CellCore, RecurrentModel, TorchCore
from rnnbench.tasks import Batch, Task


def profile_entry(
    model: RecurrentModel,
    task: Task,
    batch: Batch,
    step: int,
    metrics: dict[str, float],
    diag: DiagnosticSettings,
    dynamics: bool,
) -> dict[str, Any]:
    """One checkpoint's record entry: the profiles (``norms`` None where the core hides its
    state), and with ``dynamics`` the Jacobian's singular values and the saturation, with their
    summaries."""
    window = task.recurrence_window()
    profiles = profile_norms(model, task, batch)
    entry: dict[str, Any] = {"step": step}
    hidden = profiles.get("hidden")
    if hidden is not None:
        summary = summarize_profile(hidden, window)
        entry |= {
            "norms": hidden.tolist(),
            "grad_factor": summary.factor,
            "grad_span": summary.span,
            "below_floor": summary.below_floor,
        }
    else:
        entry |= {"norms": None, "grad_factor": math.nan, "grad_span": None, "below_floor": None}
    if "cell" in profiles:
        cell = summarize_profile(profiles["cell"], window)
        entry |= {
            "cell_norms": profiles["cell"].tolist(),
            "cell_factor": cell.factor,
            "cell_span": cell.span,
        }
    inputs = summarize_profile(profiles["input"], window)
    entry |= {
        "input_norms": profiles["input"].tolist(),
        "input_factor": inputs.factor,
        "input_span": inputs.span,
    }
    if dynamics and has_step(model.core):
        entry |= _jacobian(model, task, batch, diag) | _saturation(model, task, batch, diag)
    return entry | {f"eval_{k}": v for k, v in metrics.items()}


def _jacobian(
    model: RecurrentModel, task: Task, batch: Batch, diag: DiagnosticSettings
) -> dict[str, Any]:
    if not diag.jacobian_top_k:
        return {}
    sub = _head(batch, diag.jacobian_batch)
    sigma = jacobian_singular_values(model, task, sub, k=diag.jacobian_top_k)
    gmean, expanding = jacobian_summary(sigma, task.recurrence_window())
    entry = {"sigma": sigma.tolist(), "sigma1_gmean": gmean, "sigma1_expanding": expanding}
    if _state_beyond_h(model):
        # the LSTM's c (or a user cell's second state tensor): also the h -> h block alone
        hh = jacobian_singular_values(model, task, sub, k=diag.jacobian_top_k, part="hidden")
        entry["sigma_hh"] = hh.tolist()
    return entry


def _state_beyond_h(model: RecurrentModel) -> bool:
    """Whether the top layer's state holds more than h: the built-in LSTM, or a user cell whose
    ``init_state`` returns more than one tensor (the LN-LSTM)."""
    core = model.core
    if isinstance(core, TorchCore):
        return core.mode == "lstm"
    if isinstance(core, CellCore):
        weight = next(model.parameters())
        return len(core.cells[-1].init_state(1, weight.device, weight.dtype)) > 1  # type: ignore[operator]
    return False


def _saturation(
    model: RecurrentModel, task: Task, batch: Batch, diag: DiagnosticSettings
) -> dict[str, Any]:
    if not diag.saturation:
        return {}
    found = saturation(model, task, batch)
    entry: dict[str, Any] = {
        "gate_saturation": found.gate.tolist(),
        "tanh_saturation": found.tanh.tolist(),
    }
    if found.forget is not None:
        entry["forget_gate"] = found.forget.tolist()
    return entry


def _head(batch: Batch, size: int) -> Batch:
    return Batch(batch.x[:size], batch.y[:size])


def lyapunov(
    model: RecurrentModel, task: Task, driven: Batch | None, diag: DiagnosticSettings
) -> list[float] | None:
    """The Lyapunov spectrum along the driven trajectory, or None where it is off or the core
    exposes no step."""
    if driven is None or not diag.lyapunov or not has_step(model.core):
        return None
    spectrum = lyapunov_spectrum(model, task, driven, k=diag.lyapunov, warmup=diag.lyapunov_warmup)
    return spectrum.tolist()


def task_probe(
    model: RecurrentModel, task: Task, generator: torch.Generator, diag: DiagnosticSettings
) -> dict[str, Any] | None:
    """The task memory probe's curve, or None where it is off or the task declares nothing."""
    if not diag.task_probe:
        return None
    result = task_memory_probe(
        model, task, generator, size=diag.task_probe_size, ridge=diag.probe_ridge
    )
    if result is None:
        return None
    return {
        "delays": result.delays,
        "score": result.score,
        "chance": result.chance,
        "metric": result.metric,
        "span": result.span,
        "needed": result.needed,
    }


def _mean(values: Any) -> float:
    """The mean of a stored per-step curve, NaN steps skipped; NaN if there is none."""
    if values is None:
        return math.nan
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    return float(finite.mean()) if finite.size else math.nan


def dynamics_fields(
    first: dict[str, Any] | None, last: dict[str, Any] | None, dynamics: dict[str, Any]
) -> dict[str, Any]:
    """The record's scalar dynamics fields from the first and last checkpoint entries and the
    run's ``dynamics`` (the Lyapunov spectra and the task probe)."""
    fields: dict[str, Any] = {}
    for suffix, entry in (("_init", first), ("", last)):
        entry = entry or {}
        fields |= {
            f"jacobian_sigma1{suffix}": entry.get("sigma1_gmean", math.nan),
            f"jacobian_expanding{suffix}": entry.get("sigma1_expanding", math.nan),
            f"gate_saturation{suffix}": _mean(entry.get("gate_saturation")),
            f"tanh_saturation{suffix}": _mean(entry.get("tanh_saturation")),
            f"forget_gate{suffix}": _mean(entry.get("forget_gate")),
        }
        spectrum = dynamics.get(f"lyapunov{suffix}")
        fields[f"lyapunov_max{suffix}"] = spectrum[0] if spectrum else math.nan
    probe = dynamics.get("task_probe") or {}
    return fields | {
        "task_memory_span": probe.get("span"),
        "task_memory_needed": probe.get("needed"),
    }
