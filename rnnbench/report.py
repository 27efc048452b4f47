"""HTML / Markdown reports over one or more results stores.

Public API::

    build_report(["results.db"], "report/")            # -> report/index.html
    build_report(["mine.db", "lstm.db"], "cmp/", labels=["mine", "lstm"])   # comparison mode
    theory_check()                                      # -> DataFrame of the theory numbers
    theory_text()                                       # -> the same as readable text

Design choices (why):

* Every number aggregated over seeds is shown as ``median [q1–q3] n=k``: seeds of recurrent
  training are heavy-tailed (one diverged seed ruins a mean), so the median plus the IQR and the
  seed count is the honest summary.
* The tables are computed once as *numeric* long frames (written to ``tables/*.csv`` for further
  analysis) and only then formatted into strings for HTML / Markdown.
* ``index.html`` is one self-contained file (figures as base64 PNG data URIs, inline CSS, no
  scripts, no external requests) so it can be mailed or archived as is.
* One colour per architecture, built once from the sorted architecture names, in every figure.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import io
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are built on CI machines without a display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from rnnbench.errors import ConfigError
from rnnbench.gradients import summarize_profile
from rnnbench.memory import task_spans
from rnnbench.regression import load_pooled_runs
from rnnbench.store import Store

__all__ = ["build_report", "theory_check", "theory_text"]

DPI = 110
_DASH = "–"  # shown for a missing value
_FIG_HEIGHT = 2.4
_FIG_ASPECT = 1.35


# --------------------------------------------------------------------------------------------
# Aggregation helpers
# --------------------------------------------------------------------------------------------


def _finite(values: Iterable[Any]) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return arr[np.isfinite(arr)]


def _spread(values: Iterable[Any]) -> tuple[float, float, float, int]:
    """(median, q1, q3, n) over the finite values; NaNs with n = 0 when there are none."""
    arr = _finite(values)
    if arr.size == 0:
        return math.nan, math.nan, math.nan, 0
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    return float(med), float(q1), float(q3), int(arr.size)


def _num(value: float) -> str:
    if value is None or not math.isfinite(value):
        return _DASH
    return f"{value:.3g}"


def _fmt_spread(med: float, q1: float, q3: float, n: int) -> str:
    if n == 0:
        return _DASH
    if n == 1:
        return f"{_num(med)} n=1"
    return f"{_num(med)} [{_num(q1)}–{_num(q3)}] n={n}"


def _solved_flags(frame: pd.DataFrame) -> pd.Series:
    # errored runs have solved=None: they count as attempted and not solved
    return frame["solved"].map(lambda v: v is True or v is np.True_)


def _default_labels(stores: Sequence[str | Path]) -> list[str]:
    """The stores' file stems; their paths where two stems collide."""
    paths = [Path(s) for s in stores]
    if len({p.resolve() for p in paths}) < len(paths):
        raise ConfigError(f"--store: the same store is given twice ({', '.join(map(str, paths))})")
    stems = [p.stem for p in paths]
    return stems if len(set(stems)) == len(stems) else [str(p.with_suffix("")) for p in paths]


def _label_frames(
    stores: Sequence[str | Path],
    labels: Sequence[str] | None,
    runs: Collection[str] | None = None,
) -> pd.DataFrame:
    if not stores:
        raise ConfigError("--store: build_report needs at least one store")
    labels = _default_labels(stores) if labels is None else list(labels)
    if len(labels) != len(stores):
        raise ConfigError(
            f"--label: give one label per --store ({len(stores)} stores, {len(labels)} labels)"
        )
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--label: labels must be unique, got {', '.join(labels)}")
    frames = []
    for store, label in zip(stores, labels, strict=True):
        frame = load_pooled_runs(store, runs)
        frame.insert(0, "label", label)
        frames.append(frame)
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    combined.attrs["labels"] = labels
    return combined


# --------------------------------------------------------------------------------------------
# Tables: numeric long frames (CSV) and their formatted views (HTML / Markdown)
# --------------------------------------------------------------------------------------------


@dataclass
class _Table:
    name: str  # file stem of the CSV
    title: str
    numeric: pd.DataFrame
    views: list[tuple[str, pd.DataFrame]] = field(default_factory=list)  # (caption, display)


def _diff_title(a: str, b: str) -> str:
    return f"Δ ({b} − {a})"


def headline_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (label, task, arch, seq_len, clip): solved k/n and the normalized-loss spread."""
    rows = []
    keys = ["label", "task", "arch", "seq_len", "clip"]
    for key, group in frame.groupby(keys, sort=True):
        med, q1, q3, n = _spread(group["normalized_loss"])
        solved = int(_solved_flags(group).sum())
        rows.append(
            dict(zip(keys, key, strict=True))
            | {
                "solved": solved,
                "runs": len(group),
                "solved_rate": solved / len(group),
                "norm_loss_median": med,
                "norm_loss_q1": q1,
                "norm_loss_q3": q3,
                "norm_loss_n": n,
            }
        )
    return pd.DataFrame(rows, columns=[*keys, "solved", "runs", "solved_rate", "norm_loss_median",
                                       "norm_loss_q1", "norm_loss_q3", "norm_loss_n"])


def _headline_views(numbers: pd.DataFrame, labels: list[str]) -> list[tuple[str, pd.DataFrame]]:
    views = []
    clips = sorted(numbers["clip"].unique())
    for task, sub in numbers.groupby("task", sort=True):
        rows: dict[tuple[str, int], dict[tuple[str, str], str]] = {}
        lookup = {(r.label, r.arch, int(r.seq_len), r.clip): r for r in sub.itertuples()}
        for arch, seq_len in sorted({(r.arch, int(r.seq_len)) for r in sub.itertuples()}):
            cells: dict[tuple[str, str], str] = {}
            for clip in clips:
                for label in labels:
                    r = lookup.get((label, arch, seq_len, clip))
                    suffix = f" [{label}]" if len(labels) > 1 else ""
                    cells[(clip, "solved" + suffix)] = (
                        f"{r.solved}/{r.runs}" if r is not None else _DASH
                    )
                    cells[(clip, "norm. loss" + suffix)] = (
                        _fmt_spread(r.norm_loss_median, r.norm_loss_q1, r.norm_loss_q3,
                                    r.norm_loss_n)
                        if r is not None else _DASH
                    )
                base = lookup.get((labels[0], arch, seq_len, clip))
                for label in labels[1:]:
                    other = lookup.get((label, arch, seq_len, clip))
                    title = _diff_title(labels[0], label)
                    cells[(clip, f"{title} solved rate")] = (
                        f"{other.solved_rate - base.solved_rate:+.2f}"
                        if base is not None and other is not None else _DASH
                    )
                    cells[(clip, f"{title} median loss")] = (
                        _signed(other.norm_loss_median - base.norm_loss_median)
                        if base is not None and other is not None else _DASH
                    )
            rows[(arch, seq_len)] = cells
        view = pd.DataFrame.from_dict(rows, orient="index")
        view.index = pd.MultiIndex.from_tuples(list(rows), names=["arch", "T"])
        view.columns = pd.MultiIndex.from_tuples(list(view.columns), names=["clip", ""])
        views.append((f"task: {task}", view))
    return views


def _signed(value: float) -> str:
    return _DASH if not math.isfinite(value) else f"{value:+.3g}"


def stability_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (label, task, arch, clip), pooled over T and seeds."""
    rows = []
    keys = ["label", "task", "arch", "clip"]
    for key, group in frame.groupby(keys, sort=True):
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row["runs"] = len(group)
        row["diverged"] = int((group["status"] == "diverged").sum())
        row["errors"] = int((group["status"] == "error").sum())
        finished = len(group) - row["errors"]
        row["divergence_rate"] = row["diverged"] / finished if finished else math.nan
        for column in ("max_grad_norm", "clipped_fraction", "grad_factor_init", "grad_factor"):
            med, q1, q3, n = _spread(group[column])
            row |= {f"{column}_median": med, f"{column}_q1": q1, f"{column}_q3": q3,
                    f"{column}_n": n}
        rows.append(row)
    return pd.DataFrame(rows)


_STABILITY_METRICS = (
    ("max_grad_norm", "max pre-clip ‖g‖"),
    ("clipped_fraction", "fraction clipped"),
    ("grad_factor_init", "r at init"),
    ("grad_factor", "r at end"),
)


def _stability_views(numbers: pd.DataFrame, labels: list[str]) -> list[tuple[str, pd.DataFrame]]:
    if numbers.empty:
        return []
    lookup = {(r["label"], r["task"], r["arch"], r["clip"]): r for r in numbers.to_dict("records")}
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    for task, arch, clip in sorted({k[1:] for k in lookup}):
        cells: dict[str, str] = {}
        for label in labels:
            r = lookup.get((label, task, arch, clip))
            suffix = f" [{label}]" if len(labels) > 1 else ""
            if r is None:
                cells["diverged" + suffix] = _DASH
                for _, title in _STABILITY_METRICS:
                    cells[title + suffix] = _DASH
                continue
            finished = r["runs"] - r["errors"]
            cells["diverged" + suffix] = f"{r['diverged']}/{finished}" + (
                f" ({r['errors']} errors)" if r["errors"] else ""
            )
            for column, title in _STABILITY_METRICS:
                cells[title + suffix] = _fmt_spread(
                    r[f"{column}_median"], r[f"{column}_q1"], r[f"{column}_q3"], r[f"{column}_n"]
                )
        base = lookup.get((labels[0], task, arch, clip))
        for label in labels[1:]:
            other = lookup.get((label, task, arch, clip))
            title = _diff_title(labels[0], label)
            if base is None or other is None:
                continue
            cells[f"{title} divergence rate"] = _signed(
                other["divergence_rate"] - base["divergence_rate"]
            )
            for column, metric in _STABILITY_METRICS:
                cells[f"{title} {metric}"] = _signed(
                    other[f"{column}_median"] - base[f"{column}_median"]
                )
        rows[(task, arch, clip)] = cells
    view = pd.DataFrame.from_dict(rows, orient="index")
    view.index = pd.MultiIndex.from_tuples(list(rows), names=["task", "arch", "clip"])
    return [("pooled over T and seeds", view)]


def memory_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (label, task, arch, clip): task span (rnnbench.memory.task_spans), probe span and
    memory capacity medians."""
    rows = []
    for label, sub in frame.groupby("label", sort=True):
        spans = task_spans(sub.drop(columns=["label"]))
        span_of = {
            (r["task"], r["arch"], r["clip"]): r for r in spans.to_dict("records")
        }
        for (task, arch, clip), group in sub.groupby(["task", "arch", "clip"], sort=True):
            span = span_of.get((task, arch, clip), {})
            row: dict[str, Any] = {
                "label": label, "task": task, "arch": arch, "clip": clip,
                "task_span": span.get("task_span", math.nan),
                "first_unsolved": span.get("first_unsolved", math.nan),
            }
            for column in ("probe_span", "memory_capacity"):
                med, q1, q3, n = _spread(group[column])
                row |= {f"{column}_median": med, f"{column}_q1": q1, f"{column}_q3": q3,
                        f"{column}_n": n}
            rows.append(row)
    return pd.DataFrame(rows)


def _memory_views(numbers: pd.DataFrame, labels: list[str]) -> list[tuple[str, pd.DataFrame]]:
    if numbers.empty:
        return []
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    for r in numbers.to_dict("records"):
        key = (r["task"], r["arch"], r["clip"]) + ((r["label"],) if len(labels) > 1 else ())
        rows[key] = {
            "task span (largest T solved by ≥ half the seeds)": _num(r["task_span"]),
            "first unsolved T": _num(r["first_unsolved"]),
            "probe span (lags)": _fmt_spread(r["probe_span_median"], r["probe_span_q1"],
                                             r["probe_span_q3"], r["probe_span_n"]),
            "memory capacity (Σ r²)": _fmt_spread(
                r["memory_capacity_median"], r["memory_capacity_q1"], r["memory_capacity_q3"],
                r["memory_capacity_n"]),
        }
    rows = dict(sorted(rows.items()))
    names = ["task", "arch", "clip"] + (["label"] if len(labels) > 1 else [])
    view = pd.DataFrame.from_dict(rows, orient="index")
    view.index = pd.MultiIndex.from_tuples(list(rows), names=names)
    return [("", view)]


def _problem_runs(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame[frame["status"].isin(["error", "diverged"])]
    columns = ["label", "run_id", "task", "arch", "seq_len", "clip", "seed", "status",
               "diverged_step", "error"]
    out = bad[columns].copy()
    out["diverged_step"] = out["diverged_step"].astype(object).where(
        out["diverged_step"].notna(), None
    )
    out["error"] = out["error"].map(lambda v: v if isinstance(v, str) and v else _DASH)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _palette(archs: Iterable[str]) -> dict[str, Any]:
    names = sorted(set(archs))
    colours = sns.color_palette("colorblind", n_colors=max(len(names), 1))
    return {name: colours[i % len(colours)] for i, name in enumerate(names)}


def _series(frame: pd.DataFrame, multi: bool) -> pd.Series:
    # line style encodes the clip mode, and in comparison mode the label as well
    if multi:
        return frame["label"].astype(str) + " · " + frame["clip"].astype(str)
    return frame["clip"].astype(str)


def _log_axes(axes: Iterable[Any]) -> None:
    """Log y only on axes that hold positive data (matplotlib warns on an empty log axis)."""
    for ax in axes:
        ys = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
        ys += [np.asarray(c.get_paths()[0].vertices[:, 1]) for c in ax.collections
               if hasattr(c, "get_paths") and c.get_paths()]
        values = np.concatenate(ys) if ys else np.empty(0)
        if np.any(np.isfinite(values) & (values > 0)):
            ax.set_yscale("log")


def _relplot(data: pd.DataFrame, *, x: str, y: str, row: str, col: str, ctx: _Ctx,
             xlabel: str, ylabel: str, log: bool, markers: bool = False) -> sns.FacetGrid:
    grid = sns.relplot(
        data=data, x=x, y=y, row=row, col=col, hue="arch", style="series", kind="line",
        palette=ctx.palette, hue_order=sorted(data["arch"].unique()),
        style_order=sorted(data["series"].unique()), estimator="median",
        errorbar=("pi", 50), markers=markers, height=_FIG_HEIGHT, aspect=_FIG_ASPECT,
        facet_kws={"margin_titles": True, "sharey": False, "sharex": False},
    )
    grid.set_axis_labels(xlabel, ylabel)
    if grid.legend is not None:  # the style column is an internal name; say what it encodes
        for text in grid.legend.texts:
            if text.get_text() == "series":
                text.set_text("label · clip" if ctx.multi else "clip")
    if log:
        _log_axes(grid.axes.flat)
    # relplot already draws its legend outside the facets, to the right
    return grid


@dataclass
class _Ctx:
    palette: dict[str, Any]
    multi: bool


def _profile_frame(frame: pd.DataFrame, ctx: _Ctx) -> pd.DataFrame:
    rows: list[tuple[Any, ...]] = []
    for run in frame.itertuples():
        profiles = run.profiles
        if not isinstance(profiles, list) or not profiles:
            continue
        for phase, profile in (("init", profiles[0]), ("end", profiles[-1])):
            norms = np.asarray(profile.get("norms") or [], dtype=np.float64)
            for t, value in enumerate(norms):
                rows.append((run.label, run.task, int(run.seq_len), run.arch, run.clip,
                             run.seed, phase, t, value))
    data = pd.DataFrame(rows, columns=["label", "task", "T", "arch", "clip", "seed", "phase",
                                       "t", "norm"])
    # with no profile at all (diagnostics off) the empty frame's columns are object-typed
    data["norm"] = data["norm"].astype(np.float64)
    # a norm that underflowed to exactly 0 ("below float floor") has no logarithm: mask it
    data = data[np.isfinite(data["norm"]) & (data["norm"] > 0)].copy()
    data["series"] = _series(data, ctx.multi)
    return data


def fig_gradient_profiles(frame: pd.DataFrame, ctx: _Ctx) -> list[tuple[str, Figure, str]]:
    data = _profile_frame(frame, ctx)
    out = []
    for phase, words in (("init", "at initialisation"), ("end", "at the end of training")):
        sub = data[data["phase"] == phase]
        if sub.empty:
            continue
        fig = _relplot(sub, x="t", y="norm", row="task", col="T", ctx=ctx,
                       xlabel="time step t", ylabel="‖∂L/∂h_t‖", log=True).figure
        fig.suptitle(f"Gradient norm through time {words} (median, IQR band over seeds)",
                     y=1.02)
        out.append((f"grad_profile_{phase}", fig,
                    f"‖∂L/∂h_t‖ against time step t {words}; log y; zeros (below the float "
                    "floor) are masked; line = median over seeds, band = IQR."))
    return out


def _curve_frame(frame: pd.DataFrame, ctx: _Ctx, curve: str, normalise: bool) -> pd.DataFrame:
    rows: list[tuple[Any, ...]] = []
    for run in frame.itertuples():
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
        rows.extend(
            (run.label, run.task, int(run.seq_len), run.arch, run.clip, run.seed, int(s), v)
            for s, v in zip(steps, values, strict=False)
        )
    data = pd.DataFrame(rows, columns=["label", "task", "T", "arch", "clip", "seed", "step",
                                       "value"])
    data = data[np.isfinite(data["value"]) & (data["value"] > 0)].copy()
    data["series"] = _series(data, ctx.multi)
    return data


def _reference_line(fig: Figure, y: float) -> None:
    """A dashed horizontal line at ``y`` on every panel that has data (baseline, r = 1)."""
    for ax in fig.axes:
        if ax.has_data():
            ax.axhline(y, color="0.3", lw=1, ls="--", zorder=0)


def fig_learning_curves(frame: pd.DataFrame, ctx: _Ctx) -> list[tuple[str, Figure, str]]:
    data = _curve_frame(frame, ctx, "loss", normalise=True)
    if data.empty:
        return []
    fig = _relplot(data, x="step", y="value", row="task", col="T", ctx=ctx,
                   xlabel="training step", ylabel="loss / baseline loss", log=True).figure
    _reference_line(fig, 1.0)
    fig.suptitle("Learning curves: normalized training loss (dashed: baseline = 1)", y=1.02)
    return [("learning_curves", fig,
             "Training loss divided by the task's baseline loss against step; the dashed line "
             "at 1 is the trivial baseline; median over seeds with IQR band; log y.")]


def fig_solved_heatmap(frame: pd.DataFrame, ctx: _Ctx) -> list[tuple[str, Figure, str]]:
    numbers = headline_numbers(frame)
    if numbers.empty:
        return []
    panels = list(numbers.groupby(["task", "label", "clip"], sort=True))
    ncols = min(len(panels), 4)
    nrows = math.ceil(len(panels) / ncols)
    archs = sorted(numbers["arch"].unique())
    lens = sorted(int(t) for t in numbers["seq_len"].unique())
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(0.7 * len(lens) + 2.2) * np.array([ncols, 0])
                             + np.array([0, (0.35 * len(archs) + 1.2) * nrows]))
    for ax, ((task, label, clip), sub) in zip(axes.flat, panels, strict=False):
        rate = sub.pivot(index="arch", columns="seq_len", values="solved_rate")
        rate = rate.reindex(index=archs, columns=lens)
        text = sub.assign(kn=sub["solved"].astype(str) + "/" + sub["runs"].astype(str)).pivot(
            index="arch", columns="seq_len", values="kn").reindex(index=archs, columns=lens)
        # a T with no runs in this panel is an all-NaN float column: blank it as object
        labels = text.astype(object).where(text.notna(), "").to_numpy(dtype=object)
        sns.heatmap(rate.astype(float), ax=ax, vmin=0, vmax=1, cmap="viridis", cbar=False,
                    annot=labels, fmt="", linewidths=0.5,
                    annot_kws={"fontsize": 8})
        ax.set_title(f"{task} · clip {clip}" + (f" · {label}" if ctx.multi else ""),
                     fontsize=9)
        ax.set_xlabel("sequence length T (steps)")
        ax.set_ylabel("architecture")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    mappable = plt.cm.ScalarMappable(cmap="viridis", norm=matplotlib.colors.Normalize(0, 1))
    fig.colorbar(mappable, ax=axes.ravel().tolist(), label="solved rate (fraction of seeds)",
                 shrink=0.8)
    return [("solved_heatmap", fig,
             "Fraction of seeds that solved the task (cell text: solved k/n), architecture × T, "
             "one panel per task and clip mode.")]


def fig_grad_factor(frame: pd.DataFrame, ctx: _Ctx) -> list[tuple[str, Figure, str]]:
    parts = []
    for phase, column in (("init", "grad_factor_init"), ("end", "grad_factor")):
        part = frame[["label", "task", "seq_len", "arch", "clip", "seed", column]].rename(
            columns={column: "r", "seq_len": "T"})
        parts.append(part.assign(phase=phase))
    data = pd.concat(parts, ignore_index=True)
    data["r"] = data["r"].astype(float)
    data = data[np.isfinite(data["r"]) & (data["r"] > 0)].copy()
    if data.empty:
        return []
    data["T"] = data["T"].astype(int)
    data["series"] = _series(data, ctx.multi)
    fig = _relplot(data, x="T", y="r", row="task", col="phase", ctx=ctx,
                   xlabel="sequence length T (steps)", ylabel="per-step gradient factor r",
                   log=True, markers=True).figure
    _reference_line(fig, 1.0)
    fig.suptitle("Per-step gradient factor r (r < 1 vanishing, r > 1 exploding)", y=1.02)
    return [("grad_factor", fig,
             "Per-step gradient factor r against T at init and at the end of training; dashed "
             "line r = 1; median over seeds with IQR band; log y.")]


def fig_memory_capacity(frame: pd.DataFrame, ctx: _Ctx) -> list[tuple[str, Figure, str]]:
    rows = []
    for run in frame.itertuples():
        probe = run.probe
        if not isinstance(probe, dict):
            continue
        for k, r2 in enumerate(probe.get("r2") or [], start=1):
            rows.append((run.label, run.task, int(run.seq_len), run.arch, run.clip, run.seed,
                         k, r2))
    data = pd.DataFrame(rows, columns=["label", "task", "T", "arch", "clip", "seed", "lag",
                                       "r2"])
    data = data[np.isfinite(data["r2"].astype(float))].copy()
    if data.empty:
        return []
    data["series"] = _series(data, ctx.multi)
    fig = _relplot(data, x="lag", y="r2", row="task", col="T", ctx=ctx,
                   xlabel="lag k (steps back)", ylabel="probe r² of input at t − k", log=False,
                   markers=True).figure
    fig.suptitle("Memory capacity curves r²(k)", y=1.02)
    return [("memory_capacity", fig,
             "Linear-probe r² for recovering the input k steps back from the hidden state; "
             "median over seeds with IQR band.")]


def fig_grad_norm_training(frame: pd.DataFrame, ctx: _Ctx) -> list[tuple[str, Figure, str]]:
    data = _curve_frame(frame, ctx, "grad_norm", normalise=False)
    if data.empty:
        return []
    grid = _relplot(data, x="step", y="value", row="task", col="T", ctx=ctx,
                    xlabel="training step", ylabel="pre-clip global ‖g‖", log=True)
    fig = grid.figure
    diverged = frame[(frame["status"] == "diverged") & frame["diverged_step"].notna()]
    for run in diverged.itertuples():
        ax = grid.axes_dict.get((run.task, int(run.seq_len)))
        if ax is None:
            continue
        colour = ctx.palette.get(run.arch, "k")
        ax.axvline(int(run.diverged_step), color=colour, ls=":", lw=1.5)
        # × at the top edge: the curve itself may be inf/NaN after divergence
        ax.plot([int(run.diverged_step)], [0.97], marker="x", ms=8, ls="none", color=colour,
                transform=ax.get_xaxis_transform(), clip_on=False)
    fig.suptitle("Pre-clip gradient norm during training (dotted ×: divergence step)", y=1.02)
    return [("grad_norm_training", fig,
             "Global gradient norm before clipping against training step; log y; dotted "
             "vertical lines with × mark the step at which a run diverged (colour = "
             "architecture).")]


# --------------------------------------------------------------------------------------------
# Theory check
# --------------------------------------------------------------------------------------------

_PRODUCTS: tuple[tuple[str, float, int, float], ...] = (
    # (what, per-layer factor, layers, the number the seed text states for the product)
    ("sigmoid derivative bound 0.25 over 10 layers", 0.25, 10, 1e-7),
    ("factor 0.2 over 19 steps (vanishing)", 0.2, 19, 5.24e-14),
    ("factor 2.5 over 19 steps (exploding)", 2.5, 19, 1.42e8),
    ("factor 1.1 over 100 steps (slow explosion)", 1.1, 100, 13_780),
)
#: A stated number agrees with the computed one within this relative difference (the texts
#: round to 2-3 significant digits).
_AGREES = 0.05


def _verdict(value: float, stated: float) -> str:
    ratio = value / stated
    if abs(ratio - 1) <= _AGREES:
        return "agrees"
    return f"text is off: computed = {ratio:.3g} × stated"
SIGMOID_LAYERS = 50
SIGMOID_DIM = 32
SIGMOID_SCALES = (1.0, 6.0)


@functools.lru_cache(maxsize=4)
def sigmoid_stack_norms(scale: float, layers: int = SIGMOID_LAYERS, dim: int = SIGMOID_DIM,
                        seed: int = 0, batch: int = 64) -> tuple[float, ...]:
    """‖∂L/∂h_l‖ for every layer l = 0..layers-1 of a bias-free sigmoid stack
    h_{l+1} = σ(W_l h_l) − ½, W_l ~ N(0, 1)·scale/√dim, L = Σ h_L (batch-summed).

    Measured by torch autograd in float64 with a private seeded generator (no global RNG)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    hidden: list[torch.Tensor] = []
    for _ in range(layers):
        weight = torch.randn(dim, dim, generator=gen, dtype=torch.float64) * scale / math.sqrt(dim)
        h = h.detach().requires_grad_(True) if not hidden and not h.requires_grad else h
        hidden.append(h)
        # centred (σ − ½): same derivative σ′ ≤ ¼, but zero-mean activations, so a large
        # scale amplifies (‖W‖·σ′ > 1) instead of saturating every unit
        h = torch.sigmoid(h @ weight.T) - 0.5
    for tensor in hidden:
        tensor.retain_grad()
    h.sum().backward()
    return tuple(float(t.grad.norm()) if t.grad is not None else 0.0 for t in hidden)


def theory_check() -> pd.DataFrame:
    """The seed texts' numbers, computed: products of per-layer factors and a measured 50-layer
    sigmoid stack.  Columns: quantity, value, quoted (what the text states), verdict (whether
    the computed value bears the text out; empty where the text states nothing), detail."""
    rows: list[dict[str, Any]] = []
    for what, factor, layers, stated in _PRODUCTS:
        value = math.prod([factor] * layers)
        rows.append({"quantity": f"{factor:g}^{layers}", "value": value,
                     "quoted": f"≈ {stated:.3g}", "verdict": _verdict(value, stated),
                     "detail": what})
    for scale in SIGMOID_SCALES:
        norms = np.asarray(sigmoid_stack_norms(scale), dtype=np.float64)
        summary = summarize_profile(norms, (0, len(norms)))
        kind = "vanishes" if summary.factor < 1 else "explodes"
        expected = "vanishes" if scale == 1.0 else "explodes"
        base = f"{SIGMOID_LAYERS}-layer sigmoid stack, dim {SIGMOID_DIM}, scale {scale:g}"
        rows.append({"quantity": f"sigmoid scale {scale:g}: per-layer factor r",
                     "value": summary.factor,
                     "quoted": "< 1 (vanishes)" if scale == 1.0 else "> 1 (explodes)",
                     "verdict": "agrees" if kind == expected else f"text is off: it {kind}",
                     "detail": f"{base}: measured r = exp(slope of log‖∂L/∂h_l‖) → {kind}"})
        rows.append({"quantity": f"sigmoid scale {scale:g}: first/last layer norm ratio",
                     "value": norms[0] / norms[-1] if norms[-1] > 0 else math.nan,
                     "quoted": "", "verdict": "",
                     "detail": f"{base}: ‖∂L/∂h_0‖ / ‖∂L/∂h_{SIGMOID_LAYERS - 1}‖"})
        rows.append({"quantity": f"sigmoid scale {scale:g}: gradient span (layers)",
                     "value": float(summary.span), "quoted": "", "verdict": "",
                     "detail": f"{base}: layers back the norm stays ≥ 1e-6 × its maximum"})
    return pd.DataFrame(rows, columns=["quantity", "value", "quoted", "verdict", "detail"])


def theory_text() -> str:
    """The theory check as plain text, one line per quantity."""
    frame = theory_check()
    lines = ["Theory check (computed, not quoted):"]
    for r in frame.itertuples():
        quoted = f"  (text: {r.quoted}; {r.verdict})" if r.quoted else ""
        lines.append(f"  {r.quantity} = {r.value:.4g}{quoted}  - {r.detail}")
    return "\n".join(lines)


def fig_theory() -> tuple[str, Figure, str]:
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for scale, colour in zip(SIGMOID_SCALES, ("tab:blue", "tab:red"), strict=True):
        norms = np.asarray(sigmoid_stack_norms(scale))
        layers = np.arange(len(norms))
        keep = np.isfinite(norms) & (norms > 0)  # log(0) masked
        ax.plot(layers[keep], norms[keep], color=colour, label=f"weight scale {scale:g}")
    ax.set_yscale("log")
    ax.set_xlabel("layer l (0 = input side)")
    ax.set_ylabel("‖∂L/∂h_l‖")
    ax.set_title(f"{SIGMOID_LAYERS}-layer sigmoid stack, dim {SIGMOID_DIM}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return ("theory_sigmoid_stack", fig,
            "Per-layer gradient norm of a 50-layer sigmoid stack: scale 1.0 vanishes towards "
            "the input, scale 6.0 explodes.")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;font-size:.82rem;margin:.6rem 0 1.2rem;display:block;
overflow-x:auto}
th,td{border:1px solid #ddd;padding:.2rem .45rem;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td.text,th.text{text-align:left;white-space:normal}
tbody tr:nth-child(even){background:#fafafa}
figure{margin:1rem 0}figure img{max-width:100%;height:auto}figcaption{font-size:.85rem;color:#555}
nav ol{columns:2}details pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.8rem}
.note{color:#555;font-size:.9rem}
"""


def _html_table(view: pd.DataFrame) -> str:
    # to_html escapes cell text by default (escape=True): error messages may contain <, &
    return view.to_html(escape=True, na_rep=_DASH, border=0, index=True)


def _md_cell(value: Any) -> str:
    text = _DASH if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(view: pd.DataFrame) -> str:
    flat = view.reset_index()
    headers = [
        " / ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c)
        for c in flat.columns
    ]
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
             "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |"
              for row in flat.itertuples(index=False)]
    return "\n".join(lines)


@dataclass
class _Section:
    anchor: str
    title: str
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)

    def para(self, text: str) -> None:
        self.html.append(f"<p class='note'>{html.escape(text)}</p>")
        self.md.append(text)

    def table(self, caption: str, view: pd.DataFrame) -> None:
        if caption:
            self.html.append(f"<h3>{html.escape(caption)}</h3>")
            self.md.append(f"### {caption}")
        self.html.append(_html_table(view))
        self.md.append(_md_table(view))


def _tight_box(fig: Figure) -> Any:
    from matplotlib.transforms import Bbox

    box = fig.get_tightbbox(fig.canvas.get_renderer())  # type: ignore[attr-defined]
    return Bbox.from_extents(box.x0 - 0.1, box.y0 - 0.1, box.x1 + 0.1, box.y1 + 0.1)


def _save_figure(name: str, fig: Figure, caption: str, figdir: Path, section: _Section) -> None:
    buffer = io.BytesIO()
    box = _tight_box(fig)  # computed once, used for both formats
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches=box)
    png = buffer.getvalue()
    (figdir / f"{name}.png").write_bytes(png)
    # bbox_inches="tight" would redo the (slow) tight-bbox pass for every format
    fig.savefig(figdir / f"{name}.svg", format="svg", bbox_inches=box)
    plt.close(fig)
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(caption, quote=True)
    section.html.append(
        f"<figure><img src='data:image/png;base64,{data}' alt='{alt}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )
    section.md.append(
        f"![{caption}](figures/{name}.png)\n\n*{caption}* ([SVG](figures/{name}.svg))"
    )


def _metadata_section(frame: pd.DataFrame, stores: Sequence[str | Path], labels: list[str],
                      section: _Section) -> None:
    rows: dict[str, dict[str, str]] = {}
    for store, label in zip(stores, labels, strict=True):
        sub = frame[frame["label"] == label]
        envs = [e for e in sub["env"] if isinstance(e, dict)]
        env = envs[0] if envs else {}
        counts = sub["status"].value_counts()
        stamps = sorted(str(s) for s in sub["created_at"].dropna())
        rows[label] = {
            "store": str(store),
            "sweeps": ", ".join(sorted({str(s) for s in sub["sweep"].dropna()})) or _DASH,
            "runs": str(len(sub)),
            **{f"status {s}": str(int(counts.get(s, 0))) for s in ("ok", "diverged", "error")},
            **{key: str(env.get(key, _DASH)) for key in
               ("rnnbench", "torch", "python", "device", "device_name", "threads",
                "git_revision")},
            "runs recorded": f"{stamps[0]} … {stamps[-1]}" if stamps else _DASH,
        }
    view = pd.DataFrame.from_dict(rows, orient="index")
    view.index.name = "label"
    section.table("", view.T)
    for store, label in zip(stores, labels, strict=True):
        sub = frame[frame["label"] == label]
        with Store(store, readonly=True) as db:
            for sweep in sorted({str(s) for s in sub["sweep"].dropna()}):
                text = db.get_meta(f"sweep:{sweep}")
                if not isinstance(text, str):
                    continue
                title = f"sweep file '{sweep}' ({label})"
                section.html.append(f"<details><summary>{html.escape(title)}</summary>"
                                    f"<pre>{html.escape(text)}</pre></details>")
                section.md.append(f"<details><summary>{title}</summary>\n\n```toml\n{text}\n```"
                                  "\n\n</details>")
    problems = _problem_runs(frame)
    section.html.append("<h3>Failed and diverged runs</h3>")
    section.md.append("### Failed and diverged runs")
    if problems.empty:
        section.para("None: every run finished without diverging.")
    else:
        view = problems.set_index("run_id")
        section.html.append(_html_table(view))
        section.md.append(_md_table(view))


def _render_html(title: str, sections: list[_Section], generated: str) -> str:
    toc = "".join(f"<li><a href='#{s.anchor}'>{html.escape(s.title)}</a></li>" for s in sections)
    body = "".join(
        f"<section id='{s.anchor}'><h2>{html.escape(s.title)}</h2>{''.join(s.html)}</section>"
        for s in sections
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='note'>Generated {html.escape(generated)}. "
        "Aggregates over seeds: median [q1–q3] n=seeds with a value.</p>"
        f"<nav><h2>Contents</h2><ol>{toc}</ol></nav>{body}</body></html>\n"
    )


def _safe(figures: Callable[[pd.DataFrame, _Ctx], list[tuple[str, Figure, str]]],
          frame: pd.DataFrame, ctx: _Ctx) -> list[tuple[str, Figure, str]]:
    usable = frame[frame["status"] != "error"]
    return figures(usable, ctx) if not usable.empty else []


def build_report(stores: Sequence[str | Path], out: str | Path,
                 labels: Sequence[str] | None = None,
                 runs: Collection[str] | None = None) -> Path:
    """Write ``out/index.html`` (self-contained), ``out/report.md``, ``out/figures/*.png|svg``
    and ``out/tables/*.csv`` for one store, or compare several (one label per store; labels
    default to the store file stems).  ``runs``: only these run ids (one sweep file's runs).
    Returns the path of ``index.html``.

    Raises :class:`ConfigError` for a store whose group holds runs of two configurations
    (their seeds would be pooled) and for an ``out`` that is an existing file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file; give a folder for the report")
    frame = _label_frames(list(stores), labels, runs)
    labels = list(frame.attrs["labels"])
    multi = len(labels) > 1
    figdir, tabledir = out / "figures", out / "tables"
    figdir.mkdir(parents=True, exist_ok=True)
    tabledir.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(palette=_palette(frame["arch"].dropna()), multi=multi)

    headline = headline_numbers(frame)
    stability = stability_numbers(frame)
    memory = memory_numbers(frame)
    theory = theory_check()
    problems = _problem_runs(frame)
    for name, table in (("headline", headline), ("stability", stability), ("memory", memory),
                        ("theory", theory), ("problem_runs", problems)):
        table.to_csv(tabledir / f"{name}.csv", index=False)

    sections: list[_Section] = []
    s = _Section("headline", "Headline: solved seeds and normalized loss")
    s.para("Per task: architecture × T; one column group per clip mode. 'solved' is k/n seeds "
           "(errored runs count as not solved); 'norm. loss' is final loss / baseline loss."
           + (f" Δ columns: {labels[1]} minus {labels[0]}." if multi else ""))
    for caption, view in _headline_views(headline, labels):
        s.table(caption, view)
    sections.append(s)

    s = _Section("memory", "Memory span")
    for caption, view in _memory_views(memory, labels):
        s.table(caption, view)
    sections.append(s)

    s = _Section("stability", "Stability")
    s.para("Divergence rate among finished runs, max pre-clip global gradient norm, fraction "
           "of steps clipped and the per-step gradient factor r (< 1 vanishing, > 1 exploding).")
    for caption, view in _stability_views(stability, labels):
        s.table(caption, view)
    sections.append(s)

    figure_sections = (
        ("fig-profiles", "Gradient norm through time", fig_gradient_profiles),
        ("fig-learning", "Learning curves", fig_learning_curves),
        ("fig-solved", "Solved rate", fig_solved_heatmap),
        ("fig-factor", "Per-step gradient factor", fig_grad_factor),
        ("fig-memory", "Memory capacity", fig_memory_capacity),
        ("fig-gradnorm", "Gradient norm during training", fig_grad_norm_training),
    )
    for anchor, title, make in figure_sections:
        s = _Section(anchor, title)
        figures = _safe(make, frame, ctx)
        if not figures:
            s.para("No data: no finished run recorded this quantity.")
        for name, fig, caption in figures:
            _save_figure(name, fig, caption, figdir, s)
        sections.append(s)

    s = _Section("theory", "Theory check")
    s.para("Numbers from the text, computed here (not quoted): products of per-layer factors, "
           "and a sigmoid stack measured with torch autograd. 'verdict' says whether the "
           f"computed value bears out what the text states (within {_AGREES:.0%}).")
    s.table("", theory.assign(value=theory["value"].map(lambda v: f"{v:.4g}")).set_index(
        "quantity"))
    _save_figure(*fig_theory(), figdir, s)
    sections.append(s)

    s = _Section("metadata", "Run metadata")
    _metadata_section(frame, list(stores), labels, s)
    sections.append(s)

    generated = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = "rnnbench report: " + " vs ".join(labels)
    index = out / "index.html"
    index.write_text(_render_html(title, sections, generated), encoding="utf-8")
    md = [f"# {title}", "", f"Generated {generated}. Aggregates over seeds: median [q1–q3] "
          "n=seeds with a value.", ""]
    md += [f"- [{s.title}](#{s.anchor})" for s in sections]
    for s in sections:
        md += ["", f"## {s.title}", "", *("\n\n".join(s.md).splitlines())]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return index
