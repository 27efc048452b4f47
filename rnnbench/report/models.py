"""The models table: each architecture's trainable parameter count, next to the headline.

Architectures at one hidden size can differ many times over in parameters (an LSTM has four
gates to an RNN's one), so a solved count is read against the model's size; and a swept field
such as ``model.hidden_size`` changes it too. The count is per task as well: the input and
output widths are the task's.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from rnnbench.report.axes import axis_key, sort_token, value_text
from rnnbench.report.tables import DASH, keyed, label_rank
from rnnbench.results.grouping import short_names


def models_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (label, task, arch, swept fields): the smallest and largest trainable parameter
    count among the runs (one value unless the count depends on T); NaN where no run recorded
    it (a store written before the count was)."""
    frame, axes = keyed(frame)
    keys = ["label", "task", "arch", *axes]
    columns = [*keys, "parameters_min", "parameters_max", "runs"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in frame.groupby(keys, sort=True, dropna=False):
        counts = pd.to_numeric(group["parameters"], errors="coerce").dropna()
        rows.append(
            dict(zip(keys, key, strict=True))
            | {
                "parameters_min": float(counts.min()) if len(counts) else math.nan,
                "parameters_max": float(counts.max()) if len(counts) else math.nan,
                "runs": len(group),
            }
        )
    numbers = pd.DataFrame(rows, columns=columns)
    for column in ("parameters_min", "parameters_max"):  # counts: integers, <NA> where unknown
        numbers[column] = numbers[column].astype("Int64")
    return numbers


def _count_text(low: float, high: float, smallest: float) -> str:
    """'13,121 (3.0×)': the count and its ratio to the task's smallest model."""
    if pd.isna(low):
        return DASH
    text = f"{int(low):,}" if low == high else f"{int(low):,}–{int(high):,}"
    ratio = not pd.isna(smallest) and smallest > 0
    return text + (f" ({high / smallest:.1f}×)" if ratio else "")


def _size_axes(numbers: pd.DataFrame, paths: list[str]) -> list[str]:
    """The swept fields that change a parameter count: a learning rate does not, and a row per
    learning rate would repeat the same count."""
    keep = list(paths)
    for path in paths:
        rest = [p for p in keep if p != path]
        keys = ["label", "task", "arch", *rest]
        grouped = numbers.assign(**{p: numbers[p].map(str) for p in rest}).groupby(keys)
        if (grouped["parameters_min"].nunique() <= 1).all():
            keep = rest
    return keep


def models_view(numbers: pd.DataFrame, labels: list[str], axes: list[str]) -> pd.DataFrame:
    """Rows (label ×) architecture × the swept fields (of ``axes``) that change the count,
    one column per task: the count, and its ratio to the task's smallest model."""
    # groups with no count (every run errored before building its model) say nothing about
    # the size; left in, one would blank the row of its architecture
    known = numbers[numbers["parameters_min"].notna()]
    numbers = known if not known.empty else numbers
    paths = _size_axes(numbers, [a for a in axes if a in numbers.columns])
    names = short_names(paths)
    multi = len(labels) > 1
    smallest = numbers.groupby("task")["parameters_min"].min().to_dict()
    rows: dict[tuple[Any, ...], dict[str, str]] = {}
    rank = label_rank(labels)
    ordered = sorted(
        numbers.to_dict("records"),
        key=lambda r: (
            rank(r["label"]),
            r["arch"],
            [sort_token(v) for v in axis_key(r, paths)],
        ),
    )
    for r in ordered:
        values = tuple(value_text(v) for v in axis_key(r, paths))
        key = ((r["label"],) if multi else ()) + (r["arch"], *values)
        rows.setdefault(key, {})[f"{r['task']}"] = _count_text(
            r["parameters_min"], r["parameters_max"], smallest.get(r["task"], math.nan)
        )
    view = pd.DataFrame.from_dict(rows, orient="index").fillna(DASH)
    view = view[sorted(view.columns)]
    levels = [*(["label"] if multi else []), "arch", *names.values()]
    view.index = (
        pd.MultiIndex.from_tuples(list(rows), names=levels)
        if len(levels) > 1
        else pd.Index([k[0] for k in rows], name="arch")
    )
    view.columns.name = "task"
    return view
