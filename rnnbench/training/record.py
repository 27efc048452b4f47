"""The parts of a run's record that training knows: where it ran, what it did, how it failed.

The record's shape is :class:`~rnnbench.results.record.RunRecord`; this module fills in the
environment (versions, device, threads, git revision), the identity of the run, the trajectory
hash and the down-sampled curves, and the record of a run that raised.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import platform
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnbench.config.schema import RunConfig
from rnnbench.results.record import RunRecord
from rnnbench.version import __version__


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


def downsample(values: np.ndarray, points: int, reduce: Callable[..., Any]) -> dict[str, list]:
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


def trajectory_hash(losses: np.ndarray, norms: np.ndarray) -> str:
    """The record's ``metrics.trajectory_hash``: SHA-256 of the float64 per-step losses and
    pre-clip gradient norms. Equal hashes mean the same trajectory, bit for bit."""
    return hashlib.sha256(
        np.asarray(losses, dtype=np.float64).tobytes()
        + np.asarray(norms, dtype=np.float64).tobytes()
    ).hexdigest()


def identity(config: RunConfig, device: str) -> dict[str, Any]:
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


def error_record(config: RunConfig, exc: BaseException, wall_s: float, device: str) -> RunRecord:
    """The record of a run that raised: status ``error`` and the message, retried on re-run."""
    return RunRecord(
        **identity(config, device),
        status="error",
        steps=0,
        error=f"{exc.__class__.__name__}: {exc}",
        wall_s=wall_s,
        metrics={"traceback": "".join(traceback.format_exception(exc))[-4000:]},
    )
