"""The dynamics as the stored run records hold them, read into long frames for the figures of
:mod:`rnnbench.report.dynamics`: a run's init and end profile checkpoints, its ``dynamics``
record, and one row per (run, step or index)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from rnnbench.report.style import Ctx, with_series

#: the columns every long frame starts with: a run's key and its line style
KEY = ["label", "task", "T", "arch", "clip", "seed", "series"]


def checkpoints(run: Any) -> dict[str, dict[str, Any]]:
    """A run's first (init) and last (end) profile checkpoints; {} where it has none."""
    profiles = getattr(run, "profiles", None)
    if not isinstance(profiles, list) or not profiles:
        return {}
    first, last = profiles[0], profiles[-1]
    return {
        phase: entry for phase, entry in (("init", first), ("end", last)) if isinstance(entry, dict)
    }


def dynamics_of(run: Any) -> dict[str, Any]:
    """A run's dynamics record; {} where it has none (runs stored before rnnbench recorded it)."""
    value = getattr(run, "dynamics", None)
    return value if isinstance(value, dict) else {}


def long_frame(
    frame: pd.DataFrame,
    ctx: Ctx,
    columns: list[str],
    rows_of: Callable[[Any], Iterable[tuple[Any, ...]]],
) -> pd.DataFrame:
    """One row per (run, what ``rows_of(run)`` yields): the run's :data:`KEY`, then
    ``columns``; rows whose last column (the value) is not a finite number are dropped."""
    rows: list[tuple[Any, ...]] = []
    for run in with_series(frame, ctx).itertuples():
        key = (run.label, run.task, int(run.seq_len), run.arch, run.clip, run.seed, run.series)
        rows.extend((*key, *rest) for rest in rows_of(run))
    data = pd.DataFrame(rows, columns=[*KEY, *columns])
    value = columns[-1]
    data[value] = pd.to_numeric(data[value], errors="coerce").astype(np.float64)
    return data[np.isfinite(data[value])].copy()
