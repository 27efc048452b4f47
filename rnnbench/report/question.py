"""The report's first tables: per task and clip mode, what each architecture learns at each T,
how far back its gradient reaches, and what clipping changes.

The question a report exists for is "which architecture keeps the gradient alive how far, and
what does clipping buy". So one table per (task, clip mode), rows architecture (× the swept
fields that vary) × T, and the columns the answer reads from: solved seeds k/n, the normalized
loss, the gradient span (steps back the gradient stays within 1e-6 of its largest value), the
per-step gradient factor r and the largest Lyapunov exponent λ_1 at the end of training. A clip
mode other than ``none`` adds its differences from ``none`` at the same row: Δ solved rate and
the medians' Δ of the loss, span, r and λ_1. Every table stays at about ten columns: a clip
mode is a table of its own instead of a column group of one wide table.

:func:`question_numbers` is the numeric frame (written as ``headline.csv``); ``*_median``,
``*_q1``, ``*_q3``, ``*_n`` and ``*_values`` per metric as in :mod:`rnnbench.report.tables`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from rnnbench.report.axes import axis_key, shown_axes, sort_token, value_text
from rnnbench.report.tables import (
    DISAGREE,
    delta,
    divergence_numbers,
    label_rank,
    loss_numbers,
    per_group,
    recorded,
    solved_numbers,
    spread_cell,
    spread_columns,
)

#: the clip mode every other is compared with
NO_CLIP = "none"
#: (column, title) of the metrics a question table shows per row, after solved and the loss
QUESTION_METRICS: tuple[tuple[str, str], ...] = (
    ("grad_span", "gradient span (steps)"),
    ("grad_factor", "r at end"),
    ("lyapunov_max", "λ_1 at end"),
)
#: spread per row as well, for the comparison (:mod:`rnnbench.report.comparison`)
_COMPARED_TOO = ("task_memory_span",)
#: the metrics runs stored before rnnbench recorded the dynamics lack
_DYNAMICS = frozenset({"lyapunov_max"})


def question_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (label, task, arch, seq_len, clip, swept fields): solved k/n, the loss spread over
    the seeds (and whether they disagree on solved), and the spread of each
    :data:`QUESTION_METRICS` column."""
    spreads = [*(c for c, _ in QUESTION_METRICS), *_COMPARED_TOO]
    return per_group(
        frame,
        lambda group: (
            solved_numbers(group)
            | {"divergence_rate": divergence_numbers(group)["divergence_rate"]}
            | {"runs_key": runs_key(group)}
            | loss_numbers(group)
            | spread_columns(group, spreads)
        ),
    )


def runs_key(group: pd.DataFrame) -> str:
    """A short hash of a row's run ids: two stores' rows with the same key hold the same runs
    (a run id hashes the run's whole config, seed and code), so their differences are 0 up to
    the machines' rounding: a comparison says so instead of reporting it as a finding."""
    ids = sorted(str(r) for r in group["run_id"]) if "run_id" in group.columns else []
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12] if ids else ""


def shown_metrics(numbers: pd.DataFrame) -> list[tuple[str, str]]:
    """The metrics to show: λ_1 only where some run recorded it."""
    return [(c, t) for c, t in QUESTION_METRICS if c not in _DYNAMICS or recorded(numbers, c)]


def _cells(
    r: dict[str, Any], base: dict[str, Any] | None, metrics: list[tuple[str, str]], clip: str
) -> dict[str, str]:
    """One row's cells; ``base``: the same row without clipping (None: no Δ columns)."""
    cells = {
        "solved": f"{r['solved']}/{r['runs']}",
        "norm. loss": spread_cell(r, "norm_loss") + (f" {DISAGREE}" if r["seeds_disagree"] else ""),
    }
    cells |= {title: spread_cell(r, column) for column, title in metrics}
    if clip == NO_CLIP:
        return cells
    base = base or {}
    cells["Δ solved rate"] = delta(r["solved_rate"], base.get("solved_rate"), decimals=2)
    # the loss, where clipping shows before a seed crosses the solved threshold
    cells["Δ norm. loss"] = delta(r["norm_loss_median"], base.get("norm_loss_median"))
    for column, title in metrics:
        cells[f"Δ {title.removesuffix(' (steps)')}"] = delta(
            r[f"{column}_median"], base.get(f"{column}_median")
        )
    return cells


def _row_key(r: dict[str, Any], paths: list[str], multi: bool) -> tuple[Any, ...]:
    values = axis_key(r, paths)
    return ((r["label"],) if multi else ()) + (r["arch"], values, int(r["seq_len"]))


def question_views(
    numbers: pd.DataFrame, labels: list[str], shown: dict[str, str] | None = None
) -> list[tuple[str, pd.DataFrame]]:
    """One table per (task, clip mode): rows (label ×) architecture × the swept fields that
    vary (``shown``: path -> name) × T; a clip mode other than ``none`` also gets its Δ from
    ``none`` at each row."""
    if numbers.empty:
        return []
    shown = shown_axes(numbers, shown)
    paths = list(shown)
    multi = len(labels) > 1
    metrics = shown_metrics(numbers)
    names = (["label"] if multi else []) + ["arch", *shown.values(), "T"]
    rank = label_rank(labels)
    views = []
    for task, sub in numbers.groupby("task", sort=True):
        records = sub.to_dict("records")
        by_clip = {(r["clip"], _row_key(r, paths, multi)): r for r in records}
        for clip in sorted({r["clip"] for r in records}, key=clip_order):
            keys = sorted(
                (k for c, k in by_clip if c == clip),
                key=lambda k: (
                    (rank(k[0]),) if multi else (),
                    k[-3],
                    [sort_token(v) for v in k[-2]],
                    k[-1],
                ),
            )
            rows = {
                (*k[:-2], *map(value_text, k[-2]), k[-1]): _cells(
                    by_clip[(clip, k)], by_clip.get((NO_CLIP, k)), metrics, clip
                )
                for k in keys
            }
            view = pd.DataFrame.from_dict(rows, orient="index")
            view.index = pd.MultiIndex.from_tuples(list(rows), names=names)
            views.append((_caption(task, clip, by_clip), view))
    return views


def clip_order(clip: str) -> tuple[int, str]:
    # no clipping first: the others are read against it
    return (0 if clip == NO_CLIP else 1, clip)


def _caption(task: str, clip: str, by_clip: dict[tuple[str, Any], Any]) -> str:
    if clip == NO_CLIP:
        return f"task: {task} · clip: none"
    if not any(c == NO_CLIP for c, _ in by_clip):
        return f"task: {task} · clip: {clip} (no run without clipping to compare with)"
    return f"task: {task} · clip: {clip} (Δ: {clip} − none at the same row, medians over seeds)"


def question_note(labels: list[str], shown: dict[str, str]) -> str:
    """The section's paragraph: what the rows and columns are."""
    rows = "architecture" + (f" × {', '.join(shown.values())}" if shown else "") + " × T"
    return (
        f"One table per task and clip mode; rows {rows}"
        + (" for each label" if len(labels) > 1 else "")
        + ". 'solved' is k/n seeds (errored runs count as not solved); 'norm. loss' is final "
        "loss / the memoryless baseline's (1 = chance); the gradient span is how many steps "
        "back the gradient norm stays above 1e-6 × its largest value at the end of training "
        "(a span of T: it reaches the first step); "
        "r is the per-step gradient factor (< 1 vanishing, > 1 exploding) and λ_1 the largest "
        "Lyapunov exponent (< 0: the network forgets). Each clip mode's table ends with its Δ "
        "from no clipping: what clipping buys at that architecture and T."
    )
