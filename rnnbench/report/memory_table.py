"""The report's memory table: the task memory probe per T (what the task needs, decoded from
h_t on the task's own inputs), the task span across T, then the task-agnostic i.i.d. probe
(Jaeger's memory capacity and its span).

:func:`memory_numbers` is the numeric frame (written as CSV: the task probe as one column group
per T, ``task_memory_span_T{T}_median|q1|q3|n|values`` and ``task_memory_needed_T{T}``; the
i.i.d. probe over every T of a row, with ``_seeds`` and ``_lengths``: how many of each it pools);
:func:`memory_views` formats it, one table per task (the delay a task reads at differs between
tasks), and :func:`memory_note` says how the two probes differ and what was not recorded.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from rnnbench.report.axes import axis_key, shown_axes, value_text
from rnnbench.report.tables import (
    DASH,
    MIN_SPREAD,
    condition_order,
    finite,
    keyed,
    label_rank,
    num,
    recorded,
    spread_cell,
    spread_columns,
)
from rnnbench.results.grouping import CONDITION_KEYS
from rnnbench.results.spans import task_spans

_SPAN = "task_memory_span"
_NEEDED = "task_memory_needed"
_PROBE_N = re.compile(rf"^{_SPAN}_T(\d+)_n$")
NOT_RECORDED = (
    "switched off in [diagnostics], or the runs were stored before rnnbench recorded the dynamics"
)


def _probe_lengths(frame: pd.DataFrame) -> list[int]:
    """The sequence lengths at which some run recorded the task probe."""
    if _SPAN not in frame.columns:
        return []
    spans = pd.to_numeric(frame[_SPAN], errors="coerce")
    return sorted({int(t) for t in frame.loc[spans.notna(), "seq_len"]})


def _probe_numbers(group: pd.DataFrame, lengths: list[int]) -> dict[str, Any]:
    """One condition's task probe per T: the span's spread over seeds, the median needed."""
    row: dict[str, Any] = {}
    for length in lengths:
        at = group[group["seq_len"] == length]
        spread = spread_columns(
            at.rename(columns={_SPAN: f"{_SPAN}_T{length}"}), [f"{_SPAN}_T{length}"]
        )
        needed = finite(at[_NEEDED]) if _NEEDED in at.columns else np.empty(0)
        row |= spread | {
            f"{_NEEDED}_T{length}": float(np.median(needed)) if needed.size else math.nan
        }
    return row


def memory_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per label and condition (task, arch, clip, swept fields): the task probe's span per T,
    the task span (rnnbench.results.spans), the i.i.d. probe's memory capacity and span."""
    rows = []
    lengths = _probe_lengths(frame)
    frame, axes = keyed(frame)
    keys = [*CONDITION_KEYS, *axes]
    for label, sub in frame.groupby("label", sort=True):
        spans = task_spans(sub.drop(columns=["label"]))
        span_of = {
            (*(r[k] for k in CONDITION_KEYS), axis_key(r, axes)): r
            for r in spans.to_dict("records")
        }
        for key, group in sub.groupby(keys, sort=True, dropna=False):
            row: dict[str, Any] = {"label": label, **dict(zip(keys, key, strict=True))}
            row |= _probe_numbers(group, lengths)
            n = len(CONDITION_KEYS)
            span = span_of.get((*key[:n], axis_key(row, axes)), {})
            row["task_span"] = span.get("task_span", math.nan)
            row["first_unsolved"] = span.get("first_unsolved", math.nan)
            rows.append(row | _pooled_columns(group, _IID))
    return pd.DataFrame(rows)


#: the i.i.d. probe's columns, pooled over a row's T (the task span is read across T too)
_IID = ("memory_capacity", "probe_span")


def _pooled_columns(group: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, Any]:
    """Each column's spread over all of a condition's runs (every T), and how many seeds and
    T those runs with a value are: a cell then says what it pools instead of calling runs n."""
    row = spread_columns(group, columns, order=("seq_len", "seed"))
    for column in columns:
        values = pd.to_numeric(group.get(column, pd.Series(dtype=float)), errors="coerce")
        has = group[np.isfinite(values.astype(np.float64))] if len(values) else group.iloc[:0]
        row[f"{column}_seeds"] = int(has["seed"].nunique()) if "seed" in has else 0
        row[f"{column}_lengths"] = int(has["seq_len"].nunique())
    return row


def _pooled_cell(r: dict[str, Any], column: str) -> str:
    """A cell of :func:`_pooled_columns`: over one T, as any other cell (the seeds' values, or
    median [q1–q3] n=seeds); over several, the spread of all runs and 'over s seeds × m T'."""
    lengths, seeds, n = (r.get(f"{column}_{s}", 0) for s in ("lengths", "seeds", "n"))
    if not lengths or lengths <= 1:
        return spread_cell(r, column)
    values = r[f"{column}_values"]
    body = (
        ", ".join(num(v) for v in values)
        if n < MIN_SPREAD
        else f"{num(r[f'{column}_median'])} [{num(r[f'{column}_q1'])}–{num(r[f'{column}_q3'])}]"
    )
    what = f"{seeds} seed{'s' if seeds != 1 else ''} × {lengths} T"
    return f"{body} over {what}" + ("" if n == seeds * lengths else f" ({n} runs)")


def _probe_columns(numbers: pd.DataFrame) -> dict[int, tuple[str, float]]:
    """T -> (column title, the delay its task reads at) for the lengths with a task probe."""
    columns = {}
    lengths = sorted(int(m[1]) for c in numbers.columns if (m := _PROBE_N.match(str(c))))
    for length in lengths:
        if not recorded(numbers, f"{_SPAN}_T{length}"):
            continue
        needed = finite(numbers.get(f"{_NEEDED}_T{length}", []))
        d = float(np.median(needed)) if needed.size else math.nan
        reads = f" (task reads at d={d:g})" if math.isfinite(d) else ""
        columns[length] = (f"task memory span at T={length}{reads}", d)
    return columns


def _probe_cells(r: dict[str, Any], columns: dict[int, tuple[str, float]]) -> dict[str, str]:
    cells = {}
    for length, (title, d) in columns.items():
        prefix = f"{_SPAN}_T{length}"
        cell = spread_cell(r, prefix)
        needed = r.get(f"{_NEEDED}_T{length}", math.nan)
        if cell != DASH and math.isfinite(needed) and needed != d:  # this row reads elsewhere
            cell += f" (reads at {needed:g})"
        cells[title] = cell
    return cells


def _memory_cells(r: dict[str, Any], columns: dict[int, tuple[str, float]]) -> dict[str, str]:
    return _probe_cells(r, columns) | {
        "task span (largest T solved by ≥ half the seeds)": num(r["task_span"]),
        "first unsolved T": num(r["first_unsolved"]),
        "task-agnostic memory capacity (i.i.d. drive)": _pooled_cell(r, "memory_capacity"),
        "i.i.d. probe span (lags)": _pooled_cell(r, "probe_span"),
    }


def memory_views(
    numbers: pd.DataFrame, labels: list[str], shown: dict[str, str] | None = None
) -> list[tuple[str, pd.DataFrame]]:
    """One table per task: rows (label ×) architecture × the swept fields that vary × clip."""
    if numbers.empty:
        return []
    shown = shown_axes(numbers, shown)
    paths = list(shown)
    multi = len(labels) > 1
    # a comparison's label first, as in every table of the report
    names = (["label"] if multi else []) + ["arch", *shown.values(), "clip"]
    rank = label_rank(labels)
    views = []
    for task, sub in numbers.groupby("task", sort=True):
        columns = _probe_columns(sub)
        ordered = sorted(
            sub.to_dict("records"),
            key=lambda r: (
                rank(r["label"]) if multi else 0,
                condition_order((r["task"], r["arch"], axis_key(r, paths), r["clip"])),
            ),
        )
        rows: dict[tuple[str, ...], dict[str, str]] = {}
        for r in ordered:
            values = tuple(value_text(v) for v in axis_key(r, paths))
            key = ((r["label"],) if multi else ()) + (r["arch"], *values, r["clip"])
            rows[key] = _memory_cells(r, columns)
        view = pd.DataFrame.from_dict(rows, orient="index")
        view.index = pd.MultiIndex.from_tuples(list(rows), names=names)
        views.append((f"task: {task}", view))
    return views


def memory_note(numbers: pd.DataFrame) -> str:
    """The memory section's paragraph: the columns, how the two probes differ, and what was
    not recorded."""
    iid = (
        "The i.i.d. probe (task-agnostic memory capacity, Jaeger 2001) asks instead for every "
        "past input of a random i.i.d. drive, which a network trained to ignore the unmarked "
        "values does not keep, so a network that fails the task can score higher on it than "
        "one that solves it."
    )
    if any(
        (pd.to_numeric(numbers.get(f"{c}_lengths", pd.Series()), errors="coerce") > 1).any()
        for c in _IID
    ):
        iid += (
            " Its two columns pool a row's runs at every T (a network trained per T and seed): "
            "'over s seeds × m T' says what a cell pools; with fewer than "
            f"{MIN_SPREAD} runs it lists them, ordered by T, then seed."
        )
    spans = "Task span and first unsolved T: read from the solved seeds across T."
    columns = _probe_columns(numbers) if not numbers.empty else {}
    if not columns:
        return (
            f"Task memory probe: not recorded ({NOT_RECORDED}); it decodes what the task needs "
            f"on the task's own inputs. {iid} {spans}"
        )
    text = (
        "The task memory probe decodes what the task needs (copy: each data symbol; adding: "
        "the first marked value) from h_t at every delay since it was presented, on the "
        "task's own inputs: the task memory span is the largest delay up to which the "
        "normalized score (score − chance) / (1 − chance) stays ≥ 0.5 (median over seeds), "
        "one column per T, headed by the delay d at which the task reads it (a span below d: "
        f"the information is gone when the task needs it). {iid} {spans}"
    )
    missing = any(
        r[f"{_SPAN}_T{length}_n"] == 0
        for _, sub in numbers.groupby("task")
        for length in _probe_columns(sub)
        for r in sub.to_dict("records")
    )
    if missing:
        text += (
            f" {DASH} in a task memory span: no run of that row and T recorded the task probe "
            f"({NOT_RECORDED}, or no run at that T)."
        )
    return text
