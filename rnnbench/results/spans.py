"""Task span per condition: the longest dependency a condition learns, read from stored runs.

The task span of (task, arch, clip, ...) is the largest sequence length T solved by at least
half of its seeds; the first unsolved T is the smallest that is not. Where the probe span
(:mod:`rnnbench.diagnostics.memory`) is what one trained network remembers, this is what the
training procedure reaches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnbench.results.grouping import CONDITION_KEYS

if TYPE_CHECKING:  # pandas is slow to import, and the training workers never need it
    import pandas as pd


def task_spans(results: pd.DataFrame) -> pd.DataFrame:
    """Task span per condition (:data:`CONDITION_KEYS`: a group's keys but T): the largest T
    solved by at least half of the seeds, and the smallest T that is not. NaN where no T (or
    every T) qualifies."""
    import pandas as pd

    keys = list(CONDITION_KEYS)
    if results.empty:
        return pd.DataFrame(columns=[*keys, "task_span", "first_unsolved"])
    # .eq(True): an errored run (solved None) is unsolved; fillna(False) on the object column
    # raised a FutureWarning on pandas 2.2-2.3 (downcasting)
    solved = results.assign(solved=results["solved"].eq(True))
    rate = solved.groupby([*keys, "seq_len"])["solved"].mean().reset_index()
    rows = []
    for key, group in rate.groupby(keys, sort=True):
        ok = group.loc[group["solved"] >= 0.5, "seq_len"]
        not_ok = group.loc[group["solved"] < 0.5, "seq_len"]
        rows.append(
            dict(zip(keys, key, strict=True))
            | {
                "task_span": float(ok.max()) if len(ok) else float("nan"),
                "first_unsolved": float(not_ok.min()) if len(not_ok) else float("nan"),
            }
        )
    return pd.DataFrame(rows)
