"""The float arithmetic a run computes in: IEEE float32 with denormals flushed to zero.

Both settings are torch's process-wide switches. rnnbench sets them for the span of a run (and
of a gradient profile) because what it measures depends on them:

* **TF32.** On Ampere and later GPUs cuDNN runs float32 RNNs on TF32 tensor cores unless told
  not to (torch 2.13: ``torch.backends.cudnn.rnn.fp32_precision == "tf32"`` by default), keeping
  10 of float32's 23 mantissa bits in every product. Backpropagation through T steps multiplies T
  such Jacobian products, so the rounding compounds along exactly the axis the gradient profile
  measures, and GPU runs would no longer agree with CPU runs to float32 tolerance.
  :func:`full_float32` switches TF32 off for cuDNN's RNNs and for matmuls while a run trains and
  restores the caller's settings afterwards.
* **Denormals.** A vanishing gradient passes through the denormal range (below ~1.2e-38), where
  x86 arithmetic is microcoded: a fused CPU step was measured 9x slower (docs/performance.md,
  section 3). :func:`flushed_denormals` puts the floor at ~1e-38 for a run and puts the
  caller's setting back afterwards (torch has no getter for the switch, so it is read off the
  arithmetic: :func:`denormals_flushed`); exact zeros in a profile are then read as "below the
  float floor" (:func:`rnnbench.diagnostics.summary.summarize_profile`). A worker process,
  which only trains, switches it on for good (:func:`flush_denormals`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def _numpy_limits_first() -> None:
    # numpy computes and caches its float limits on first use; computed under flush-to-zero
    # the smallest subnormal reads as 0 and numpy < 2 warns (a UserWarning, an error under
    # pytest's -W error). Computed here first, they are right and cached.
    for dtype in (np.float16, np.float32, np.float64):
        np.finfo(dtype).smallest_subnormal  # noqa: B018 - computed for its cache


def flush_denormals() -> None:
    """Flush denormal floats to zero from now on (for a worker process; see the module
    docstring). In a caller's process use :func:`flushed_denormals`."""
    _numpy_limits_first()
    torch.set_flush_denormal(True)


def denormals_flushed() -> bool:
    """Whether this thread flushes denormals to zero: a float32 denormal times one is zero
    then (FTZ on the result, DAZ on the input), itself otherwise."""
    tiny = torch.tensor(1e-40, dtype=torch.float32)  # below float32's normal range, ~1.2e-38
    return bool((tiny * 1.0).item() == 0.0)


@contextmanager
def flushed_denormals() -> Iterator[None]:
    """Denormals flushed to zero inside the block; the caller's setting after it."""
    previous = denormals_flushed()
    _numpy_limits_first()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)


@contextmanager
def full_float32() -> Iterator[None]:
    """IEEE float32 for matmuls and cuDNN RNNs inside the block; the caller's settings after.

    Set through the legacy ``torch.backends.cudnn.allow_tf32``, which every torch >= 2.6 has
    and which keeps torch >= 2.9's per-operator switches (``torch.backends.cudnn.rnn/conv
    .fp32_precision``) consistent with it: set through the new switches alone, the legacy flag
    would disagree with them, and torch raises when anything in the process reads it then.
    The per-operator values the caller had are put back as well.
    """
    cudnn = torch.backends.cudnn
    candidates: tuple[Any, ...] = (getattr(cudnn, "rnn", None), getattr(cudnn, "conv", None))
    operators = [op for op in candidates if hasattr(op, "fp32_precision")]  # torch >= 2.9
    per_operator = [op.fp32_precision for op in operators]
    try:
        legacy: bool | None = cudnn.allow_tf32
    except RuntimeError:  # the caller mixed the legacy and the new switches: unreadable
        legacy = None
    matmul = torch.get_float32_matmul_precision()
    cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        if legacy is not None:
            cudnn.allow_tf32 = legacy
        for op, precision in zip(operators, per_operator, strict=True):
            op.fp32_precision = precision
