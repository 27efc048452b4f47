"""The report's tables: numeric long frames (written as CSV) and their formatted views.

Every number aggregated over seeds is shown, from :data:`MIN_SPREAD` seeds on, as ``median
[q1–q3] n=k``: seeds of recurrent training are heavy-tailed (one diverged seed ruins a mean), so
the median plus the IQR and the seed count is the honest summary. With fewer seeds a median
and quartiles describe no run (one seed solved, one at chance: the "median" is neither), so a
cell lists every seed's value in seed order. n counts seeds: every cell is over the seeds of
one T (the i.i.d. probe columns of the memory table, which pool the T, say so). The numeric
frames are computed once and only then formatted into strings for HTML / Markdown. The memory
table is :mod:`rnnbench.report.memory_table`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rnnbench.report.axes import axis_key, shown_axes, sort_token, value_text
from rnnbench.results.grouping import GROUP_KEYS
from rnnbench.results.spans import frame_axes, hashable

DASH = "–"  # shown for a missing value
#: the fewest seeds a cell summarises as median [q1–q3] n=k; with fewer it lists each value
MIN_SPREAD = 4
#: the header note: how a number aggregated over seeds is written
NOTATION = (
    f"Aggregates over seeds: with up to {MIN_SPREAD - 1} seeds, each seed's value in seed "
    f"order ('0.27, 0.74'); from {MIN_SPREAD} seeds, median [q1–q3] n=seeds with a value. n "
    "counts seeds, never seeds × T: a cell is over one T's seeds, or says 'over s seeds × m T'."
)


def finite(values: Iterable[Any]) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return arr[np.isfinite(arr)]


def spread(values: Iterable[Any]) -> tuple[float, float, float, int]:
    """(median, q1, q3, n) over the finite values; NaNs with n = 0 when there are none."""
    arr = finite(values)
    if arr.size == 0:
        return math.nan, math.nan, math.nan, 0
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    return float(med), float(q1), float(q3), int(arr.size)


def seed_values(group: pd.DataFrame, column: str, order: Sequence[str] = ("seed",)) -> list[float]:
    """``column``'s finite values, the runs sorted by ``order`` (the seed): what a cell of
    fewer than :data:`MIN_SPREAD` seeds lists."""
    if column not in group.columns:
        return []
    keys = [k for k in order if k in group.columns]
    return finite((group.sort_values(keys, kind="stable") if keys else group)[column]).tolist()


def num(value: float) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.3g}"


def fmt_spread(med: float, q1: float, q3: float, n: int, values: Sequence[float]) -> str:
    """``median [q1–q3] n=k`` from :data:`MIN_SPREAD` values on; below, the ``values`` (in seed
    order) themselves: '0.27, 0.74'."""
    if n == 0:
        return DASH
    if n < MIN_SPREAD and len(values) == n:
        return ", ".join(num(v) for v in values)
    return f"{num(med)} [{num(q1)}–{num(q3)}] n={n}"


def spread_cell(r: Mapping[str, Any], column: str) -> str:
    """The cell of ``column``'s spread in a numbers row (its ``_median|q1|q3|n|values``)."""
    values = r.get(f"{column}_values")
    return fmt_spread(
        r[f"{column}_median"],
        r[f"{column}_q1"],
        r[f"{column}_q3"],
        r[f"{column}_n"],
        values if isinstance(values, list) else [],
    )


def solved_flags(frame: pd.DataFrame) -> pd.Series:
    # errored runs have solved=None: they count as attempted and not solved
    return frame["solved"].map(lambda v: v is True or v is np.True_)


def keyed(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with its swept fields as grouping keys (a list value as JSON, None and NaN
    alike), and those fields: every summary groups by them, so runs at two values of a field
    are never pooled as seeds."""
    axes = frame_axes(frame)
    return frame.assign(**{a: frame[a].map(hashable) for a in axes}), axes


_HEADLINE_COLUMNS = [
    "solved",
    "runs",
    "solved_rate",
    "norm_loss_median",
    "norm_loss_q1",
    "norm_loss_q3",
    "norm_loss_n",
    "norm_loss_values",
    "norm_loss_solved",
    "seeds_disagree",
]


def loss_numbers(group: pd.DataFrame) -> dict[str, Any]:
    """One group's loss spread over its seeds, and whether those seeds disagree: some solved,
    some not (``norm_loss_solved`` of ``norm_loss_n`` solved), so no run has the median."""
    med, q1, q3, n = spread(group["normalized_loss"])
    losses = pd.to_numeric(group["normalized_loss"], errors="coerce").astype(np.float64)
    solved = int(solved_flags(group[np.isfinite(losses)]).sum())
    return {
        "norm_loss_median": med,
        "norm_loss_q1": q1,
        "norm_loss_q3": q3,
        "norm_loss_n": n,
        "norm_loss_values": seed_values(group, "normalized_loss"),
        "norm_loss_solved": solved,
        "seeds_disagree": 0 < solved < n,
    }


def per_group(
    frame: pd.DataFrame,
    row: Callable[[pd.DataFrame], dict[str, Any]],
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (label, task, arch, seq_len, clip, swept fields), over that group's seeds:
    its keys and ``row(group)`` (``columns``: the value columns an empty frame still has).
    Every per-T summary of the report groups this way, so none pools two values of a field."""
    frame, axes = keyed(frame)
    keys = ["label", *GROUP_KEYS, *axes]
    # dropna=False: a field a run's sweep does not vary (None) is a key, not a dropped run
    rows = [
        dict(zip(keys, key, strict=True)) | row(group)
        for key, group in frame.groupby(keys, sort=True, dropna=False)
    ]
    return pd.DataFrame(rows, columns=None if columns is None else [*keys, *columns])


def solved_numbers(group: pd.DataFrame) -> dict[str, Any]:
    """A group's solved k/n and rate (an errored run counts as not solved)."""
    solved = int(solved_flags(group).sum())
    return {"solved": solved, "runs": len(group), "solved_rate": solved / len(group)}


def divergence_numbers(group: pd.DataFrame) -> dict[str, Any]:
    """A group's diverged and errored runs, and the divergence rate among finished runs."""
    diverged = int((group["status"] == "diverged").sum())
    errors = int((group["status"] == "error").sum())
    finished = len(group) - errors
    rate = diverged / finished if finished else math.nan
    return {"diverged": diverged, "errors": errors, "divergence_rate": rate}


def headline_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (label, task, arch, seq_len, clip, swept fields): solved k/n and the normalized-loss
    spread over the seeds."""
    return per_group(
        frame, lambda group: solved_numbers(group) | loss_numbers(group), _HEADLINE_COLUMNS
    )


def label_rank(labels: Sequence[str]) -> Callable[[Any], int]:
    """A sort key for labels in the order the stores were given (the baseline first), any
    other after them: every table and figure of a comparison lists its labels so."""
    rank = {label: i for i, label in enumerate(labels)}
    return lambda label: rank.get(label, len(rank))


def as_float(value: Any) -> float:
    """``value`` as a float; NaN for a missing or non-numeric one."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


#: the headline's mark on a loss cell whose seeds disagree, and its footnote
DISAGREE = "†"


def disagree_note(numbers: pd.DataFrame) -> str:
    """The headline's footnote where some loss cell is marked :data:`DISAGREE`; else ''."""
    if numbers.empty or not numbers["seeds_disagree"].astype(bool).any():
        return ""
    return (
        f"{DISAGREE} seeds disagree: some of the cell's seeds solved the task and some did not "
        "(k of n solved: its 'solved' cell), so a median over them would describe no run; "
        f"read the seeds' values (from {MIN_SPREAD} seeds, the quartiles)."
    )


def delta(a: Any, b: Any, decimals: int | None = None) -> str:
    """``a − b`` with its sign, to the precision ``a`` and ``b`` are shown at (three
    significant digits of the larger, or ``decimals`` places), so float noise between two
    runs that agree ('+2.46e-09') reads as the 0 it is; the dash where either is missing."""
    a, b = as_float(a), as_float(b)
    if not (math.isfinite(a) and math.isfinite(b)):
        return DASH
    if decimals is None:
        scale = max(abs(a), abs(b))
        decimals = 0 if scale == 0 else max(0, 2 - math.floor(math.log10(scale)))
    value = round(a - b, decimals)
    return "0" if value == 0 else f"{value:+.{decimals}f}"


def stability_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (label, task, arch, seq_len, clip, swept fields): over the seeds of one T (pooling
    the T would count seeds × T as n)."""
    metrics = [c for c, _ in _STABILITY_METRICS]
    return per_group(
        frame,
        lambda group: (
            {"runs": len(group)} | divergence_numbers(group) | spread_columns(group, metrics)
        ),
    )


_STABILITY_METRICS = (
    ("max_grad_norm", "max pre-clip ‖g‖"),
    ("clipped_fraction", "fraction clipped"),
    ("grad_factor_init", "r at init"),
    ("grad_factor", "r at end"),
    ("lyapunov_max_init", "λ_1 at init"),
    ("lyapunov_max", "λ_1 at end"),
    ("jacobian_sigma1", "σ_1 geometric mean at end"),
)
#: the metrics runs stored before rnnbench recorded the dynamics lack
DYNAMICS_METRICS = ("lyapunov_max_init", "lyapunov_max", "jacobian_sigma1")


def recorded(numbers: pd.DataFrame, column: str) -> bool:
    """Whether any row of a numbers table has a value of ``column`` (its ``_n`` > 0)."""
    counts = numbers.get(f"{column}_n")
    return counts is not None and bool((pd.to_numeric(counts, errors="coerce") > 0).any())


def stability_metrics(numbers: pd.DataFrame) -> list[tuple[str, str]]:
    """The stability metrics to show: a dynamics metric only where some run recorded it."""
    return [
        (column, title)
        for column, title in _STABILITY_METRICS
        if column not in DYNAMICS_METRICS or recorded(numbers, column)
    ]


def _stability_cells(r: dict[str, Any], metrics: list[tuple[str, str]]) -> dict[str, str]:
    """One stability row's cells; ``metrics``: (column, title) of the spreads to show. A
    comparison's differences are :mod:`rnnbench.report.comparison`'s, against every baseline
    architecture."""
    finished = r["runs"] - r["errors"]
    cells = {
        "diverged": f"{r['diverged']}/{finished}"
        + (f" ({r['errors']} errors)" if r["errors"] else "")
    }
    return cells | {title: spread_cell(r, column) for column, title in metrics}


def condition_order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    # (task, arch, swept-values key, clip): swept values by magnitude, not as text
    return (key[0], key[1], [sort_token(v) for v in key[2]], key[3])


def _stability_order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    # (task, arch, swept-values key, T, clip): by condition, then T, then clip mode
    return (key[0], key[1], [sort_token(v) for v in key[2]], key[3], key[4])


def stability_views(
    numbers: pd.DataFrame, labels: list[str], shown: dict[str, str] | None = None
) -> list[tuple[str, pd.DataFrame]]:
    """One table: rows (label ×) task × architecture × the swept fields that vary × T × clip."""
    if numbers.empty:
        return []
    shown = shown_axes(numbers, shown)
    paths = list(shown)
    metrics = stability_metrics(numbers)
    multi = len(labels) > 1
    rank = label_rank(labels)
    lookup = {
        (r["label"], r["task"], r["arch"], axis_key(r, paths), int(r["seq_len"]), r["clip"]): r
        for r in numbers.to_dict("records")
    }
    keys = sorted(lookup, key=lambda k: (rank(k[0]), *_stability_order(k[1:])))
    rows = {
        ((label,) if multi else ())
        + (task, arch, *map(value_text, values), seq_len, clip): _stability_cells(
            lookup[(label, task, arch, values, seq_len, clip)], metrics
        )
        for label, task, arch, values, seq_len, clip in keys
    }
    view = pd.DataFrame.from_dict(rows, orient="index")
    view.index = pd.MultiIndex.from_tuples(
        list(rows),
        names=(["label"] if multi else []) + ["task", "arch", *shown.values(), "T", "clip"],
    )
    return [("one row per T: each cell over that T's seeds", view)]


def spread_columns(
    group: pd.DataFrame, columns: Iterable[str], order: Sequence[str] = ("seed",)
) -> dict[str, Any]:
    """Each column's median, quartiles, count and values (the runs sorted by ``order``)."""
    row: dict[str, Any] = {}
    for column in columns:
        # a column an older store lacks is a column of missing values
        med, q1, q3, n = spread(group[column] if column in group.columns else [])
        row |= {f"{column}_median": med, f"{column}_q1": q1, f"{column}_q3": q3, f"{column}_n": n}
        row[f"{column}_values"] = seed_values(group, column, order)
    return row


def problem_runs(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame[frame["status"].isin(["error", "diverged"])]
    columns = [
        "label",
        "run_id",
        "task",
        "arch",
        "seq_len",
        "clip",
        *frame_axes(frame),
        "seed",
        "status",
        "diverged_step",
        "error",
    ]
    out = bad[columns].copy()
    out["diverged_step"] = (
        out["diverged_step"].astype(object).where(out["diverged_step"].notna(), None)
    )
    out["error"] = out["error"].map(lambda v: v if isinstance(v, str) and v else DASH)
    return out.reset_index(drop=True)
