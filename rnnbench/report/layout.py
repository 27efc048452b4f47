"""Layout fixes the figures share: empty facets turned off, a wrapped grid's columns, room
between a grid's rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: the most panels a wrapped grid puts side by side
MAX_COLUMNS = 4


def hide_empty(grid: sns.FacetGrid) -> None:
    """Turn off each panel that drew nothing (a row that lacks a column's value: no copy run at
    T = 100): no empty frame with ticks. Its texts stay: a column title on the top row, a row
    title ('task = copy') on the last column."""
    for ax in grid.axes.flat:
        if not ax.has_data():
            ax.set_axis_off()


def panel_columns(groups: Sequence[Any]) -> int:
    """The columns of a wrapped grid of panels, each panel of the group named: the largest
    group's panel count, up to :data:`MAX_COLUMNS`, so that where every group fits on a row
    the rows are the groups (one task per row) and no row ends in blank panels."""
    counts = Counter(groups)
    return max(1, min(max(counts.values(), default=1), MAX_COLUMNS))


def row_gap(fig: Figure, nrows: int, gap: float = 1.0) -> None:
    """Space the rows of ``fig``'s subplot grid ``gap`` inches apart: room for a row's x tick
    labels and x label above the next row's titles (a layout engine would collapse a panel
    whose long row names are wider than the figure; the saved image's tight box takes them)."""
    params = fig.subplotpars
    height = fig.get_figheight() * (params.top - params.bottom)
    axes_height = (height - (nrows - 1) * gap) / nrows
    if nrows > 1 and axes_height > 0:
        fig.subplots_adjust(hspace=gap / axes_height)


def column_gap(grid: sns.FacetGrid, pad: float = 6.0) -> None:
    """Widen the space between a facet grid's columns where a panel's y tick labels and y label
    (unshared y: every panel has its own) reach into the panel to its left."""
    axes = grid.axes
    if axes.ndim != 2 or axes.shape[1] < 2:
        return
    fig = grid.figure
    renderer = FigureCanvasAgg(fig).get_renderer()
    need = (
        max(
            ax.get_window_extent(renderer).x0 - ax.get_tightbbox(renderer).x0
            for ax in axes[:, 1:].flat
            if ax.axison
        )
        if any(ax.axison for ax in axes[:, 1:].flat)
        else 0.0
    )
    left, right = axes[0, 0].get_window_extent(renderer), axes[0, 1].get_window_extent(renderer)
    if right.x0 - left.x1 >= need + pad:
        return
    ncols = axes.shape[1]
    params = fig.subplotpars
    width = fig.bbox.width * (params.right - params.left)
    gap = need + pad
    axes_width = (width - (ncols - 1) * gap) / ncols
    if axes_width > 0:
        fig.subplots_adjust(wspace=gap / axes_width)
