"""The report's figures: one seaborn/matplotlib function per figure, each returning
``(name, figure, caption)`` triples. One colour per architecture in every figure; line style
is the clip mode (and the label, comparing stores) and the swept fields
(:mod:`rnnbench.report.style`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnbench.report.axes import axis_key, sort_token
from rnnbench.report.layout import column_gap, hide_empty, panel_columns, row_gap
from rnnbench.report.overlays import (
    clip_thresholds,
    divergence_marks,
    draw_seeds,
    integer_ticks,
    seed_note,
    seed_title,
)
from rnnbench.report.style import Ctx, style_order, variants, with_series
from rnnbench.report.tables import headline_numbers

_FIG_HEIGHT = 2.4
_FIG_ASPECT = 1.35
#: What a figure function returns: (file stem, figure, caption) per figure.
Figures = list[tuple[str, Figure, str]]


def _log_axes(axes: Iterable[Any]) -> None:
    """Log y only on axes that hold positive data (matplotlib warns on an empty log axis)."""
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


def _relplot(
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    row: str,
    col: str,
    ctx: Ctx,
    xlabel: str,
    ylabel: str,
    log: bool,
    markers: bool = False,
    hue: str = "arch",
    palette: dict[str, Any] | None = None,
) -> sns.FacetGrid:
    """Median lines over seeds, one colour per ``hue``, line style the series; the seeds'
    spread (:func:`rnnbench.report.overlays.draw_seeds`: a band from 4 seeds, thin seed lines
    below) and integer x ticks over them."""
    palette = ctx.palette if palette is None else palette
    orders = (sorted(data[hue].unique()), style_order(data, ctx))
    grid = sns.relplot(
        data=data,
        x=x,
        y=y,
        row=row,
        col=col,
        hue=hue,
        style="series",
        kind="line",
        palette=palette,
        hue_order=orders[0],
        style_order=orders[1],
        estimator="median",
        errorbar=None,
        markers=markers,
        height=_FIG_HEIGHT,
        aspect=_FIG_ASPECT,
        facet_kws={"margin_titles": True, "sharey": False, "sharex": False},
    )
    # before the axis labels: seaborn names an unlabelled axis after its column
    draw_seeds(grid, data, x=x, y=y, keys=(row, col, hue), palette=palette, orders=orders)
    integer_ticks(grid, data, x, row, col)
    grid.set_axis_labels(xlabel, ylabel)
    if grid.legend is not None:  # the style column is an internal name; say what it encodes
        for text in grid.legend.texts:
            if text.get_text() == "series":
                text.set_text(ctx.style_title())
    if log:
        _log_axes(grid.axes.flat)
    hide_empty(grid)
    column_gap(grid)
    # relplot already draws its legend outside the facets, to the right
    _clear_row_titles(grid)
    return grid


def _clear_row_titles(grid: sns.FacetGrid) -> None:
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


def _profile_frame(frame: pd.DataFrame, ctx: Ctx) -> pd.DataFrame:
    rows: list[tuple[Any, ...]] = []
    for run in with_series(frame, ctx).itertuples():
        profiles = run.profiles
        if not isinstance(profiles, list) or not profiles:
            continue
        for phase, profile in (("init", profiles[0]), ("end", profiles[-1])):
            key = "norms" if ctx.profile == "hidden" else "input_norms"
            norms = np.asarray(profile.get(key) or [], dtype=np.float64)
            for t, value in enumerate(norms):
                rows.append(
                    (
                        run.label,
                        run.task,
                        int(run.seq_len),
                        run.arch,
                        run.clip,
                        run.seed,
                        run.series,
                        phase,
                        t,
                        value,
                    )
                )
    data = pd.DataFrame(
        rows,
        columns=["label", "task", "T", "arch", "clip", "seed", "series", "phase", "t", "norm"],
    )
    # with no profile at all (diagnostics off) the empty frame's columns are object-typed
    data["norm"] = data["norm"].astype(np.float64)
    # a norm that underflowed to exactly 0 ("below float floor") has no logarithm: mask it
    return data[np.isfinite(data["norm"]) & (data["norm"] > 0)].copy()


def fig_gradient_profiles(frame: pd.DataFrame, ctx: Ctx) -> list[tuple[str, Figure, str]]:
    data = _profile_frame(frame, ctx)
    out = []
    for phase, words in (("init", "at initialisation"), ("end", "at the end of training")):
        sub = data[data["phase"] == phase]
        if sub.empty:
            continue
        fig = _relplot(
            sub,
            x="t",
            y="norm",
            row="task",
            col="T",
            ctx=ctx,
            xlabel="time step t",
            ylabel=ctx.symbol,
            log=True,
        ).figure
        title = seed_title(sub, "task", "T")
        fig.suptitle(f"Gradient norm through time {words} ({title})", y=1.02)
        out.append(
            (
                f"grad_profile_{phase}",
                fig,
                f"{ctx.symbol} against time step t {words}; log y; zeros (below the float "
                f"floor) are masked; {seed_note(sub, 'task', 'T')}.",
            )
        )
    return out


def _curve_frame(frame: pd.DataFrame, ctx: Ctx, curve: str, normalise: bool) -> pd.DataFrame:
    rows: list[tuple[Any, ...]] = []
    for run in with_series(frame, ctx).itertuples():
        curves = run.curves
        if not isinstance(curves, dict) or curve not in curves:
            continue
        steps = curves[curve].get("step") or []
        values = np.asarray(curves[curve].get("value") or [], dtype=np.float64)
        if normalise:
            baseline = float(run.baseline_loss)
            if not (math.isfinite(baseline) and baseline > 0):
                continue
            values = values / baseline
        key = (run.label, run.task, int(run.seq_len), run.arch, run.clip, run.seed, run.series)
        rows.extend((*key, int(s), v) for s, v in zip(steps, values, strict=False))
    data = pd.DataFrame(
        rows, columns=["label", "task", "T", "arch", "clip", "seed", "series", "step", "value"]
    )
    return data[np.isfinite(data["value"]) & (data["value"] > 0)].copy()


def _reference_line(fig: Figure, y: float) -> None:
    """A dashed horizontal line at ``y`` on every panel that has data (baseline, r = 1)."""
    for ax in fig.axes:
        if ax.has_data():
            ax.axhline(y, color="0.3", lw=1, ls="--", zorder=0)


def fig_learning_curves(frame: pd.DataFrame, ctx: Ctx) -> list[tuple[str, Figure, str]]:
    data = _curve_frame(frame, ctx, "loss", normalise=True)
    if data.empty:
        return []
    fig = _relplot(
        data,
        x="step",
        y="value",
        row="task",
        col="T",
        ctx=ctx,
        xlabel="training step",
        ylabel="loss / baseline loss",
        log=True,
    ).figure
    _reference_line(fig, 1.0)
    fig.suptitle("Learning curves: normalized training loss (dashed: baseline = 1)", y=1.02)
    return [
        (
            "learning_curves",
            fig,
            "Training loss divided by the task's baseline loss against step; the dashed line "
            f"at 1 is the trivial baseline; {seed_note(data, 'task', 'T')}; log y.",
        )
    ]


def _heatmap_rows(numbers: pd.DataFrame, ctx: Ctx) -> tuple[list[str], list[str]]:
    """Each headline row's heatmap row ('gru · lr=0.01'), and the rows in order: architecture,
    then the styled swept values by magnitude."""
    swept = variants(numbers, ctx)
    rows = [a if not v else f"{a} · {v}" for a, v in zip(numbers["arch"], swept, strict=True)]
    styled = [p for p in ctx.axes.styled if p in numbers.columns]
    keyed = {
        row: (r["arch"], [sort_token(v) for v in axis_key(r, styled)])
        for row, r in zip(rows, numbers.to_dict("records"), strict=True)
    }
    return rows, sorted(keyed, key=lambda row: keyed[row])


def _heatmap_panel(ax: Any, sub: pd.DataFrame, rows: list[str], lens: list[int]) -> None:
    """One panel: solved rate as colour, k/n as text, ``rows`` × ``lens``."""
    # one cell per row and T; a held field that some runs lack could repeat one
    sub = sub.drop_duplicates(["row", "seq_len"])
    rate = sub.pivot(index="row", columns="seq_len", values="solved_rate")
    rate = rate.reindex(index=rows, columns=lens)
    text = (
        sub.assign(kn=sub["solved"].astype(str) + "/" + sub["runs"].astype(str))
        .pivot(index="row", columns="seq_len", values="kn")
        .reindex(index=rows, columns=lens)
    )
    # a T with no runs in this panel is an all-NaN float column: blank it as object
    labels = text.astype(object).where(text.notna(), "").to_numpy(dtype=object)
    sns.heatmap(
        rate.astype(float),
        ax=ax,
        vmin=0,
        vmax=1,
        cmap="viridis",
        cbar=False,
        annot=labels,
        fmt="",
        linewidths=0.5,
        annot_kws={"fontsize": 8},
    )


def fig_solved_heatmap(frame: pd.DataFrame, ctx: Ctx) -> list[tuple[str, Figure, str]]:
    numbers = headline_numbers(frame)
    if numbers.empty:
        return []
    numbers["row"], rows = _heatmap_rows(numbers, ctx)
    panels = list(numbers.groupby(["task", "label", "clip"], sort=True))
    ncols = panel_columns([key[0] for key, _ in panels])
    nrows = math.ceil(len(panels) / ncols)
    lens = sorted(int(t) for t in numbers["seq_len"].unique())
    fig, axes = plt.subplots(
        nrows,
        ncols,
        squeeze=False,
        figsize=(0.7 * len(lens) + 2.2) * np.array([ncols, 0])
        + np.array([0, (0.35 * len(rows) + 1.2) * nrows]),
    )
    row_gap(fig, nrows)
    for ax, ((task, label, clip), sub) in zip(axes.flat, panels, strict=False):
        _heatmap_panel(ax, sub, rows, lens)
        ax.set_title(f"{task} · clip {clip}" + (f" · {label}" if ctx.multi else ""), fontsize=9)
        ax.set_xlabel("sequence length T (steps)")
        ax.set_ylabel(" · ".join(["architecture", *(ctx.axes.shown[p] for p in ctx.axes.styled)]))
    # every panel has the same rows: name them once, left of each row of panels, so a long row
    # name ('lstm · hidden_size=32') cannot run into the panel to its left
    for ax in axes[:, 1:].flat:
        ax.set_ylabel("")
        ax.tick_params(axis="y", labelleft=False)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    mappable = plt.cm.ScalarMappable(cmap="viridis", norm=matplotlib.colors.Normalize(0, 1))
    # a short label: a colorbar's label longer than the bar leaves a one-row figure on
    # matplotlib 3.8, which does not count it in the tight box (the caption says the rest)
    fig.colorbar(mappable, ax=axes.ravel().tolist(), label="solved rate", shrink=0.8)
    return [
        (
            "solved_heatmap",
            fig,
            "Fraction of seeds that solved the task (cell text: solved k/n), architecture × T, "
            "one panel per task and clip mode.",
        )
    ]


def fig_grad_factor(frame: pd.DataFrame, ctx: Ctx) -> list[tuple[str, Figure, str]]:
    parts = []
    frame = with_series(frame, ctx)
    prefix = "grad" if ctx.profile == "hidden" else "input"
    for phase, column in (("init", f"{prefix}_factor_init"), ("end", f"{prefix}_factor")):
        part = frame[["label", "task", "seq_len", "arch", "clip", "seed", "series", column]].rename(
            columns={column: "r", "seq_len": "T"}
        )
        parts.append(part.assign(phase=phase))
    data = pd.concat(parts, ignore_index=True)
    data["r"] = data["r"].astype(float)
    data = data[np.isfinite(data["r"]) & (data["r"] > 0)].copy()
    if data.empty:
        return []
    data["T"] = data["T"].astype(int)
    fig = _relplot(
        data,
        x="T",
        y="r",
        row="task",
        col="phase",
        ctx=ctx,
        xlabel="sequence length T (steps)",
        ylabel="per-step gradient factor r",
        log=True,
        markers=True,
    ).figure
    _reference_line(fig, 1.0)
    fig.suptitle("Per-step gradient factor r (r < 1 vanishing, r > 1 exploding)", y=1.02)
    return [
        (
            "grad_factor",
            fig,
            f"Per-step gradient factor r (of {ctx.symbol}) against T at init and at the end of "
            f"training; dashed line r = 1; {seed_note(data, 'task', 'phase')}; log y.",
        )
    ]


def fig_memory_capacity(frame: pd.DataFrame, ctx: Ctx) -> list[tuple[str, Figure, str]]:
    rows: list[tuple[Any, ...]] = []
    for run in with_series(frame, ctx).itertuples():
        probe = run.probe
        if not isinstance(probe, dict):
            continue
        key = (run.label, run.task, int(run.seq_len), run.arch, run.clip, run.seed, run.series)
        rows.extend((*key, k, r2) for k, r2 in enumerate(probe.get("r2") or [], start=1))
    data = pd.DataFrame(
        rows, columns=["label", "task", "T", "arch", "clip", "seed", "series", "lag", "r2"]
    )
    data = data[np.isfinite(data["r2"].astype(float))].copy()
    if data.empty:
        return []
    fig = _relplot(
        data,
        x="lag",
        y="r2",
        row="task",
        col="T",
        ctx=ctx,
        xlabel="lag k (steps back)",
        ylabel="probe r² of input at t − k",
        log=False,
        markers=True,
    ).figure
    fig.suptitle("Memory capacity curves r²(k)", y=1.02)
    return [
        (
            "memory_capacity",
            fig,
            "Linear-probe r² for recovering the input k steps back from the hidden state; "
            f"{seed_note(data, 'task', 'T')}.",
        )
    ]


def fig_grad_norm_training(frame: pd.DataFrame, ctx: Ctx) -> list[tuple[str, Figure, str]]:
    data = _curve_frame(frame, ctx, "grad_norm", normalise=False)
    if data.empty:
        return []
    grid = _relplot(
        data,
        x="step",
        y="value",
        row="task",
        col="T",
        ctx=ctx,
        xlabel="training step",
        ylabel="pre-clip global ‖g‖",
        log=True,
    )
    divergence_marks(grid, frame, ctx.palette)
    clip_thresholds(grid, data, "task", "T")
    grid.figure.suptitle(
        "Pre-clip gradient norm during training (dotted ×: divergence step; dotted horizontal: "
        "clip threshold)",
        y=1.02,
    )
    caption = (
        "Global gradient norm before clipping against training step; log y; "
        f"{seed_note(data, 'task', 'T')}. Dotted vertical lines with × mark the step at which "
        "a run diverged (colour = architecture). Dotted horizontal lines: each clip mode's "
        "threshold (grey, labelled): a norm:c run's step above c was rescaled to norm c; "
        "under value:v no element of g can exceed v while the global norm is below v, so "
        "nothing was clipped there."
    )
    return [("grad_norm_training", grid.figure, caption)]
