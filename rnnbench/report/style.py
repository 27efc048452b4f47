"""What every figure shares: one colour per architecture; the line styles: the clip mode and
the swept fields the figures draw (:class:`rnnbench.report.axes.Axes`), so runs at two learning
rates are two lines, never one pooled line; and, comparing stores, the label as a facet: one
column per label, one row per (task, T), never a line style (two labels' lines in one panel hid
each other)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rnnbench.report.axes import Axes, axis_key, sort_token, variant_of

#: One fixed colour per built-in architecture, the same in every figure of every report: the
#: eight colours of the Okabe–Ito palette (M. Okabe & K. Ito 2008, "Color Universal Design",
#: https://jfly.uni-koeln.de/color/), which stay apart under protanopia, deuteranopia and
#: tritanopia. Related architectures get far-apart colours (lstm / lstm_ln blue / yellow,
#: gru / gru_ln black / reddish purple, gru / mingru black / orange, rnn / rnn_relu vermilion /
#: sky blue), lru's bluish green is far from lstm_ln's yellow, and the strongest colours go to
#: rnn, lstm and gru, the architectures compared most often.
BUILTIN_COLOURS: dict[str, str] = {
    "rnn": "#D55E00",  # vermilion
    "rnn_relu": "#56B4E9",  # sky blue
    "lstm": "#0072B2",  # blue
    "lstm_ln": "#F0E442",  # yellow
    "gru": "#000000",  # black
    "gru_ln": "#CC79A7",  # reddish purple
    "mingru": "#E69F00",  # orange
    "lru": "#009E73",  # bluish green
}
#: The colours of user architectures, none a built-in's: Paul Tol's "muted" scheme
#: (https://personal.sron.nl/~pault/, "Colour schemes and templates", 2021) less its sand, teal
#: and cyan (near Okabe–Ito's yellow, bluish green and sky blue) and its pale grey (too faint).
#: A name's colour is a hash of the name into this tuple (:func:`user_colour`): editing the
#: tuple recolours user architectures, so do it only with a reason.
USER_COLOURS: tuple[str, ...] = (
    "#332288",  # indigo
    "#882255",  # wine
    "#999933",  # olive
    "#117733",  # green
    "#AA4499",  # purple
    "#CC6677",  # rose
)


def user_colour(name: str) -> str:
    """A user architecture's colour: the same for the same name in any report and process
    (a SHA-256 of the name, not :func:`hash`, which Python salts per process), whatever other
    architectures are drawn. Two user names may share one; a built-in's colour is never drawn."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return USER_COLOURS[int.from_bytes(digest[:8], "big") % len(USER_COLOURS)]


def palette(archs: Iterable[str]) -> dict[str, str]:
    """Each architecture's colour (hex): fixed for a built-in, derived from the name for a user
    architecture, so one architecture has one colour in every figure of every report."""
    return {name: BUILTIN_COLOURS.get(name) or user_colour(name) for name in sorted(set(archs))}


#: Each line style's marker, in legend order: filled shapes that differ in outline, not only
#: in size, so that two markers drawn one on the other both show
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")
#: Each line style's dashes (matplotlib's on-off lengths in line widths; "" solid), in legend
#: order: seaborn's first five, then longer patterns that stay apart from them
DASHES: tuple[Any, ...] = (
    "",
    (4, 1.5),
    (1, 1),
    (3, 1.25, 1.5, 1.25),
    (5, 1, 1, 1),
    (6, 2, 1, 2, 1, 2),
    (2, 2),
    (7, 1.5, 2, 1.5),
)


def line_looks(ctx: Ctx, styles: Sequence[str]) -> dict[str, tuple[str, Any]]:
    """Each line style's (marker, dashes): by its place in ``ctx``'s order, so a clip mode looks
    the same in every figure of a report; styles it does not know after."""
    unknown = [s for s in styles if s not in ctx.order]
    place = {s: ctx.order.index(s) for s in styles if s in ctx.order}
    place |= {s: len(ctx.order) + n for n, s in enumerate(unknown)}
    return {s: (MARKERS[place[s] % len(MARKERS)], DASHES[place[s] % len(DASHES)]) for s in styles}


def variants(frame: pd.DataFrame, ctx: Ctx) -> list[str]:
    """Each run's values of the fields the figures draw as line style ('' for none)."""
    styled = [p for p in ctx.axes.styled if p in frame.columns]
    if not styled:
        return [""] * len(frame)
    return [variant_of(r, styled, ctx.axes.shown) for r in frame[styled].to_dict("records")]


def run_series(frame: pd.DataFrame, ctx: Ctx) -> pd.Series:
    """Each run's line style: its clip mode and its values of the styled swept fields
    ('none · lr=0.01'). Not its label: comparing stores, each label has a column of panels
    (:func:`label_panels`)."""
    series = frame["clip"].astype(str)
    swept = pd.Series(variants(frame, ctx), index=frame.index, dtype=object)
    return series.where(swept == "", series + " · " + swept)


def series_order(frame: pd.DataFrame, ctx: Ctx) -> list[str]:
    """The line styles in legend order: clip, then swept values by magnitude (as text
    'lr=1e-05' would sort after 'lr=0.001')."""
    styled = [p for p in ctx.axes.styled if p in frame.columns]
    rows = sorted(
        zip(frame.to_dict("records"), run_series(frame, ctx), strict=True),
        key=lambda rs: (str(rs[0]["clip"]), [sort_token(v) for v in axis_key(rs[0], styled)]),
    )
    return list(dict.fromkeys(series for _, series in rows))


def with_series(frame: pd.DataFrame, ctx: Ctx) -> pd.DataFrame:
    """``frame`` with each run's line style, computed once per run (each figure's long frame
    then carries it along instead of recomputing it per point)."""
    return frame if "series" in frame.columns else frame.assign(series=run_series(frame, ctx))


def style_order(data: pd.DataFrame, ctx: Ctx) -> list[str]:
    """The line styles of one figure in ``ctx``'s order, so a style means the same in every
    figure; any it does not know (a figure called without :meth:`Ctx.of`) sorted after."""
    present = set(data["series"])
    known = [s for s in ctx.order if s in present]
    return known + sorted(present - set(known))


#: comparing stores, the row facet of a figure: one row per (row value, column value), e.g.
#: 'adding · T = 30', so that the labels can be the columns and a figure is as many panels wide
#: as there are labels (a panel per (T, label) side by side made it too wide to read)
PANEL = "panel"
#: the rows' order (row value, then column value), carried beside :data:`PANEL` in the data
PANEL_RANK = "panel_rank"
#: comparing stores, the column facet: the store's label, the baseline's column first
LABEL = "label"


def row_name(row_value: Any, col: str, value: Any) -> str:
    """A comparison's row facet value: the row value and the column value ('adding · T = 16')."""
    return f"{row_value} · {col} = {value}"


def facet_of(ctx: Ctx, row_value: Any, col: str, value: Any, label: Any) -> tuple[Any, Any]:
    """The (row, column) facet of a run at ``row_value`` (its task) and ``value`` of ``col``
    (its T): ``(task, T)``, or comparing stores ``('adding · T = 16', label)``."""
    return (row_name(row_value, col, value), str(label)) if ctx.multi else (row_value, value)


def _value_order(values: list[Any]) -> list[Any]:
    """As seaborn orders a facet's values: numbers by magnitude, anything else (a phase: init,
    end) in order of first appearance."""
    unique = list(dict.fromkeys(values))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in unique)
    return sorted(unique, key=sort_token) if numeric else unique


def label_panels(
    data: pd.DataFrame, ctx: Ctx, col: str, row: str = "task"
) -> tuple[pd.DataFrame, str, str]:
    """``data`` and its (row, column) facets: ``(row, col)``, or comparing stores
    (:data:`PANEL`, :data:`LABEL`): one row per (``row`` value, ``col`` value) ('adding · T =
    16'), in the order of the row values (as seaborn orders them: of first appearance), then
    of the ``col`` values, and one column per label."""
    if not ctx.multi or data.empty:
        return data, row, col
    pairs = list(zip(data[row].tolist(), data[col].tolist(), strict=True))
    rows = list(dict.fromkeys(r for r, _ in pairs))
    values = _value_order([v for _, v in pairs])
    return data.assign(
        **{
            PANEL: [row_name(r, col, v) for r, v in pairs],
            PANEL_RANK: [rows.index(r) * len(values) + values.index(v) for r, v in pairs],
            LABEL: data["label"].astype(str),
        }
    ), PANEL, LABEL


def label_order(ctx: Ctx, present: Iterable[Any]) -> list[str]:
    """The labels of ``present`` in the order given (the baseline first), any other after."""
    found = {str(label) for label in present}
    return [x for x in ctx.labels if x in found] + sorted(found - set(ctx.labels))


def facet_orders(
    data: pd.DataFrame, ctx: Ctx, row: str, col: str
) -> tuple[list[Any] | None, list[Any] | None]:
    """The row and column facets' orders of a comparison (:func:`label_panels`); ``None``
    (seaborn's own) for a single store's."""
    rows = None
    if row == PANEL and PANEL_RANK in data.columns:
        rows = list(data.sort_values(PANEL_RANK, kind="stable")[PANEL].drop_duplicates())
    cols = label_order(ctx, data[LABEL]) if ctx.multi and col == LABEL else None
    return rows, cols


def hidden_missing(frame: pd.DataFrame) -> list[str]:
    """The architectures with a profile but no hidden-state one (their core takes no
    perturbation): the report then compares every architecture on the input profile."""
    missing = set()
    for arch, profiles in zip(frame["arch"], frame["profiles"], strict=True):
        if isinstance(profiles, list) and profiles and profiles[0].get("norms") is None:
            missing.add(str(arch))
    return sorted(missing)


def profile_kind(frame: pd.DataFrame) -> str:
    return "input" if hidden_missing(frame) else "hidden"


@dataclass
class Ctx:
    """What every figure shares: the architecture colours, comparison mode, the swept fields
    and the legend order of the line styles (:func:`Ctx.of` computes the last from the runs)."""

    palette: dict[str, Any]
    multi: bool
    axes: Axes = field(default_factory=Axes)
    order: list[str] = field(default_factory=list)
    #: the stores' labels in the order given (the first is the baseline)
    labels: list[str] = field(default_factory=list)
    #: the profile the figures compare: "hidden" (||dL/dh_t||) or, where some architecture
    #: hides its state (a sequence core without a perturbation), "input" (||dL/dx_t||)
    profile: str = "hidden"

    @classmethod
    def of(cls, frame: pd.DataFrame, multi: bool, axes: Axes) -> Ctx:
        ctx = cls(palette(frame["arch"].dropna()), multi, axes, profile=profile_kind(frame))
        ctx.order = series_order(frame, ctx)
        # the order the caller gave (build_report keeps it in attrs), else of first appearance
        given = frame.attrs.get("labels")
        found = frame["label"].astype(str).tolist() if "label" in frame.columns else []
        ctx.labels = [str(x) for x in given] if given else list(dict.fromkeys(found))
        return ctx

    @property
    def symbol(self) -> str:
        return "‖∂L/∂h_t‖" if self.profile == "hidden" else "‖∂L/∂x_t‖"

    def style_title(self) -> str:
        """The legend's title for the line styles: what the style column encodes (the label
        is a facet, named in each panel's title)."""
        return " · ".join(["clip", *(self.axes.shown[p] for p in self.axes.styled)])
