"""The report's figures: one seaborn/matplotlib function per figure, each returning
``(name, figure, caption)`` triples. One colour per architecture in every figure; line style
(dash and marker) is the clip mode and the swept fields (:mod:`rnnbench.report.style`);
comparing stores, each label has its own panels (:mod:`rnnbench.report.lines`)."""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from rnnbench.report.axes import axis_key, sort_token
from rnnbench.report.layout import panel_columns, row_gap
from rnnbench.report.lines import reference_line, relplot
from rnnbench.report.overlays import clip_thresholds, divergence_marks, seed_note, seed_title
from rnnbench.report.style import Ctx, label_panels, variants, with_series
from rnnbench.report.tables import headline_numbers

#: What a figure function returns: (file stem, figure, caption) per figure.
Figures = list[tuple[str, Figure, str]]
#: the top of the memory capacity's y axis: r² = 1 and the width of the line drawn there
MEMORY_TOP = 1.02


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
    data, row, col = label_panels(_profile_frame(frame, ctx), ctx, "T")
    out = []
    for phase, words in (("init", "at initialisation"), ("end", "at the end of training")):
        sub = data[data["phase"] == phase]
        if sub.empty:
            continue
        fig = relplot(
            sub,
            x="t",
            y="norm",
            row=row,
            col=col,
            ctx=ctx,
            labels=("time step t", ctx.symbol),
            log=True,
        ).figure
        title = seed_title(sub, row, col)
        fig.suptitle(f"Gradient norm through time {words} ({title})", y=1.02)
        out.append(
            (
                f"grad_profile_{phase}",
                fig,
                f"{ctx.symbol} against time step t {words}; log y; zeros (below the float "
                f"floor) are masked; {seed_note(sub, row, col)}.",
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


def fig_learning_curves(frame: pd.DataFrame, ctx: Ctx) -> list[tuple[str, Figure, str]]:
    data, row, col = label_panels(_curve_frame(frame, ctx, "loss", normalise=True), ctx, "T")
    if data.empty:
        return []
    fig = relplot(
        data,
        x="step",
        y="value",
        row=row,
        col=col,
        ctx=ctx,
        labels=("training step", "loss / baseline loss"),
        log=True,
        overlay=lambda grid: reference_line(grid.figure, 1.0),
    ).figure
    fig.suptitle("Learning curves: normalized training loss (dashed: baseline = 1)", y=1.02)
    return [
        (
            "learning_curves",
            fig,
            "Training loss divided by the task's baseline loss against step; the dashed line "
            f"at 1 is the trivial baseline; {seed_note(data, row, col)}; log y.",
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


#: a heatmap panel's key (task, label, clip) and its headline rows
_Panel = tuple[tuple[Any, ...], pd.DataFrame]


def _heatmap_groups(
    numbers: pd.DataFrame, ctx: Ctx, rows: list[str]
) -> list[tuple[list[str], list[_Panel]]]:
    """The heatmap's groups of panels, each with the rows its panels list: a single store's
    panels one group, each listing every row; comparing stores one group per (task, label),
    each listing that label's rows alone (another label's architecture is a blank row there)."""
    # each label's panels in the order given (the baseline's first), not by name
    labels = list(dict.fromkeys([*ctx.labels, *numbers["label"].astype(str)]))
    panels = sorted(
        numbers.groupby(["task", "label", "clip"], sort=True),
        key=lambda kv: (kv[0][0], labels.index(str(kv[0][1])), kv[0][2]),
    )
    if not ctx.multi:
        return [(rows, panels)]
    groups: dict[tuple[Any, ...], list[_Panel]] = {}
    for key, sub in panels:
        groups.setdefault(key[:2], []).append((key, sub))
    out = []
    for members in groups.values():
        present = set(pd.concat([sub["row"] for _, sub in members]))
        out.append(([r for r in rows if r in present], members))
    return out


def _heatmap_grid(
    groups: list[tuple[list[str], list[_Panel]]], ncols: int, lens: list[int]
) -> tuple[Figure, Any, list[tuple[list[str], list[_Panel]]]]:
    """The figure, its axes and its rows of panels (each with the rows its panels list): each
    group's panels wrapped at ``ncols``, each row of panels as tall as its rows need."""
    lines = [
        (rows, members[i : i + ncols])
        for rows, members in groups
        for i in range(0, len(members), ncols)
    ]
    heights = [len(rows) for rows, _ in lines]
    fig, axes = plt.subplots(
        len(lines),
        ncols,
        squeeze=False,
        figsize=((0.7 * len(lens) + 2.2) * ncols, sum(0.35 * h + 1.2 for h in heights)),
        gridspec_kw={"height_ratios": heights},
    )
    row_gap(fig, len(lines))
    return fig, axes, lines


def fig_solved_heatmap(frame: pd.DataFrame, ctx: Ctx) -> list[tuple[str, Figure, str]]:
    numbers = headline_numbers(frame)
    if numbers.empty:
        return []
    numbers["row"], rows = _heatmap_rows(numbers, ctx)
    groups = _heatmap_groups(numbers, ctx, rows)
    # a single store's: as many columns as a task has panels; comparing, a (task, label)
    ncols = panel_columns([key[: 2 if ctx.multi else 1] for _, ps in groups for key, _ in ps])
    lens = sorted(int(t) for t in numbers["seq_len"].unique())
    fig, axes, lines = _heatmap_grid(groups, ncols, lens)
    ylabel = " · ".join(["architecture", *(ctx.axes.shown[p] for p in ctx.axes.styled)])
    for line, (line_rows, members) in zip(axes, lines, strict=True):
        for n, (ax, ((task, label, clip), sub)) in enumerate(zip(line, members, strict=False)):
            _heatmap_panel(ax, sub, line_rows, lens)
            ax.set_title(f"{task} · clip {clip}" + (f" · {label}" if ctx.multi else ""), fontsize=9)
            ax.set_xlabel("sequence length T (steps)")
            # the panels of a row of panels have the same rows: named once, left of the row, so
            # a long row name ('lstm · hidden_size=32') cannot run into the panel to its left
            ax.set_ylabel(ylabel if n == 0 else "")
            if n:
                ax.tick_params(axis="y", left=False, labelleft=False)
        for ax in line[len(members) :]:
            ax.set_visible(False)
    mappable = plt.cm.ScalarMappable(cmap="viridis", norm=matplotlib.colors.Normalize(0, 1))
    # a short label: a colorbar's label longer than the bar leaves a one-row figure on
    # matplotlib 3.8, which does not count it in the tight box (the caption says the rest)
    fig.colorbar(mappable, ax=axes.ravel().tolist(), label="solved rate", shrink=0.8)
    panels = (
        "one row of panels per task and label, listing that label's architectures, one panel "
        "per clip mode"
        if ctx.multi
        else "one panel per task and clip mode"
    )
    return [
        (
            "solved_heatmap",
            fig,
            "Fraction of seeds that solved the task (cell text: solved k/n), architecture × T, "
            f"{panels}.",
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
    data, row, col = label_panels(data, ctx, "phase")
    fig = relplot(
        data,
        x="T",
        y="r",
        row=row,
        col=col,
        ctx=ctx,
        labels=("sequence length T (steps)", "per-step gradient factor r"),
        log=True,
        # one y range for a task's panels: r at init reads against r at the end
        share_y="task",
        overlay=lambda grid: reference_line(grid.figure, 1.0),
    ).figure
    fig.suptitle("Per-step gradient factor r (r < 1 vanishing, r > 1 exploding)", y=1.02)
    return [
        (
            "grad_factor",
            fig,
            f"Per-step gradient factor r (of {ctx.symbol}) against T at init and at the end of "
            f"training; dashed line r = 1; {seed_note(data, row, col)}; log y, one y range "
            "for the panels of one task.",
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
    finite = data[np.isfinite(data["r2"].astype(float))].copy()
    data, row, col = label_panels(finite, ctx, "T")
    if data.empty:
        return []
    fig = relplot(
        data,
        x="lag",
        y="r2",
        row=row,
        col=col,
        ctx=ctx,
        labels=("lag k (steps back)", "probe r² of input at t − k"),
        log=False,
        overlay=_unit_range,
    ).figure
    fig.suptitle("i.i.d. probe: memory capacity curves r²(k)", y=1.02)
    return [
        (
            "memory_capacity",
            fig,
            "Linear-probe r² for recovering the input k steps back from the hidden state; "
            f"{seed_note(data, row, col)}; y from 0 to 1 on every panel.",
        )
    ]


def _unit_range(grid: sns.FacetGrid) -> None:
    """r² lies in [0, 1]: every panel on that range, so panels compare at a glance."""
    for ax in grid.axes.flat:
        ax.set_ylim(0.0, MEMORY_TOP)


def _norm_marks(
    grid: sns.FacetGrid, frame: pd.DataFrame, data: pd.DataFrame, ctx: Ctx, facets: tuple[str, str]
) -> None:
    """The divergence steps and each panel's clip thresholds (``facets``: row and column)."""
    divergence_marks(grid, frame, ctx)
    clip_thresholds(grid, data, *facets)


def fig_grad_norm_training(frame: pd.DataFrame, ctx: Ctx) -> list[tuple[str, Figure, str]]:
    data, row, col = label_panels(
        _curve_frame(frame, ctx, "grad_norm", normalise=False), ctx, "T"
    )
    if data.empty:
        return []
    grid = relplot(
        data,
        x="step",
        y="value",
        row=row,
        col=col,
        ctx=ctx,
        labels=("training step", "pre-clip global ‖g‖"),
        log=True,
        overlay=lambda grid: _norm_marks(grid, frame, data, ctx, (row, col)),
    )
    grid.figure.suptitle(
        "Pre-clip gradient norm during training (dotted ×: divergence step; dotted horizontal: "
        "clip threshold)",
        y=1.02,
    )
    caption = (
        "Global gradient norm before clipping against training step; log y; "
        f"{seed_note(data, row, col)}. Dotted vertical lines with × mark the step at which "
        "a run diverged (colour = architecture). Dotted horizontal lines: each clip mode's "
        "threshold (grey, labelled): a norm:c run's step above c was rescaled to norm c; "
        "under value:v no element of g can exceed v while the global norm is below v, so "
        "nothing was clipped there."
    )
    return [("grad_norm_training", grid.figure, caption)]
