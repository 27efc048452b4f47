"""What the figures draw over seaborn's median lines (:func:`rnnbench.report.figures._relplot`):
the seeds' spread, integer ticks on the discrete x axes, and the clip thresholds over the
pre-clip gradient norm.

A line's IQR band over seeds is drawn only where the line has :data:`MIN_BAND_SEEDS` seeds:
with two or three the quartiles describe no run (one seed solved, one at chance: the band spans
the gap between them), so there each seed is drawn as a thin line in the line's colour and
dashes instead; a line of one seed is that seed. :func:`seed_note` says which, from the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker

from rnnbench.config.schema import ClipSpec
from rnnbench.errors import ConfigError
from rnnbench.report.style import Ctx, facet_of
from rnnbench.report.tables import MIN_SPREAD

#: the fewest seeds a line's IQR band is drawn for (the tables' threshold for median [q1–q3])
MIN_BAND_SEEDS = MIN_SPREAD
#: how a seed's own line is drawn where its line has too few seeds for a band
_THIN: dict[str, Any] = {"lw": 0.7, "alpha": 0.45, "zorder": 1}
#: the most swept values an axis ticks at one by one
_MAX_FIXED_TICKS = 12
#: the colour of each clip mode's threshold line and label (greys: no architecture's colour)
_CLIP_COLOURS = {"norm": "0.15", "value": "0.45"}
#: the gid of the threshold lines and labels (tests and readers of the SVG find them by it)
CLIP_GID = "clip-threshold"
#: the threshold labels' font size and their white box's padding (points)
_CLIP_FONT = 8
_CLIP_PAD = 1.0


def _line_keys(data: pd.DataFrame, row: str, col: str, hue: str) -> list[str]:
    """What tells one drawn line from another: panel, colour, line style and, comparing stores,
    the label (a caller faceting by T alone must not pool two labels' seeds)."""
    keys = [row, col, hue, "series"]
    return [*keys, "label"] if "label" in data.columns and "label" not in keys else keys


def line_seeds(data: pd.DataFrame, row: str, col: str, hue: str) -> pd.Series:
    """The number of distinct seeds of each drawn line (panel × colour × line style)."""
    return data.groupby(_line_keys(data, row, col, hue), sort=False)["seed"].nunique()


def seed_note(data: pd.DataFrame, row: str, col: str, hue: str = "arch") -> str:
    """What a figure's lines and bands are, from the seeds each line has: a caption's phrase."""
    counts = line_seeds(data, row, col, hue)
    if counts.empty:
        return ""
    lo, hi = int(counts.min()), int(counts.max())
    seeds = f"{lo}" if lo == hi else f"{lo}–{hi}"
    if hi == 1:
        return "one seed per line (no median, no band)"
    if hi < MIN_BAND_SEEDS:
        return (
            f"line = median over {seeds} seeds, each seed drawn thin (no band below "
            f"{MIN_BAND_SEEDS} seeds)"
        )
    if lo >= MIN_BAND_SEEDS:
        return f"line = median over {seeds} seeds, band = IQR over seeds"
    return (
        f"line = median over {seeds} seeds; band = IQR over seeds where a line has ≥ "
        f"{MIN_BAND_SEEDS}, each seed drawn thin where it has fewer"
    )


def seed_title(data: pd.DataFrame, row: str, col: str, hue: str = "arch") -> str:
    """:func:`seed_note` short enough for a title."""
    counts = line_seeds(data, row, col, hue)
    lo, hi = (int(counts.min()), int(counts.max())) if not counts.empty else (0, 0)
    seeds = f"{lo}" if lo == hi else f"{lo}–{hi}"
    if hi <= 1:
        return "one seed per line"
    if hi < MIN_BAND_SEEDS:
        return f"median over {seeds} seeds, each drawn thin"
    if lo >= MIN_BAND_SEEDS:
        return f"median and IQR band over {seeds} seeds"
    return f"median over {seeds} seeds, IQR band from {MIN_BAND_SEEDS}"


def draw_seeds(
    grid: sns.FacetGrid,
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    keys: tuple[str, str, str],
    palette: dict[str, Any],
    orders: tuple[Sequence[str], Sequence[str]],
    dashes: dict[str, Any],
) -> None:
    """Per panel: an IQR band for each line with :data:`MIN_BAND_SEEDS` seeds or more, each
    seed thin for a line with two or three. ``keys``: (row, col, hue); ``orders``: the hue and
    line-style orders of the median lines and ``dashes`` their dashes, so a seed's line has
    its line's colour and dashes (and no markers: they mark the median line alone)."""
    row, col, hue = keys
    counts = line_seeds(data, row, col, hue).rename("line_seeds")
    data = data.join(counts, on=_line_keys(data, row, col, hue))
    for (r, c), sub in data.groupby([row, col], sort=False):
        ax = grid.axes_dict.get((r, c))
        if ax is None:
            continue
        thin = sub[(sub["line_seeds"] > 1) & (sub["line_seeds"] < MIN_BAND_SEEDS)]
        if not thin.empty:
            sns.lineplot(
                data=thin,
                x=x,
                y=y,
                hue=hue,
                style="series",
                units="seed",
                estimator=None,
                hue_order=orders[0],
                style_order=orders[1],
                dashes=dashes,
                markers=False,
                palette=palette,
                legend=False,
                ax=ax,
                **_THIN,
            )
        for (colour, _), line in sub[sub["line_seeds"] >= MIN_BAND_SEEDS].groupby([hue, "series"]):
            # seaborn's errorbar=("pi", 50): the 25th and 75th percentile at each x
            q = line.groupby(x)[y].quantile([0.25, 0.75]).unstack()
            ax.fill_between(q.index, q[0.25], q[0.75], color=palette[colour], alpha=0.2, lw=0)


def _locator(values: np.ndarray) -> ticker.Locator:
    """Ticks at the swept values where they are few and far enough apart to be read; integer
    ticks otherwise."""
    span = float(values[-1] - values[0])
    if values.size <= _MAX_FIXED_TICKS and (
        values.size == 1 or float(np.diff(values).min()) >= span / _MAX_FIXED_TICKS
    ):
        return ticker.FixedLocator(values.tolist())
    return ticker.MaxNLocator(nbins="auto", integer=True)


def integer_ticks(grid: sns.FacetGrid, data: pd.DataFrame, x: str, row: str, col: str) -> None:
    """Integer x ticks on every panel (T, a lag, an exponent index, a time step: no 12.5)."""
    for (r, c), sub in data.groupby([row, col], sort=False):
        ax = grid.axes_dict.get((r, c))
        values = np.unique(pd.to_numeric(sub[x], errors="coerce").dropna().to_numpy(float))
        if ax is None or values.size == 0:
            continue
        ax.xaxis.set_major_locator(_locator(values))
        ax.xaxis.set_minor_locator(ticker.NullLocator())


def _threshold(clip: Any) -> tuple[str, float] | None:
    try:
        spec = ClipSpec.parse(clip)
    except ConfigError:
        return None
    return None if spec.mode == "none" else (spec.mode, spec.threshold)


def clip_thresholds(grid: sns.FacetGrid, data: pd.DataFrame, row: str, col: str) -> None:
    """On each panel, a dotted horizontal line with a label at each clip threshold of its runs'
    clip modes ('norm clip 1', 'value clip 0.5'); call it with the y scale set (the labels are
    placed against the panel's y range)."""
    for (r, c), sub in data.groupby([row, col], sort=False):
        ax = grid.axes_dict.get((r, c))
        if ax is None:
            continue
        found = {_threshold(clip) for clip in sub["clip"].unique()}
        marks = sorted(t for t in found if t is not None)
        for mode, threshold in marks:
            # over the curves: a threshold inside a dense band of noisy curves stays visible
            colour = _CLIP_COLOURS.get(mode, "0.3")
            ax.axhline(threshold, color=colour, ls=":", lw=1.5, zorder=2.5, gid=CLIP_GID)
        heights = sorted({t for _, t in marks})  # one label per height
        labels = [
            " · ".join(f"{m} clip {t:g}" for m, tm in marks if tm == t) for t in heights
        ]
        colours = [_CLIP_COLOURS.get(next(m for m, tm in marks if tm == t), "0.3") for t in heights]
        _threshold_labels(ax, heights, labels, colours)


def _axes_fraction(ax: Any, y: float) -> float:
    """Where the data height ``y`` sits in ``ax``'s y range (0 bottom, 1 top), log or linear."""
    low, high = ax.get_ylim()
    scale = np.log10 if ax.get_yscale() == "log" else (lambda v: v)
    return float((scale(y) - scale(low)) / (scale(high) - scale(low)))


def label_bottoms(lines: Sequence[float], height: float, gap: float) -> list[float]:
    """The bottoms (axes fractions) of labels ``height`` tall for lines at the heights
    ``lines`` (ascending axes fractions): each just above its line, or just below where that
    would leave the panel or meet the label under it, or else pushed up clear of that label,
    never past the panel's top."""
    bottoms: list[float] = []
    top = -np.inf  # the top of the label placed last
    for line in lines:
        fits = [
            b
            for b in (line + gap, line - gap - height)
            if b >= max(gap, top + gap) and b + height <= 1 - gap
        ]
        bottoms.append(fits[0] if fits else min(max(gap, top + gap), 1 - gap - height))
        top = bottoms[-1] + height
    return bottoms


def _threshold_labels(
    ax: Any, heights: list[float], labels: list[str], colours: list[str]
) -> None:
    """Each threshold's label at the panel's right end, beside its line and inside the panel,
    none over another (:func:`label_bottoms`); on a white box, readable over the curves."""
    points = ax.get_position().height * ax.figure.get_figheight() * 72
    height = (1.35 * _CLIP_FONT + 2 * _CLIP_PAD) / points  # a line of text and its box
    gap = 2.5 / points
    bottoms = label_bottoms([_axes_fraction(ax, t) for t in heights], height, gap)
    for bottom, label, colour in zip(bottoms, labels, colours, strict=True):
        ax.text(
            0.98,
            bottom + _CLIP_PAD / points,
            label,
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=_CLIP_FONT,
            color=colour,
            gid=CLIP_GID,
            zorder=4,
            bbox={"fc": "white", "ec": "none", "alpha": 0.85, "pad": _CLIP_PAD},
        )


def divergence_marks(grid: sns.FacetGrid, frame: pd.DataFrame, ctx: Ctx) -> None:
    """A dotted vertical line and a × at the top edge at each diverged run's divergence step,
    in its architecture's colour, in its panel (row task, column T; comparing stores, row
    (task, T), column label)."""
    diverged = frame[(frame["status"] == "diverged") & frame["diverged_step"].notna()]
    for run in diverged.itertuples():
        key = facet_of(ctx, run.task, "T", int(run.seq_len), getattr(run, "label", ""))
        ax = grid.axes_dict.get(key)
        if ax is None:
            continue
        colour = ctx.palette.get(run.arch, "k")
        ax.axvline(int(run.diverged_step), color=colour, ls=":", lw=1.5)
        # × at the top edge: the curve itself may be inf/NaN after divergence
        ax.plot(
            [int(run.diverged_step)],
            [0.97],
            marker="x",
            ms=8,
            ls="none",
            color=colour,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
        )
