"""Task span per condition: the longest dependency a condition learns, read from stored runs.

The task span of (task, arch, clip, swept values) is the largest sequence length T solved by at
least half of its seeds; the first unsolved T is the smallest that is not. Where the probe span
(:mod:`rnnbench.diagnostics.memory`) is what one trained network remembers, this is what the
training procedure reaches.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from rnnbench.results.grouping import CONDITION_KEYS, axis_columns

if TYPE_CHECKING:  # pandas is slow to import, and the training workers never need it
    import pandas as pd


def frame_axes(frame: pd.DataFrame) -> list[str]:
    """The swept fields of a results frame that it has columns for, in sweep order: read from
    the runs' configs where the frame has them, else its dotted columns ("train.lr"): every
    swept field is a path into the config, and no other results column has a dot in its name."""
    if "config" in frame.columns:
        return [c for c in axis_columns(frame["config"]) if c in frame.columns]
    return [str(c) for c in frame.columns if "." in str(c)]


def hashable(value: Any) -> Any:
    """A grouping key for one swept value: None for a missing one (None or NaN: the run's
    sweep does not vary that field), canonical JSON for a list or table (a user cell's
    parameter may be one), the value itself otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, sort_keys=True)
    return value


def task_spans(results: pd.DataFrame) -> pd.DataFrame:
    """Task span per condition (:data:`CONDITION_KEYS` and every swept field but the seed: a
    group's keys but T): the largest T solved by at least half of the seeds, and the smallest
    T that is not. NaN where no T (or every T) qualifies. A swept field that a run's sweep does
    not vary (None) is a key value of its own: those runs are neither dropped nor pooled with
    the runs that set it."""
    import pandas as pd

    axes = frame_axes(results)
    keys = [*CONDITION_KEYS, *axes]
    if results.empty:
        return pd.DataFrame(columns=[*keys, "task_span", "first_unsolved"])
    # .eq(True): an errored run (solved None) is unsolved; fillna(False) on the object column
    # raised a FutureWarning on pandas 2.2-2.3 (downcasting)
    solved = results.assign(
        solved=results["solved"].eq(True), **{a: results[a].map(hashable) for a in axes}
    )
    # dropna=False: a missing swept value is a key, not a reason to drop the run
    rate = solved.groupby([*keys, "seq_len"], dropna=False)["solved"].mean().reset_index()
    rows = []
    for key, group in rate.groupby(keys, sort=True, dropna=False):
        ok = group.loc[group["solved"] >= 0.5, "seq_len"]
        not_ok = group.loc[group["solved"] < 0.5, "seq_len"]
        rows.append(
            dict(zip(keys, key, strict=True))
            | {
                "task_span": float(ok.max()) if len(ok) else float("nan"),
                "first_unsolved": float(not_ok.min()) if len(not_ok) else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=[*keys, "task_span", "first_unsolved"])
