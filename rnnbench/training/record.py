"""The parts of a run's record that training knows: where it ran, what it did, how it failed.

The record's shape is :class:`~rnnbench.results.record.RunRecord`; this module fills in the
environment (versions, device, threads, git revision), the identity of the run, the trajectory
hash and the down-sampled curves, and the record of a run that raised.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import math
import os
import platform
import subprocess
import sys
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


@functools.lru_cache(maxsize=1)
def _distributions_of_packages() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@functools.lru_cache(maxsize=64)
def _imported_distributions(module: str, source_hash: str) -> dict[str, str]:
    """The installed distributions (name -> version) that ``module``'s source imports, read
    from its import statements (``source_hash`` keys the cache: an edit reads them anew)."""
    where = getattr(sys.modules.get(module), "__file__", None)
    try:
        tree = ast.parse(Path(where).read_bytes()) if where else None
    except (OSError, SyntaxError, ValueError):
        tree = None
    if tree is None:
        return {}
    tops = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            tops.add(node.module.split(".")[0])
    found: dict[str, str] = {}
    for top in sorted(tops):
        for dist in _distributions_of_packages().get(top, []):
            try:
                found[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    return found


def user_code(config: RunConfig) -> dict[str, Any]:
    """The user code a run ran: its modules' source hashes (the config's ``code``, part of the
    run id) and the versions of the distributions they import (recorded, not hashed: a new
    torch does not invalidate a store)."""
    distributions: dict[str, str] = {}
    for module, digest in config.code.items():
        distributions |= _imported_distributions(module, digest)
    return {"modules": dict(config.code), "distributions": distributions}


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
        "env": environment(device) | ({"user_code": user_code(config)} if config.code else {}),
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
