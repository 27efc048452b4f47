"""The swept fields of a report's runs (``[grid.train] lr = [...]``): which of them tell
groups apart, and how tables, figures and the header name them.

Every table groups by all swept fields (so runs at two learning rates are never pooled as
seeds); its formatted view shows as row keys only the fields that *vary*: a field with one
value in the data is "fixed", stated once in the header note instead of in a constant column.
Figures encode the varying fields as line style (hue stays the architecture); past
:data:`MAX_STYLES` line styles a figure stops being readable, so the later fields are held at
one value in the figures (and stay apart in the tables), and the header note says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rnnbench.results.grouping import GROUP_KEYS, short_names
from rnnbench.results.spans import frame_axes, hashable

DASH = "–"
#: The most line styles (swept combinations × clip modes) a figure's legend holds (a
#: comparison's labels are panels of their own, not line styles).
MAX_STYLES = 6


def value_text(value: Any) -> str:
    """One swept value as a cell: '0.001', 'orthogonal'; a dash where the run's sweep does not
    vary the field (a scoped ``[grid.archs.NAME]`` axis on another architecture's run)."""
    value = hashable(value)
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def sort_token(value: Any) -> tuple[int, int, float, str]:
    """Sorts swept values by magnitude (1e-4 before 1e-3, 64 before 128; not as text), text
    after numbers, a missing value last."""
    value = hashable(value)
    if value is None:
        return (1, 0, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, 0, float(value), "")
    return (0, 1, 0.0, str(value))


@dataclass(frozen=True)
class Axes:
    """The swept fields of a frame of runs.

    ``columns``: all of them (the CSV tables' key columns); ``shown``: those that vary, the
    formatted tables' row keys, by display name; ``styled``: those the figures draw as line
    style; ``fixed``: the one-valued ones, with their value as text; ``held``: varying fields
    the figures hold at one value (too many combinations to draw), with that value."""

    columns: list[str] = field(default_factory=list)
    shown: dict[str, str] = field(default_factory=dict)
    styled: list[str] = field(default_factory=list)
    fixed: dict[str, str] = field(default_factory=dict)
    held: dict[str, Any] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)  # shown path -> its values

    def note(self, multi: bool = False) -> str:
        """The header note: what the tables keep apart, what the figures draw and hold
        (``multi``: comparing stores, each label's runs in panels of their own)."""
        if not self.columns:
            return ""
        parts = []
        if self.shown:
            parts.append(
                "Swept fields, kept apart in every table (never pooled as seeds): "
                + ", ".join(
                    f"{name} ({', '.join(self.values.get(path, []))})"
                    for path, name in self.shown.items()
                )
                + "."
            )
        if self.fixed:
            parts.append(
                "Fixed (one value in these runs): "
                + ", ".join(f"{path}={text}" for path, text in self.fixed.items())
                + "."
            )
        if self.styled:
            parts.append(
                "Figures: colour = architecture, line style and marker = "
                + " · ".join(["clip", *(self.shown[p] for p in self.styled)])
                + (" (each label in panels of its own)" if multi else "")
                + "."
            )
        if self.held:
            parts.append(
                "Too many combinations to draw: figures show only the runs at "
                + ", ".join(f"{self.shown[p]}={value_text(v)}" for p, v in self.held.items())
                + " (the tables and the solved-rate heatmap hold every value)."
            )
        return " ".join(parts)


def _varies(frame: pd.DataFrame, path: str, others: Sequence[str]) -> bool:
    """Whether ``path`` tells groups apart: more than one value, or one value that some runs
    lack while runs with the same other keys have it (two sweeps, one varying the field)."""
    values = frame[path].map(hashable)
    if values.dropna().nunique() > 1:
        return True
    # the keys this frame has: a run frame, or a summary's numbers (no T when pooled over it)
    keys = [k for k in ("label", *GROUP_KEYS) if k in frame.columns] + list(others)
    keyed = frame[keys].map(hashable).assign(_v=values.isna())
    return bool((keyed.groupby(keys, dropna=False)["_v"].nunique() > 1).any())


def _counts(frame: pd.DataFrame) -> int:
    # the line styles before any swept field: the clip modes (labels are panels, not styles)
    return int(frame["clip"].nunique())


def _held_value(values: pd.Series) -> Any:
    """The value figures hold a field at: its most common one (ties: the smallest)."""
    present = values.map(hashable).dropna()
    counts = present.value_counts()
    best = counts[counts == counts.max()].index
    return sorted(best, key=sort_token)[0]


def swept_axes(frame: pd.DataFrame) -> Axes:
    """The swept fields of a frame of runs, sorted into shown / fixed / styled / held."""
    columns = frame_axes(frame)
    names = short_names(columns)
    shown: dict[str, str] = {}
    fixed: dict[str, str] = {}
    for path in columns:
        others = [c for c in columns if c != path]
        if _varies(frame, path, others):
            shown[path] = names[path]
        else:
            present = frame[path].map(hashable).dropna()
            fixed[path] = value_text(present.iloc[0]) if len(present) else DASH
    styled: list[str] = []
    styles = _counts(frame)
    held: dict[str, Any] = {}
    # a cell's own parameters ([grid.archs.NAME]) are what a comparison of that cell is
    # about: they get a line style first, the settings after
    for path in sorted(shown, key=lambda p: not p.startswith("archs.")):
        levels = frame[path].map(hashable).nunique(dropna=False)
        if styles * levels <= MAX_STYLES:
            styled.append(path)
            styles *= levels
        else:
            held[path] = _held_value(frame[path])
    values = {
        # hashable per value: NaN is not equal to itself, so a set would keep every NaN; a
        # missing value is no value of the field (its runs' sweep does not set it)
        path: [
            value_text(v)
            for v in sorted({hashable(v) for v in frame[path]} - {None}, key=sort_token)
        ]
        for path in shown
    }
    return Axes(columns, shown, styled, fixed, held, values)


def shown_axes(numbers: pd.DataFrame, shown: Mapping[str, str] | None) -> dict[str, str]:
    """``shown`` (path -> name), or where the caller gives none the varying swept fields of
    ``numbers`` itself: a view never merges rows that its numbers keep apart."""
    return dict(shown) if shown is not None else swept_axes(numbers).shown


def every_value(axes: Axes) -> Axes:
    """``axes`` with every varying field drawn and none held: for a figure whose rows, not a
    legend, tell the values apart (the solved-rate heatmap)."""
    return dataclasses.replace(axes, styled=list(axes.shown), held={})


def figure_runs(frame: pd.DataFrame, axes: Axes) -> pd.DataFrame:
    """The runs the figures draw: the held fields at their held value (runs that do not set the
    field, a scoped axis on another architecture, stay)."""
    keep = pd.Series(True, index=frame.index)
    for path, value in axes.held.items():
        values = frame[path].map(hashable)
        keep &= values.isna() | (values == value)
    return frame[keep]


def variant_of(row: Mapping[str, Any], paths: Sequence[str], names: Mapping[str, str]) -> str:
    """'lr=0.01 init=orthogonal' for ``paths`` (the fields a run does not set left out)."""
    return " ".join(
        f"{names[p]}={value_text(row.get(p))}" for p in paths if hashable(row.get(p)) is not None
    )


def axis_key(row: Mapping[str, Any], paths: Sequence[str]) -> tuple[Any, ...]:
    """A run's (or a table row's) swept values as a lookup key: NaN and None are one key."""
    return tuple(hashable(row.get(p)) for p in paths)
