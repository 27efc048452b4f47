"""Comparing stores: every architecture of a label against every architecture of the baseline.

"How does my cell compare" is asked against the architectures a researcher knows, not only
against a cell of the same name: a store of the user's cell holds no ``lstm`` row to subtract
from, so a same-name difference compares it with nothing. The baseline is the first label; each
other label's architectures are compared with each of the baseline's, at the same task, T, clip
mode and swept values: Δ against rnn, against lstm, against gru, and a same-name pair among
them. The differences cover the headline (solved rate, normalized loss), the gradient (span, r),
the dynamics (λ_1), memory (the task memory span) and stability (divergence rate), each a
difference of medians over seeds (of rates for the two rates).

One table per (task, baseline architecture), rows the compared label's architecture × swept
fields × T × clip, one column per difference: at most nine columns, however many architectures
either store has.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rnnbench.report.axes import axis_key, shown_axes, sort_token, value_text
from rnnbench.report.question import clip_order
from rnnbench.report.tables import as_float, delta, label_rank, recorded

#: (column of the question numbers, title, decimals: None for the operands' precision) of
#: each difference
COMPARED: tuple[tuple[str, str, int | None], ...] = (
    ("solved_rate", "solved rate", 2),
    ("norm_loss_median", "norm. loss", None),
    ("grad_span_median", "gradient span", None),
    ("grad_factor_median", "r at end", None),
    ("lyapunov_max_median", "λ_1 at end", None),
    ("task_memory_span_median", "task memory span", None),
    ("divergence_rate", "divergence rate", 2),
)


def _matches(candidate: tuple[Any, ...], baseline: tuple[Any, ...]) -> bool:
    """Whether a baseline row's swept values fit a compared row's: equal, or a field the
    baseline's sweep does not vary (None: its runs hold it at the configured value)."""
    return all(b is None or b == c for c, b in zip(candidate, baseline, strict=True))


def comparison_numbers(numbers: pd.DataFrame, labels: list[str], paths: list[str]) -> pd.DataFrame:
    """One row per (compared row, baseline architecture): the compared label's (task, arch,
    swept values, T, clip), ``against`` (the baseline architecture) and, per :data:`COMPARED`
    column, the compared value, ``baseline_<column>`` and ``delta_<column>`` (their
    difference)."""
    if len(labels) < 2 or numbers.empty:
        return pd.DataFrame()
    records = numbers.to_dict("records")
    base: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in records:
        if r["label"] == labels[0]:
            base.setdefault((r["task"], int(r["seq_len"]), r["clip"]), []).append(r)
    rows = []
    for r in records:
        if r["label"] == labels[0]:
            continue
        values = axis_key(r, paths)
        fitting = [
            b
            for b in base.get((r["task"], int(r["seq_len"]), r["clip"]), [])
            if _matches(values, axis_key(b, paths))
        ]
        for b in sorted(fitting, key=lambda b: str(b["arch"])):
            row = {k: r[k] for k in ("label", "task", "arch", *paths, "seq_len", "clip")}
            row["against"] = b["arch"]
            row["same_runs"] = bool(r.get("runs_key")) and r.get("runs_key") == b.get("runs_key")
            for column, _, _ in COMPARED:
                mine, theirs = as_float(r.get(column)), as_float(b.get(column))
                row |= {column: mine, f"baseline_{column}": theirs}
                row[f"delta_{column}"] = mine - theirs
            rows.append(row)
    return pd.DataFrame(rows)


def _shown(numbers: pd.DataFrame) -> list[tuple[str, str, int | None]]:
    """The differences to show: λ_1 and the task memory span only where some run has them."""
    optional = {
        "lyapunov_max_median": "lyapunov_max",
        "task_memory_span_median": "task_memory_span",
    }
    return [c for c in COMPARED if c[0] not in optional or recorded(numbers, optional[c[0]])]


def comparison_views(
    numbers: pd.DataFrame,
    comparisons: pd.DataFrame,
    labels: list[str],
    shown: dict[str, str] | None = None,
) -> list[tuple[str, pd.DataFrame]]:
    """One table per (task, baseline architecture) of :func:`comparison_numbers`; ``numbers``
    (the question numbers) says which differences were recorded at all."""
    if comparisons.empty:
        return []
    shown = shown_axes(numbers, shown)
    paths = list(shown)
    metrics = _shown(numbers)
    multi = len(labels) > 2  # with one compared label, the caption names it
    rank = label_rank(labels)
    names = (["label"] if multi else []) + ["arch", *shown.values(), "T", "clip"]
    views = []
    for (task, against), sub in comparisons.groupby(["task", "against"], sort=True):
        ordered = sorted(
            sub.to_dict("records"),
            key=lambda r: (
                rank(r["label"]),
                str(r["arch"]),
                [sort_token(v) for v in axis_key(r, paths)],
                int(r["seq_len"]),
                clip_order(str(r["clip"])),
            ),
        )
        rows = {
            ((r["label"],) if multi else ())
            + (
                r["arch"] + (" (same runs)" if r.get("same_runs") else ""),
                *map(value_text, axis_key(r, paths)),
                int(r["seq_len"]),
                r["clip"],
            ): {
                f"Δ {title}": delta(r[column], r[f"baseline_{column}"], decimals)
                for column, title, decimals in metrics
            }
            for r in ordered
        }
        view = pd.DataFrame.from_dict(rows, orient="index")
        view.index = pd.MultiIndex.from_tuples(list(rows), names=names)
        who = ", ".join(labels[1:])
        views.append(
            (
                f"task: {task} · {who} against {labels[0]}'s {against} "
                f"(Δ = {who if not multi else 'label'} − {against}, same T and clip)",
                view,
            )
        )
    return views


def comparison_note(labels: list[str]) -> str:
    """The comparison section's paragraph."""
    return (
        f"Each architecture of {', '.join(labels[1:])} against each architecture of the "
        f"baseline store ({labels[0]}), at the same task, T, clip mode and swept values (a "
        "field the baseline does not sweep matches any value): one table per baseline "
        "architecture. Δ "
        "is compared minus baseline, of the medians over seeds (of the rates for solved and "
        "diverged): a positive Δ solved rate, gradient span or task memory span, or a "
        "negative Δ norm. loss, is better; Δ r and Δ λ_1 > 0 mean the gradient decays less "
        "per step (towards explosion past r = 1, λ_1 = 0). '(same runs)': both stores hold "
        "runs of the same run ids (the same config, seed and code), so that row compares a run "
        "with itself: its Δ is 0 up to the two machines' rounding."
    )
