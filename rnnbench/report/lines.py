"""The line figures' shared grid (:func:`relplot`): seaborn's relplot, one panel per (row,
column) facet, colour = architecture, each line style (clip mode and styled swept fields) a
dash *and* a marker; comparing stores, one column per label and one row per (task, T)
(:func:`rnnbench.report.style.label_panels`).

Three clip modes often draw one line (none and value:0.5 where nothing was clipped): a dash
alone then hides the lines under the top one. So every line style also has its own marker
(:data:`rnnbench.report.style.MARKERS`), drawn sparsely along the line, each style's markers
a fraction of a step further along than the last style's (:func:`stagger_markers`): on
coinciding lines each style's markers sit between the others', and every clip mode shows."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rnnbench.report.layout import column_gap, hide_empty
from rnnbench.report.logticks import log_style
from rnnbench.report.overlays import draw_seeds, integer_ticks
from rnnbench.report.style import LABEL, PANEL, Ctx, facet_orders, line_looks, style_order

HEIGHT = 2.4
ASPECT = 1.35
#: the distance between two markers of one line, as a fraction of the line's x extent (five
#: markers along a line across the panel): spaced along x, not along the drawn path, so a
#: noisy curve (the gradient norm over 1,200 steps) gets as few markers as a smooth one
MARKER_STEP = 0.2
#: a line of at most this many points is a line over swept values (T, a lag, an exponent's
#: index): its markers mark the measured points, since one between them would show a value
#: nobody ran; longer lines (steps, time) get the staggered markers
FEW_POINTS = 12
#: the gid of the lines that carry a line style's markers (tests find them by it)
MARKER_GID = "series-markers"
_MARKER_SIZE = 5.5
#: legend handles long enough to show a dash pattern's period beside its marker (points: the
#: font's size times this)
_HANDLE_LENGTH = 3.2


def log_axes(axes: Iterable[Any]) -> None:
    """Log y only on axes that hold positive data (matplotlib warns on an empty log axis), with
    the report's one log tick style (:mod:`rnnbench.report.logticks`)."""
    for ax in axes:
        ys = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
        ys += [
            np.asarray(c.get_paths()[0].vertices[:, 1])
            for c in ax.collections
            if hasattr(c, "get_paths") and c.get_paths()
        ]
        values = np.concatenate(ys) if ys else np.empty(0)
        if np.any(np.isfinite(values) & (values > 0)):
            ax.set_yscale("log")
            log_style(ax.yaxis)  # after set_yscale, which sets matplotlib's own


def reference_line(fig: Figure, y: float) -> None:
    """A dashed horizontal line at ``y`` on every panel that has data (baseline, r = 1)."""
    for ax in fig.axes:
        if ax.has_data():
            ax.axhline(y, color="0.3", lw=1, ls="--", zorder=0)


def marker_points(
    x: np.ndarray, y: np.ndarray, start: float, log: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Where one line's markers sit: every :data:`MARKER_STEP` of its x extent from ``start``
    (a fraction of a step), on the line as drawn (geometric interpolation on a log y axis:
    the drawn segment is straight there)."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    span = x[-1] - x[0]
    if not span > 0:
        return x[:1], y[:1]
    xs = x[0] + span * MARKER_STEP * (start + np.arange(math.ceil(1 / MARKER_STEP)))
    xs = xs[xs <= x[-1]]
    if log:
        return xs, np.exp(np.interp(xs, x, np.log(y)))
    return xs, np.interp(xs, x, y)


def stagger_markers(grid: sns.FacetGrid, looks: dict[str, tuple[str, Any]], log: bool) -> None:
    """Move the median lines' markers (seaborn draws one at every data point) onto a line of
    markers of their own (gid :data:`MARKER_GID`): :data:`MARKER_STEP` of the x extent apart,
    the ``k``-th of ``n`` line styles (from 0) starting ``(k + 1/2) / n`` of a step along, so
    that on lines that coincide each style's markers sit between the others' (a line of at
    most :data:`FEW_POINTS` points keeps them at its points). ``log``: the y
    axis will be logarithmic. A line of one point keeps its marker there (seaborn's legend
    handles, lines without points, keep theirs)."""
    place = {marker: n for n, (marker, _) in enumerate(looks.values())}
    for ax in grid.axes.flat:
        for line in list(ax.get_lines()):
            k = place.get(line.get_marker())
            x = np.asarray(line.get_xdata(), dtype=float)
            y = np.asarray(line.get_ydata(), dtype=float)
            if k is None or len(x) < 2:
                line.set_markersize(_MARKER_SIZE)
                continue
            size = _MARKER_SIZE
            if len(x) <= FEW_POINTS:  # a swept axis (T, lag, exponent index): at the data
                xs, ys = x, y
                # where styles coincide at a point (every clip mode at init) each later style's
                # marker is smaller, so it sits inside the earlier ones instead of hiding them
                size *= 1.25 - 0.5 * k / max(1, len(looks) - 1)
            else:
                xs, ys = marker_points(x, y, (k + 0.5) / len(looks), log and bool(np.all(y > 0)))
            markers = Line2D(
                xs,
                ys,
                linestyle="none",
                marker=line.get_marker(),
                markersize=size,
                color=line.get_color(),
                markeredgecolor=line.get_markeredgecolor(),
                markeredgewidth=line.get_markeredgewidth(),
                zorder=line.get_zorder() + 0.1,
                gid=MARKER_GID,
            )
            ax.add_line(markers)
            line.set_marker("")


def relplot(
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    row: str,
    col: str,
    ctx: Ctx,
    labels: tuple[str, str],
    log: bool,
    hue: str = "arch",
    palette: dict[str, Any] | None = None,
    row_template: str = "{row_var} = {row_name}",
    share_y: str | None = None,
    overlay: Callable[[sns.FacetGrid], object] | None = None,
) -> sns.FacetGrid:
    """Median lines over seeds, one colour per ``hue``, dash and marker the series; the seeds'
    spread (:func:`rnnbench.report.overlays.draw_seeds`: a band from 4 seeds, thin seed lines
    below) and integer x ticks over them. ``labels``: the x and y axis labels; ``row``, ``col``:
    as :func:`rnnbench.report.style.label_panels` gives them (comparing stores, a row per
    (task, T) and a column per label); ``share_y``: a column of ``data`` whose value groups the
    panels that share one y range (comparing stores, by default each row: a label's lines read
    against the baseline's at the same height); ``overlay``: what the figure draws over the
    lines (reference lines, thresholds, y limits), drawn before the layout is settled: what it
    adds can widen a panel's tick labels."""
    palette = ctx.palette if palette is None else palette
    orders = (sorted(data[hue].unique()), style_order(data, ctx))
    looks = line_looks(ctx, orders[1])
    dashes = {s: dash for s, (_, dash) in looks.items()}
    facets = facet_orders(data, ctx, row, col)
    grid = _median_lines(data, (x, y, row, col, hue), palette, (*orders, *facets), looks)
    stagger_markers(grid, looks, log)  # before the seeds' lines, which have no markers
    # a comparison's row names say the task and the value ('adding · T = 16'), its column
    # names the label alone
    grid.set_titles(
        row_template="{row_name}" if row == PANEL else row_template,
        col_template="{col_name}" if ctx.multi and col == LABEL else "{col_var} = {col_name}",
    )
    keys = (row, col, hue)
    draw_seeds(grid, data, x=x, y=y, keys=keys, palette=palette, orders=orders, dashes=dashes)
    share_label_y(grid, data, row, col, share_y or (row if row == PANEL else None))
    integer_ticks(grid, data, x, row, col)
    # after the seeds' lines: seaborn names an unlabelled axis after its column
    grid.set_axis_labels(*labels)
    _legend_title(grid, ctx)
    if log:
        log_axes(grid.axes.flat)
    if overlay is not None:
        overlay(grid)
    hide_empty(grid)
    column_gap(grid)
    # relplot already draws its legend outside the facets, to the right
    clear_row_titles(grid)
    return grid


def _median_lines(
    data: pd.DataFrame,
    names: tuple[str, str, str, str, str],
    palette: dict[str, Any],
    orders: tuple[list[Any], list[str], list[Any] | None, list[Any] | None],
    looks: dict[str, tuple[str, Any]],
) -> sns.FacetGrid:
    """seaborn's grid of median lines; ``names``: the x, y, row, column and hue columns;
    ``orders``: the hue, line style, row and column orders (``None``: seaborn's own)."""
    x, y, row, col, hue = names
    with matplotlib.rc_context({"legend.handlelength": _HANDLE_LENGTH}):
        return sns.relplot(
            data=data,
            x=x,
            y=y,
            row=row,
            col=col,
            row_order=orders[2],
            col_order=orders[3],
            hue=hue,
            style="series",
            kind="line",
            palette=palette,
            hue_order=orders[0],
            style_order=orders[1],
            markers={s: marker for s, (marker, _) in looks.items()},
            dashes={s: dash for s, (_, dash) in looks.items()},
            estimator="median",
            errorbar=None,
            height=HEIGHT,
            aspect=ASPECT,
            facet_kws={"margin_titles": True, "sharey": False, "sharex": False},
        )


def share_label_y(
    grid: sns.FacetGrid, data: pd.DataFrame, row: str, col: str, share: str | None
) -> None:
    """One y range for the panels whose rows of ``data`` have one value of ``share`` (comparing
    stores, a row: 'adding · T = 16' of the baseline and of mine), so their lines read at the
    same height. Each panel's data limits take in the others' (not a fixed y range: y stays
    autoscaled, and a reference line or clip threshold drawn later still widens it)."""
    if share is None:
        return
    for _, sub in data.groupby(share, sort=False):
        keys = sub[[row, col]].drop_duplicates().itertuples(index=False, name=None)
        axes = [grid.axes_dict[k] for k in keys if k in grid.axes_dict]
        axes = [ax for ax in axes if ax.has_data()]
        if len(axes) < 2:
            continue
        low = min(ax.dataLim.y0 for ax in axes)
        high = max(ax.dataLim.y1 for ax in axes)
        for ax in axes:
            ax.update_datalim([(ax.dataLim.x0, low), (ax.dataLim.x0, high)], updatex=False)
            ax.autoscale_view(scalex=False)


def _legend_title(grid: sns.FacetGrid, ctx: Ctx) -> None:
    """The style column is an internal name: say what it encodes."""
    if grid.legend is None:
        return
    for text in grid.legend.texts:
        if text.get_text() == "series":
            text.set_text(ctx.style_title())


def clear_row_titles(grid: sns.FacetGrid) -> None:
    """Move the legend right of the row titles ('task = adding', drawn right of the last
    column) where they overlap: relplot sizes the figure for the legend alone, and a long line
    style label ('none · lr=0.001') widens the legend into the titles."""
    legend = grid.legend
    if legend is None:
        return
    renderer = FigureCanvasAgg(grid.figure).get_renderer()
    titles = [t.get_window_extent(renderer).x1 for ax in grid.axes.flat for t in ax.texts]
    box = legend.get_window_extent(renderer)
    shift = max(titles, default=-math.inf) + 8 - box.x0
    if shift <= 0:
        return
    # loc is "center right": the anchor is where the legend's right edge (plus its pad) sits
    right = legend.get_bbox_to_anchor().x1 + shift
    legend.set_bbox_to_anchor(
        (right / grid.figure.bbox.width, 0.5), transform=grid.figure.transFigure
    )

