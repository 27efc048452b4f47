"""Effective memory span of one run: the linear-probe memory capacity, task-agnostic.

Probe (Jaeger 2001, GMD Report 152): drive the trained network with held-out sequences, fit a
ridge-regression readout from h_t to the input ``k`` steps back for each lag k, and score it on
other sequences. r^2(k) per lag; memory capacity MC = sum_k r^2(k); probe span = the largest k
with r^2(k) >= 0.5.

The drive is i.i.d. (:meth:`Task.probe_sample`) and every input is to be recalled, so this
measures how much of its recent input a network holds, not whether it holds what its task
needs: a network trained to ignore the unmarked values of the adding problem scores low here
while solving it. For the task-relevant memory (the task's own items, on its own inputs, at
every delay since they were presented) see :mod:`rnnbench.diagnostics.task_memory`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnbench.models import RecurrentModel
from rnnbench.tasks import Task

#: r^2 at or above this counts as "remembered" for the probe span.
PROBE_SPAN_R2 = 0.5
#: time positions per sequence used to fit the readouts (evenly spaced; bounds the cost).
PROBE_POSITIONS = 32


@dataclass(frozen=True)
class ProbeResult:
    r2: list[float]  # r^2 for lags 1..K
    memory_capacity: float
    probe_span: int


def memory_probe(
    model: RecurrentModel,
    task: Task,
    generator: torch.Generator,
    *,
    max_lag: int,
    size: int,
    ridge: float,
) -> ProbeResult:
    lags = min(max_lag, task.total_len - 1)
    if lags < 1:
        return ProbeResult([], 0.0, 0)
    x, targets = task.probe_sample(size, generator)
    device = next(model.parameters()).device
    with torch.no_grad():
        hidden = model.core(x.to(device)).double().cpu().numpy()
    target = targets.double().numpy()
    positions = np.unique(
        np.linspace(lags, task.total_len - 1, PROBE_POSITIONS).round().astype(int)
    )
    half = size // 2
    r2 = _ridge_r2(hidden[:, positions], target, positions, lags, half, ridge)
    span = max((k for k, value in enumerate(r2, start=1) if value >= PROBE_SPAN_R2), default=0)
    return ProbeResult(r2=r2, memory_capacity=float(np.sum(r2)), probe_span=span)


def _ridge_r2(
    features: np.ndarray,
    target: np.ndarray,
    positions: np.ndarray,
    lags: int,
    half: int,
    ridge: float,
) -> list[float]:
    """Held-out r^2 of a ridge readout from ``features`` [N, P, H] (h_t at ``positions``) to the
    input ``k`` steps back, for every lag k = 1..lags. The features are the same for every lag,
    so one centred Gram matrix and one solve with all lags' targets as right-hand sides do the
    work of ``lags`` separate fits (the probe's cost was 50 Gram products)."""
    h = features.shape[-1]
    d = target.shape[-1]
    # wanted[:, :, k-1, :] = input at positions - k
    wanted = np.stack([target[:, positions - lag] for lag in range(1, lags + 1)], axis=2)
    x_fit, x_test = features[:half].reshape(-1, h), features[half:].reshape(-1, h)
    y_fit = wanted[:half].reshape(-1, lags * d)
    y_test = wanted[half:].reshape(-1, lags * d)
    x_mean, y_mean = x_fit.mean(0), y_fit.mean(0)
    xc = x_fit - x_mean
    gram = xc.T @ xc + ridge * len(xc) * np.eye(h)
    weights = np.linalg.solve(gram, xc.T @ (y_fit - y_mean))
    predicted = (x_test - x_mean) @ weights + y_mean
    # per lag: sums over the test rows and the lag's D target columns
    total = np.square(y_test - y_test.mean(0)).sum(0).reshape(lags, d).sum(1)
    error = np.square(y_test - predicted).sum(0).reshape(lags, d).sum(1)
    return [
        float(max(1.0 - e / t, 0.0)) if t > 0 else 0.0 for e, t in zip(error, total, strict=True)
    ]
